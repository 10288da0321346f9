"""Activation layers: ReLU, ReLU6, Sigmoid, Tanh, Softmax, LogSoftmax.

Thin wrappers over ``minicnn.functional.activation`` (where the math and the backward passes live);
they hold no parameters. Every one maps an input of any shape to the same shape.
"""
from __future__ import annotations

from ..functional.activation import log_softmax, relu, relu6, sigmoid, softmax, tanh
from .module import Module

__all__ = ["ReLU", "ReLU6", "Sigmoid", "Tanh", "Softmax", "LogSoftmax"]


class ReLU(Module):
    """max(x, 0) elementwise (AlexNet onwards: after every conv and FC but the last)."""

    def forward(self, x):
        return relu(x)


class ReLU6(Module):
    """min(max(x, 0), 6) elementwise (MobileNet v2)."""

    def forward(self, x):
        return relu6(x)


class Sigmoid(Module):
    """1 / (1 + e^(−x)) elementwise (the gate of a squeeze-and-excitation block)."""

    def forward(self, x):
        return sigmoid(x)


class Tanh(Module):
    """tanh(x) elementwise."""

    def forward(self, x):
        return tanh(x)


def _check_dim(layer, dim):
    if isinstance(dim, bool) or not isinstance(dim, int):
        raise ValueError(f"{layer}: dim must be an int (the axis to normalise over, e.g. 1 for (N, K) "
                         f"logits), got {dim!r}")
    return dim


class Softmax(Module):
    """Softmax along ``dim`` (required, e.g. ``Softmax(dim=1)`` for (N, K) logits)."""

    def __init__(self, dim):
        super().__init__()
        self.dim = _check_dim("Softmax", dim)

    def forward(self, x):
        return softmax(x, self.dim)

    def extra_repr(self):
        return f"dim={self.dim}"


class LogSoftmax(Module):
    """log(softmax) along ``dim`` via log-sum-exp (required, e.g. ``LogSoftmax(dim=1)``)."""

    def __init__(self, dim):
        super().__init__()
        self.dim = _check_dim("LogSoftmax", dim)

    def forward(self, x):
        return log_softmax(x, self.dim)

    def extra_repr(self):
        return f"dim={self.dim}"
