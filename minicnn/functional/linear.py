"""The fully connected layer: y = x Wᵀ + b.

Shapes: x (N, in_features), W (out_features, in_features), b (out_features,) -> y (N, out_features).
Leading dimensions beyond N are allowed, as in PyTorch: x (*, in_features) -> y (*, out_features).
"""
from .. import backend
from ..autograd import Function


class Linear(Function):
    """y = x Wᵀ + b;  gx = gy W,  gW = gyᵀ x,  gb = Σ_N gy."""

    def forward(self, x, W, b=None):
        self.x, self.W = x, W
        y = x @ W.T
        return y if b is None else y + b

    def backward(self, gy):
        x2 = self.x.reshape(-1, self.x.shape[-1])       # fold leading dims into one batch axis
        gy2 = gy.reshape(-1, gy.shape[-1])
        gx = (gy @ self.W) if self.needs_input_grad[0] else None
        gW = (gy2.T @ x2) if self.needs_input_grad[1] else None
        if len(self.needs_input_grad) == 2:
            return gx, gW
        gb = gy2.sum(axis=0) if self.needs_input_grad[2] else None
        return gx, gW, gb


def linear(x, weight, bias=None):
    """Fully connected layer, ``F.linear(x, weight, bias)`` as in PyTorch: x @ weight.T + bias."""
    if weight.ndim != 2 or x.ndim < 1 or x.shape[-1] != weight.shape[1]:
        raise ValueError(f"linear: input of shape {tuple(x.shape)} needs its last dimension to equal the "
                         f"weight's in_features; weight has shape {tuple(weight.shape)} (out, in)")
    if bias is not None and tuple(bias.shape) != (weight.shape[0],):
        raise ValueError(f"linear: bias has shape {tuple(bias.shape)}, expected ({weight.shape[0]},)")
    backend.check_same_backend("linear", x, weight, bias)
    return Linear()(x, weight) if bias is None else Linear()(x, weight, bias)
