"""CUDA batch norm (elementwise passes, optionally with a fused ReLU) and local response norm, for CuPy arrays.

Notation as in ``minicnn/functional/norm.py``: x (N, C, *) seen as (N, C, L) with L the product of the
trailing axes (L = 1 for (N, C)); element i of a C-order array is (n, c, l) with c = (i / L) mod C;
m = N·L values per channel; μ, σ, γ, β per channel.

Batch norm. The per-channel sums (μ, σ², Σgy, Σgy·x̂) stay CuPy reductions in ``BatchNorm``; each
elementwise chain around them is one kernel, one thread per element (grid-stride loop):
* ``batch_norm_forward_kernel``:  y = (x − μ_c)·scale_c + shift_c, scale = γ/σ, shift = β, and with
  ``relu`` = 1 also y = max(y, 0) (NaN stays NaN, as ``F.relu``'s maximum). In: x (N, C, *), μ, scale,
  shift (C,); out: y (N, C, *).
* ``batch_norm_backward_kernel``: gx = ((x − μ_c)·k1_c + gy − k2_c)·scale_c with
  k1 = −Σ(gy·x̂)/(σ·m), k2 = Σgy/m, scale = γ/σ, i.e. gx = (γ/σ)/m·(m·gy − Σgy − x̂·Σ(gy·x̂)). With a
  fused ReLU, gy is the masked gy' = gy·[y > 0] (``BatchNormReLU`` masks it once, before the sums).
  Both kernels do the operations in the order of the CPU path, one rounding each, so without
  floating-point contraction they give the CPU's bits. (nvcc and NVRTC contract a·b + c into one
  fused multiply-add by default, which moves a float32 result by about one unit in the last place.)

Local response norm, with the window W(c) = {c − before, …, c + after}, before = size//2,
after = (size−1)//2, and α' the alpha inside the sum (``LocalResponseNorm``):
* ``lrn_forward_kernel``: one thread per element (n, c, l); it loops over the window's channels:
  s = k + α'·Σ_{c' ∈ W(c)} a_{c'}²,  s_pow = s^(−β),  y = a·s_pow. In: a (N, C, *); out: y, s, s_pow
  (N, C, *), the last two cached for backward (as on the CPU).
* ``lrn_backward_kernel``: one thread per element j, looping over the mirrored window
  {j − after, …, j + before} (the channels c whose window holds j):
  gx_j = gy_j·s_pow_j − 2α'β·a_j·Σ_c gy_c·a_c·s_pow_c / s_c.
  Channels outside 0…C−1 are skipped (the CPU adds zeros there): the window sums are added in the
  same channel order as ``_window_sum``.
All index arithmetic is 64-bit; templates for ``float`` and ``double``; no atomics, no shared memory.
"""
from __future__ import annotations

import numpy as np

from .. import backend
from . import launch

__all__ = ["batch_norm_forward", "batch_norm_backward", "lrn_forward", "lrn_backward", "CUDA_SOURCE"]

CUDA_SOURCE = r"""
__device__ __forceinline__ float power(const float base, const float exponent) { return powf(base, exponent); }
__device__ __forceinline__ double power(const double base, const double exponent) { return pow(base, exponent); }

template <typename T>
__global__ void batch_norm_forward_kernel(
    const T* __restrict__ x, const T* __restrict__ mean, const T* __restrict__ scale,
    const T* __restrict__ shift, T* __restrict__ y,
    const long long total, const long long C, const long long L, const long long relu)
{
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total;
         i += (long long)blockDim.x * gridDim.x) {
        const long long c = (i / L) % C;
        const T centred = x[i] - mean[c];
        const T scaled = centred * scale[c];
        const T v = scaled + shift[c];
        y[i] = (relu && v < T(0)) ? T(0) : v;
    }
}

template <typename T>
__global__ void batch_norm_backward_kernel(
    const T* __restrict__ x, const T* __restrict__ gy, const T* __restrict__ mean,
    const T* __restrict__ k1, const T* __restrict__ k2, const T* __restrict__ scale,
    T* __restrict__ gx, const long long total, const long long C, const long long L)
{
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total;
         i += (long long)blockDim.x * gridDim.x) {
        const long long c = (i / L) % C;
        const T centred = x[i] - mean[c];
        const T term = centred * k1[c];                 // −x̂·Σ(gy·x̂)/m
        const T sum = term + gy[i];
        const T v = sum - k2[c];                        // − Σgy/m
        gx[i] = v * scale[c];                           // · γ/σ
    }
}

template <typename T>
__global__ void lrn_forward_kernel(
    const T* __restrict__ a, T* __restrict__ y, T* __restrict__ s, T* __restrict__ s_pow,
    const long long total, const long long C, const long long L,
    const long long before, const long long after, const T alpha, const T beta, const T k)
{
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total;
         i += (long long)blockDim.x * gridDim.x) {
        const long long c = (i / L) % C;
        const long long first = i - c * L;              // element (n, 0, l)
        T sum = T(0);
        for (long long cc = c - before; cc <= c + after; ++cc) {
            if (cc < 0 || cc >= C) continue;
            const T v = a[first + cc * L];
            const T square = v * v;
            sum += square;
        }
        const T product = alpha * sum;
        const T si = k + product;
        const T sp = power(si, -beta);
        s[i] = si;
        s_pow[i] = sp;
        y[i] = a[i] * sp;
    }
}

template <typename T>
__global__ void lrn_backward_kernel(
    const T* __restrict__ a, const T* __restrict__ gy, const T* __restrict__ s,
    const T* __restrict__ s_pow, T* __restrict__ gx,
    const long long total, const long long C, const long long L,
    const long long before, const long long after, const T two_alpha_beta)
{
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total;
         i += (long long)blockDim.x * gridDim.x) {
        const long long c = (i / L) % C;
        const long long first = i - c * L;
        T inner = T(0);
        for (long long cc = c - after; cc <= c + before; ++cc) {     // the mirrored window
            if (cc < 0 || cc >= C) continue;
            const long long j = first + cc * L;
            const T ga = gy[j] * a[j];
            const T gas = ga * s_pow[j];
            inner += gas / s[j];
        }
        const T direct = gy[i] * s_pow[i];
        const T coefficient = two_alpha_beta * a[i];
        const T through_window = coefficient * inner;
        gx[i] = direct - through_window;
    }
}
"""

_KERNELS = ("batch_norm_forward_kernel", "batch_norm_backward_kernel", "lrn_forward_kernel",
            "lrn_backward_kernel")


def _channels(op, x):
    """(C, L) of x (N, C, *), after checking that the kernels can take it."""
    if x.ndim < 2 or x.dtype not in launch.CTYPES:
        raise ValueError(f"{op}: expected a float32 or float64 array of shape (N, C, *), got shape "
                         f"{tuple(x.shape)} and dtype {x.dtype}")
    return x.shape[1], int(np.prod(x.shape[2:], dtype=np.int64))


def _vectors(op, dtype, channels, **vectors):
    """Per-channel vectors as contiguous (C,) arrays of ``dtype``, or a ValueError naming the one that is not (C,)."""
    cp = backend.cupy()
    out = []
    for name, v in vectors.items():
        if v.size != channels:
            raise ValueError(f"{op}: expected {name} with {channels} values (one per channel), got shape "
                             f"{tuple(v.shape)}")
        out.append(cp.ascontiguousarray(v.reshape(channels), dtype=dtype))
    return out


def _same_shape(op, x, **arrays):
    for name, a in arrays.items():
        if tuple(a.shape) != tuple(x.shape) or a.dtype != x.dtype:
            raise ValueError(f"{op}: expected {name} of shape {tuple(x.shape)} and dtype {x.dtype}, got shape "
                             f"{tuple(a.shape)} and dtype {a.dtype}")


def batch_norm_forward(x, mean, scale, shift, relu=False, out=None):
    """y = (x − mean)·scale + shift per channel (then max(·, 0) if ``relu``); x (N, C, *), the rest (C,).
    ``out``: an optional C-contiguous array of x's shape and dtype to write y into."""
    cp = backend.cupy()
    C, L = _channels("batch_norm", x)
    x = cp.ascontiguousarray(x)
    mean, scale, shift = _vectors("batch_norm", x.dtype, C, mean=mean, scale=scale, shift=shift)
    y = cp.empty(x.shape, dtype=x.dtype) if out is None else _checked_out("batch_norm", out, x)
    function = launch.kernel(CUDA_SOURCE, _KERNELS, "batch_norm_forward_kernel", x.dtype)
    launch.launch(function, x.size, (x, mean, scale, shift, y, *launch.int64s(x.size, C, L, bool(relu))))
    return y


def batch_norm_backward(x, gy, mean, k1, k2, scale, out=None):
    """gx = ((x − mean)·k1 + gy − k2)·scale per channel: batch norm's input gradient with batch
    statistics when k1 = −Σ(gy·x̂)/(σ·m), k2 = Σgy/m, scale = γ/σ. x, gy (N, C, *); the rest (C,)."""
    cp = backend.cupy()
    C, L = _channels("batch_norm backward", x)
    _same_shape("batch_norm backward", x, gy=gy)
    x, gy = cp.ascontiguousarray(x), cp.ascontiguousarray(gy)
    mean, k1, k2, scale = _vectors("batch_norm backward", x.dtype, C, mean=mean, k1=k1, k2=k2, scale=scale)
    gx = cp.empty(x.shape, dtype=x.dtype) if out is None else _checked_out("batch_norm backward", out, x)
    function = launch.kernel(CUDA_SOURCE, _KERNELS, "batch_norm_backward_kernel", x.dtype)
    launch.launch(function, x.size, (x, gy, mean, k1, k2, scale, gx, *launch.int64s(x.size, C, L)))
    return gx


def lrn_forward(a, size, alpha_in_sum, beta, k):
    """a (N, C, *) -> (y, s, s_pow), each a's shape: s = k + α'·Σ_window a², s_pow = s^(−β), y = a·s_pow."""
    cp = backend.cupy()
    C, L = _channels("local_response_norm", a)
    a = cp.ascontiguousarray(a)
    y, s, s_pow = (cp.empty(a.shape, dtype=a.dtype) for _ in range(3))
    T = a.dtype.type
    function = launch.kernel(CUDA_SOURCE, _KERNELS, "lrn_forward_kernel", a.dtype)
    launch.launch(function, a.size, (a, y, s, s_pow, *launch.int64s(a.size, C, L, size // 2, (size - 1) // 2),
                                     T(alpha_in_sum), T(beta), T(k)))
    return y, s, s_pow


def lrn_backward(a, gy, s, s_pow, size, alpha_in_sum, beta):
    """gx (a's shape) = gy·s_pow − 2α'β·a·Σ_mirrored window(gy·a·s_pow / s), from forward's a, s, s_pow."""
    cp = backend.cupy()
    C, L = _channels("local_response_norm backward", a)
    _same_shape("local_response_norm backward", a, gy=gy, s=s, s_pow=s_pow)
    a, gy, s, s_pow = (cp.ascontiguousarray(v) for v in (a, gy, s, s_pow))
    gx = cp.empty(a.shape, dtype=a.dtype)
    function = launch.kernel(CUDA_SOURCE, _KERNELS, "lrn_backward_kernel", a.dtype)
    launch.launch(function, a.size, (a, gy, s, s_pow, gx, *launch.int64s(a.size, C, L, size // 2, (size - 1) // 2),
                                     a.dtype.type(2 * alpha_in_sum * beta)))
    return gx


def _checked_out(op, out, x):
    # The kernels write element i at flat offset i: the buffer must be C-contiguous, of x's shape and dtype.
    if not out.flags.c_contiguous or out.dtype != x.dtype or tuple(out.shape) != tuple(x.shape):
        raise ValueError(f"{op}: out must be a C-contiguous {x.dtype} array of shape {tuple(x.shape)}, got "
                         f"dtype {out.dtype}, shape {tuple(out.shape)} (C-contiguous: {out.flags.c_contiguous})")
    return out
