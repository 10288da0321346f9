"""Classification metrics: top-k accuracy and running averages.

Shape letters: N samples, K classes.

The ImageNet papers report **top-1 and top-5 error**: a prediction is top-k correct when the true
class is among the k highest scores. Error = 1 − accuracy (AlexNet's 37.5 / 17.0 are top-1 / top-5
errors in %). Scores may be logits or probabilities: softmax keeps the order, so the result is the same.

Ties: the k classes are chosen by a stable sort on the negated scores, so among equal scores the
lower class index ranks first. That is one fixed rule (PyTorch's ``topk`` leaves ties unspecified).
"""
from __future__ import annotations

import numpy as np

from .. import backend
from ..autograd import Tensor

__all__ = ["topk_correct", "accuracy", "AverageMeter"]


def _scores_and_targets(scores, targets, where):
    scores = backend.as_numpy(scores.data if isinstance(scores, Tensor) else scores)
    targets = backend.as_numpy(targets.data if isinstance(targets, Tensor) else targets)
    if scores.ndim != 2:
        raise ValueError(f"{where}: expected scores of shape (N, K), got shape {scores.shape}")
    if targets.shape != (scores.shape[0],) or targets.dtype.kind not in "iu":
        raise ValueError(f"{where}: expected integer class indices of shape ({scores.shape[0]},), got "
                         f"dtype {targets.dtype} with shape {targets.shape}")
    return scores, targets


def topk_correct(scores, targets, ks=(1, 5)):
    """For each k in ``ks``, how many rows of ``scores`` (N, K) have ``targets`` (N,) among their k
    highest scores. Returns a list of ints, one per k. A k larger than K counts every row."""
    scores, targets = _scores_and_targets(scores, targets, "topk_correct")
    kmax = min(max(ks), scores.shape[1])
    ranked = np.argsort(-scores, axis=1, kind="stable")[:, :kmax]       # (N, kmax), best first
    hit = ranked == targets[:, None]                                      # (N, kmax), at most one True
    return [int(hit[:, :min(k, kmax)].sum()) for k in ks]


def accuracy(scores, targets, ks=(1, 5)):
    """Top-k accuracies (fractions in [0, 1]) for each k in ``ks``, as a list (``accuracy(s, t, (1,))[0]``
    is plain accuracy). An empty batch gives NaN."""
    n = len(backend.as_numpy(targets.data if isinstance(targets, Tensor) else targets))
    return [c / n if n else float("nan") for c in topk_correct(scores, targets, ks)]


class AverageMeter:
    """A running, sample-weighted mean: ``update(value, n)`` adds n samples with mean ``value``."""

    def __init__(self):
        self.total, self.count = 0.0, 0

    def update(self, value, n=1):
        self.total += float(value) * n
        self.count += n

    @property
    def average(self):
        return self.total / self.count if self.count else float("nan")
