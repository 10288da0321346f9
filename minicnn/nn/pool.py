"""Pooling layers (PyTorch's names and arguments): thin wrappers over ``minicnn.functional.pool``.

They hold no parameters; the module docstring of ``functional/pool.py`` explains the output size,
``ceil_mode`` and ``count_include_pad`` and where papers and frameworks differ.
"""
from ..functional.pool import (adaptive_avg_pool2d, adaptive_max_pool2d, avg_pool2d, global_avg_pool2d,
                               max_pool2d)
from .module import Module

__all__ = ["MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d", "AdaptiveMaxPool2d", "GlobalAvgPool2d"]


class MaxPool2d(Module):
    """Max over each KH×KW window: (N, C, H, W) -> (N, C, OH, OW).

    ``MaxPool2d(3, stride=2)`` is AlexNet's overlapping pooling, ``MaxPool2d(2)`` VGG's,
    ``MaxPool2d(3, 2, padding=1)`` ResNet's stem; ``ceil_mode=True`` rounds the output size up as Caffe.
    """

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices=False, ceil_mode=False):
        super().__init__()
        self.kernel_size, self.stride = kernel_size, kernel_size if stride is None else stride
        self.padding, self.dilation = padding, dilation
        self.return_indices, self.ceil_mode = return_indices, ceil_mode

    def forward(self, x):
        return max_pool2d(x, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode,
                          self.return_indices)

    def extra_repr(self):
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}")


class AvgPool2d(Module):
    """Mean over each KH×KW window: (N, C, H, W) -> (N, C, OH, OW).

    ``AvgPool2d(3, 1, padding=1)`` is Inception's pool branch (``count_include_pad=False`` gives the
    TensorFlow release's divisor), ``AvgPool2d(5, 3)`` its auxiliary head, ``AvgPool2d(2)`` ResNet-D's
    shortcut.
    """

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
                 divisor_override=None):
        super().__init__()
        self.kernel_size, self.stride = kernel_size, kernel_size if stride is None else stride
        self.padding, self.ceil_mode = padding, ceil_mode
        self.count_include_pad, self.divisor_override = count_include_pad, divisor_override

    def forward(self, x):
        return avg_pool2d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                          self.count_include_pad, self.divisor_override)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AdaptiveAvgPool2d(Module):
    """Average pooling to a fixed output size whatever the input size: (N, C, H, W) -> (N, C, OH, OW).

    torchvision's AlexNet (6×6) and VGG (7×7) heads use it so that other input sizes still fit the
    first fully connected layer. ``output_size`` is an int or a pair; None keeps that input size.
    """

    def __init__(self, output_size):
        super().__init__()
        self.output_size = output_size

    def forward(self, x):
        return adaptive_avg_pool2d(x, self.output_size)

    def extra_repr(self):
        return f"output_size={self.output_size}"


class AdaptiveMaxPool2d(Module):
    """Max pooling to a fixed output size: (N, C, H, W) -> (N, C, OH, OW); ``AdaptiveMaxPool2d(1)`` is
    global max pooling (the "max" squeeze of the SE ablation)."""

    def __init__(self, output_size, return_indices=False):
        super().__init__()
        self.output_size, self.return_indices = output_size, return_indices

    def forward(self, x):
        return adaptive_max_pool2d(x, self.output_size, self.return_indices)

    def extra_repr(self):
        return f"output_size={self.output_size}"


class GlobalAvgPool2d(Module):
    """The mean of each channel: (N, C, H, W) -> (N, C, 1, 1).

    Not in PyTorch, where the same layer is ``nn.AdaptiveAvgPool2d(1)``; minicnn names it after what it
    does in ResNet, Inception and MobileNet heads and in the SE block's squeeze. It keeps the two
    trailing 1×1 axes like PyTorch's; follow it with ``Flatten()`` before a Linear layer.
    """

    def forward(self, x):
        return global_avg_pool2d(x)
