"""2-D convolution as im2col + one GEMM per group (PyTorch's ``conv2d`` semantics).

Notation: N batch, C input channels, Cout output channels, G groups, H W input, KH KW kernel,
SH SW stride, PH PW padding, DH DW dilation, OH OW output, K = C/G·KH·KW (one column's length),
P = N·OH·OW (the number of columns). Gradients: gy = dL/dy, gx, gW, gb.

    x       (N, C, H, W)
    weight  (Cout, C/G, KH, KW)
    bias    (Cout,) or None
    y       (N, Cout, OH, OW),   OH = floor((H + 2·PH − DH·(KH − 1) − 1) / SH) + 1  (same for OW)

What "convolution" means here is cross-correlation (the kernel is not flipped), as in every deep
learning library. With col = im2col(x) viewed as (G, K, P) and W viewed as (G, Cout/G, K):

    forward    y[g]   = W[g] · col[g]            (+ b, broadcast over N, OH, OW)
    backward   gW[g]  = gy[g] · col[g]ᵀ
               gcol[g] = W[g]ᵀ · gy[g],    gx = col2im(gcol)
               gb     = Σ over N, OH, OW of gy

Groups split the channels into G independent convolutions (each output channel sees C/G input
channels); G = C with Cout = m·C is the depthwise convolution of MobileNet. A 1×7 kernel with
padding (0, 3) is the Inception-v3 factorized convolution: every size argument is an int or a
(height, width) pair.
"""
from __future__ import annotations

import numbers

from .. import backend
from ..autograd import Function
from .im2col import as_pair, col2im, conv_output_size, im2col

__all__ = ["Conv2dFunction", "conv2d"]


class Conv2dFunction(Function):
    """y = conv2d(x, weight[, bias]); see the module docstring for shapes and gradients.

    Memory: the im2col buffer ``col`` (KH·KW/(SH·SW) times the size of x) is CACHED from forward
    to backward when the weight needs a gradient, because gW = gy·colᵀ needs it and recomputing it
    would cost another im2col pass (about a tenth of the layer's time). Backward then overwrites
    that same buffer with gcol = Wᵀ·gy, so each layer holds at most one column buffer at any
    time. If backward runs a second time on a retained graph, col is recomputed from x.
    """

    def __init__(self, stride=1, padding=0, dilation=1, groups=1):
        self.stride = as_pair(stride, "stride", "conv2d")
        self.padding = as_pair(padding, "padding", "conv2d")
        self.dilation = as_pair(dilation, "dilation", "conv2d")
        if min(*self.stride, *self.dilation) < 1 or min(self.padding) < 0:
            raise ValueError(f"conv2d: stride and dilation must be ≥ 1 and padding ≥ 0, got "
                             f"stride={self.stride}, padding={self.padding}, dilation={self.dilation}")
        if not isinstance(groups, numbers.Integral) or groups < 1:
            raise ValueError(f"conv2d: groups must be a positive int, got {groups!r}")
        self.groups = int(groups)

    def forward(self, x, weight, bias=None):
        self._check_shapes(x, weight, bias)
        xp = backend.get_array_module(x)
        G, N, (Cout, Cg, KH, KW) = self.groups, x.shape[0], weight.shape
        col = im2col(x, (KH, KW), self.stride, self.padding, self.dilation)  # (C, KH, KW, N, OH, OW)
        OH, OW = col.shape[-2:]
        col = col.reshape(G, Cg * KH * KW, N * OH * OW)                        # (G, K, P), a view
        y = xp.matmul(weight.reshape(G, Cout // G, Cg * KH * KW), col)        # (G, Cout/G, P)
        y = y.reshape(Cout, N, OH, OW).transpose(1, 0, 2, 3)                  # NCHW view
        out = xp.empty((N, Cout, OH, OW), dtype=y.dtype)
        if bias is None:
            out[...] = y
        else:                     # the bias add and the CNHW → NCHW copy in one pass
            xp.add(y, bias.reshape(Cout, 1, 1), out=out)
        self.x, self.weight = x, weight
        self.col = col if self.needs_input_grad[1] else None
        return out

    def backward(self, gy):
        xp = backend.get_array_module(gy)
        x, weight, G = self.x, self.weight, self.groups
        (N, C), (Cout, Cg, KH, KW), (OH, OW) = x.shape[:2], weight.shape, gy.shape[2:]
        K, P = Cg * KH * KW, N * OH * OW
        gy = xp.ascontiguousarray(gy.transpose(1, 0, 2, 3)).reshape(G, Cout // G, P)  # (G, Cout/G, P)
        gx = gW = gb = None
        if self.needs_input_grad[1]:
            col = self.col if self.col is not None else self._columns(x, weight)
            # col·gyᵀ then a transpose of the small result: BLAS reads the big col in its stored order.
            gW = xp.matmul(col, gy.transpose(0, 2, 1)).transpose(0, 2, 1).reshape(weight.shape)
        if self.needs_input_grad[0]:
            # gcol goes into col's buffer (col is not needed any more): no second big allocation.
            gcol = self.col if self.col is not None else xp.empty((G, K, P), dtype=gy.dtype)
            self.col = None
            weight_t = weight.reshape(G, Cout // G, K).transpose(0, 2, 1)     # (G, K, Cout/G)
            if Cout == G:     # depthwise: an outer product, which multiply does ~4× faster than matmul
                xp.multiply(weight_t, gy, out=gcol)
            else:
                xp.matmul(weight_t, gy, out=gcol)
            gx = col2im(gcol.reshape(C, KH, KW, N, OH, OW), x.shape, (KH, KW), self.stride,
                        self.padding, self.dilation)
        if len(self.needs_input_grad) == 3 and self.needs_input_grad[2]:
            gb = gy.reshape(Cout, P).sum(axis=1)
        return (gx, gW) if len(self.needs_input_grad) == 2 else (gx, gW, gb)

    def _columns(self, x, weight):
        col = im2col(x, weight.shape[2:], self.stride, self.padding, self.dilation)
        return col.reshape(self.groups, -1, col.shape[3] * col.shape[4] * col.shape[5])

    def _check_shapes(self, x, weight, bias):
        """Raise a ValueError naming conv2d and the shapes for every inconsistent input."""
        G = self.groups
        if x.ndim != 4:
            raise ValueError(f"conv2d: x must be 4-D (N, C, H, W), got shape {x.shape}")
        if weight.ndim != 4:
            raise ValueError(f"conv2d: weight must be 4-D (Cout, C/groups, KH, KW), got shape {weight.shape}")
        (_, C, H, W), (Cout, Cg, KH, KW) = x.shape, weight.shape
        if C % G:
            raise ValueError(f"conv2d: input channels C={C} (x shape {x.shape}) are not divisible by "
                             f"groups={G}")
        if Cout % G:
            raise ValueError(f"conv2d: output channels Cout={Cout} (weight shape {weight.shape}) are not "
                             f"divisible by groups={G}")
        if Cg != C // G:
            raise ValueError(f"conv2d: weight shape {weight.shape} has {Cg} input channels per group, "
                             f"expected C/groups = {C}/{G} = {C // G} for x of shape {x.shape}")
        (PH, PW), (DH, DW) = self.padding, self.dilation
        if (conv_output_size(H, KH, self.stride[0], PH, DH) < 1
                or conv_output_size(W, KW, self.stride[1], PW, DW) < 1):
            raise ValueError(f"conv2d: the kernel {(KH, KW)} with dilation {(DH, DW)} spans "
                             f"{(DH * (KH - 1) + 1, DW * (KW - 1) + 1)}, larger than the padded input "
                             f"{(H + 2 * PH, W + 2 * PW)} (x shape {x.shape}, padding {(PH, PW)})")
        if bias is not None and bias.shape != (Cout,):
            raise ValueError(f"conv2d: bias must have shape (Cout,) = ({Cout},), got {bias.shape}")
        dtypes = {a.dtype for a in (x, weight, bias) if a is not None}
        if len(dtypes) > 1:
            raise TypeError(f"conv2d: x, weight and bias must have one dtype, got "
                            f"{', '.join(str(a.dtype) for a in (x, weight, bias) if a is not None)}")


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D convolution of x (N, C, H, W) with weight (Cout, C/groups, KH, KW) → (N, Cout, OH, OW).

    stride, padding, dilation: an int or a (height, width) pair; padding is zeros on both sides.
    groups: split channels into independent groups (groups = C: depthwise).
    """
    function = Conv2dFunction(stride, padding, dilation, groups)
    return function(x, weight) if bias is None else function(x, weight, bias)
