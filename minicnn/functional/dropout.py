"""Dropout (Hinton et al. 2012; AlexNet's fc6/fc7, VGG, Inception-v3) in its two conventions.

During training each element is kept with probability 1 − p and zeroed otherwise, with a fresh
random mask every call. The two conventions differ in *where* the output is rescaled so that the
expected activation seen by the next layer is the same in training and at test time
(papers.md §1 and §11.1):

    mode          training (mask m_i ~ Bernoulli(1 − p))   test time (training=False)
    "inverted"    y = x · m / (1 − p)                        y = x            (PyTorch; the default)
    "paper"       y = x · m                                  y = x · (1 − p)  (AlexNet: "multiply the
                                                                               outputs by 0.5")

Both give E[y_train] = y_test; inverted dropout does the scaling in training so that inference is a
no-op. A model trained in one mode must be evaluated in the same mode.

Backward: gx = gy · mask, with the same (scaled) mask as the forward pass; at test time in paper mode
gx = gy · (1 − p). p = 1 drops everything: y = 0 and gx = 0 (no division by 1 − p = 0).

Randomness and reproducibility: the mask is drawn as ``generator.random(x.shape, float32) >= p``.
``generator`` may be a ``numpy.random.Generator`` or, for CuPy inputs, a ``cupy.random.Generator``.
When it is None, minicnn's default generator (``minicnn.random``, the one that also initialises
parameters) is used: ``manual_seed(seed)`` (= ``minicnn.manual_seed``) resets it, and the same seed
then gives the same sequence of masks. That generator is NumPy's, so for CuPy inputs the mask is drawn
on the CPU and copied over — the same masks as on the CPU, at the cost of a transfer; pass a
``cupy.random.Generator`` to draw on the GPU instead (reproducible too, but different masks).
"""
from __future__ import annotations

import numbers

import numpy as np

from .. import backend
from ..autograd import Function, Tensor
# manual_seed is re-exported: dropout's masks come from minicnn's one seeded generator.
from ..random import default_generator, manual_seed

__all__ = ["dropout", "manual_seed", "DROPOUT_MODES"]

DROPOUT_MODES = ("inverted", "paper")


class Dropout(Function):
    """y = x · mask;  gx = gy · mask.

    ``mask`` is an array of x's shape and dtype (training: 0 or the keep scale, 1/(1 − p) in inverted
    mode and 1 in paper mode), or the scalar 1 − p (paper mode at test time).
    """
    def __init__(self, mask):
        self.mask = mask

    def forward(self, x):
        return x * self.mask

    def backward(self, gy):
        return gy * self.mask


def _uniform(shape, generator, xp):
    """Uniform [0, 1) float32 numbers of ``shape`` from ``generator``, as an array of the module ``xp``."""
    generator = default_generator() if generator is None else generator
    if not hasattr(generator, "random"):
        raise ValueError(f"dropout: generator must be a numpy.random.Generator or cupy.random.Generator, "
                         f"got {type(generator).__name__}")
    if xp is np and type(generator).__module__.startswith("cupy"):
        raise ValueError("dropout: a cupy.random.Generator cannot draw the mask of a NumPy (cpu) input; "
                         "pass a numpy.random.Generator")
    return xp.asarray(generator.random(shape, dtype=np.float32))


def dropout(x, p=0.5, training=True, mode="inverted", generator=None):
    """Zero each element with probability ``p`` during training (see the module docstring).

    x          any shape, floating point → same shape and dtype
    p          drop probability in [0, 1]
    training   False at test time: identity ("inverted") or multiply by 1 − p ("paper")
    mode       "inverted" (PyTorch, the default) or "paper" (AlexNet's test-time scaling)
    generator  numpy/cupy ``Generator`` for the mask; None: minicnn's default (``manual_seed``)
    """
    if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0 <= p <= 1:
        raise ValueError(f"dropout: p is the probability of dropping an element and must be in [0, 1], "
                         f"got {p!r}")
    if mode not in DROPOUT_MODES:
        raise ValueError(f"dropout: mode must be one of {DROPOUT_MODES}, got {mode!r}")
    x = x if isinstance(x, Tensor) else Tensor(x)
    if x.dtype.kind != "f":
        raise ValueError(f"dropout: expected a floating-point tensor, got dtype {x.dtype} with shape {x.shape}")
    xp = backend.get_array_module(x.data)
    p = float(p)
    if not training:
        if mode == "inverted":
            return x
        return Dropout(xp.asarray(1 - p, dtype=x.dtype))(x)
    if p == 0:
        return x
    keep = _uniform(x.shape, generator, xp) >= p      # P(keep) = P(u >= p) = 1 − p
    scale = 1.0 if mode == "paper" or p == 1 else 1 / (1 - p)
    return Dropout(keep.astype(x.dtype) * x.dtype.type(scale))(x)
