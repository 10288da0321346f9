"""Data parallelism: every rank holds the whole network and trains it on its own part of each batch.

The VGG paper trained on four GPUs this way (papers.md §3): "each batch is split into several GPU
batches, processed in parallel on each GPU. After the GPU batch gradients are computed, they are
averaged to obtain the gradient of the full batch" — the same result as one GPU, 3.75× faster. Why it
is the same: with a loss that is a mean over the batch, and W ranks of B examples each,

    L = 1/(W·B) Σ_i ℓ_i = 1/W Σ_r L_r,   L_r = 1/B Σ_{i on rank r} ℓ_i,   so   ∇L = 1/W Σ_r ∇L_r.

Each rank computes ∇L_r by an ordinary backward; one all-reduce (sum) divided by W gives every rank
∇L, and identical weights + identical gradients + identical optimizers keep the ranks identical.
Batch norm is the exception: its statistics are over the rank's B examples, not W·B (see
sync_batchnorm.py for the version that sums them over the ranks).

Bucketing. An all-reduce costs a fixed latency plus size/bandwidth; ResNet-50 has 161 parameter
tensors, most of them small, so one message per tensor would pay the latency 161 times. The
gradients are instead concatenated into flat buckets of at most ``bucket_cap_mb`` megabytes (25, as in
PyTorch), one all-reduce per bucket, and cut back into per-parameter gradients afterwards. (PyTorch also
starts reducing a bucket while backward is still running for the layers below; minicnn has no
backward hooks, so it reduces after backward, in one go.)
"""
from __future__ import annotations

import numpy as np

from .. import backend
from ..autograd import Tensor
from .process_group import get_default_group

__all__ = ["DistributedDataParallel", "broadcast_parameters", "bucket_gradients"]


def broadcast_parameters(module, src=0, group=None):
    """Copy rank ``src``'s parameters and buffers (batch-norm statistics) into every rank's ``module``,
    in place, so that all ranks start from the same weights. One message per tensor (done once)."""
    group = group or get_default_group()
    if group is None or group.world_size == 1:
        return module
    for _, p in module.named_parameters():
        group.broadcast(p.data, src)
    for _, b in module.named_buffers():
        if b is not None:
            group.broadcast(b, src)
    return module


def bucket_gradients(params, bucket_cap_mb=25):
    """Split ``params`` (those with a gradient, in order) into buckets: lists of parameters of one dtype
    and device whose gradients together take at most ``bucket_cap_mb`` MB (a bigger single gradient gets
    a bucket of its own)."""
    cap = bucket_cap_mb * 2 ** 20
    buckets, current, size, kind = [], [], 0, None
    for p in params:
        g = p.grad.data
        this_kind, nbytes = (g.dtype, backend.device_of(g)), g.size * g.dtype.itemsize
        if current and (this_kind != kind or size + nbytes > cap):
            buckets.append(current)
            current, size = [], 0
        current.append(p)
        size, kind = size + nbytes, this_kind
    if current:
        buckets.append(current)
    return buckets


class DistributedDataParallel:
    """Train ``module`` on W ranks at once (PyTorch's ``torch.nn.parallel.DistributedDataParallel``).

        ddp = DistributedDataParallel(model)     # rank 0's parameters and buffers are broadcast
        loss = F.cross_entropy(ddp(x), y)        # x, y: this rank's share of the batch
        loss.backward()
        ddp.all_reduce_gradients()               # every gradient becomes the mean over the ranks
        optimizer.step()                         # the same step on every rank

    module         the network (a minicnn Module); ``ddp.module`` is it, unchanged, so its state_dict
                   (and checkpoints) are the same as in a single process
    bucket_cap_mb  the largest bucket of gradients sent as one all-reduce (25 MB, PyTorch's default)
    group          a ProcessGroup; default: the one of ``init_process_group`` (none: one process)

    Unlike PyTorch, gradients are not averaged during backward (minicnn has no backward hooks): call
    ``all_reduce_gradients()`` between backward and the optimizer step (minicnn's Trainer does). Every
    rank must have gradients for the same parameters; this is checked whenever that set changes.
    """

    def __init__(self, module, bucket_cap_mb=25, group=None):
        if bucket_cap_mb <= 0:
            raise ValueError(f"DistributedDataParallel: bucket_cap_mb must be > 0, got {bucket_cap_mb}")
        self.module, self.bucket_cap_mb = module, bucket_cap_mb
        self.group = group or get_default_group()
        self.messages = 0                      # all-reduces sent so far (the tests count them)
        self._checked = None                   # the parameters with gradients last agreed on by all ranks
        broadcast_parameters(module, group=self.group)

    @property
    def rank(self):
        return 0 if self.group is None else self.group.rank

    @property
    def world_size(self):
        return 1 if self.group is None else self.group.world_size

    @property
    def is_main(self):
        return self.rank == 0

    def __call__(self, *args, **kwargs):
        return self.module(*args, **kwargs)

    def __repr__(self):
        return f"DistributedDataParallel(rank {self.rank} of {self.world_size}, bucket_cap_mb={self.bucket_cap_mb})"

    def all_reduce_gradients(self):
        """grad ← (Σ_r grad_r) / W for every parameter with a gradient, one all-reduce per bucket.

        float16 gradients (mixed precision) are summed in float32: MPI has no half type, and a sum of
        W scaled float16 gradients could overflow where their mean does not."""
        if self.world_size == 1:
            return
        params = [p for p in self.module.parameters() if p.grad is not None]
        self._check_same_parameters(params)
        for bucket in bucket_gradients(params, self.bucket_cap_mb):
            grads = [p.grad.data for p in bucket]
            xp = backend.get_array_module(grads[0])
            dtype = grads[0].dtype
            flat = xp.concatenate([g.astype(np.float32 if dtype == np.float16 else dtype).ravel() for g in grads])
            self.group.all_reduce(flat)
            self.messages += 1
            flat /= self.world_size
            offset = 0
            for p, g in zip(bucket, grads):
                # Views into the fresh flat buffer: no copy, and no aliasing with the old gradient arrays.
                p.grad = Tensor(flat[offset:offset + g.size].reshape(g.shape).astype(dtype, copy=False))
                offset += g.size

    def _check_same_parameters(self, params):
        """Raise when the ranks' sets of parameters with gradients differ: their buckets would not line up
        and the all-reduce would add unrelated numbers (or wait for ever)."""
        index = {id(p): i for i, p in enumerate(self.module.parameters())}
        mine = tuple(index[id(p)] for p in params)
        if mine == self._checked:
            return
        everyone = self.group.all_gather_object(mine)
        if any(theirs != mine for theirs in everyone):
            counts = ", ".join(f"rank {r}: {len(theirs)}" for r, theirs in enumerate(everyone))
            raise RuntimeError(f"DistributedDataParallel: the ranks have gradients for different parameters "
                               f"({counts}); every rank must run the same network on the same code path "
                               f"(an unused branch gets no gradient on one rank only)")
        self._checked = mine
