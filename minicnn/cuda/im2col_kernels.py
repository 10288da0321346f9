"""CUDA im2col and col2im for CuPy arrays, in minicnn's column layout (C, KH, KW, N, OH, OW).

Notation as in ``minicnn/functional/im2col.py`` (N batch, C channels, H W input, KH KW kernel,
SH SW stride, PH PW padding, DH DW dilation, OH OW output).

* ``im2col``: one thread per column entry; it reads the input pixel its tap sees, or 0 in the padding.
* ``col2im``: a GATHER, one thread per input pixel; it loops over the KH·KW taps, finds the output
  position (if any) that read this pixel through that tap, and sums those column entries. No thread
  writes another's pixel, so there are no atomics and the result is deterministic. The taps are
  summed in the same order (kh, then kw) as the slicing version ``col2im_by_slices``, so both give
  bit-identical results.
* All index arithmetic is 64-bit (``long long``): with 32-bit ints a column buffer past 2³¹
  elements (8 GiB of float32, e.g. VGG conv1_2 at batch 128) would silently wrap around.
* Each kernel is a template instantiated for ``float`` and ``double``; a grid-stride loop lets any
  size run with a bounded grid (launch code shared with the other kernels: ``launch.py``).
"""
from __future__ import annotations

from .. import backend
from . import launch

__all__ = ["im2col_gpu", "col2im_gpu", "CUDA_SOURCE"]

CUDA_SOURCE = r"""
template <typename T>
__global__ void im2col_kernel(
    const T* __restrict__ x, T* __restrict__ col, const long long total,
    const long long N, const long long C, const long long H, const long long W,
    const long long KH, const long long KW, const long long SH, const long long SW,
    const long long PH, const long long PW, const long long DH, const long long DW,
    const long long OH, const long long OW)
{
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total;
         i += (long long)blockDim.x * gridDim.x) {
        // i indexes col[c, kh, kw, n, oh, ow] (C-order).
        const long long ow = i % OW;
        long long rest = i / OW;
        const long long oh = rest % OH;  rest /= OH;
        const long long n  = rest % N;   rest /= N;
        const long long kw = rest % KW;  rest /= KW;
        const long long kh = rest % KH;
        const long long c  = rest / KH;
        const long long h = oh * SH - PH + kh * DH;      // the input pixel this tap reads
        const long long w = ow * SW - PW + kw * DW;
        const bool inside = 0 <= h && h < H && 0 <= w && w < W;
        col[i] = inside ? x[((n * C + c) * H + h) * W + w] : T(0);
    }
}

template <typename T>
__global__ void col2im_kernel(
    const T* __restrict__ col, T* __restrict__ x, const long long total,
    const long long N, const long long C, const long long H, const long long W,
    const long long KH, const long long KW, const long long SH, const long long SW,
    const long long PH, const long long PW, const long long DH, const long long DW,
    const long long OH, const long long OW)
{
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total;
         i += (long long)blockDim.x * gridDim.x) {
        // i indexes x[n, c, h, w] (C-order).
        const long long w = i % W;
        long long rest = i / W;
        const long long h = rest % H;  rest /= H;
        const long long c = rest % C;
        const long long n = rest / C;
        T sum = T(0);
        for (long long kh = 0; kh < KH; ++kh) {
            // Tap kh reads row h from output row oh = (h + PH - kh*DH) / SH, if that is a whole number.
            const long long hs = h + PH - kh * DH;
            if (hs < 0 || hs % SH != 0 || hs / SH >= OH) continue;
            const long long oh = hs / SH;
            for (long long kw = 0; kw < KW; ++kw) {
                const long long ws = w + PW - kw * DW;
                if (ws < 0 || ws % SW != 0 || ws / SW >= OW) continue;
                const long long ow = ws / SW;
                sum += col[((((c * KH + kh) * KW + kw) * N + n) * OH + oh) * OW + ow];
            }
        }
        x[i] = sum;
    }
}
"""

_KERNELS = ("im2col_kernel", "col2im_kernel")


def _launch(kernel, source, target, sizes):
    """Run ``kernel<T>(source, target, total, *sizes)`` with one thread per element of ``target``."""
    function = launch.kernel(CUDA_SOURCE, _KERNELS, kernel, source.dtype)
    launch.launch(function, target.size, (source, target, *launch.int64s(target.size, *sizes)))


def im2col_gpu(x, kernel_size, stride, padding, dilation, out_size, out=None):
    """im2col of a CuPy array x (N, C, H, W) → col (C, KH, KW, N, OH, OW); arguments are checked pairs.
    ``out``: an optional C-contiguous col-shaped CuPy array to fill instead of a new one."""
    cp = backend.cupy()
    x = cp.ascontiguousarray(x)
    N, C, H, W = x.shape
    (KH, KW), (OH, OW) = kernel_size, out_size
    col = cp.empty((C, KH, KW, N, OH, OW), dtype=x.dtype) if out is None else _checked_out(out, x.dtype)
    _launch("im2col_kernel", x, col, (N, C, H, W, KH, KW, *stride, *padding, *dilation, OH, OW))
    return col


def col2im_gpu(col, x_shape, kernel_size, stride, padding, dilation, out_size, out=None):
    """col2im of a CuPy array col (C, KH, KW, N, OH, OW) → gx (N, C, H, W); arguments are checked pairs.
    ``out``: an optional C-contiguous (N, C, H, W) CuPy array to write instead of a new one."""
    cp = backend.cupy()
    col = cp.ascontiguousarray(col)
    N, C, H, W = x_shape
    (KH, KW), (OH, OW) = kernel_size, out_size
    gx = cp.empty((N, C, H, W), dtype=col.dtype) if out is None else _checked_out(out, col.dtype)
    _launch("col2im_kernel", col, gx, (N, C, H, W, KH, KW, *stride, *padding, *dilation, OH, OW))
    return gx


def _checked_out(out, dtype):
    # The kernels write element i at flat offset i: the buffer must be C-contiguous and of this dtype.
    if not out.flags.c_contiguous or out.dtype != dtype:
        raise ValueError(f"im2col/col2im: out must be a C-contiguous {dtype} array, got dtype {out.dtype} "
                         f"(C-contiguous: {out.flags.c_contiguous})")
    return out
