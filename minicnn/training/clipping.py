"""Gradient clipping by global norm (Pascanu, Mikolov & Bengio 2013), as Inception-v3 trained with
threshold 2.0 (papers.md §7.4).

All gradients are treated as one long vector g. Its norm ‖g‖ = (Σ_p Σ_i |g_pi|^q)^(1/q) (q = 2 by
default) is computed in float64; if it exceeds ``max_norm`` every gradient is multiplied by

    c = max_norm / (‖g‖ + 1e-6)          (PyTorch's formula; the 1e-6 guards against ‖g‖ = 0)

so the direction of the update is kept and only its length is capped. Per-parameter clipping would
change the direction; clipping by value even more so.
"""
from __future__ import annotations

import math

import numpy as np

from .. import backend
from ..autograd import Tensor

__all__ = ["clip_grad_norm_", "grad_norm"]


def _grads(parameters):
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    return [p.grad for p in parameters if p.grad is not None]


def grad_norm(parameters, norm_type=2.0):
    """The global q-norm of the gradients of ``parameters`` (those with ``grad is None`` are skipped),
    as a Python float; ``norm_type=inf`` gives the largest absolute value."""
    norm_type = float(norm_type)
    if not norm_type > 0:
        raise ValueError(f"clip_grad_norm_: norm_type must be positive, got {norm_type}")
    total = 0.0
    for g in _grads(parameters):
        a = np.abs(backend.as_numpy(g.data).astype(np.float64))
        if a.size == 0:
            continue
        if norm_type == math.inf:
            total = max(total, float(a.max()))
        else:
            total += float((a ** norm_type).sum())
    return total if norm_type == math.inf else total ** (1.0 / norm_type)


def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False):
    """Scale the gradients of ``parameters`` in place so that their global norm is at most ``max_norm``,
    like ``torch.nn.utils.clip_grad_norm_``. Returns the norm BEFORE clipping (a float).

    parameters          an iterable of Tensors (e.g. ``model.parameters()``) or a single Tensor
    max_norm            the threshold (> 0)
    norm_type           q of the q-norm (2.0; ``math.inf`` for the max-norm)
    error_if_nonfinite  raise RuntimeError when the norm is inf or NaN (else the gradients are scaled
                        by NaN and the caller must notice, as in PyTorch)
    """
    parameters = list(parameters) if not isinstance(parameters, Tensor) else [parameters]
    max_norm = float(max_norm)
    if not max_norm > 0:
        raise ValueError(f"clip_grad_norm_: max_norm must be positive, got {max_norm}")
    total = grad_norm(parameters, norm_type)
    if not math.isfinite(total) and error_if_nonfinite:
        raise RuntimeError(f"clip_grad_norm_: the total norm of the gradients is {total}; "
                           f"pass error_if_nonfinite=False to clip anyway")
    coefficient = max_norm / (total + 1e-6)
    if coefficient < 1 or not math.isfinite(total):
        with np.errstate(invalid="ignore"):              # inf · 0 = NaN is the documented outcome
            for g in _grads(parameters):
                g.data *= g.data.dtype.type(coefficient)  # in place, keeping the dtype
    return total
