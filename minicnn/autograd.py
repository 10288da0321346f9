"""Reverse-mode automatic differentiation: ``Tensor`` and ``Function``.

A ``Tensor`` wraps an array (NumPy or CuPy) and remembers the ``Function`` that made it
(``tensor.creator``). A ``Function`` subclass implements two methods side by side, both on raw
arrays:

    forward(*xs)   -> y            (or a tuple of outputs)
    backward(*gys) -> (gx1, gx2 …) one gradient per input, None where not needed

Calling a function instance on tensors runs ``forward`` and records the graph. ``y.backward()``
then visits the functions in reverse topological order — an explicit loop, no recursion, so a
chain of 10,000 operations is fine — and applies the chain rule: each function receives the
gradient of the loss with respect to its outputs and returns it with respect to its inputs.

Gradient rules (as in PyTorch):
  * gradients are stored in ``.grad`` of leaf tensors (made by the user with requires_grad=True)
    and **accumulate** across ``backward()`` calls until cleared (``zero_grad`` / ``grad = None``);
    intermediate tensors keep no ``.grad`` unless ``retain_grad()`` was called on them;
  * after ``backward()`` the graph's saved arrays are freed; pass ``retain_graph=True`` to
    backpropagate through the same graph again;
  * inside ``with no_grad():`` no graph is recorded.
"""
from __future__ import annotations

import contextlib

import numpy as np

from . import backend

__all__ = ["Tensor", "Function", "no_grad", "enable_grad", "is_grad_enabled", "as_tensor", "tensor"]

_grad_enabled = True


def is_grad_enabled():
    """True unless inside ``no_grad()``."""
    return _grad_enabled


class _GradMode(contextlib.ContextDecorator):
    def __init__(self, enabled):
        self.enabled = enabled

    def __enter__(self):
        global _grad_enabled
        self.previous, _grad_enabled = _grad_enabled, self.enabled

    def __exit__(self, *exc):
        global _grad_enabled
        _grad_enabled = self.previous
        return False


def no_grad():
    """Context manager (and decorator) in which operations record no graph: evaluation, optimizer steps."""
    return _GradMode(False)


def enable_grad():
    """Context manager (and decorator) that turns graph recording back on inside ``no_grad()``."""
    return _GradMode(True)


def _as_array(data, dtype=None):
    """Turn data (array, Tensor, Python/NumPy scalar or nested list) into an array.

    Arrays keep their dtype; Python floats get the default dtype (float32 unless changed).
    """
    if isinstance(data, Tensor):
        data = data.data
    if isinstance(data, np.ndarray) or backend.device_of(data) == "cuda":
        return data if dtype is None else data.astype(dtype, copy=False)
    array = np.asarray(data, dtype=dtype)
    if dtype is None and array.dtype == np.float64 and not isinstance(data, np.generic):
        array = array.astype(backend.get_default_dtype())
    return array


class Tensor:
    """An array with a gradient: ``Tensor(data, requires_grad=False, dtype=None)``.

    data           array-like: a NumPy/CuPy array (kept as is, dtype included), a scalar or a list
    requires_grad  if True, operations on this tensor are recorded and ``.grad`` is filled by backward
    """

    _is_minicnn_tensor = True       # lets backend recognise tensors without importing this module
    __array_ufunc__ = None          # NumPy defers to Tensor's reflected operators: array * t -> t.__rmul__

    def __init__(self, data, requires_grad=False, dtype=None):
        self.data = _as_array(data, dtype)
        if requires_grad and self.data.dtype.kind not in "fc":
            raise TypeError(f"Tensor: only floating-point tensors can require gradients, "
                            f"got dtype {self.data.dtype} with shape {self.data.shape}")
        self.requires_grad = bool(requires_grad)
        self.grad = None              # a Tensor once backward has reached this leaf
        self.creator = None           # the Function that produced this tensor (None for leaves)
        self._output_index = 0        # which output of `creator` this tensor is
        self._retains_grad = False

    # ---- array-like attributes -------------------------------------------------------------
    shape = property(lambda self: self.data.shape)
    ndim = property(lambda self: self.data.ndim)
    size = property(lambda self: self.data.size)
    dtype = property(lambda self: self.data.dtype)
    device = property(lambda self: backend.device_of(self.data))
    is_leaf = property(lambda self: self.creator is None)

    def __len__(self):
        return len(self.data)

    def __repr__(self):
        body = np.array2string(backend.as_numpy(self.data), precision=4, separator=", ",
                               prefix="Tensor(")
        extra = ", requires_grad=True" if self.requires_grad else ""
        extra += ", device='cuda'" if self.device == "cuda" else ""
        return f"Tensor({body}, dtype={self.dtype}{extra})"

    # ---- conversions -----------------------------------------------------------------------
    def detach(self):
        """A new leaf tensor sharing this tensor's array, cut from the graph."""
        return Tensor(self.data)

    def item(self):
        """The value of a one-element tensor as a Python number."""
        if self.size != 1:
            raise ValueError(f"item: only one-element tensors can be converted, got shape {self.shape}")
        return self.data.reshape(()).item()

    def numpy(self):
        """The data as a NumPy array (a copy from the GPU for CUDA tensors)."""
        return backend.as_numpy(self.data)

    def tolist(self):
        return self.numpy().tolist()

    def to(self, device=None, dtype=None):
        """Move to ``"cpu"``/``"cuda"`` and/or cast to ``dtype``; differentiable, like PyTorch.

        ``t.to("cuda")``, ``t.to(np.float64)`` and ``t.to("cpu", np.float32)`` all work.
        """
        if device is not None and not isinstance(device, str):
            device, dtype = None, device
        from .functional import math as _math
        out = self
        if device is not None and backend.device_of(self.data) != backend._normalize_device(device):
            out = _math.ToDevice(device)(out)
        if dtype is not None and np.dtype(dtype) != out.dtype:
            out = _math.astype(out, dtype)
        return out

    def cpu(self):
        return self.to("cpu")

    def cuda(self):
        return self.to("cuda")

    def float(self):
        return self.to(dtype=np.float32)

    def double(self):
        return self.to(dtype=np.float64)

    # ---- gradients -------------------------------------------------------------------------
    def retain_grad(self):
        """Keep ``.grad`` for this non-leaf tensor too after backward."""
        self._retains_grad = True

    def zero_grad(self):
        self.grad = None

    def backward(self, gradient=None, retain_graph=False):
        """Backpropagate from this tensor; fills ``.grad`` of the leaves (accumulating).

        gradient      d(loss)/d(self), same shape as self; may be omitted for a one-element tensor
        retain_graph  keep the saved arrays so that backward can run through this graph again
        """
        if not self.requires_grad:
            raise RuntimeError(f"backward: this tensor (shape {self.shape}) does not require grad and "
                               f"has no graph; create leaves with requires_grad=True")
        xp = backend.get_array_module(self.data)
        if gradient is None:
            if self.size != 1:
                raise RuntimeError(f"backward: called on a non-scalar tensor of shape {self.shape} without "
                                   f"`gradient`; pass a gradient of that shape or reduce to a scalar first")
            gy = xp.ones_like(self.data)
        else:
            gy = _as_array(gradient, self.dtype)
            backend.check_same_backend("backward", self.data, gy)
            if gy.shape != self.shape:
                raise ValueError(f"backward: gradient has shape {gy.shape}, expected the tensor's shape "
                                 f"{self.shape}")
        run_backward(self, gy, retain_graph)

    # ---- operators (implemented in functional/math.py) -------------------------------------
    def __add__(self, other): return _m().add(self, other)
    def __radd__(self, other): return _m().add(other, self)
    def __sub__(self, other): return _m().sub(self, other)
    def __rsub__(self, other): return _m().sub(other, self)
    def __mul__(self, other): return _m().mul(self, other)
    def __rmul__(self, other): return _m().mul(other, self)
    def __truediv__(self, other): return _m().div(self, other)
    def __rtruediv__(self, other): return _m().div(other, self)
    def __pow__(self, other): return _m().pow(self, other)
    def __rpow__(self, other): return _m().pow(other, self)
    def __matmul__(self, other): return _m().matmul(self, other)
    def __rmatmul__(self, other): return _m().matmul(other, self)
    def __neg__(self): return _m().neg(self)
    def __pos__(self): return self
    def __abs__(self): return _m().abs(self)
    def __getitem__(self, key): return _m().getitem(self, key)

    # Comparisons give boolean tensors with no gradient.
    def __lt__(self, other): return _m().compare("lt", self, other)
    def __le__(self, other): return _m().compare("le", self, other)
    def __gt__(self, other): return _m().compare("gt", self, other)
    def __ge__(self, other): return _m().compare("ge", self, other)
    def __eq__(self, other): return _m().compare("eq", self, other)
    def __ne__(self, other): return _m().compare("ne", self, other)
    __hash__ = object.__hash__      # tensors are used as dict keys by identity

    def __bool__(self):
        if self.size != 1:
            raise ValueError(f"bool: the truth value of a tensor with shape {self.shape} is ambiguous")
        return bool(self.data)

    # ---- methods mirroring minicnn.functional.math ------------------------------------------
    def exp(self): return _m().exp(self)
    def log(self): return _m().log(self)
    def sqrt(self): return _m().sqrt(self)
    def abs(self): return _m().abs(self)
    def clip(self, min=None, max=None): return _m().clip(self, min, max)
    def sum(self, axis=None, keepdims=False, **kw): return _m().sum(self, axis, keepdims, **kw)
    def mean(self, axis=None, keepdims=False, **kw): return _m().mean(self, axis, keepdims, **kw)
    def var(self, axis=None, keepdims=False, **kw): return _m().var(self, axis, keepdims, **kw)
    def max(self, axis=None, keepdims=False, **kw): return _m().max(self, axis, keepdims, **kw)
    def min(self, axis=None, keepdims=False, **kw): return _m().min(self, axis, keepdims, **kw)
    def argmax(self, axis=None, **kw): return _m().argmax(self, axis, **kw)
    def reshape(self, *shape): return _m().reshape(self, *shape)
    view = reshape
    def transpose(self, *axes): return _m().transpose(self, *axes)
    def permute(self, *axes): return _m().transpose(self, *axes)
    def flatten(self, start_dim=0, end_dim=-1): return _m().flatten(self, start_dim, end_dim)
    T = property(lambda self: _m().transpose(self))


def _m():
    # functional.math imports this module, so it is looked up at call time.
    from .functional import math
    return math


def as_tensor(data, dtype=None):
    """Return ``data`` if it is a Tensor (cast to dtype if given), else a new Tensor."""
    if isinstance(data, Tensor):
        return data if dtype is None or data.dtype == np.dtype(dtype) else _m().astype(data, dtype)
    return Tensor(data, dtype=dtype)


def tensor(data, requires_grad=False, dtype=None):
    """Like ``torch.tensor``: a new leaf Tensor (copying arrays)."""
    data = data.data if isinstance(data, Tensor) else data
    xp = backend.get_array_module(data)
    return Tensor(xp.array(data, copy=True) if hasattr(data, "shape") else data,
                  requires_grad=requires_grad, dtype=dtype)


class Function:
    """Base class of every differentiable operation.

    Subclasses take hyper-parameters in ``__init__`` and implement, on raw arrays,
    ``forward(*xs)`` and ``backward(*gys)``; ``backward`` returns one gradient per input (a tuple,
    or a single array for one input), None for inputs whose ``needs_input_grad`` is False.
    Whatever backward needs is saved on ``self`` by forward; it is freed after backward.

    ``fresh_gradients``: True in a subclass whose backward returns arrays of its own every time (new,
    writable, not views of anything another object holds, none returned for two inputs). A leaf then
    takes such an array as its ``.grad`` without the copy other gradients get, as PyTorch's
    AccumulateGrad takes over a gradient nobody else holds (the convolutions: a copy of gx is a whole
    extra pass over a layer-sized array, with its page faults, per step).
    """

    fresh_gradients = False

    @property
    def name(self):
        return type(self).__name__

    def __call__(self, *inputs):
        inputs = tuple(x if isinstance(x, Tensor) else Tensor(x) for x in inputs)
        backend.check_same_backend(self.name, *inputs)
        record = _grad_enabled and any(x.requires_grad for x in inputs)
        self.needs_input_grad = tuple(record and x.requires_grad for x in inputs)
        ys = self.forward(*(x.data for x in inputs))
        single = not isinstance(ys, tuple)
        outputs = tuple(Tensor(y) for y in ((ys,) if single else ys))
        if record:
            self.inputs = inputs
            self._output_meta = tuple((y.shape, y.dtype) for y in outputs)
            for i, y in enumerate(outputs):
                y.requires_grad, y.creator, y._output_index = True, self, i
        return outputs[0] if single else outputs

    def forward(self, *xs):
        raise NotImplementedError(f"{self.name}.forward")

    def backward(self, *gys):
        raise NotImplementedError(f"{self.name}.backward")

    def _release(self):
        """Drop saved arrays and the links to inputs (called after backward unless retain_graph)."""
        self.__dict__.clear()
        self._freed = True


def _topological_order(root):
    """Functions reachable from ``root``, each after every function that produced its inputs.

    An explicit stack replaces recursion, so depth is limited only by memory.
    """
    order, visited, stack = [], set(), [(root, False)]
    while stack:
        f, children_done = stack.pop()
        if children_done:
            order.append(f)
            continue
        if id(f) in visited:
            continue
        if getattr(f, "_freed", False):
            raise RuntimeError(f"backward: trying to backpropagate through {f.name} a second time, but its "
                               f"saved arrays were freed by the first backward; call the first "
                               f"backward(retain_graph=True) if you need to do this")
        visited.add(id(f))
        stack.append((f, True))
        stack.extend((x.creator, False) for x in f.inputs if x.creator is not None)
    return order


def _accumulate_leaf(x, g, fresh=False):
    if x.grad is None:
        # Copy unless fresh (see Function.fresh_gradients): g may be the caller's gradient array, a
        # read-only broadcast view (Sum), or the same array another input receives (Add); .grad must
        # be the leaf's own, writable array.
        x.grad = Tensor(g if fresh else g.copy())
    else:
        x.grad = Tensor(x.grad.data + g)


def run_backward(root, gy, retain_graph=False):
    """The backward pass from ``root`` with upstream gradient array ``gy`` (see Tensor.backward)."""
    if root.creator is None:
        _accumulate_leaf(root, gy)
        return
    order = _topological_order(root.creator)
    if root._retains_grad:
        _accumulate_leaf(root, gy)
    grads = {(id(root.creator), root._output_index): gy}   # (function, output index) -> gradient
    xp = backend.get_array_module(gy)
    for f in reversed(order):
        gys = tuple(grads.pop((id(f), i), None) for i in range(len(f._output_meta)))
        gys = tuple(xp.zeros(shape, dtype) if g is None else g
                    for g, (shape, dtype) in zip(gys, f._output_meta))
        gxs = f.backward(*gys)
        if not isinstance(gxs, tuple):
            gxs = (gxs,)
        if len(gxs) != len(f.inputs):
            raise RuntimeError(f"{f.name}.backward returned {len(gxs)} gradients for {len(f.inputs)} inputs")
        for x, gx, needed in zip(f.inputs, gxs, f.needs_input_grad):
            if not needed or gx is None:
                continue
            if gx.shape != x.shape:
                raise RuntimeError(f"{f.name}.backward returned a gradient of shape {gx.shape} for an "
                                   f"input of shape {x.shape}")
            if x.creator is None or x._retains_grad:    # a retained non-leaf's gx also flows on: copied
                _accumulate_leaf(x, gx, fresh=f.fresh_gradients and x.creator is None)
            if x.creator is not None:
                key = (id(x.creator), x._output_index)
                grads[key] = gx if key not in grads else grads[key] + gx
        if not retain_graph:
            f._release()


Tensor.__module__ = "minicnn"
Function.__module__ = "minicnn"
