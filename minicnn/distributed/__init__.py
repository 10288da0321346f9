"""Data-parallel training over several processes, GPUs and machines, on MPI (and NCCL on GPUs).

    mpiexec -n 4 python train.py                     # or: mpiexec -n 4 minicnn train --distributed

    from minicnn import distributed as dist
    group = dist.init_process_group()                # rank 0..3 of 4 (mpi4py: pip install "minicnn[distributed]")
    model = dist.convert_sync_batchnorm(model)       # optional: BN statistics over the global batch
    ddp = dist.DistributedDataParallel(model)        # rank 0's weights and buffers on every rank
    loader = DataLoader(data, batch_size=B, shuffle=True, seed=0,
                        num_replicas=dist.get_world_size(), rank=dist.get_rank())   # disjoint shards
    for x, y in loader:                              # B examples per rank, W·B per step in all
        loss = F.cross_entropy(ddp(x), y)
        optimizer.zero_grad(); loss.backward()
        ddp.all_reduce_gradients()                   # gradients averaged over the ranks, in buckets
        optimizer.step()                             # identical on every rank
    # or simply: Trainer(ddp, optimizer, loader, ...).fit(epochs) — only rank 0 prints and writes files

The files, one idea each:

    process_group.py    init_process_group, rank / world size, all_reduce, broadcast (MPI, NCCL),
                        and stopping every rank when one fails (abort_on_error)
    parallel.py         DistributedDataParallel (bucketed gradient all-reduce), broadcast_parameters
    sync_batchnorm.py   SyncBatchNorm, convert_sync_batchnorm

The data side (each rank reads a disjoint, seeded shard of every epoch: PyTorch's DistributedSampler) is
``minicnn.data.DataLoader(..., num_replicas=W, rank=r)``. How to run on several cores, GPUs and machines,
and what changes (global batch, learning rate, batch norm): docs/distributed.md.

Nothing here imports mpi4py until ``init_process_group`` is called; without it a program is one process
(rank 0 of 1) and every collective returns its input unchanged.
"""
from .parallel import DistributedDataParallel, broadcast_parameters, bucket_gradients
from .process_group import (ProcessGroup, abort, abort_on_error, all_gather_object, all_reduce, barrier, broadcast,
                            broadcast_object, destroy_process_group, get_default_group, get_local_rank, get_rank,
                            get_world_size, init_process_group, is_initialized, is_main_process)
from .sync_batchnorm import SyncBatchNorm, SyncBatchNormFunction, convert_sync_batchnorm

__all__ = ["init_process_group", "destroy_process_group", "is_initialized", "get_default_group", "ProcessGroup",
           "get_rank", "get_local_rank", "get_world_size", "is_main_process", "all_reduce", "broadcast",
           "broadcast_object", "all_gather_object", "barrier", "abort", "abort_on_error", "DistributedDataParallel",
           "broadcast_parameters", "bucket_gradients", "SyncBatchNorm", "SyncBatchNormFunction",
           "convert_sync_batchnorm"]
