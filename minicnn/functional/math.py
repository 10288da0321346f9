"""Elementwise math, reductions and shape operations, each a ``Function`` with its gradient.

Notation: x, y arrays (inputs, output); gy = dL/dy (upstream gradient), gx = dL/dx.

Broadcasting follows NumPy: ``a + b`` works when the shapes broadcast, and the backward pass sums
each gradient back to its input's shape (``sum_to``). Python and NumPy scalars are "weak": ``x * 2``
keeps x's dtype (as in PyTorch), so a float32 network stays float32.

Reductions take ``axis``/``keepdims`` (NumPy's names) and also accept PyTorch's ``dim``/``keepdim``.
"""
from __future__ import annotations

# This module defines sum, max, min, abs and pow (PyTorch's names); Python's builtins of the same
# names are not used below.
import numpy as np

from .. import backend
from ..autograd import Function, Tensor

__all__ = [
    "add", "sub", "mul", "div", "neg", "pow", "matmul", "exp", "log", "sqrt", "abs", "clip",
    "sum", "mean", "var", "max", "min", "argmax", "reshape", "transpose", "flatten", "broadcast_to",
    "cat", "concat", "stack", "pad", "getitem", "astype", "compare", "sum_to",
]


# ---------------------------------------------------------------- helpers ----------------------

def sum_to(g, shape):
    """Sum array ``g`` down to ``shape``: the adjoint of broadcasting ``shape`` to ``g.shape``."""
    if g.shape == tuple(shape):
        return g
    lead = g.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, n in enumerate(shape) if n == 1 and g.shape[lead + i] != 1)
    g = g.sum(axis=axes, keepdims=True)
    return g.reshape(shape) if lead else g


def _weak(value, like):
    """A scalar/array operand as a Tensor; scalars take ``like``'s dtype and device."""
    xp = backend.get_array_module(like.data)
    # An array stays on its device, so that a NumPy array meeting a CuPy tensor is reported as a
    # mixed-device error rather than silently copied to the GPU.
    is_array = isinstance(value, np.ndarray) or backend.device_of(value) == "cuda"
    array = value if is_array else xp.asarray(value)
    if array.ndim == 0 and like.dtype.kind == "f" and array.dtype.kind in "biuf":
        array = array.astype(like.dtype)
    return Tensor(array)


def _operands(op, a, b):
    """Both operands as Tensors with broadcastable shapes, or a ValueError naming ``op``."""
    if not isinstance(a, Tensor) and not isinstance(b, Tensor):
        a = Tensor(a)
    a = a if isinstance(a, Tensor) else _weak(a, b)
    b = b if isinstance(b, Tensor) else _weak(b, a)
    try:
        np.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        raise ValueError(f"{op}: shapes {a.shape} and {b.shape} cannot be broadcast together") from None
    return a, b


def _axis_args(name, axis, keepdims, kwargs):
    """Accept PyTorch's ``dim``/``keepdim`` as aliases of ``axis``/``keepdims``."""
    axis = kwargs.pop("dim", axis)
    keepdims = kwargs.pop("keepdim", keepdims)
    if kwargs:
        raise TypeError(f"{name}: unexpected arguments {sorted(kwargs)}")
    if isinstance(axis, list):
        axis = tuple(axis)
    return axis, bool(keepdims)


def _expand_reduced(g, x_shape, axis, keepdims):
    """Re-insert the reduced axes of ``g`` (size 1) so it broadcasts against ``x_shape``."""
    if keepdims or axis is None:
        return g.reshape([1] * len(x_shape)) if axis is None else g
    axes = (axis,) if isinstance(axis, int) else axis
    shape = list(x_shape)
    for a in axes:
        shape[a % len(x_shape)] = 1
    return g.reshape(shape)


def _count(x_shape, axis):
    axes = range(len(x_shape)) if axis is None else ((axis,) if isinstance(axis, int) else axis)
    return int(np.prod([x_shape[a] for a in axes]))


# ---------------------------------------------------------------- elementwise ------------------

class Add(Function):
    """y = a + b;  ga = sum_to(gy), gb = sum_to(gy)."""
    def forward(self, a, b):
        self.shapes = a.shape, b.shape
        return a + b

    def backward(self, gy):
        return sum_to(gy, self.shapes[0]), sum_to(gy, self.shapes[1])


class Sub(Function):
    """y = a - b;  ga = gy, gb = -gy (summed to each shape)."""
    def forward(self, a, b):
        self.shapes = a.shape, b.shape
        return a - b

    def backward(self, gy):
        return sum_to(gy, self.shapes[0]), sum_to(-gy, self.shapes[1])


class Mul(Function):
    """y = a * b;  ga = gy * b, gb = gy * a."""
    def forward(self, a, b):
        self.a, self.b = a, b
        return a * b

    def backward(self, gy):
        ga = sum_to(gy * self.b, self.a.shape) if self.needs_input_grad[0] else None
        gb = sum_to(gy * self.a, self.b.shape) if self.needs_input_grad[1] else None
        return ga, gb


class Div(Function):
    """y = a / b;  ga = gy / b, gb = -gy * a / b²."""
    def forward(self, a, b):
        self.a, self.b = a, b
        return a / b

    def backward(self, gy):
        ga = sum_to(gy / self.b, self.a.shape) if self.needs_input_grad[0] else None
        gb = sum_to(-gy * self.a / (self.b * self.b), self.b.shape) if self.needs_input_grad[1] else None
        return ga, gb


class Neg(Function):
    """y = -x;  gx = -gy."""
    def forward(self, x):
        return -x

    def backward(self, gy):
        return -gy


class Pow(Function):
    """y = a ** b;  ga = gy · b · a^(b-1),  gb = gy · y · log(a)."""
    def forward(self, a, b):
        self.a, self.b = a, b
        self.y = a ** b
        return self.y

    def backward(self, gy):
        xp = backend.get_array_module(gy)
        ga = sum_to(gy * self.b * self.a ** (self.b - 1), self.a.shape) if self.needs_input_grad[0] else None
        gb = None
        if self.needs_input_grad[1]:
            gb = sum_to(gy * self.y * xp.log(xp.where(self.a > 0, self.a, 1)), self.b.shape)
        return ga, gb


class MatMul(Function):
    """y = a @ b (batched, broadcasting like np.matmul);  ga = gy @ bᵀ, gb = aᵀ @ gy."""
    def forward(self, a, b):
        self.a, self.b = a, b
        return a @ b

    def backward(self, gy):
        a, b = self.a, self.b
        # Treat 1-D operands as matrices (a row, b a column) so one formula covers every case.
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        # gy with the axes a 1-D operand dropped put back: the shape of a2 @ b2.
        gy2 = gy.reshape(np.broadcast_shapes(a2.shape[:-2], b2.shape[:-2]) + (a2.shape[-2], b2.shape[-1]))
        ga = gb = None
        if self.needs_input_grad[0]:
            ga = sum_to(gy2 @ b2.swapaxes(-1, -2), a2.shape).reshape(a.shape)
        if self.needs_input_grad[1]:
            gb = sum_to(a2.swapaxes(-1, -2) @ gy2, b2.shape).reshape(b.shape)
        return ga, gb


class Exp(Function):
    """y = exp(x);  gx = gy · y."""
    def forward(self, x):
        self.y = backend.get_array_module(x).exp(x)
        return self.y

    def backward(self, gy):
        return gy * self.y


class Log(Function):
    """y = log(x);  gx = gy / x."""
    def forward(self, x):
        self.x = x
        return backend.get_array_module(x).log(x)

    def backward(self, gy):
        return gy / self.x


class Sqrt(Function):
    """y = √x;  gx = gy / (2y)."""
    def forward(self, x):
        self.y = backend.get_array_module(x).sqrt(x)
        return self.y

    def backward(self, gy):
        return gy / (2 * self.y)


class Abs(Function):
    """y = |x|;  gx = gy · sign(x) (0 at x = 0)."""
    def forward(self, x):
        self.x = x
        return backend.get_array_module(x).abs(x)

    def backward(self, gy):
        return gy * backend.get_array_module(gy).sign(self.x)


class Clip(Function):
    """y = min(max(x, lo), hi);  gx = gy where lo ≤ x ≤ hi, else 0."""
    def __init__(self, lo, hi):
        self.lo, self.hi = lo, hi

    def forward(self, x):
        self.x = x
        return backend.get_array_module(x).clip(x, self.lo, self.hi)

    def backward(self, gy):
        inside = True if self.lo is None else (self.x >= self.lo)    # a Python bool works with CuPy too
        if self.hi is not None:
            inside = inside & (self.x <= self.hi)
        return gy * inside


def add(a, b):
    """a + b with broadcasting."""
    return Add()(*_operands("add", a, b))


def sub(a, b):
    """a - b with broadcasting."""
    return Sub()(*_operands("sub", a, b))


def mul(a, b):
    """a * b with broadcasting."""
    return Mul()(*_operands("mul", a, b))


def div(a, b):
    """a / b with broadcasting."""
    return Div()(*_operands("div", a, b))


def neg(x):
    return Neg()(x)


def pow(a, b):
    """a ** b with broadcasting (either may be a scalar)."""
    return Pow()(*_operands("pow", a, b))


def matmul(a, b):
    """a @ b like np.matmul; the inner dimensions must agree."""
    a, b = (x if isinstance(x, Tensor) else Tensor(x) for x in (a, b))
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: both operands need at least 1 dimension, got shapes {a.shape} and {b.shape}")
    k_a, k_b = a.shape[-1], (b.shape[0] if b.ndim == 1 else b.shape[-2])
    if k_a != k_b:
        raise ValueError(f"matmul: inner dimensions differ: {a.shape} @ {b.shape} ({k_a} != {k_b})")
    return MatMul()(a, b)


def exp(x):
    return Exp()(x)


def log(x):
    return Log()(x)


def sqrt(x):
    return Sqrt()(x)


def abs(x):
    return Abs()(x)


def clip(x, min=None, max=None):
    """Clamp to [min, max] (either may be None); PyTorch calls it ``clamp``."""
    return Clip(min, max)(x)


clamp = clip


# ---------------------------------------------------------------- reductions -------------------

class Sum(Function):
    """y = Σ_axis x;  gx = gy broadcast back over the summed axes."""
    def __init__(self, axis, keepdims):
        self.axis, self.keepdims = axis, keepdims

    def forward(self, x):
        self.x_shape = x.shape
        return x.sum(axis=self.axis, keepdims=self.keepdims)

    def backward(self, gy):
        xp = backend.get_array_module(gy)
        return xp.broadcast_to(_expand_reduced(gy, self.x_shape, self.axis, self.keepdims), self.x_shape)


class Mean(Function):
    """y = (1/n) Σ_axis x;  gx = gy / n broadcast back."""
    def __init__(self, axis, keepdims):
        self.axis, self.keepdims = axis, keepdims

    def forward(self, x):
        self.x_shape = x.shape
        return x.mean(axis=self.axis, keepdims=self.keepdims)

    def backward(self, gy):
        xp = backend.get_array_module(gy)
        g = _expand_reduced(gy, self.x_shape, self.axis, self.keepdims) / _count(self.x_shape, self.axis)
        return xp.broadcast_to(g.astype(gy.dtype, copy=False), self.x_shape)


class Var(Function):
    """y = Σ (x - x̄)² / (n - correction);  gx = gy · 2 (x - x̄) / (n - correction)."""
    def __init__(self, axis, keepdims, correction):
        self.axis, self.keepdims, self.correction = axis, keepdims, correction

    def forward(self, x):
        self.centered = x - x.mean(axis=self.axis, keepdims=True)
        self.denominator = _count(x.shape, self.axis) - self.correction
        return (self.centered ** 2).sum(axis=self.axis, keepdims=self.keepdims) / self.denominator

    def backward(self, gy):
        g = _expand_reduced(gy, self.centered.shape, self.axis, self.keepdims)
        return (g * self.centered * (2 / self.denominator)).astype(gy.dtype, copy=False)


class Max(Function):
    """y = max_axis x;  gx = gy at the maxima (shared equally among ties), 0 elsewhere."""
    def __init__(self, axis, keepdims, reduce="max"):
        self.axis, self.keepdims, self.reduce = axis, keepdims, reduce

    def forward(self, x):
        self.x = x
        self.y = getattr(x, self.reduce)(axis=self.axis, keepdims=True)
        if self.keepdims:
            return self.y
        return self.y.reshape(()) if self.axis is None else self.y.squeeze(axis=self.axis)

    def backward(self, gy):
        mask = self.x == self.y
        g = _expand_reduced(gy, self.x.shape, self.axis, self.keepdims)
        return (mask * (g / mask.sum(axis=self.axis, keepdims=True))).astype(gy.dtype, copy=False)


def sum(x, axis=None, keepdims=False, **kwargs):
    """Sum over ``axis`` (int, tuple or None for all)."""
    axis, keepdims = _axis_args("sum", axis, keepdims, kwargs)
    return Sum(axis, keepdims)(x)


def mean(x, axis=None, keepdims=False, **kwargs):
    """Mean over ``axis`` (int, tuple or None for all)."""
    axis, keepdims = _axis_args("mean", axis, keepdims, kwargs)
    return Mean(axis, keepdims)(x)


def var(x, axis=None, keepdims=False, correction=1, unbiased=None, **kwargs):
    """Variance over ``axis``. As in PyTorch the default is unbiased (``correction=1``: divide by
    n - 1); pass ``correction=0`` (or ``unbiased=False``) for the population variance batch norm uses."""
    axis, keepdims = _axis_args("var", axis, keepdims, kwargs)
    if unbiased is not None:
        correction = 1 if unbiased else 0
    return Var(axis, keepdims, correction)(x)


def max(x, axis=None, keepdims=False, **kwargs):
    """Largest value over ``axis`` (values only, like ``torch.amax``)."""
    axis, keepdims = _axis_args("max", axis, keepdims, kwargs)
    return Max(axis, keepdims, "max")(x)


def min(x, axis=None, keepdims=False, **kwargs):
    """Smallest value over ``axis`` (values only, like ``torch.amin``)."""
    axis, keepdims = _axis_args("min", axis, keepdims, kwargs)
    return Max(axis, keepdims, "min")(x)


def argmax(x, axis=None, **kwargs):
    """Index of the largest value (an integer tensor, no gradient)."""
    axis, keepdims = _axis_args("argmax", axis, kwargs.pop("keepdims", False), kwargs)
    x = x.data if isinstance(x, Tensor) else x
    return Tensor(x.argmax(axis=axis, keepdims=keepdims) if axis is not None else x.argmax())


def compare(op, a, b):
    """Elementwise comparison (``lt le gt ge eq ne``): a boolean tensor with no gradient."""
    a, b = _operands(op, a, b)
    backend.check_same_backend(op, a, b)
    return Tensor(getattr(a.data, f"__{op}__")(b.data))


# ---------------------------------------------------------------- shape ------------------------

class Reshape(Function):
    """y = x viewed with a new shape;  gx = gy reshaped back."""
    def __init__(self, shape):
        self.shape = shape

    def forward(self, x):
        self.x_shape = x.shape
        return x.reshape(self.shape)

    def backward(self, gy):
        return gy.reshape(self.x_shape)


class Transpose(Function):
    """y = x with axes permuted;  gx = gy with the inverse permutation."""
    def __init__(self, axes):
        self.axes = axes

    def forward(self, x):
        return x.transpose(self.axes)

    def backward(self, gy):
        if self.axes is None:
            return gy.transpose()
        return gy.transpose(np.argsort(self.axes))


class BroadcastTo(Function):
    """y = x broadcast to ``shape``;  gx = sum_to(gy, x.shape)."""
    def __init__(self, shape):
        self.shape = tuple(shape)

    def forward(self, x):
        self.x_shape = x.shape
        return backend.get_array_module(x).broadcast_to(x, self.shape)

    def backward(self, gy):
        return sum_to(gy, self.x_shape)


class Concat(Function):
    """y = concatenation of the inputs along ``axis``;  each gx is its slice of gy."""
    def __init__(self, axis):
        self.axis = axis

    def forward(self, *xs):
        self.sizes = [x.shape[self.axis] for x in xs]
        return backend.get_array_module(*xs).concatenate(xs, axis=self.axis)

    def backward(self, gy):
        bounds = np.cumsum(self.sizes)[:-1]
        return tuple(backend.get_array_module(gy).split(gy, bounds, axis=self.axis))


class Stack(Function):
    """y = the inputs stacked along a new ``axis``;  each gx is gy indexed along that axis."""
    def __init__(self, axis):
        self.axis = axis

    def forward(self, *xs):
        return backend.get_array_module(*xs).stack(xs, axis=self.axis)

    def backward(self, gy):
        return tuple(gy.take(i, axis=self.axis) for i in range(gy.shape[self.axis]))


class Pad(Function):
    """Constant padding; ``widths`` is NumPy's ((before, after), ...) per axis;  gx = the centre of gy."""
    def __init__(self, widths, value):
        self.widths, self.value = widths, value

    def forward(self, x):
        return backend.get_array_module(x).pad(x, self.widths, constant_values=self.value)

    def backward(self, gy):
        return gy[tuple(slice(lo, gy.shape[i] - hi) for i, (lo, hi) in enumerate(self.widths))]


class GetItem(Function):
    """y = x[key];  gx = zeros with gy scattered back to the selected places (summing repeats)."""
    def __init__(self, key):
        self.key = key

    def forward(self, x):
        self.x_shape, self.x_dtype = x.shape, x.dtype
        return x[self.key]

    def backward(self, gy):
        xp = backend.get_array_module(gy)
        if _is_basic_index(self.key):
            gx = xp.zeros(self.x_shape, gy.dtype)
            gx[self.key] = gy                   # basic indexing selects each element at most once
            return gx
        # Advanced indexing may select an element several times: sum with bincount (no add.at).
        flat = xp.arange(int(np.prod(self.x_shape))).reshape(self.x_shape)[self.key]
        size = int(np.prod(self.x_shape))
        gx = xp.bincount(flat.ravel(), weights=gy.ravel().astype(np.float64), minlength=size)
        return gx.astype(gy.dtype).reshape(self.x_shape)


class AsType(Function):
    """y = x cast to ``dtype``;  gx = gy cast back to x's dtype."""
    def __init__(self, dtype):
        self.dtype = np.dtype(dtype)

    def forward(self, x):
        self.x_dtype = x.dtype
        return x.astype(self.dtype)

    def backward(self, gy):
        return gy.astype(self.x_dtype)


class ToDevice(Function):
    """y = x moved to ``device`` ("cpu"/"cuda");  gx = gy moved back."""
    def __init__(self, device):
        self.device = device

    def __call__(self, x):
        # Skip the mixed-device check: moving between devices is this function's purpose.
        self.source = x.device
        return super().__call__(x)

    def forward(self, x):
        return backend.to_device(x, self.device)

    def backward(self, gy):
        return backend.to_device(gy, self.source)


def _is_basic_index(key):
    key = key if isinstance(key, tuple) else (key,)
    return all(k is None or k is Ellipsis or isinstance(k, (slice, int, np.integer)) for k in key)


def _shape_arg(shape):
    return tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else tuple(shape)


def reshape(x, *shape):
    """Same data, new shape (one entry may be -1): ``reshape(x, (N, -1))`` or ``x.reshape(N, -1)``."""
    shape = _shape_arg(shape)
    x = x if isinstance(x, Tensor) else Tensor(x)
    known = int(np.prod([n for n in shape if n != -1]))
    fits = known == x.size if -1 not in shape else (shape.count(-1) == 1 and known > 0 and x.size % known == 0)
    if not fits:
        raise ValueError(f"reshape: cannot reshape a tensor of shape {x.shape} ({x.size} elements) "
                         f"into {shape}")
    return Reshape(shape)(x)


def transpose(x, *axes):
    """Permute axes (reverse them when none are given), like ``np.transpose`` / ``Tensor.permute``."""
    axes = _shape_arg(axes)
    axes = None if axes in ((), (None,)) else axes      # transpose(x) and np.transpose(x, None) reverse
    x = x if isinstance(x, Tensor) else Tensor(x)
    if axes is not None:
        if sorted(a % x.ndim for a in axes) != list(range(x.ndim)):
            raise ValueError(f"transpose: axes {axes} are not a permutation of the {x.ndim} axes of shape {x.shape}")
        axes = tuple(a % x.ndim for a in axes)      # backward inverts with argsort: needs axes ≥ 0
    return Transpose(axes)(x)


def flatten(x, start_dim=0, end_dim=-1):
    """Merge axes start_dim..end_dim into one, like ``torch.flatten``."""
    shape = x.shape
    ndim = len(shape) or 1
    start, end = start_dim % ndim, end_dim % ndim
    merged = int(np.prod(shape[start:end + 1]))
    return reshape(x, shape[:start] + (merged,) + shape[end + 1:])


def broadcast_to(x, shape):
    x = x if isinstance(x, Tensor) else Tensor(x)
    try:
        np.broadcast_shapes(x.shape, tuple(shape))
    except ValueError:
        raise ValueError(f"broadcast_to: cannot broadcast shape {x.shape} to {tuple(shape)}") from None
    return BroadcastTo(shape)(x)


def cat(tensors, dim=0, axis=None):
    """Concatenate along an existing axis (``torch.cat``); the other axes must agree."""
    axis = dim if axis is None else axis
    tensors = [t if isinstance(t, Tensor) else Tensor(t) for t in tensors]
    if not tensors:
        raise ValueError("cat: expected a non-empty list of tensors")
    ref = tensors[0].shape
    for t in tensors:
        if t.ndim != len(ref) or any(a != b for i, (a, b) in enumerate(zip(t.shape, ref)) if i != axis % len(ref)):
            raise ValueError(f"cat: shapes {[u.shape for u in tensors]} differ outside axis {axis}")
    return Concat(axis % len(ref))(*tensors)


concat = concatenate = cat


def stack(tensors, dim=0, axis=None):
    """Stack equal-shaped tensors along a new axis (``torch.stack``)."""
    axis = dim if axis is None else axis
    tensors = [t if isinstance(t, Tensor) else Tensor(t) for t in tensors]
    if not tensors or any(t.shape != tensors[0].shape for t in tensors):
        raise ValueError(f"stack: expected a non-empty list of equal shapes, got {[t.shape for t in tensors]}")
    return Stack(axis % (tensors[0].ndim + 1))(*tensors)


def pad(x, pad, value=0.0):
    """Constant padding with PyTorch's ``F.pad`` convention: ``pad`` lists (before, after) pairs
    starting from the LAST axis, e.g. ``pad(x, (1, 1, 2, 2))`` pads W by 1 and H by 2."""
    x = x if isinstance(x, Tensor) else Tensor(x)
    if len(pad) % 2 or len(pad) // 2 > x.ndim or any(p < 0 for p in pad):
        raise ValueError(f"pad: expected an even number of non-negative widths for at most {x.ndim} axes, "
                         f"got {tuple(pad)}")
    widths = [(0, 0)] * x.ndim
    for i in range(len(pad) // 2):
        widths[x.ndim - 1 - i] = (int(pad[2 * i]), int(pad[2 * i + 1]))
    return Pad(tuple(widths), value)(x)


def getitem(x, key):
    """``x[key]`` with NumPy indexing (slices, integers, integer or boolean arrays)."""
    key = tuple(k.data if isinstance(k, Tensor) else k for k in key) if isinstance(key, tuple) else \
        (key.data if isinstance(key, Tensor) else key)
    return GetItem(key)(x)


def astype(x, dtype):
    """Cast to ``dtype`` (differentiable: the gradient is cast back)."""
    return AsType(dtype)(x)
