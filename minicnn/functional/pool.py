"""Pooling over the spatial axes of (N, C, H, W): max, average, adaptive and global pooling.

Notation (used in every shape below):
    N        batch size                  C        channels
    H, W     input height and width      OH, OW   output height and width
    KH, KW   kernel (window) size        SH, SW   stride (defaults to the kernel size)
    PH, PW   padding, each side          DH, DW   dilation (spacing of the taps; max pooling only)
    tap      one kernel offset (kh, kw), numbered t = kh·KW + kw (row-major)

Output size along one axis (``pool_output_size``), PyTorch's rule:

    OH = floor((H + 2·PH − DH·(KH − 1) − 1) / SH) + 1                         ceil_mode=False
    OH = ceil( (H + 2·PH − DH·(KH − 1) − 1) / SH) + 1, then minus 1 if that    ceil_mode=True
         last window would start at or past H + PH (in the right padding or beyond)

How it is computed: like im2col, each pooling loops over the KH·KW taps, never over pixels or
images. Tap (kh, kw) reads the strided slice x_pad[:, :, kh·DH :: SH, kw·DW :: SW] (OH × OW of it),
one element for every window; max and sum over taps are elementwise operations between these
slices. The backward passes mirror this: for each tap they ``+=`` a slice of the input gradient.
Inside one tap's slice no element repeats, so ``+=`` is exact even when windows overlap (3×3 stride
2), and no ``np.add.at`` is needed. The same code runs on NumPy and CuPy and keeps the dtype.

Options where the papers and the frameworks differ (reference/papers.md §1, §11):
  * ``ceil_mode``: Caffe (AlexNet, VGG, GoogLeNet releases) always rounds the output size up;
    PyTorch rounds down unless ``ceil_mode=True``. Both drop a last window that would start in the
    right padding; Caffe only applies that correction when padding > 0, which makes a difference
    only when the stride exceeds the kernel. A 28×28 input through five 2×2/2 pools reaches 0×0
    with floor rounding (28→14→7→3→1→0) and 1×1 with ceil_mode=True (28→14→7→4→2→1).
  * ``count_include_pad`` (average pooling): True (PyTorch's and Caffe's default, and torchvision's
    Inception-v3) divides by the window size including zero padding; the TensorFlow-released
    Inception-v3 (``SAME`` padding) divides by the number of real pixels, i.e. False. With True, a
    ceil-mode window that runs past the padded border is divided by its size clipped to that border.
  * Overlapping pooling: AlexNet's 3×3 stride 2 ("z=3, s=2") instead of 2×2 stride 2 is simply
    ``kernel_size=3, stride=2``.
  * Unlike PyTorch, inputs must be 4-D (N, C, H, W); an unbatched (C, H, W) image needs ``x[None]``.
  * ``global_avg_pool2d`` is not a PyTorch function: it is ``x.mean((2, 3), keepdim=True)``,
    which PyTorch users write as ``adaptive_avg_pool2d(x, 1)`` (same values).
"""
from __future__ import annotations

from collections import namedtuple

import numpy as np

from .. import backend
from ..autograd import Function, Tensor
from ..cuda.launch import kernels_apply
from . import math as _math

__all__ = ["max_pool2d", "avg_pool2d", "adaptive_avg_pool2d", "adaptive_max_pool2d", "global_avg_pool2d",
           "pool_output_size", "MaxPooling2d", "AvgPooling2d", "AdaptiveAvgPooling2d", "AdaptiveMaxPooling2d"]


# ---------------------------------------------------------------- geometry ---------------------

PoolGeometry = namedtuple("PoolGeometry", "kernel stride padding dilation size out padded")
PoolGeometry.__doc__ = """Every pair (height, width): kernel (KH, KW), stride (SH, SW), padding (PH, PW),
dilation (DH, DW), size (H, W) of the input, out (OH, OW), and padded (HP, WP): the size of the padded
array the taps read (the input with PH/PW in front and as much as the last window needs behind)."""


def pool_output_size(size, kernel_size, stride, padding=0, dilation=1, ceil_mode=False):
    """Output length along one axis (PyTorch's rule; see the module docstring). May be < 1."""
    span = size + 2 * padding - dilation * (kernel_size - 1) - 1
    out = (-(-span // stride) if ceil_mode else span // stride) + 1
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1          # the last window would start in the right padding: drop it
    return out


def _pair(op, name, value):
    pair = (value, value) if isinstance(value, (int, np.integer)) else value
    if (not isinstance(pair, (tuple, list)) or len(pair) != 2
            or not all(isinstance(v, (int, np.integer)) for v in pair)):
        raise ValueError(f"{op}: {name} must be an int or a pair of ints, got {value!r}")
    return int(pair[0]), int(pair[1])


def _check_input(op, x):
    """x as a Tensor, after checking that it is a floating-point (N, C, H, W) array."""
    x = x if isinstance(x, Tensor) else Tensor(x)
    if x.ndim != 4:
        raise ValueError(f"{op}: expected a 4-D input (N, C, H, W), got shape {tuple(x.shape)}")
    if x.dtype.kind != "f":
        raise ValueError(f"{op}: expected a floating-point input, got dtype {x.dtype} "
                         f"(shape {tuple(x.shape)})")
    return x


def _pool_geometry(op, x_shape, kernel_size, stride, padding, dilation, ceil_mode):
    """Check the hyper-parameters against PyTorch's rules and return a PoolGeometry."""
    kernel = _pair(op, "kernel_size", kernel_size)
    stride = kernel if stride is None else _pair(op, "stride", stride)
    padding, dilation = _pair(op, "padding", padding), _pair(op, "dilation", dilation)
    if min(kernel) < 1 or min(stride) < 1 or min(dilation) < 1 or min(padding) < 0:
        raise ValueError(f"{op}: kernel_size, stride and dilation must be positive and padding ≥ 0, got "
                         f"kernel_size={kernel}, stride={stride}, padding={padding}, dilation={dilation}")
    if any(p > k // 2 for p, k in zip(padding, kernel)):
        raise ValueError(f"{op}: padding must be at most half the kernel size (padding ≤ kernel_size // 2), "
                         f"got padding={padding} for kernel_size={kernel}")
    size = tuple(x_shape[2:])
    out = tuple(pool_output_size(*args, ceil_mode) for args in zip(size, kernel, stride, padding, dilation))
    if min(out) < 1:
        extent = tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation))
        raise ValueError(f"{op}: the kernel {kernel} (extent with dilation {extent}) does not fit the padded "
                         f"input {tuple(s + 2 * p for s, p in zip(size, padding))} of an input of shape "
                         f"{tuple(x_shape)}: the output would be {out}")
    padded = tuple(max(p + s, (o - 1) * st + d * (k - 1) + 1)
                   for p, s, o, st, d, k in zip(padding, size, out, stride, dilation, kernel))
    return PoolGeometry(kernel, stride, padding, dilation, size, out, padded)


def _taps(geometry):
    """(t, rows, cols) for each tap: the strided slices of the padded input that tap t reads."""
    (KH, KW), (SH, SW), _, (DH, DW), _, (OH, OW), _ = geometry
    for kh in range(KH):
        for kw in range(KW):
            yield (kh * KW + kw, slice(kh * DH, kh * DH + SH * (OH - 1) + 1, SH),
                   slice(kw * DW, kw * DW + SW * (OW - 1) + 1, SW))


def _pad(x, geometry, fill):
    """x (N, C, H, W) inside an (N, C, HP, WP) array of ``fill`` at offset (PH, PW); x itself if HP, WP = H, W."""
    (PH, PW), (H, W), (HP, WP) = geometry.padding, geometry.size, geometry.padded
    if (HP, WP) == (H, W):
        return x
    padded = backend.get_array_module(x).full(x.shape[:2] + (HP, WP), fill, dtype=x.dtype)
    padded[:, :, PH:PH + H, PW:PW + W] = x
    return padded


def _crop(g_padded, geometry):
    """The (H, W) part of a gradient with respect to the padded input: the gradient with respect to x."""
    (PH, PW), (H, W) = geometry.padding, geometry.size
    if g_padded.shape[2:] == (H, W):
        return g_padded
    return backend.get_array_module(g_padded).ascontiguousarray(g_padded[:, :, PH:PH + H, PW:PW + W])


# ---------------------------------------------------------------- max pooling ------------------

class MaxPooling2d(Function):
    """Max pooling with a fixed window.

    forward(x)   x (N, C, H, W) -> y (N, C, OH, OW)
        y[n, c, oh, ow] = max over taps (kh, kw) of x_pad[n, c, oh·SH + kh·DH, ow·SW + kw·DW],
        x_pad = x padded with −inf, so padding never wins against a real pixel. Ties go to the first
        maximum in row-major order and a NaN wins (both as PyTorch). A dilated window whose taps all
        land in the padding (e.g. rows −1 and 1 of a 1-row input) gives −inf, as PyTorch, and no gradient.
    backward(gy) -> gx (N, C, H, W)
        gx[n, c, h, w] = Σ gy[n, c, oh, ow] over the windows whose maximum is x[n, c, h, w]
        (overlapping windows that share a maximum add up).
    Cached between forward and backward: ``tap`` (N, C, OH, OW) int32, the tap index t = kh·KW + kw
    of each window's maximum (not x).
    On a GPU (float32/float64 CuPy arrays) both passes are CUDA kernels (``minicnn/cuda/pool_kernels.py``:
    one thread per output in forward, a deterministic gather per input pixel in backward) that give
    the same y, tap and gx as the tap loops below.
    """

    def __init__(self, geometry):
        self.geometry = geometry

    def forward(self, x):
        self.kernels = kernels_apply(x)
        if self.kernels:
            from ..cuda import pool_kernels
            y, self.tap = pool_kernels.max_pool2d_forward(x, self.geometry)
            return y
        xp = backend.get_array_module(x)
        padded = _pad(x, self.geometry, -np.inf)
        y = None
        for t, rows, cols in _taps(self.geometry):
            v = padded[:, :, rows, cols]
            if y is None:
                y, self.tap = v.copy(), xp.zeros(v.shape, dtype=np.int32)
                continue
            wins = (v > y) | xp.isnan(v)     # strict >: an equal value later in the window does not win
            xp.copyto(y, v, where=wins)
            self.tap[wins] = t
        return y

    def backward(self, gy):
        if self.kernels and kernels_apply(gy):
            from ..cuda import pool_kernels
            return pool_kernels.max_pool2d_backward(gy, self.tap, self.geometry)
        xp = backend.get_array_module(gy)
        gx = xp.zeros(gy.shape[:2] + self.geometry.padded, dtype=gy.dtype)
        for t, rows, cols in _taps(self.geometry):
            gx[:, :, rows, cols] += xp.where(self.tap == t, gy, 0)
        return _crop(gx, self.geometry)

    def indices(self):
        """PyTorch's ``return_indices``: the flat position h·W + w of each maximum in its (H, W) plane (int64)."""
        xp = backend.get_array_module(self.tap)
        (_, KW), (SH, SW), (PH, PW), (DH, DW), (_, W), (OH, OW), _ = self.geometry
        h = (xp.arange(OH) * SH - PH)[:, None] + (self.tap // KW) * DH
        w = xp.arange(OW) * SW - PW + (self.tap % KW) * DW
        return (h.astype(np.int64) * W + w).astype(np.int64)


def max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    """2-D max pooling, ``torch.nn.functional.max_pool2d``.

    x               (N, C, H, W) Tensor or array, floating point
    kernel_size     int or (KH, KW); stride int or (SH, SW), None = kernel_size
    padding         int or (PH, PW), at most kernel_size // 2; padded positions count as −inf
    dilation        int or (DH, DW): spacing between the taps of a window
    ceil_mode       round the output size up instead of down (see the module docstring)
    return_indices  also return the int64 positions h·W + w of the maxima (N, C, OH, OW), no gradient
    returns         y (N, C, OH, OW), same dtype as x   [, indices]
    """
    x = _check_input("max_pool2d", x)
    geometry = _pool_geometry("max_pool2d", x.shape, kernel_size, stride, padding, dilation, ceil_mode)
    pool = MaxPooling2d(geometry)
    y = pool(x)
    return (y, Tensor(pool.indices())) if return_indices else y


# ---------------------------------------------------------------- average pooling --------------

def _window_sizes(xp, size, kernel, stride, padding, out, count_include_pad):
    """The divisor of each window along one axis (out,), PyTorch's rule: the window clipped to the
    padded border (count_include_pad) or to the input (not count_include_pad)."""
    start = xp.arange(out) * stride - padding
    end = xp.minimum(start + kernel, size + padding)
    if not count_include_pad:
        start, end = xp.maximum(start, 0), xp.minimum(end, size)
    return end - start


class AvgPooling2d(Function):
    """Average pooling with a fixed window.

    forward(x)   x (N, C, H, W) -> y (N, C, OH, OW)
        y[n, c, oh, ow] = (1 / divisor[oh, ow]) · Σ over taps of x_pad[n, c, oh·SH + kh, ow·SW + kw],
        x_pad = x padded with zeros. divisor = the number of window positions inside the padded input
        (count_include_pad=True) or inside x (False), or ``divisor_override``.
    backward(gy) -> gx (N, C, H, W)
        gx[n, c, h, w] = Σ gy[n, c, oh, ow] / divisor[oh, ow] over the windows that contain (h, w).
    Cached between forward and backward: ``divisor`` (OH, OW), in x's dtype.
    """

    def __init__(self, geometry, count_include_pad=True, divisor_override=None):
        self.geometry = geometry
        self.count_include_pad, self.divisor_override = count_include_pad, divisor_override

    def forward(self, x):
        xp = backend.get_array_module(x)
        (KH, KW), (SH, SW), (PH, PW), _, (H, W), (OH, OW), _ = self.geometry
        if self.divisor_override is not None:
            self.divisor = xp.full((OH, OW), self.divisor_override, dtype=x.dtype)
        else:
            rows = _window_sizes(xp, H, KH, SH, PH, OH, self.count_include_pad)
            cols = _window_sizes(xp, W, KW, SW, PW, OW, self.count_include_pad)
            self.divisor = (rows[:, None] * cols[None, :]).astype(x.dtype)
        padded = _pad(x, self.geometry, 0)
        total = xp.zeros(x.shape[:2] + (OH, OW), dtype=x.dtype)
        for _, rows, cols in _taps(self.geometry):
            total += padded[:, :, rows, cols]
        return total / self.divisor

    def backward(self, gy):
        xp = backend.get_array_module(gy)
        share = gy / self.divisor.astype(gy.dtype, copy=False)
        gx = xp.zeros(gy.shape[:2] + self.geometry.padded, dtype=gy.dtype)
        for _, rows, cols in _taps(self.geometry):
            gx[:, :, rows, cols] += share
        return _crop(gx, self.geometry)


def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    """2-D average pooling, ``torch.nn.functional.avg_pool2d``.

    x                  (N, C, H, W) Tensor or array, floating point
    kernel_size        int or (KH, KW); stride int or (SH, SW), None = kernel_size
    padding            int or (PH, PW), at most kernel_size // 2; padded positions are zeros
    ceil_mode          round the output size up instead of down (see the module docstring)
    count_include_pad  divide by the window size including padding (True) or by the real pixels (False)
    divisor_override   if given, divide every window sum by this number instead
    returns            y (N, C, OH, OW), same dtype as x
    """
    x = _check_input("avg_pool2d", x)
    geometry = _pool_geometry("avg_pool2d", x.shape, kernel_size, stride, padding, 1, ceil_mode)
    if divisor_override is not None and (not isinstance(divisor_override, (int, np.integer))
                                         or divisor_override < 1):
        raise ValueError(f"avg_pool2d: divisor_override must be a positive int or None, got {divisor_override!r}")
    return AvgPooling2d(geometry, bool(count_include_pad), divisor_override)(x)


# ---------------------------------------------------------------- adaptive pooling -------------

def _adaptive_windows(xp, size, out):
    """Window i along one axis covers [floor(i·size/out), ceil((i+1)·size/out)) (PyTorch's rule)."""
    i = xp.arange(out)
    return (i * size) // out, -(-((i + 1) * size) // out)


def _adaptive_geometry(op, x_shape, output_size):
    """(OH, OW) from an int or a pair whose entries may be None (= keep the input size)."""
    pair = (output_size, output_size) if not isinstance(output_size, (tuple, list)) else tuple(output_size)
    if len(pair) != 2 or not all(v is None or isinstance(v, (int, np.integer)) for v in pair):
        raise ValueError(f"{op}: output_size must be an int or a pair of ints/None, got {output_size!r}")
    out = tuple(int(s if o is None else o) for o, s in zip(pair, x_shape[2:]))
    if min(out) < 1:
        raise ValueError(f"{op}: output_size must be positive, got {output_size!r} for an input of shape "
                         f"{tuple(x_shape)}")
    return out


class AdaptiveAvgPooling2d(Function):
    """Adaptive average pooling: (N, C, H, W) -> (N, C, OH, OW) for any H, W.

    Window (oh, ow) covers rows [floor(oh·H/OH), ceil((oh+1)·H/OH)) and the same for columns. The
    windows vary in size, so there is no fixed tap grid; instead the average is separable: with the
    (OH, H) matrix A_H[oh, h] = 1 / (rows in window oh) for h in window oh, else 0 (A_W likewise),
        forward    y = A_H · x · A_Wᵀ          (per image and channel)
        backward   gx = A_Hᵀ · gy · A_W        (overlapping windows add up in the products)
    Cached between forward and backward: A_H (OH, H) and A_W (OW, W), in x's dtype.
    """

    def __init__(self, output_size):
        self.output_size = output_size

    @staticmethod
    def averaging_matrix(xp, size, out, dtype):
        start, end = _adaptive_windows(xp, size, out)
        h = xp.arange(size)
        inside = (start[:, None] <= h) & (h < end[:, None])
        return (inside / (end - start)[:, None]).astype(dtype)

    def forward(self, x):
        xp = backend.get_array_module(x)
        (H, W), (OH, OW) = x.shape[2:], self.output_size
        self.A_H = self.averaging_matrix(xp, H, OH, x.dtype)
        self.A_W = self.averaging_matrix(xp, W, OW, x.dtype)
        return self.A_H @ x @ self.A_W.T

    def backward(self, gy):
        return self.A_H.T @ gy @ self.A_W


class AdaptiveMaxPooling2d(Function):
    """Adaptive max pooling: (N, C, H, W) -> (N, C, OH, OW), windows as in AdaptiveAvgPooling2d.

    forward    gathers every window at once into (N, C, OH, OW, LH·LW) (LH, LW = the longest window;
               shorter windows repeat their last row/column, which never beats the first maximum)
               and takes the first maximum in row-major order, as PyTorch.
    backward   gx[n, c, h, w] = Σ gy[n, c, oh, ow] over the windows whose maximum is x[n, c, h, w],
               computed as a product of one-hot matrices: gx = Σ_(oh,ow) gy · onehot_H(h*) ⊗ onehot_W(w*),
               which adds the contributions of overlapping windows exactly.
    Cached between forward and backward: ``h_max``, ``w_max`` (N, C, OH, OW), the position of each maximum.
    Meant for small outputs (global max pooling is ``output_size=1``); the backward's one-hot
    matrices hold N·C·OH·OW·(H + W) numbers.
    """

    def __init__(self, output_size):
        self.output_size = output_size

    @staticmethod
    def window_index(xp, size, out):
        """(out, L) positions of each window's elements, the last one repeated to the longest length L."""
        start, end = _adaptive_windows(xp, size, out)
        longest = int((end - start).max())
        return xp.minimum(start[:, None] + xp.arange(longest), end[:, None] - 1)

    def forward(self, x):
        xp = backend.get_array_module(x)
        (N, C, H, W), (OH, OW) = x.shape, self.output_size
        rows, cols = self.window_index(xp, H, OH), self.window_index(xp, W, OW)     # (OH, LH), (OW, LW)
        LH, LW = rows.shape[1], cols.shape[1]
        windows = x[:, :, rows][..., cols]                                          # (N, C, OH, LH, OW, LW)
        windows = windows.transpose(0, 1, 2, 4, 3, 5).reshape(N, C, OH, OW, LH * LW)
        first = windows.argmax(axis=-1)
        self.h_max = rows[xp.arange(OH)[:, None], first // LW]
        self.w_max = cols[xp.arange(OW), first % LW]
        self.size = (H, W)
        return xp.take_along_axis(windows, first[..., None], axis=-1)[..., 0]

    def backward(self, gy):
        xp = backend.get_array_module(gy)
        (N, C, OH, OW), (H, W) = gy.shape, self.size
        onehot_h = (self.h_max[..., None] == xp.arange(H)) * gy[..., None]          # (N, C, OH, OW, H)
        onehot_w = (self.w_max[..., None] == xp.arange(W)).astype(gy.dtype)         # (N, C, OH, OW, W)
        return onehot_h.reshape(N, C, OH * OW, H).swapaxes(-1, -2) @ onehot_w.reshape(N, C, OH * OW, W)

    def indices(self):
        """PyTorch's ``return_indices``: the flat position h·W + w of each maximum in its (H, W) plane (int64)."""
        return self.h_max.astype(np.int64) * self.size[1] + self.w_max


def adaptive_avg_pool2d(x, output_size):
    """Adaptive average pooling to ``output_size``, ``torch.nn.functional.adaptive_avg_pool2d``.

    x            (N, C, H, W) Tensor or array, floating point
    output_size  int or (OH, OW); an entry None keeps that input size
    returns      y (N, C, OH, OW), same dtype as x; window (oh, ow) averages rows
                 [floor(oh·H/OH), ceil((oh+1)·H/OH)) and the matching columns
    """
    x = _check_input("adaptive_avg_pool2d", x)
    return AdaptiveAvgPooling2d(_adaptive_geometry("adaptive_avg_pool2d", x.shape, output_size))(x)


def adaptive_max_pool2d(x, output_size, return_indices=False):
    """Adaptive max pooling to ``output_size``, ``torch.nn.functional.adaptive_max_pool2d``.

    x               (N, C, H, W) Tensor or array, floating point
    output_size     int or (OH, OW); an entry None keeps that input size
    return_indices  also return the int64 positions h·W + w of the maxima (N, C, OH, OW), no gradient
    returns         y (N, C, OH, OW), same dtype as x   [, indices]
    """
    x = _check_input("adaptive_max_pool2d", x)
    pool = AdaptiveMaxPooling2d(_adaptive_geometry("adaptive_max_pool2d", x.shape, output_size))
    y = pool(x)
    return (y, Tensor(pool.indices())) if return_indices else y


def global_avg_pool2d(x):
    """The mean of each channel: (N, C, H, W) -> (N, C, 1, 1); gx = gy / (H·W) at every pixel.

    Not a PyTorch function (PyTorch writes ``adaptive_avg_pool2d(x, 1)`` or ``x.mean((2, 3), keepdim=True)``);
    it is the classifier head of ResNet, Inception and MobileNet and the "squeeze" of an SE block.
    """
    x = _check_input("global_avg_pool2d", x)
    return _math.mean(x, axis=(2, 3), keepdims=True)
