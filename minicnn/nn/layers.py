"""Basic layers: containers (Sequential, ModuleList, ModuleDict), Linear, Flatten, Identity."""
import math
from collections import OrderedDict

import numpy as np

from .. import backend
from ..functional.linear import linear
from ..functional.math import flatten
from . import init
from .activation import ReLU
from .module import Module, Parameter
from .norm import _BatchNorm

__all__ = ["Sequential", "ModuleList", "ModuleDict", "Linear", "Flatten", "Identity"]


class Sequential(Module):
    """Modules applied one after another: ``Sequential(Linear(784, 100), ReLU(), Linear(100, 10))``
    or ``Sequential(OrderedDict(name=module, ...))``.

    Fusion: a BatchNorm1d/2d directly followed by a ReLU runs as ONE operation,
    ``F.batch_norm_relu`` (the ReLU applied in place on the normalised output, its mask taken from
    that output in backward): the same numbers as the two modules one after the other, bit for bit,
    without the ReLU's own passes over memory and output array (the conv → BN → ReLU of every
    classic network after 2015). Both modules stay in the Sequential (names, state_dict, printing);
    a module whose ``forward`` was replaced or overridden is called as it is, unfused.
    """

    def __init__(self, *modules):
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], (dict, OrderedDict)):
            for name, m in modules[0].items():
                self.add_module(name, m)
        else:
            for i, m in enumerate(modules):
                self.add_module(str(i), m)

    def forward(self, x):
        modules, i = list(self._modules.values()), 0
        while i < len(modules):
            if i + 1 < len(modules) and _fuses_with_relu(modules[i], modules[i + 1]):
                x = modules[i].forward_relu(x)
                i += 2
            else:
                x = modules[i](x)
                i += 1
        return x

    def append(self, module):
        self.add_module(str(len(self._modules)), module)
        return self

    def __getitem__(self, index):
        items = list(self._modules.items())
        if isinstance(index, slice):
            return Sequential(OrderedDict(items[index]))
        return items[index][1]

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())


def _fuses_with_relu(module, following):
    """A plain batch norm followed by a plain ReLU, neither of whose ``forward`` was replaced
    (``models.summary`` records a layer by replacing its forward on the instance)."""
    return (type(following) is ReLU and isinstance(module, _BatchNorm)
            and type(module).forward is _BatchNorm.forward
            and "forward" not in vars(module) and "forward" not in vars(following))


class ModuleList(Module):
    """A list of modules whose parameters are registered (a plain list would hide them)."""

    def __init__(self, modules=()):
        super().__init__()
        for m in modules:
            self.append(m)

    def append(self, module):
        self.add_module(str(len(self._modules)), module)
        return self

    def extend(self, modules):
        for m in modules:
            self.append(m)
        return self

    def __getitem__(self, index):
        values = list(self._modules.values())
        return ModuleList(values[index]) if isinstance(index, slice) else values[index]

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())


class ModuleDict(Module):
    """A name -> module mapping whose modules are registered, in insertion order."""

    def __init__(self, modules=None):
        super().__init__()
        for name, m in (modules or {}).items():
            self.add_module(name, m)

    def __getitem__(self, name):
        return self._modules[name]

    def __setitem__(self, name, module):
        self.add_module(name, module)

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules)

    def keys(self):
        return self._modules.keys()

    def items(self):
        return self._modules.items()

    def values(self):
        return self._modules.values()


class Linear(Module):
    """Fully connected layer: (*, in_features) -> (*, out_features), y = x Wᵀ + b.

    Initialised as PyTorch does: W and b ~ U(−1/√in_features, 1/√in_features).
    """

    def __init__(self, in_features, out_features, bias=True):
        super().__init__()
        if in_features <= 0 or out_features <= 0:
            raise ValueError(f"Linear: in_features and out_features must be positive, got "
                             f"{in_features}, {out_features}")
        self.in_features, self.out_features = in_features, out_features
        dtype = backend.get_default_dtype()
        self.weight = Parameter(np.empty((out_features, in_features), dtype))
        self.bias = Parameter(np.empty(out_features, dtype)) if bias else None
        self.reset_parameters()

    def reset_parameters(self):
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))      # = U(±1/√in_features)
        if self.bias is not None:
            bound = 1 / math.sqrt(self.in_features)
            init.uniform_(self.bias, -bound, bound)

    def forward(self, x):
        return linear(x, self.weight, self.bias)

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Flatten(Module):
    """(N, C, H, W) -> (N, C·H·W): merges axes start_dim..end_dim (PyTorch defaults 1, -1)."""

    def __init__(self, start_dim=1, end_dim=-1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x):
        return flatten(x, self.start_dim, self.end_dim)

    def extra_repr(self):
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Identity(Module):
    """Returns its input (a placeholder, e.g. a shortcut without projection)."""

    def forward(self, x):
        return x
