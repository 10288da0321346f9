"""CUDA max pooling, forward and backward, for CuPy arrays (the GPU path of ``F.max_pool2d``).

Notation as in ``minicnn/functional/pool.py`` (N batch, C channels, H W input, KH KW window,
SH SW stride, PH PW padding, DH DW dilation, OH OW output; tap t = kh·KW + kw, row-major).

* ``max_pool2d_forward_kernel``: one thread per output element (n, c, oh, ow). It walks the KH·KW
  taps in row-major order; tap (kh, kw) reads x[n, c, oh·SH − PH + kh·DH, ow·SW − PW + kw·DW], or the
  padding value −inf outside the input. A tap wins when its value is > the best so far (strict: the
  first maximum wins a tie) or is NaN (a NaN wins, and a later NaN wins over it) — exactly the rule
  of ``MaxPooling2d.forward``, so y and the int32 tap of each maximum are identical to the CPU's.
  −inf is passed in as an argument because NVRTC, CuPy's compiler, has no ``INFINITY``.
* ``max_pool2d_backward_kernel``: a GATHER, one thread per input pixel (n, c, h, w): for every tap
  (kh, kw), the one output position (oh, ow) that reads this pixel through that tap, if any
  (oh = (h + PH − kh·DH) / SH when that is a whole number in [0, OH), likewise ow), adds
  gy[n, c, oh, ow] when that window's maximum is this tap. No thread writes another's pixel, so there
  are no atomics and the result is deterministic; the taps are added in the order t = 0, 1, … as in
  ``MaxPooling2d.backward``, so gx is bit-identical to the CPU path.
* All index arithmetic is 64-bit (``long long``); the tap array is int32, as on the CPU (its values
  are < KH·KW). Templates for ``float`` and ``double``; grid-stride loops (``launch.py``).
"""
from __future__ import annotations

import numpy as np

from .. import backend
from . import launch

__all__ = ["max_pool2d_forward", "max_pool2d_backward", "CUDA_SOURCE"]

CUDA_SOURCE = r"""
template <typename T>
__global__ void max_pool2d_forward_kernel(
    const T* __restrict__ x, T* __restrict__ y, int* __restrict__ tap, const T pad,
    const long long total, const long long H, const long long W,
    const long long KH, const long long KW, const long long SH, const long long SW,
    const long long PH, const long long PW, const long long DH, const long long DW,
    const long long OH, const long long OW)
{
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total;
         i += (long long)blockDim.x * gridDim.x) {
        // i indexes y[n, c, oh, ow] (C-order); the (n, c) plane of x starts at (i / (OH·OW))·H·W.
        const long long ow = i % OW;
        const long long oh = (i / OW) % OH;
        const T* plane = x + (i / (OH * OW)) * H * W;
        T best = pad;                    // −inf: every tap, real or padding, is >= it or NaN
        long long best_tap = 0;
        for (long long kh = 0; kh < KH; ++kh) {
            const long long h = oh * SH - PH + kh * DH;
            for (long long kw = 0; kw < KW; ++kw) {
                const long long w = ow * SW - PW + kw * DW;
                const T v = (0 <= h && h < H && 0 <= w && w < W) ? plane[h * W + w] : pad;
                if (v > best || isnan(v)) {
                    best = v;
                    best_tap = kh * KW + kw;
                }
            }
        }
        y[i] = best;
        tap[i] = (int)best_tap;
    }
}

template <typename T>
__global__ void max_pool2d_backward_kernel(
    const T* __restrict__ gy, const int* __restrict__ tap, T* __restrict__ gx,
    const long long total, const long long H, const long long W,
    const long long KH, const long long KW, const long long SH, const long long SW,
    const long long PH, const long long PW, const long long DH, const long long DW,
    const long long OH, const long long OW)
{
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total;
         i += (long long)blockDim.x * gridDim.x) {
        // i indexes gx[n, c, h, w] (C-order); the (n, c) plane of gy and tap starts at (i / (H·W))·OH·OW.
        const long long w = i % W;
        const long long h = (i / W) % H;
        const long long plane = (i / (H * W)) * OH * OW;
        T sum = T(0);
        for (long long kh = 0; kh < KH; ++kh) {
            // Tap kh reads row h from output row oh = (h + PH − kh·DH) / SH, if that is a whole number.
            const long long hs = h + PH - kh * DH;
            if (hs < 0 || hs % SH != 0 || hs / SH >= OH) continue;
            const long long oh = hs / SH;
            for (long long kw = 0; kw < KW; ++kw) {
                const long long ws = w + PW - kw * DW;
                if (ws < 0 || ws % SW != 0 || ws / SW >= OW) continue;
                const long long o = plane + oh * OW + ws / SW;
                if (tap[o] == kh * KW + kw) sum += gy[o];
            }
        }
        gx[i] = sum;
    }
}
"""

_KERNELS = ("max_pool2d_forward_kernel", "max_pool2d_backward_kernel")


def _sizes(geometry):
    """H, W, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW of a ``pool.PoolGeometry``, as int64 scalars."""
    return launch.int64s(*geometry.size, *geometry.kernel, *geometry.stride, *geometry.padding,
                         *geometry.dilation, *geometry.out)


def max_pool2d_forward(x, geometry):
    """x (N, C, H, W) CuPy float32/float64 -> (y (N, C, OH, OW), tap (N, C, OH, OW) int32), as
    ``MaxPooling2d.forward``: y = the window maximum (−inf padding, first maximum, NaN wins), tap = its
    t = kh·KW + kw. ``geometry``: the checked ``pool.PoolGeometry``."""
    cp = backend.cupy()
    _check("max_pool2d", "x", x, (*x.shape[:2], *geometry.size), tuple(launch.CTYPES))
    x = cp.ascontiguousarray(x)
    out_shape = x.shape[:2] + tuple(geometry.out)
    y = cp.empty(out_shape, dtype=x.dtype)
    tap = cp.empty(out_shape, dtype=np.int32)
    function = launch.kernel(CUDA_SOURCE, _KERNELS, "max_pool2d_forward_kernel", x.dtype)
    launch.launch(function, y.size, (x, y, tap, x.dtype.type(-np.inf), *launch.int64s(y.size),
                                     *_sizes(geometry)))
    return y, tap


def max_pool2d_backward(gy, tap, geometry):
    """gy, tap (N, C, OH, OW) -> gx (N, C, H, W): gx[n, c, h, w] = Σ gy over the windows whose maximum
    is x[n, c, h, w] (``MaxPooling2d.backward``), gathered per input pixel."""
    cp = backend.cupy()
    out_shape = (*gy.shape[:2], *geometry.out)
    _check("max_pool2d backward", "gy", gy, out_shape, tuple(launch.CTYPES))
    _check("max_pool2d backward", "tap", tap, out_shape, (np.dtype(np.int32),))
    gy, tap = cp.ascontiguousarray(gy), cp.ascontiguousarray(tap)
    gx = cp.empty(gy.shape[:2] + tuple(geometry.size), dtype=gy.dtype)
    function = launch.kernel(CUDA_SOURCE, _KERNELS, "max_pool2d_backward_kernel", gy.dtype)
    launch.launch(function, gx.size, (gy, tap, gx, *launch.int64s(gx.size), *_sizes(geometry)))
    return gx


def _check(op, name, a, shape, dtypes):
    """The kernels index ``a`` as a C-order array of this shape and one of these dtypes: anything else is an error."""
    if tuple(a.shape) != tuple(shape) or a.dtype not in dtypes:
        raise ValueError(f"{op}: expected {name} of shape {tuple(shape)} and dtype "
                         f"{' or '.join(str(d) for d in dtypes)}, got shape {tuple(a.shape)} and dtype {a.dtype}")
