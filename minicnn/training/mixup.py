"""Mixup (Zhang et al. 2018; Bag of Tricks §5.4, α = 0.2, papers.md §4.4).

Each batch is blended with a shuffled copy of itself, images and targets alike:

    λ ~ Beta(α, α)              one λ per batch
    x̂ = λ·x + (1 − λ)·x[π]      π a random permutation of the batch
    ŷ = λ·y + (1 − λ)·y[π]      y the one-hot (or already soft) targets

and the network is trained with cross-entropy against the soft target ŷ (``cross_entropy`` accepts
(N, K) probabilities; label smoothing, if on, is then applied to ŷ). With α = 0.2 most λ are near 0
or 1, so most mixed images are mostly one of the two. Bag of Tricks trains longer with mixup
(120 → 200 epochs): each image is seen "diluted".

Shape letters: N batch, C channels, H, W, K classes.
"""
from __future__ import annotations

import numpy as np

from .. import backend

__all__ = ["one_hot", "mixup"]


def one_hot(labels, num_classes, dtype=np.float32):
    """Class indices (N,) -> one-hot rows (N, K) of ``dtype``, on the labels' device."""
    xp = backend.get_array_module(labels)
    labels = xp.asarray(labels)
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise ValueError(f"one_hot: expected integer class indices of shape (N,), got dtype {labels.dtype} "
                         f"with shape {labels.shape}")
    out = xp.zeros((labels.shape[0], num_classes), dtype=dtype)
    out[xp.arange(labels.shape[0]), labels] = 1
    return out


def mixup(images, targets, alpha, num_classes, rng, lam=None):
    """Mix a batch with a permutation of itself; returns (mixed images, soft targets (N, K), λ).

    images       array (N, C, H, W) (any shape with N first), floating point
    targets      class indices (N,) or soft targets (N, K)
    alpha        the Beta distribution's parameter (> 0; 0.2 in Bag of Tricks)
    num_classes  K, to make one-hot targets from indices
    rng          a ``numpy.random.Generator``: λ and the permutation come from it (reproducible)
    lam          use this λ instead of drawing one (for tests and lessons)
    """
    if not alpha > 0:
        raise ValueError(f"mixup: alpha must be positive, got {alpha}")
    xp = backend.get_array_module(images)
    n = images.shape[0]
    if lam is None:
        lam = float(rng.beta(alpha, alpha))
    permutation = xp.asarray(rng.permutation(n))
    soft = targets if getattr(targets, "ndim", 1) == 2 else one_hot(targets, num_classes, images.dtype)
    soft = soft.astype(images.dtype, copy=False)
    lam_x = images.dtype.type(lam)
    mixed_images = lam_x * images + (1 - lam_x) * images[permutation]
    mixed_targets = lam_x * soft + (1 - lam_x) * soft[permutation]
    return mixed_images, mixed_targets, lam
