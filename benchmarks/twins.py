"""PyTorch twins of minicnn networks, for the benchmark only: same layers, same weights.

``torch_twin(model)`` walks a minicnn module tree and builds the equivalent ``torch.nn`` module,
layer for layer, copying every parameter and batch-norm buffer, so that the two networks compute the
same function (``bench.py`` checks the logits, the loss and the gradients before timing them). It
knows the layers of the ResNets (convolution, batch norm, ReLU, max and global average pooling,
flatten, linear, residual blocks with identity, projection or option-A shortcuts); any other layer is
a clear error rather than a silently different network.

minicnn itself never imports torch: this file lives in benchmarks/ and is imported by bench.py only.
"""
from collections import OrderedDict

import numpy as np
import torch

from minicnn import nn as mnn
from minicnn.models.resnet import ResidualBlock, ResNet, ZeroPadShortcut

__all__ = ["torch_twin", "parameter_count"]


class TorchResidual(torch.nn.Module):
    """y = ReLU(residual(x) + shortcut(x)), minicnn's ResidualBlock (no shortcut: y = ReLU(residual(x)))."""

    def __init__(self, residual, shortcut):
        super().__init__()
        self.residual, self.shortcut = residual, shortcut

    def forward(self, x):
        y = self.residual(x)
        if self.shortcut is not None:
            y = y + self.shortcut(x)
        return torch.relu(y)


class TorchZeroPad(torch.nn.Module):
    """Option-A shortcut: x[:, :, ::s, ::s] followed by zero channels up to out_channels."""

    def __init__(self, extra_channels, stride):
        super().__init__()
        self.extra_channels, self.stride = extra_channels, stride

    def forward(self, x):
        x = x[:, :, ::self.stride, ::self.stride]
        return torch.nn.functional.pad(x, (0, 0, 0, 0, 0, self.extra_channels))


def _copy(array):
    return torch.from_numpy(np.array(array, copy=True))


def _conv(m):
    t = torch.nn.Conv2d(m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding, m.dilation,
                        m.groups, bias=m.bias is not None)
    with torch.no_grad():
        t.weight.copy_(_copy(m.weight.data))
        if m.bias is not None:
            t.bias.copy_(_copy(m.bias.data))
    return t


def _batch_norm(m):
    t = torch.nn.BatchNorm2d(m.num_features, m.eps, m.momentum, m.affine, m.track_running_stats)
    with torch.no_grad():
        if m.affine:
            t.weight.copy_(_copy(m.weight.data))
            t.bias.copy_(_copy(m.bias.data))
        if m.track_running_stats:
            t.running_mean.copy_(_copy(m.running_mean))
            t.running_var.copy_(_copy(m.running_var))
    return t


def _linear(m):
    t = torch.nn.Linear(m.weight.shape[1], m.weight.shape[0], bias=m.bias is not None)
    with torch.no_grad():
        t.weight.copy_(_copy(m.weight.data))
        if m.bias is not None:
            t.bias.copy_(_copy(m.bias.data))
    return t


def torch_twin(module):
    """The torch.nn module computing what the minicnn ``module`` computes, with its weights copied."""
    if isinstance(module, ResNet):          # its forward is its children in order (after input checks)
        return torch.nn.Sequential(OrderedDict((name, torch_twin(child))
                                               for name, child in module.named_children()))
    if isinstance(module, ResidualBlock):
        shortcut = None if module.shortcut is None else torch_twin(module.shortcut)
        return TorchResidual(torch_twin(module.residual), shortcut)
    if isinstance(module, mnn.Sequential):
        return torch.nn.Sequential(OrderedDict((name, torch_twin(child))
                                               for name, child in module.named_children()))
    if isinstance(module, ZeroPadShortcut):
        return TorchZeroPad(module.out_channels - module.in_channels, module.stride)
    if isinstance(module, mnn.Conv2d):
        return _conv(module)
    if isinstance(module, mnn.BatchNorm2d):
        return _batch_norm(module)
    if isinstance(module, mnn.Linear):
        return _linear(module)
    if isinstance(module, mnn.ReLU):
        return torch.nn.ReLU()
    if isinstance(module, mnn.MaxPool2d):
        return torch.nn.MaxPool2d(module.kernel_size, module.stride, module.padding, module.dilation,
                                  ceil_mode=module.ceil_mode)
    if isinstance(module, mnn.GlobalAvgPool2d):
        return torch.nn.AdaptiveAvgPool2d(1)
    if isinstance(module, mnn.Flatten):
        return torch.nn.Flatten(module.start_dim, module.end_dim)
    if isinstance(module, mnn.Identity):
        return torch.nn.Identity()
    raise TypeError(f"torch_twin: no PyTorch twin for {type(module).__name__} ({module!r})")


def parameter_count(torch_module):
    return sum(p.numel() for p in torch_module.parameters())
