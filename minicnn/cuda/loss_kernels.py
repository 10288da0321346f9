"""CUDA softmax cross-entropy, forward and backward, for CuPy arrays (the GPU path of ``F.cross_entropy``).

Notation as in ``minicnn/functional/loss.py``: x logits (N, K); the target is either class indices t
(N,) — q_k = a·[k = t] + b — or probabilities t (N, K) — q_k = a·t_k + b — where (a, b) is the label
smoothing (a = 1, b = 0 without); g (N,) the upstream gradient of each row's loss (gy, gy/N for "mean").

* ``cross_entropy_forward_kernel``: one thread per row i, three passes over its K logits:
  the row maximum M (NaN if any logit is NaN, as NumPy's max), lse = log Σ_k exp(x_k − M), then
  loss_i = −Σ_k q_k·log p_k with log p_k = (x_k − M) − lse: stable for logits in the thousands.
  In: x (N, K), t; out: loss (N,), and M, lse (N,) kept for backward (no (N, K) array is cached).
* ``cross_entropy_backward_kernel``: one thread per row: Σq = Σ_k q_k, then for every k
  gx_k = (p_k·Σq − q_k)·g_i  (= p − q when q sums to 1), p_k = exp(log p_k) from M and lse, and for a
  soft target that needs a gradient, g(t)_k = −a·log p_k·g_i. Out: gx and/or g(t) (N, K).
The element operations are those of ``CrossEntropy``, in its order; the sums over k run serially,
where NumPy sums pairwise, so results agree to rounding (float64: ~1e-15 relative), not bit for bit.
A row is one thread's work: no atomics, no shared memory, deterministic. 64-bit indices; templates
for ``float`` and ``double``. The flags ``soft`` (0: class indices, 1: probabilities), ``want_gx``,
``want_gt`` choose the target and the outputs; an unused array argument gets a 1-element dummy
(CuPy passes arrays, never null pointers).
"""
from __future__ import annotations

import numpy as np

from .. import backend
from . import launch

__all__ = ["cross_entropy_forward", "cross_entropy_backward", "CUDA_SOURCE"]

CUDA_SOURCE = r"""
__device__ __forceinline__ float exp_of(const float v) { return expf(v); }
__device__ __forceinline__ double exp_of(const double v) { return exp(v); }
__device__ __forceinline__ float log_of(const float v) { return logf(v); }
__device__ __forceinline__ double log_of(const double v) { return log(v); }

// q_k, the (smoothed) target probability of class k in row i.
template <typename T>
__device__ __forceinline__ T target_of(
    const long long* __restrict__ index, const T* __restrict__ soft, const long long is_soft,
    const long long i, const long long K, const long long k, const T a, const T b)
{
    const T t = is_soft ? soft[i * K + k] : (index[i] == k ? T(1) : T(0));
    const T scaled = a * t;
    return scaled + b;
}

template <typename T>
__global__ void cross_entropy_forward_kernel(
    const T* __restrict__ x, const long long* __restrict__ index, const T* __restrict__ soft,
    T* __restrict__ loss, T* __restrict__ row_max, T* __restrict__ row_lse,
    const long long N, const long long K, const long long is_soft, const T a, const T b)
{
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < N;
         i += (long long)blockDim.x * gridDim.x) {
        const T* xi = x + i * K;
        T M = xi[0];
        for (long long k = 1; k < K; ++k)
            if (xi[k] > M || isnan(xi[k])) M = xi[k];
        T sum = T(0);
        for (long long k = 0; k < K; ++k) sum += exp_of(xi[k] - M);
        const T lse = log_of(sum);
        T total = T(0);
        for (long long k = 0; k < K; ++k) {
            const T log_p = (xi[k] - M) - lse;
            total += target_of(index, soft, is_soft, i, K, k, a, b) * log_p;
        }
        loss[i] = -total;
        row_max[i] = M;
        row_lse[i] = lse;
    }
}

template <typename T>
__global__ void cross_entropy_backward_kernel(
    const T* __restrict__ x, const long long* __restrict__ index, const T* __restrict__ soft,
    const T* __restrict__ row_max, const T* __restrict__ row_lse, const T* __restrict__ g,
    T* __restrict__ gx, T* __restrict__ gt, const long long N, const long long K,
    const long long is_soft, const long long want_gx, const long long want_gt, const T a, const T b)
{
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < N;
         i += (long long)blockDim.x * gridDim.x) {
        T q_sum = T(0);
        for (long long k = 0; k < K; ++k) q_sum += target_of(index, soft, is_soft, i, K, k, a, b);
        for (long long k = 0; k < K; ++k) {
            const T log_p = (x[i * K + k] - row_max[i]) - row_lse[i];
            if (want_gx) {
                const T p_q = exp_of(log_p) * q_sum;
                gx[i * K + k] = (p_q - target_of(index, soft, is_soft, i, K, k, a, b)) * g[i];
            }
            if (want_gt) gt[i * K + k] = (-a * log_p) * g[i];
        }
    }
}
"""

_KERNELS = ("cross_entropy_forward_kernel", "cross_entropy_backward_kernel")


def _target(op, x, target):
    """(is_soft, index array (int64), soft array (x's dtype)), the unused one a 1-element dummy."""
    cp = backend.cupy()
    n, k = x.shape
    if target.ndim == 1 and target.shape[0] == n and target.dtype.kind in "iu":
        return 0, cp.ascontiguousarray(target, dtype=np.int64), cp.empty(1, dtype=x.dtype)
    if tuple(target.shape) == (n, k) and target.dtype == x.dtype:
        return 1, cp.empty(1, dtype=np.int64), cp.ascontiguousarray(target)
    raise ValueError(f"{op}: expected class indices of shape ({n},) (integers) or probabilities of shape "
                     f"({n}, {k}) and dtype {x.dtype}, got shape {tuple(target.shape)} and dtype {target.dtype}")


def _logits(op, x):
    if x.ndim != 2 or x.shape[1] < 1 or x.dtype not in launch.CTYPES:
        raise ValueError(f"{op}: expected float32 or float64 logits of shape (N, K) with K >= 1, got shape "
                         f"{tuple(x.shape)} and dtype {x.dtype}")
    return backend.cupy().ascontiguousarray(x)


def cross_entropy_forward(x, target, a, b):
    """x (N, K); target (N,) class indices or (N, K) probabilities of x's dtype; smoothing q = a·t + b.
    Returns (loss (N,), row_max (N,), row_lse (N,)): each row's −Σ q·log softmax(x), and what backward needs."""
    cp = backend.cupy()
    x = _logits("cross_entropy", x)
    is_soft, index, soft = _target("cross_entropy", x, target)
    n, k = x.shape
    loss, row_max, row_lse = (cp.empty(n, dtype=x.dtype) for _ in range(3))
    T = x.dtype.type
    function = launch.kernel(CUDA_SOURCE, _KERNELS, "cross_entropy_forward_kernel", x.dtype)
    launch.launch(function, n, (x, index, soft, loss, row_max, row_lse, *launch.int64s(n, k, is_soft),
                                T(a), T(b)))
    return loss, row_max, row_lse


def cross_entropy_backward(x, target, row_max, row_lse, g, a, b, want_gx=True, want_gt=False):
    """(gx, g_target), each (N, K) or None (per ``want_gx`` / ``want_gt``): gx = (p·Σq − q)·g,
    g_target = −a·log p·g, with p = softmax(x) rebuilt from forward's row_max and row_lse; g (N,)."""
    cp = backend.cupy()
    x = _logits("cross_entropy backward", x)
    is_soft, index, soft = _target("cross_entropy backward", x, target)
    n, k = x.shape
    for name, v in (("row_max", row_max), ("row_lse", row_lse), ("g", g)):
        if tuple(v.shape) != (n,) or v.dtype != x.dtype:
            raise ValueError(f"cross_entropy backward: expected {name} of shape ({n},) and dtype {x.dtype}, "
                             f"got shape {tuple(v.shape)} and dtype {v.dtype}")
    if want_gt and not is_soft:
        raise ValueError("cross_entropy backward: class-index targets have no gradient (want_gt=True "
                         "needs probabilities)")
    gx = cp.empty((n, k), dtype=x.dtype) if want_gx else cp.empty(1, dtype=x.dtype)
    gt = cp.empty((n, k), dtype=x.dtype) if want_gt else cp.empty(1, dtype=x.dtype)
    T = x.dtype.type
    function = launch.kernel(CUDA_SOURCE, _KERNELS, "cross_entropy_backward_kernel", x.dtype)
    launch.launch(function, n if (want_gx or want_gt) else 0,
                  (x, index, soft, cp.ascontiguousarray(row_max), cp.ascontiguousarray(row_lse),
                   cp.ascontiguousarray(g), gx, gt, *launch.int64s(n, k, is_soft, want_gx, want_gt), T(a), T(b)))
    return (gx if want_gx else None), (gt if want_gt else None)
