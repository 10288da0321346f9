"""Loss layers: CrossEntropyLoss, NLLLoss, KLDivLoss, MSELoss, DistillationLoss.

Thin wrappers over ``minicnn.functional.loss`` (where the math, the label-smoothing conventions and
the backward passes are documented). Called as ``criterion(input, target)``; settings are checked
when the layer is built.
"""
from __future__ import annotations

import numbers

from ..functional.loss import (REDUCTIONS, SMOOTHING_CONVENTIONS, cross_entropy, distillation_loss, kl_div,
                               mse_loss, nll_loss)
from .module import Module

__all__ = ["CrossEntropyLoss", "NLLLoss", "KLDivLoss", "MSELoss", "DistillationLoss"]


def _check_reduction(layer, reduction, allowed=REDUCTIONS):
    if reduction not in allowed:
        raise ValueError(f"{layer}: reduction must be one of {allowed}, got {reduction!r}")
    return reduction


class CrossEntropyLoss(Module):
    """Softmax cross-entropy: ``criterion(logits (N, K), target)`` with target class indices (N,) or
    probabilities (N, K).

    reduction             "mean" | "sum" | "none"
    label_smoothing       ε in [0, 1] (0.1 in Inception-v3 and Bag of Tricks)
    smoothing_convention  "pytorch" (ε/K on every class; Inception-v3) or "k-1" (1 − ε on the true
                          class, ε/(K − 1) on the others; Bag of Tricks)
    """

    def __init__(self, reduction="mean", label_smoothing=0.0, smoothing_convention="pytorch"):
        super().__init__()
        if isinstance(label_smoothing, bool) or not isinstance(label_smoothing, numbers.Real) \
                or not 0 <= label_smoothing <= 1:
            raise ValueError(f"CrossEntropyLoss: label_smoothing must be in [0, 1], got {label_smoothing!r}")
        if smoothing_convention not in SMOOTHING_CONVENTIONS:
            raise ValueError(f"CrossEntropyLoss: smoothing_convention must be one of {SMOOTHING_CONVENTIONS}, "
                             f"got {smoothing_convention!r}")
        self.reduction = _check_reduction("CrossEntropyLoss", reduction)
        self.label_smoothing, self.smoothing_convention = float(label_smoothing), smoothing_convention

    def forward(self, input, target):
        return cross_entropy(input, target, self.reduction, self.label_smoothing, self.smoothing_convention)

    def extra_repr(self):
        text = f"reduction={self.reduction!r}"
        if self.label_smoothing:
            text += f", label_smoothing={self.label_smoothing}, smoothing_convention={self.smoothing_convention!r}"
        return text


class NLLLoss(Module):
    """Negative log-likelihood: ``criterion(log_probs (N, K), class indices (N,))``."""

    def __init__(self, reduction="mean"):
        super().__init__()
        self.reduction = _check_reduction("NLLLoss", reduction)

    def forward(self, input, target):
        return nll_loss(input, target, self.reduction)

    def extra_repr(self):
        return f"reduction={self.reduction!r}"


class KLDivLoss(Module):
    """KL(target ‖ exp(input)): ``criterion(log_probs, probs)`` ("batchmean" is the true per-sample mean;
    "mean" averages over all elements, as in PyTorch)."""

    def __init__(self, reduction="mean", log_target=False):
        super().__init__()
        self.reduction = _check_reduction("KLDivLoss", reduction, REDUCTIONS + ("batchmean",))
        self.log_target = bool(log_target)

    def forward(self, input, target):
        return kl_div(input, target, self.reduction, self.log_target)

    def extra_repr(self):
        return f"reduction={self.reduction!r}, log_target={self.log_target}"


class MSELoss(Module):
    """Mean squared error: ``criterion(input, target)`` of one shape."""

    def __init__(self, reduction="mean"):
        super().__init__()
        self.reduction = _check_reduction("MSELoss", reduction)

    def forward(self, input, target):
        return mse_loss(input, target, self.reduction)

    def extra_repr(self):
        return f"reduction={self.reduction!r}"


class DistillationLoss(Module):
    """Knowledge distillation's soft term, T² · KL(softmax(teacher/T) ‖ softmax(student/T)):
    ``criterion(student_logits (N, K), teacher_logits (N, K))``; the teacher gets no gradient.

    T  temperature > 0 (Bag of Tricks: 20). Add the hard-label ``CrossEntropyLoss`` yourself.
    """

    def __init__(self, T, reduction="mean"):
        super().__init__()
        if isinstance(T, bool) or not isinstance(T, numbers.Real) or not 0 < T < float("inf"):
            raise ValueError(f"DistillationLoss: temperature T must be a positive finite number, got {T!r}")
        self.T = float(T)
        self.reduction = _check_reduction("DistillationLoss", reduction)

    def forward(self, student_logits, teacher_logits):
        return distillation_loss(student_logits, teacher_logits, self.T, self.reduction)

    def extra_repr(self):
        return f"T={self.T}, reduction={self.reduction!r}"
