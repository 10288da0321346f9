"""Squeeze-and-Excitation (Hu, Shen, Albanie, Sun, Wu; CVPR 2018): a learned per-channel gate.

Shape letters: N batch, C channels, H, W height and width, R = the hidden width (C / r).

    u   (N, C, H, W)   the input (in SE-ResNet: a residual branch's output, before the addition)
    z   (N, C)         squeeze:     z_c = (1 / HW) Σ_{i,j} u_c(i, j)          (global average pool)
    s   (N, C)         excitation:  s = σ(W₂ δ(W₁ z + b₁) + b₂),  W₁ (R, C), W₂ (C, R)
                                    δ = ReLU, σ = sigmoid, so every s_c lies in (0, 1)
    y   (N, C, H, W)   scale:       y_c = s_c · u_c                            (broadcast over H, W)

The two fully connected layers are ``Linear`` layers on z, not 1×1 convolutions on a 1×1 map: the
two are the same arithmetic (and the same parameter count, R·C + R + C·R + C), and a ``Linear`` says
what happens — the gate sees one number per channel. Gradients need no hand-written backward:
autograd chains mean → linear → relu → linear → sigmoid → multiply, whose backward passes live in
``minicnn.functional``. The input gets gradient along two paths, the direct one (s_c · gy) and the
one through the gate (Σ_{i,j} gy·u summed into z, then back through the mean).

Options (papers.md §6.1, §11.5):
  * ``reduction`` r = 16 is the paper's default; R = max(C // r, min_hidden).
  * ``bias``: the paper's ablations drop the FC biases; the public pretrained SE-ResNets keep them.
    SE-ResNet-50 has 28,088,024 parameters with biases and 28,071,976 without.
  * ``min_hidden``: a floor on R; r = 16 on the 16-channel stages of CIFAR ResNets would leave a
    single hidden unit (papers.md §9 suggests r = 4 or a floor of 4 there).
"""
from __future__ import annotations

import numpy as np

from ..functional.activation import relu, sigmoid
from .layers import Linear
from .module import Module

__all__ = ["SqueezeExcitation"]


class SqueezeExcitation(Module):
    """Channel-wise gate ``y = u · σ(W₂ ReLU(W₁ mean_{H,W}(u)))``: (N, C, H, W) -> (N, C, H, W).

    channels    C, the number of input (= output) channels
    reduction   r: the hidden layer has C // r units (16 in the paper)
    bias        whether the two fully connected layers have biases
    min_hidden  the fewest hidden units, whatever r says
    """

    def __init__(self, channels, reduction=16, bias=True, min_hidden=1):
        super().__init__()
        for name, value in (("channels", channels), ("reduction", reduction), ("min_hidden", min_hidden)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"SqueezeExcitation: {name} must be a positive int, got {value!r}")
        self.channels, self.reduction = int(channels), int(reduction)
        self.hidden = max(self.channels // self.reduction, int(min_hidden))
        self.fc1 = Linear(self.channels, self.hidden, bias=bias)     # W₁: C -> C/r
        self.fc2 = Linear(self.hidden, self.channels, bias=bias)     # W₂: C/r -> C

    def gate(self, u):
        """s = σ(W₂ δ(W₁ z)) with z the per-channel mean of u: (N, C, H, W) -> (N, C)."""
        z = u.mean(axis=(2, 3))                                      # squeeze
        return sigmoid(self.fc2(relu(self.fc1(z))))                  # excitation

    def forward(self, u):
        if u.ndim != 4 or u.shape[1] != self.channels:
            raise ValueError(f"SqueezeExcitation: expected an input of shape (N, {self.channels}, H, W), "
                             f"got {tuple(u.shape)}")
        N, C = u.shape[:2]
        return u * self.gate(u).reshape(N, C, 1, 1)                 # scale

    def extra_repr(self):
        return (f"channels={self.channels}, reduction={self.reduction}, hidden={self.hidden}, "
                f"bias={self.fc1.bias is not None}")
