"""The Dropout layer: active in training mode, a (mode-dependent) no-op or rescaling in eval mode.

A thin wrapper over ``minicnn.functional.dropout``, whose docstring explains the two conventions:
"inverted" (PyTorch, the default: scale by 1/(1 − p) while training, identity at test time) and
"paper" (AlexNet: no scaling while training, multiply by 1 − p at test time). ``model.train()`` and
``model.eval()`` switch between the two behaviours through ``self.training``.
"""
from __future__ import annotations

import numbers

from ..functional.dropout import DROPOUT_MODES, dropout
from .module import Module

__all__ = ["Dropout"]


class Dropout(Module):
    """Zero each element with probability ``p`` in training mode. Any shape → same shape.

    p     drop probability in [0, 1] (0.5 in AlexNet's and VGG's fc6/fc7)
    mode  "inverted" (default, PyTorch) or "paper" (AlexNet's test-time scaling by 1 − p)
    Masks come from minicnn's seeded generator (``minicnn.manual_seed``).
    """

    def __init__(self, p=0.5, mode="inverted"):
        super().__init__()
        if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0 <= p <= 1:
            raise ValueError(f"Dropout: p is the probability of dropping an element and must be in [0, 1], "
                             f"got {p!r}")
        if mode not in DROPOUT_MODES:
            raise ValueError(f"Dropout: mode must be one of {DROPOUT_MODES}, got {mode!r}")
        self.p, self.mode = float(p), mode

    def forward(self, x):
        return dropout(x, self.p, self.training, self.mode)

    def extra_repr(self):
        return f"p={self.p}" + (f", mode={self.mode!r}" if self.mode != "inverted" else "")
