"""``Module`` and ``Parameter``: the containers networks are built from (PyTorch's design).

A Module registers, in definition order, everything assigned to it:
  * ``Parameter``s (trainable tensors)            -> ``parameters()``, ``named_parameters()``
  * sub-``Module``s                               -> ``children()``, ``modules()``
  * buffers (arrays such as batch-norm running statistics, via ``register_buffer``)
All three are part of ``state_dict()``, the name -> array mapping that ``minicnn.save`` writes.
"""
from __future__ import annotations

from collections import OrderedDict, namedtuple

import numpy as np

from .. import backend
from ..autograd import Tensor

__all__ = ["Module", "Parameter", "IncompatibleKeys"]

IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


class Parameter(Tensor):
    """A Tensor that is a trainable parameter of a Module (``requires_grad=True`` by default)."""

    def __init__(self, data, requires_grad=True):
        data = data.data if isinstance(data, Tensor) else data
        super().__init__(data, requires_grad=requires_grad)

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()


class Module:
    """Base class of every layer and network: subclass it, assign parts in ``__init__``, write ``forward``."""

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_non_persistent", set())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)

    # ---- registration -----------------------------------------------------------------------
    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"{type(self).__name__}: call super().__init__() before assigning {name!r}")
        if isinstance(value, Parameter):
            self._forget(name)
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._forget(name)
            self._modules[name] = value
        elif name in self._parameters:
            if value is not None:
                raise TypeError(f"{type(self).__name__}.{name} is a Parameter; assign a Parameter or None, "
                                f"got {type(value).__name__}")
            self._parameters[name] = None
        elif name in self._buffers:
            self._buffers[name] = value
        elif name in self._modules:
            if value is not None:
                raise TypeError(f"{type(self).__name__}.{name} is a Module; assign a Module or None")
            self._modules[name] = None
        else:
            object.__setattr__(self, name, value)

    def _forget(self, name):
        for registry in (self._parameters, self._buffers, self._modules):
            registry.pop(name, None)
        self.__dict__.pop(name, None)

    def __getattr__(self, name):
        # Only called when normal lookup fails: look in the registries.
        for registry in ("_parameters", "_buffers", "_modules"):
            values = self.__dict__.get(registry)
            if values is not None and name in values:
                return values[name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute {name!r}")

    def __delattr__(self, name):
        for registry in (self._parameters, self._buffers, self._modules):
            if name in registry:
                del registry[name]
                return
        object.__delattr__(self, name)

    def register_parameter(self, name, param):
        """Register ``param`` (a Parameter or None) under ``name``."""
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"register_parameter: {name!r} must be a Parameter or None, got {type(param).__name__}")
        self._forget(name)
        self._parameters[name] = param

    def register_buffer(self, name, array, persistent=True):
        """Register an array that is state but not trained (e.g. running_mean); saved in state_dict
        unless ``persistent=False``."""
        if isinstance(array, Tensor):
            array = array.data
        self._forget(name)
        self._buffers[name] = array
        (self._non_persistent.discard if persistent else self._non_persistent.add)(name)

    def add_module(self, name, module):
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"add_module: {name!r} must be a Module, got {type(module).__name__}")
        self._forget(name)
        self._modules[name] = module

    # ---- running ----------------------------------------------------------------------------
    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} must implement forward()")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def train(self, mode=True):
        """Set training mode (dropout active, batch norm uses batch statistics) here and below."""
        for m in self.modules():
            object.__setattr__(m, "training", bool(mode))
        return self

    def eval(self):
        """Set evaluation mode: ``train(False)``."""
        return self.train(False)

    def zero_grad(self, set_to_none=True):
        """Clear the gradients of every parameter (they accumulate across backward calls)."""
        for p in self.parameters():
            if set_to_none or p.grad is None:
                p.grad = None
            else:
                p.grad.data[...] = 0

    # ---- traversal --------------------------------------------------------------------------
    def named_modules(self, prefix=""):
        """(name, module) for this module and every descendant, depth first, each once."""
        seen, stack = set(), [(prefix, self)]
        while stack:
            name, module = stack.pop()
            if id(module) in seen:
                continue
            seen.add(id(module))
            yield name, module
            children = [(f"{name}.{n}" if name else n, m) for n, m in module._modules.items() if m is not None]
            stack.extend(reversed(children))

    def modules(self):
        return (m for _, m in self.named_modules())

    def named_children(self):
        return ((n, m) for n, m in self._modules.items() if m is not None)

    def children(self):
        return (m for _, m in self.named_children())

    def named_parameters(self, prefix="", recurse=True):
        """(qualified name, Parameter) in definition order; shared parameters appear once."""
        seen = set()
        modules = self.named_modules(prefix) if recurse else [(prefix, self)]
        for module_name, module in modules:
            for name, p in module._parameters.items():
                if p is not None and id(p) not in seen:
                    seen.add(id(p))
                    yield (f"{module_name}.{name}" if module_name else name), p

    def parameters(self, recurse=True):
        return (p for _, p in self.named_parameters(recurse=recurse))

    def named_buffers(self, prefix="", recurse=True):
        modules = self.named_modules(prefix) if recurse else [(prefix, self)]
        for module_name, module in modules:
            for name, b in module._buffers.items():
                if b is not None:
                    yield (f"{module_name}.{name}" if module_name else name), b

    def buffers(self, recurse=True):
        return (b for _, b in self.named_buffers(recurse=recurse))

    def apply(self, fn):
        """Call ``fn(module)`` on every descendant and then on self (e.g. a custom init)."""
        for m in reversed(list(self.modules())):
            fn(m)
        return self

    # ---- state ------------------------------------------------------------------------------
    def state_dict(self):
        """name -> array for every parameter and persistent buffer (the arrays themselves, not copies)."""
        state = OrderedDict()
        for module_name, module in self.named_modules():
            dot = f"{module_name}." if module_name else ""
            for name, p in module._parameters.items():
                if p is not None:
                    state[dot + name] = p.data
            for name, b in module._buffers.items():
                if b is not None and name not in module._non_persistent:
                    state[dot + name] = b
        return state

    def load_state_dict(self, state_dict, strict=True):
        """Copy arrays from ``state_dict`` into this module's parameters and buffers (in place, keeping
        each one's device and dtype). With ``strict=True`` missing or unexpected keys are an error;
        a shape mismatch is always an error. Returns (missing_keys, unexpected_keys)."""
        own = self._state_slots()
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        problems = []
        if strict and missing:
            problems.append(f"missing keys: {missing}")
        if strict and unexpected:
            problems.append(f"unexpected keys: {unexpected}")
        for key, (owner, name, kind) in own.items():
            if key not in state_dict:
                continue
            value = state_dict[key]
            value = value.data if isinstance(value, Tensor) else value
            target = owner._parameters[name].data if kind == "param" else owner._buffers[name]
            if tuple(np.shape(value)) != tuple(target.shape):
                problems.append(f"{key}: checkpoint shape {tuple(np.shape(value))} != model shape "
                                f"{tuple(target.shape)}")
        if problems:
            raise ValueError(f"load_state_dict for {type(self).__name__}: " + "; ".join(problems))
        for key, (owner, name, kind) in own.items():
            if key in state_dict:
                value = state_dict[key]
                value = value.data if isinstance(value, Tensor) else value
                target = owner._parameters[name].data if kind == "param" else owner._buffers[name]
                xp = backend.get_array_module(target)
                target[...] = xp.asarray(backend.to_device(value, backend.device_of(target)), dtype=target.dtype)
        return IncompatibleKeys(missing, unexpected)

    def _state_slots(self):
        slots = OrderedDict()
        for module_name, module in self.named_modules():
            dot = f"{module_name}." if module_name else ""
            for name, p in module._parameters.items():
                if p is not None:
                    slots[dot + name] = (module, name, "param")
            for name, b in module._buffers.items():
                if b is not None and name not in module._non_persistent:
                    slots[dot + name] = (module, name, "buffer")
        return slots

    # ---- devices and dtypes -----------------------------------------------------------------
    def to(self, device=None, dtype=None):
        """Move every parameter and buffer to ``device`` ("cpu"/"cuda") and/or cast floating ones to
        ``dtype``, in place (the Parameter objects stay the same, so optimizers keep working)."""
        if device is not None and not isinstance(device, str):
            device, dtype = None, device

        def convert(array):
            if device is not None:
                array = backend.to_device(array, device)
            if dtype is not None and array.dtype.kind == "f":
                array = array.astype(dtype, copy=False)
            return array

        for m in self.modules():
            for p in m._parameters.values():
                if p is not None:
                    p.data = convert(p.data)
                    if p.grad is not None:
                        p.grad.data = convert(p.grad.data)
            for name, b in m._buffers.items():
                if b is not None:
                    m._buffers[name] = convert(b)
        return self

    def cpu(self):
        return self.to("cpu")

    def cuda(self):
        return self.to("cuda")

    def float(self):
        return self.to(dtype=np.float32)

    def double(self):
        return self.to(dtype=np.float64)

    def half(self):
        return self.to(dtype=np.float16)

    # ---- printing ---------------------------------------------------------------------------
    def extra_repr(self):
        """Override to show a layer's settings in ``repr`` (e.g. ``in_features=784, ...``)."""
        return ""

    def __repr__(self):
        lines = [f"({name}): " + repr(m).replace("\n", "\n  ") for name, m in self.named_children()]
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not lines:
            return head + ")"
        return head + "\n  " + "\n  ".join(lines) + "\n)"
