"""Layers and containers, ``from minicnn import nn`` (PyTorch's names): ``nn.Module``, ``nn.Conv2d`` …

Layers are thin wrappers over ``minicnn.functional``: they own the parameters and buffers and call
the function in ``forward``.
"""
from . import init
from .layers import Flatten, Identity, Linear, ModuleDict, ModuleList, Sequential
from .module import IncompatibleKeys, Module, Parameter
from .norm import BatchNorm1d, BatchNorm2d, LocalResponseNorm
from .pool import AdaptiveAvgPool2d, AdaptiveMaxPool2d, AvgPool2d, GlobalAvgPool2d, MaxPool2d
from .activation import LogSoftmax, ReLU, ReLU6, Sigmoid, Softmax, Tanh
from .conv import Conv2d
from .dropout import Dropout
from .loss import CrossEntropyLoss, DistillationLoss, KLDivLoss, MSELoss, NLLLoss
from .se import SqueezeExcitation
