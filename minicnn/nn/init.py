"""Parameter initialisation schemes; each fills a Parameter in place and returns it (PyTorch's names).

fan_in = in_channels·KH·KW (or in_features), fan_out = out_channels·KH·KW. Schemes:
  kaiming (He et al. 2015, for ReLU nets):  std = gain / √fan,  gain = √(2 / (1 + a²))
  xavier (Glorot & Bengio 2010):            std = gain · √(2 / (fan_in + fan_out))
  normal(0, 0.01): AlexNet's and VGG's papers;  zeros/ones/constant; trunc_normal (Inception/TF).
Values are drawn by minicnn's seeded generator (``minicnn.manual_seed``) and keep the tensor's
dtype and device.
"""
import math

import numpy as np

from .. import backend
from ..random import default_generator

__all__ = ["calculate_gain", "uniform_", "normal_", "trunc_normal_", "constant_", "zeros_", "ones_",
           "kaiming_uniform_", "kaiming_normal_", "xavier_uniform_", "xavier_normal_"]


def _fill(tensor, values):
    xp = backend.get_array_module(tensor.data)
    tensor.data[...] = xp.asarray(values, dtype=tensor.dtype)
    return tensor


def _fans(tensor):
    shape = tensor.shape
    if len(shape) < 2:
        raise ValueError(f"init: fan in/out need a tensor with at least 2 dimensions, got shape {shape}")
    receptive = int(np.prod(shape[2:])) if len(shape) > 2 else 1
    return shape[1] * receptive, shape[0] * receptive


def calculate_gain(nonlinearity, param=None):
    """The recommended gain: 1 for linear/sigmoid, √2 for relu, √(2/(1+a²)) for leaky_relu, 5/3 for tanh."""
    if nonlinearity in ("linear", "conv2d", "sigmoid"):
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        a = 0.01 if param is None else param
        return math.sqrt(2.0 / (1 + a * a))
    raise ValueError(f"calculate_gain: unknown nonlinearity {nonlinearity!r}")


def uniform_(tensor, a=0.0, b=1.0, generator=None):
    return _fill(tensor, (generator or default_generator()).uniform(a, b, tensor.shape))


def normal_(tensor, mean=0.0, std=1.0, generator=None):
    return _fill(tensor, (generator or default_generator()).normal(mean, std, tensor.shape))


def trunc_normal_(tensor, mean=0.0, std=1.0, a=-2.0, b=2.0, generator=None):
    """Normal(mean, std) redrawn until inside [a, b] (absolute bounds, as in PyTorch)."""
    rng = generator or default_generator()
    values = rng.normal(mean, std, tensor.shape)
    bad = (values < a) | (values > b)
    while bad.any():
        values[bad] = rng.normal(mean, std, int(bad.sum()))
        bad = (values < a) | (values > b)
    return _fill(tensor, values)


def constant_(tensor, value):
    tensor.data[...] = value
    return tensor


def zeros_(tensor):
    return constant_(tensor, 0.0)


def ones_(tensor):
    return constant_(tensor, 1.0)


def kaiming_uniform_(tensor, a=0.0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
    fan = _fans(tensor)[0 if mode == "fan_in" else 1]
    bound = math.sqrt(3.0) * calculate_gain(nonlinearity, a) / math.sqrt(fan)
    return uniform_(tensor, -bound, bound, generator)


def kaiming_normal_(tensor, a=0.0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
    fan = _fans(tensor)[0 if mode == "fan_in" else 1]
    return normal_(tensor, 0.0, calculate_gain(nonlinearity, a) / math.sqrt(fan), generator)


def xavier_uniform_(tensor, gain=1.0, generator=None):
    fan_in, fan_out = _fans(tensor)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(tensor, -bound, bound, generator)


def xavier_normal_(tensor, gain=1.0, generator=None):
    fan_in, fan_out = _fans(tensor)
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)), generator)
