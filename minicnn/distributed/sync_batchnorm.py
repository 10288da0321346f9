"""Synchronised batch norm: batch statistics over the whole global batch, summed across the ranks.

Shape letters: N this rank's batch, C channels, H, W (any trailing axes), W_r the number of ranks,
m = Σ_ranks N·H·W the values per channel in the global batch.

With plain BatchNorm2d under data parallelism each rank normalises with the mean and variance of its
own N examples: a different function from one process on the W_r·N examples (and with tiny per-rank
batches, a noisier one). SyncBatchNorm computes exactly the single-process statistics; per channel:

    forward    m, Σx         all-reduced            μ = Σx / m
               Σ(x − μ)²     all-reduced            σ² = Σ(x − μ)² / m        (biased; m/(m−1)·σ² → running_var)
               x̂ = (x − μ)/√(σ² + eps),  y = γ·x̂ + β
    backward   Σgy, Σgy·x̂    all-reduced (one message)
               gx = γ/√(σ² + eps) · (gy − Σgy/m − x̂·Σ(gy·x̂)/m)
               gγ = Σ_rank gy·x̂,  gβ = Σ_rank gy        (this rank's share; DistributedDataParallel
                                                          averages parameter gradients like any other)

Why the variance takes a second message instead of Σx² − m·μ²: that difference of two large numbers
loses most of float32's digits when |μ| ≫ σ; the two-pass form is the one BatchNorm2d computes. The
statistics are summed in float64 (2C + 1 numbers, nothing to pay for).

Why the backward is right: rank r's upstream gradient gy is that of its own loss L_r; with the global
sums, gx is the gradient of Σ_r L_r with respect to this rank's x (its x also moves the other ranks'
outputs through μ and σ). Every parameter gradient below is then a share of ∇(Σ_r L_r), and the
average over the ranks is ∇(1/W_r Σ_r L_r): the gradient of one process on the global batch.

In a single process every all-reduce returns its input, and SyncBatchNorm equals BatchNorm2d.
In evaluation (running statistics) nothing is communicated.
"""
from __future__ import annotations

import numpy as np

from .. import backend
from ..autograd import Function, Tensor
from ..functional.norm import _channel_shape, batch_norm
from ..nn.module import Module
from ..nn.norm import _BatchNorm
from .process_group import all_reduce

__all__ = ["SyncBatchNorm", "SyncBatchNormFunction", "convert_sync_batchnorm"]


class SyncBatchNormFunction(Function):
    """Batch norm with batch statistics over every rank: forward(x, gamma, beta) -> y, x (N, C, *).

    running_mean, running_var  (C,) arrays updated in place (or None), with momentum as in BatchNorm
    group                      the ProcessGroup (None: the default one)
    """

    def __init__(self, running_mean, running_var, momentum, eps, group=None):
        self.running_mean, self.running_var = running_mean, running_var
        self.momentum, self.eps, self.group = momentum, eps, group

    def forward(self, x, gamma, beta):
        xp = backend.get_array_module(x)
        channels, axes, shape = x.shape[1], (0,) + tuple(range(2, x.ndim)), _channel_shape(x)
        local = xp.concatenate([x.sum(axis=axes, dtype=np.float64), xp.array([x.size // channels], np.float64)])
        total = all_reduce(local, group=self.group)
        m = float(total[channels])
        if m <= 1:
            raise ValueError(f"SyncBatchNorm: expected more than 1 value per channel over all ranks when "
                             f"training, got {int(m)} (input shape {x.shape} on this rank)")
        mean = total[:channels] / m
        centered = x - mean.astype(x.dtype).reshape(shape)
        var = all_reduce((centered * centered).sum(axis=axes, dtype=np.float64), group=self.group) / m
        if self.running_mean is not None:
            self.running_mean[...] = (1 - self.momentum) * self.running_mean + self.momentum * mean
            self.running_var[...] = (1 - self.momentum) * self.running_var + self.momentum * var * (m / (m - 1))
        self.inv_std = (1 / xp.sqrt(var + self.eps)).astype(x.dtype)
        self.x_hat = centered * self.inv_std.reshape(shape)
        self.gamma, self.axes, self.m = gamma, axes, m
        return (gamma.reshape(shape) * self.x_hat + beta.reshape(shape)).astype(x.dtype, copy=False)

    def backward(self, gy):
        xp = backend.get_array_module(gy)
        channels, shape, axes, x_hat = gy.shape[1], _channel_shape(gy), self.axes, self.x_hat
        g_beta = gy.sum(axis=axes)
        g_gamma = (gy * x_hat).sum(axis=axes)
        gx = None
        if self.needs_input_grad[0]:
            sums = all_reduce(xp.concatenate([g_beta, g_gamma]).astype(np.float64), group=self.group)
            mean_gy = sums[:channels].astype(gy.dtype).reshape(shape) / self.m
            mean_gy_xhat = sums[channels:].astype(gy.dtype).reshape(shape) / self.m
            scale = (self.gamma * self.inv_std).reshape(shape)
            gx = (scale * (gy - mean_gy - x_hat * mean_gy_xhat)).astype(gy.dtype, copy=False)
        g_gamma = g_gamma.astype(self.gamma.dtype, copy=False) if self.needs_input_grad[1] else None
        g_beta = g_beta.astype(self.gamma.dtype, copy=False) if self.needs_input_grad[2] else None
        return gx, g_gamma, g_beta


class SyncBatchNorm(_BatchNorm):
    """Batch norm whose training statistics cover the global batch of every rank (PyTorch's
    ``torch.nn.SyncBatchNorm``): input (N, C, *), statistics per channel C.

    SyncBatchNorm(num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True,
    zero_init=False, group=None). The options are BatchNorm2d's (see minicnn.nn.norm); ``group`` is a
    ProcessGroup (default: the one of ``init_process_group``). Parameters, buffers and state_dict are
    BatchNorm2d's, so checkpoints move freely between the two. Every rank must call it in training
    mode at the same time (it communicates); in evaluation it is plain batch norm.
    """

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True,
                 zero_init=False, group=None):
        super().__init__(num_features, eps, momentum, affine, track_running_stats, zero_init)
        self.group = group

    def _check_input(self, x):
        if x.ndim < 2 or x.shape[1] != self.num_features:
            raise ValueError(f"SyncBatchNorm: expected an input of shape (N, {self.num_features}, *), "
                             f"got shape {tuple(x.shape)}")

    def forward(self, x):
        self._check_input(x)
        if not self.training and self.track_running_stats:
            return batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, training=False,
                              eps=self.eps)
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked += 1
            if self.momentum is None:           # cumulative average: the k-th batch gets weight 1/k
                factor = 1.0 / int(self.num_batches_tracked)
        update = self.training and self.track_running_stats
        x = x if isinstance(x, Tensor) else Tensor(x)
        xp = backend.get_array_module(x)
        weight = self.weight if self.affine else Tensor(xp.ones(self.num_features, x.dtype))
        bias = self.bias if self.affine else Tensor(xp.zeros(self.num_features, x.dtype))
        function = SyncBatchNormFunction(self.running_mean if update else None, self.running_var if update else None,
                                         float(factor), float(self.eps), self.group)
        return function(x, weight, bias)

    @classmethod
    def convert_sync_batchnorm(cls, module, group=None):
        """PyTorch's spelling of ``convert_sync_batchnorm(module, group)``."""
        return convert_sync_batchnorm(module, group)


def convert_sync_batchnorm(module, group=None):
    """Replace every BatchNorm1d/BatchNorm2d in ``module`` by a SyncBatchNorm holding the SAME parameter
    objects and buffers (so an optimizer made before still works, and state dict keys do not change).
    Returns the module (a new SyncBatchNorm if ``module`` itself is a batch norm)."""
    if isinstance(module, _BatchNorm) and not isinstance(module, SyncBatchNorm):
        return _to_sync(module, group)
    for child in module.modules():
        for name, sub in child._modules.items():
            if isinstance(sub, _BatchNorm) and not isinstance(sub, SyncBatchNorm):
                child._modules[name] = _to_sync(sub, group)     # in place: keeps the order of the children
    return module


def _to_sync(bn, group):
    sync = SyncBatchNorm(bn.num_features, bn.eps, bn.momentum, bn.affine, bn.track_running_stats, bn.zero_init,
                         group)
    for name in ("weight", "bias"):
        sync._parameters[name] = bn._parameters[name]
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        sync._buffers[name] = bn._buffers[name]
    Module.train(sync, bn.training)
    return sync
