"""Activation functions: relu, relu6, sigmoid, tanh, softmax, log_softmax.

Notation: x the input, y the output (same shape as x), gy = dL/dy (upstream), gx = dL/dx.
softmax and log_softmax work along one axis ``dim`` (K entries, e.g. the classes of (N, K) logits).

Each operation is a ``Function`` with a hand-written backward; every one of them keeps the input
dtype (float32 in, float32 out). Two need care to stay finite:

  * sigmoid: 1 / (1 + e^(−x)) overflows e^(−x) for x ≪ 0. Both branches are written with
    e = e^(−|x|) ≤ 1:  σ(x) = 1 / (1 + e) for x ≥ 0,  e / (1 + e) for x < 0.
  * softmax / log_softmax: e^x overflows for logits in the hundreds. Both are unchanged when a
    constant is subtracted along ``dim``, so subtract the max m first (the largest exponent is then
    e^0 = 1) and use log-sum-exp:  log Σ_k e^(x_k) = m + log Σ_k e^(x_k − m).
"""
from __future__ import annotations

from .. import backend
from ..autograd import Function, Tensor

__all__ = ["relu", "relu6", "sigmoid", "tanh", "softmax", "log_softmax"]


def _floating_tensor(op, x):
    """``x`` as a Tensor, or a ValueError naming ``op`` if it is not floating point."""
    x = x if isinstance(x, Tensor) else Tensor(x)
    if x.dtype.kind != "f":
        raise ValueError(f"{op}: expected a floating-point tensor, got dtype {x.dtype} with shape {x.shape}")
    return x


def _check_dim(op, x, dim):
    """The axis ``dim`` of ``x`` as a non-negative int, or a ValueError naming ``op``."""
    if x.ndim == 0:
        raise ValueError(f"{op}: expected a tensor with at least 1 dimension, got shape {x.shape}")
    if isinstance(dim, bool) or not isinstance(dim, int) or not -x.ndim <= dim < x.ndim:
        raise ValueError(f"{op}: dim must be an int in [{-x.ndim}, {x.ndim - 1}] for an input of shape "
                         f"{x.shape}, got {dim!r}")
    return dim % x.ndim


# ---------------------------------------------------------------- elementwise ------------------

class ReLU(Function):
    """y = max(x, 0);  gx = gy · [x > 0]  (the subgradient 0 is used at x = 0, as in PyTorch)."""
    def forward(self, x):
        self.positive = x > 0
        return backend.get_array_module(x).maximum(x, 0)

    def backward(self, gy):
        return gy * self.positive


class ReLU6(Function):
    """y = min(max(x, 0), 6) (MobileNet v2);  gx = gy · [0 < x < 6]."""
    def forward(self, x):
        self.inside = (x > 0) & (x < 6)
        return backend.get_array_module(x).clip(x, 0, 6)

    def backward(self, gy):
        return gy * self.inside


class Sigmoid(Function):
    """y = σ(x) = 1 / (1 + e^(−x));  gx = gy · y · (1 − y)."""
    def forward(self, x):
        xp = backend.get_array_module(x)
        e = xp.exp(-xp.abs(x))                      # in (0, 1]: never overflows
        self.y = xp.where(x >= 0, 1 / (1 + e), e / (1 + e))
        return self.y

    def backward(self, gy):
        return gy * self.y * (1 - self.y)


class Tanh(Function):
    """y = tanh(x);  gx = gy · (1 − y²)."""
    def forward(self, x):
        self.y = backend.get_array_module(x).tanh(x)
        return self.y

    def backward(self, gy):
        return gy * (1 - self.y * self.y)


# ---------------------------------------------------------------- along an axis ----------------

class Softmax(Function):
    """y_k = e^(x_k) / Σ_j e^(x_j) along ``dim`` (computed as e^(x_k − m) / Σ_j e^(x_j − m), m = max).

    Backward (the Jacobian is diag(y) − y yᵀ):  gx = y · (gy − Σ_k gy_k · y_k).
    """
    def __init__(self, dim):
        self.dim = dim

    def forward(self, x):
        xp = backend.get_array_module(x)
        e = xp.exp(x - x.max(axis=self.dim, keepdims=True))
        self.y = e / e.sum(axis=self.dim, keepdims=True)
        return self.y

    def backward(self, gy):
        y = self.y
        return y * (gy - (gy * y).sum(axis=self.dim, keepdims=True))


class LogSoftmax(Function):
    """y_k = x_k − log Σ_j e^(x_j) = (x_k − m) − log Σ_j e^(x_j − m) along ``dim`` (m = max).

    Backward (∂y_k/∂x_j = δ_kj − softmax_j):  gx = gy − softmax(x) · Σ_k gy_k,  softmax = e^y.
    """
    def __init__(self, dim):
        self.dim = dim

    def forward(self, x):
        xp = backend.get_array_module(x)
        shifted = x - x.max(axis=self.dim, keepdims=True)
        self.y = shifted - xp.log(xp.exp(shifted).sum(axis=self.dim, keepdims=True))
        return self.y

    def backward(self, gy):
        softmax = backend.get_array_module(gy).exp(self.y)
        return gy - softmax * gy.sum(axis=self.dim, keepdims=True)


# ---------------------------------------------------------------- user functions ---------------

def relu(x):
    """max(x, 0) elementwise. x: any shape → same shape."""
    return ReLU()(_floating_tensor("relu", x))


def relu6(x):
    """min(max(x, 0), 6) elementwise (MobileNet v2). x: any shape → same shape."""
    return ReLU6()(_floating_tensor("relu6", x))


def sigmoid(x):
    """1 / (1 + e^(−x)) elementwise, finite for any |x| (SE blocks' gate). x: any shape → same shape."""
    return Sigmoid()(_floating_tensor("sigmoid", x))


def tanh(x):
    """tanh(x) elementwise. x: any shape → same shape."""
    return Tanh()(_floating_tensor("tanh", x))


def softmax(x, dim):
    """Softmax along ``dim``: non-negative entries summing to 1 along that axis.

    x: any shape with at least one axis → same shape; e.g. logits (N, K) with dim=1 → probabilities.
    ``dim`` is required (PyTorch's implicit choice of axis is deprecated there and absent here).
    Stable for logits in the hundreds: the max along ``dim`` is subtracted first.
    """
    x = _floating_tensor("softmax", x)
    return Softmax(_check_dim("softmax", x, dim))(x)


def log_softmax(x, dim):
    """log(softmax(x, dim)) computed with log-sum-exp: finite even where softmax underflows to 0.

    x: any shape with at least one axis → same shape. Use it (or ``cross_entropy``) rather than
    ``log(softmax(x))``, which gives −inf for a logit 200 below the largest one.
    """
    x = _floating_tensor("log_softmax", x)
    return LogSoftmax(_check_dim("log_softmax", x, dim))(x)
