"""Normalisation layers: BatchNorm1d, BatchNorm2d, LocalResponseNorm (thin wrappers over
``minicnn.functional.norm``, where the math and the backward passes live).

Shape letters: N batch, C channels (``num_features``), L length, H, W height and width.

Batch-norm conventions that differ between sources (papers.md §1, §11):
  * momentum: PyTorch's (used here) weighs the NEW batch statistic,
    running = (1 − momentum)·running + momentum·batch, default 0.1. TensorFlow/Keras call the
    complement "decay" or "momentum": decay 0.9 (Keras' default 0.99) is momentum 0.1 (0.01) here.
    ``momentum=None`` gives the cumulative (equal-weight) average over all batches seen, as in PyTorch.
  * eps: 1e-5 is PyTorch's default; Inception-v3 (TF release, torchvision) uses eps=1e-3.
  * the running variance is the UNBIASED batch variance (·m/(m−1), m = N·H·W values per channel);
    normalisation in training uses the biased one.
  * zero-γ (Bag of Tricks §3.1): γ initialised to 0 for the last BN of each residual branch, so
    every residual block starts as the identity; ``zero_init=True`` does it (γ = 1 otherwise).
"""
from __future__ import annotations

import numpy as np

from .. import backend
from ..functional.norm import batch_norm, batch_norm_relu, local_response_norm
from . import init
from .module import Module, Parameter

__all__ = ["BatchNorm1d", "BatchNorm2d", "LocalResponseNorm"]


class _BatchNorm(Module):
    """Shared body of BatchNorm1d / BatchNorm2d (they differ only in the input shapes they accept)."""

    _expected = ""          # the accepted shapes, for error messages

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True,
                 zero_init=False):
        super().__init__()
        if isinstance(num_features, bool) or not isinstance(num_features, (int, np.integer)) or num_features <= 0:
            raise ValueError(f"{type(self).__name__}: num_features must be a positive int, got {num_features!r}")
        if momentum is not None and not 0.0 <= momentum <= 1.0:
            raise ValueError(f"{type(self).__name__}: momentum must be in [0, 1] or None, got {momentum!r}")
        self.num_features, self.eps, self.momentum = int(num_features), eps, momentum
        self.affine, self.track_running_stats, self.zero_init = affine, track_running_stats, zero_init
        dtype = backend.get_default_dtype()
        if affine:
            self.weight = Parameter(np.empty(num_features, dtype))      # γ
            self.bias = Parameter(np.empty(num_features, dtype))        # β
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", np.zeros(num_features, dtype))
            self.register_buffer("running_var", np.ones(num_features, dtype))
            self.register_buffer("num_batches_tracked", np.array(0, np.int64))
        else:
            for name in ("running_mean", "running_var", "num_batches_tracked"):
                self.register_buffer(name, None)
        self.reset_parameters()

    def reset_running_stats(self):
        """running_mean = 0, running_var = 1, num_batches_tracked = 0."""
        if self.track_running_stats:
            self.running_mean[...] = 0
            self.running_var[...] = 1
            self.num_batches_tracked[...] = 0

    def reset_parameters(self):
        """Reset the running statistics and set β = 0 and γ = 1 (γ = 0 with ``zero_init``)."""
        self.reset_running_stats()
        if self.affine:
            (init.zeros_ if self.zero_init else init.ones_)(self.weight)
            init.zeros_(self.bias)

    def _check_input(self, x):
        raise NotImplementedError

    def forward(self, x):
        return self._normalise(x, batch_norm)

    def forward_relu(self, x):
        """relu(self(x)) as one fused operation (``F.batch_norm_relu``): the same numbers, without the
        ReLU's own pass and output array. ``Sequential`` calls it for a batch norm followed by a ReLU."""
        return self._normalise(x, batch_norm_relu)

    def _normalise(self, x, function):
        self._check_input(x)
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked += 1
            if self.momentum is None:       # cumulative average: the k-th batch gets weight 1/k
                factor = 1.0 / int(self.num_batches_tracked)
        # Running statistics are used in evaluation only when they are tracked; otherwise batch ones.
        use_running = not self.training or self.track_running_stats
        return function(x, self.running_mean if use_running else None,
                        self.running_var if use_running else None, self.weight, self.bias,
                        training=self.training, momentum=factor, eps=self.eps)

    def extra_repr(self):
        text = (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"track_running_stats={self.track_running_stats}")
        return text + (", zero_init=True" if self.zero_init else "")


class BatchNorm1d(_BatchNorm):
    """Batch normalisation over (N, C) or (N, C, L), statistics per feature C (e.g. after Linear).

    BatchNorm1d(num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True,
    zero_init=False). Training: normalise with the batch mean and biased variance and update the
    running statistics; evaluation (``.eval()``): use the running statistics. See the module
    docstring for momentum (0.1 = TF decay 0.9), eps (Inception-v3: 1e-3) and zero_init (zero-γ).
    """

    def _check_input(self, x):
        if x.ndim not in (2, 3) or x.shape[1] != self.num_features:
            raise ValueError(f"BatchNorm1d: expected an input of shape (N, {self.num_features}) or "
                             f"(N, {self.num_features}, L), got shape {tuple(x.shape)}")


class BatchNorm2d(_BatchNorm):
    """Batch normalisation over (N, C, H, W), statistics per channel C over N·H·W values (after Conv2d).

    BatchNorm2d(num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True,
    zero_init=False). Training: normalise with the batch mean and biased variance and update the
    running statistics; evaluation (``.eval()``): use the running statistics. See the module
    docstring for momentum (0.1 = TF decay 0.9), eps (Inception-v3: 1e-3) and zero_init (zero-γ).
    """

    def _check_input(self, x):
        if x.ndim != 4 or x.shape[1] != self.num_features:
            raise ValueError(f"BatchNorm2d: expected an input of shape (N, {self.num_features}, H, W), "
                             f"got shape {tuple(x.shape)}")


class LocalResponseNorm(Module):
    """Local response normalisation across channels (AlexNet §3.3): (N, C, *) -> (N, C, *).

    LocalResponseNorm(size, alpha=1e-4, beta=0.75, k=1.0, convention="pytorch")

        "pytorch": b_c = a_c / (k + (α/size) Σ_window a²)^β   (torch.nn.LocalResponseNorm, Caffe)
        "paper":   b_c = a_c / (k + α Σ_window a²)^β          (the AlexNet paper, Paddle)

    The paper's layer is ``LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0, convention="paper")``;
    with the default convention the same α = 1e-4 is five times weaker. See
    ``minicnn.functional.local_response_norm`` for the window and the gradient.
    """

    def __init__(self, size, alpha=1e-4, beta=0.75, k=1.0, convention="pytorch"):
        super().__init__()
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
            raise ValueError(f"LocalResponseNorm: size must be a positive int, got {size!r}")
        if convention not in ("pytorch", "paper"):
            raise ValueError(f"LocalResponseNorm: convention must be 'pytorch' or 'paper', got {convention!r}")
        self.size, self.alpha, self.beta, self.k, self.convention = int(size), alpha, beta, k, convention

    def forward(self, x):
        return local_response_norm(x, self.size, self.alpha, self.beta, self.k, self.convention)

    def extra_repr(self):
        return f"{self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}, convention={self.convention!r}"
