"""``Conv2d``: the convolution layer, a thin wrapper over ``minicnn.functional.conv.conv2d``.

Notation: N batch, C = in_channels, Cout = out_channels, G = groups, KH KW kernel, OH OW output.
"""
import math

import numpy as np

from .. import backend
from ..functional.conv import conv2d
from ..functional.im2col import as_pair
from . import init
from .module import Module, Parameter

__all__ = ["Conv2d"]


class Conv2d(Module):
    """2-D convolution layer: (N, C, H, W) -> (N, Cout, OH, OW), PyTorch's arguments and defaults.

    weight  Parameter (Cout, C/G, KH, KW);  bias  Parameter (Cout,) or None
    kernel_size, stride, padding, dilation: an int or a (height, width) pair; groups = C is depthwise.
    Initialised as PyTorch does: kaiming_uniform(a=√5) for the weight, which is U(±1/√fan_in), and
    U(±1/√fan_in) for the bias, with fan_in = C/G·KH·KW. (The classic papers use other schemes,
    e.g. N(0, 0.01) for AlexNet/VGG or kaiming_normal for ResNet; see ``minicnn.nn.init``.)
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=True):
        super().__init__()
        if min(in_channels, out_channels, groups) < 1:
            raise ValueError(f"Conv2d: in_channels, out_channels and groups must be positive, got "
                             f"{in_channels}, {out_channels}, {groups}")
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"Conv2d: in_channels={in_channels} and out_channels={out_channels} must both "
                             f"be divisible by groups={groups}")
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size = as_pair(kernel_size, "kernel_size", "Conv2d")
        self.stride = as_pair(stride, "stride", "Conv2d")
        self.padding = as_pair(padding, "padding", "Conv2d")
        self.dilation = as_pair(dilation, "dilation", "Conv2d")
        dtype = backend.get_default_dtype()
        self.weight = Parameter(np.empty((out_channels, in_channels // groups, *self.kernel_size), dtype))
        self.bias = Parameter(np.empty(out_channels, dtype)) if bias else None
        self.reset_parameters()

    def reset_parameters(self):
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))      # = U(±1/√fan_in)
        if self.bias is not None:
            fan_in = self.in_channels // self.groups * self.kernel_size[0] * self.kernel_size[1]
            bound = 1 / math.sqrt(fan_in)
            init.uniform_(self.bias, -bound, bound)

    def forward(self, x):
        return conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)

    def extra_repr(self):
        text = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}")
        if self.padding != (0, 0):
            text += f", padding={self.padding}"
        if self.dilation != (1, 1):
            text += f", dilation={self.dilation}"
        if self.groups != 1:
            text += f", groups={self.groups}"
        if self.bias is None:
            text += ", bias=False"
        return text
