"""A few steps of data-parallel training, run by tests/test_distributed.py under ``mpiexec -n 2``.

    mpiexec -n 2 python tests/mpi_scripts/data_parallel.py --out DIR [--epochs E] [--batch-norm] [--sync-bn]
                                                           [--resume CHECKPOINT] [--fail-rank R]

Each rank trains the same small network with the Trainer on its shard (batch B per rank) and rank 0 writes
DIR/checkpoint.npz. The tests import ``make_trainer`` from here to train the single-process reference
(batch W·B on the same data), so both sides are built by the same lines.
"""
import argparse
from pathlib import Path

import numpy as np

import minicnn
from minicnn import distributed as dist
from minicnn import nn, optim
from minicnn.data import DataLoader
from minicnn.training import Trainer

EXAMPLES, BATCH = 64, 8          # N examples; B per rank (the reference uses W·B)


def dataset():
    rng = np.random.default_rng(0)
    return rng.standard_normal((EXAMPLES, 1, 8, 8)).astype(np.float32), rng.integers(0, 4, EXAMPLES)


def network(batch_norm=False):
    """conv 3×3 (→ BN) → ReLU → max-pool → linear: 4 classes of 8×8 images."""
    minicnn.manual_seed(0)
    norm = [nn.BatchNorm2d(6)] if batch_norm else []
    return nn.Sequential(nn.Conv2d(1, 6, 3, padding=1, bias=not batch_norm), *norm, nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(6 * 4 * 4, 4))


def make_trainer(batch_size, num_replicas=1, rank=0, batch_norm=False, sync_bn=False, distributed=False,
                 out_dir=None):
    model = network(batch_norm)
    if sync_bn:
        dist.convert_sync_batchnorm(model)
    optimizer = optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-3)
    scheduler = optim.StepLR(optimizer, step_size=1, gamma=0.5)
    x, y = dataset()
    loader = DataLoader((x, y), batch_size, shuffle=True, seed=1, num_workers=0, num_replicas=num_replicas,
                        rank=rank)
    trained = dist.DistributedDataParallel(model) if distributed else model
    return Trainer(trained, optimizer, loader, scheduler=scheduler, out_dir=out_dir, progress=False,
                   log=lambda *args: None)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-norm", action="store_true")
    parser.add_argument("--sync-bn", action="store_true")
    parser.add_argument("--resume", type=Path)
    parser.add_argument("--fail-rank", type=int, default=None, help="this rank raises at its third step")
    args = parser.parse_args()

    dist.init_process_group()          # an uncaught exception in any rank now aborts the whole job
    rank, world_size = dist.get_rank(), dist.get_world_size()
    trainer = make_trainer(BATCH, world_size, rank, args.batch_norm, args.sync_bn, distributed=True,
                           out_dir=args.out)
    if args.fail_rank == rank:
        step, calls = trainer.train_step, []

        def failing_step(*step_args, **kwargs):
            calls.append(1)
            if len(calls) == 3:
                raise RuntimeError("injected failure at step 3")
            return step(*step_args, **kwargs)
        trainer.train_step = failing_step
    if args.resume is not None:
        trainer.resume(args.resume)
    trainer.fit(args.epochs)


if __name__ == "__main__":
    main()
