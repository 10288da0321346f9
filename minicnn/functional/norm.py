"""Normalisation layers: batch normalisation and local response normalisation (LRN).

Notation (used in every shape below):
    N        batch size
    C        channels (features, for a 2-D input)
    H, W     height and width; ``*`` stands for any number of trailing spatial axes
    m        values per channel that batch norm averages over: m = N·H·W (m = N for (N, C))
    x̂        the normalised input, γ (weight) and β (bias) the per-channel scale and shift
    gy, gx   upstream gradient and input gradient; gγ, gβ the parameter gradients

Batch normalisation (Ioffe & Szegedy 2015), per channel c:

    μ = mean(x),  σ² = mean((x − μ)²)  (biased),  x̂ = (x − μ) / √(σ² + eps),  y = γ·x̂ + β

``batch_norm_relu`` is relu(batch_norm(x)) as one Function, y = max(γ·x̂ + β, 0): the ReLU of a
BN → ReLU pair without its own pass over memory (one CUDA kernel on a GPU).

Local response normalisation (Krizhevsky et al. 2012, §3.3), across channels at every pixel:

    b_c = a_c / (k + α' Σ_{c' ∈ window(c)} a_{c'}²)^β

Both keep the input dtype: float32 stays float32.
"""
from __future__ import annotations

import numbers

import numpy as np

from .. import backend, cpu, parallel
from ..autograd import Function, Tensor
from ..cuda.launch import kernels_apply

__all__ = ["batch_norm", "batch_norm_relu", "local_response_norm", "BatchNorm", "BatchNormReLU",
           "LocalResponseNorm"]


def _raw(a):
    return a.data if isinstance(a, Tensor) else a


def _channel_shape(x):
    """(1, C, 1, 1 …): a per-channel vector reshaped to broadcast against x."""
    return (1, x.shape[1]) + (1,) * (x.ndim - 2)


# ---------------------------------------------------------------- batch norm -------------------

class BatchNorm(Function):
    """Batch normalisation over (N, C, *) with per-channel statistics.

    forward(x, gamma, beta)   x (N, C, *), gamma and beta (C,)  ->  y (N, C, *)

    Batch statistics (``use_batch_stats``, i.e. training or no running statistics):
        x̂ = (x − μ_B) / σ,  σ = √(σ²_B + eps), and the running statistics (if given) are updated
        in place: running = (1 − momentum)·running + momentum·stat, with the UNBIASED variance
        σ²_B · m / (m − 1) going into running_var.
        gx = (γ/σ)/m · (m·gy − Σgy − x̂·Σ(gy·x̂))        (μ_B and σ_B depend on x)
    Running statistics (evaluation):
        x̂ = (x − running_mean) / √(running_var + eps);   gx = gy·γ/√(running_var + eps)
    Both:  gγ = Σ gy·x̂,  gβ = Σ gy   (sums over N and the spatial axes).

    Memory: forward saves x (held by the graph anyway, as this function's input), μ and 1/σ, not x̂;
    backward recomputes x̂ in gx's buffer. Each pass writes into y or gx in place, so forward and
    backward each allocate one array of x's size.
    Threads: the channels are independent, so on the CPU each thread (``minicnn.set_num_threads``)
    normalises its own range of channels (tensors of at least ``min_share`` elements per thread).
    Compiled kernels: on the CPU, with numba (``minicnn.cpu``) and x of 3 or more axes, each thread's
    channels go through ``minicnn.cpu.norm_kernels`` instead of the NumPy passes below: the same
    formulas, x read once from memory per pass over a channel that then stays in the cache.
    """

    min_share = 2 ** 18   # elements per thread: smaller tensors are normalised on one thread
    relu = False          # BatchNormReLU: y = max(γ·x̂ + β, 0)

    def __init__(self, running_mean, running_var, use_batch_stats, momentum, eps):
        self.running_mean, self.running_var = running_mean, running_var
        self.use_batch_stats, self.momentum, self.eps = use_batch_stats, momentum, eps

    def forward(self, x, gamma, beta):
        xp = backend.get_array_module(x)
        m, L = x.size // x.shape[1], x.size // (x.shape[0] * x.shape[1])     # L values per channel per image
        y = xp.empty(x.shape, dtype=x.dtype)
        self.kernels = kernels_apply(x)           # GPU: the elementwise pass is one CUDA kernel

        def normalise(c):                          # one thread's channels c: y[:, c] from x[:, c]
            xc, yc = _by_image(x[:, c]), _by_image(y[:, c])
            if self.use_batch_stats:
                mean = (_channel_sum(xc, L) / m).astype(x.dtype)
                xp.subtract(xc, _plane(mean, L), out=yc)                        # y = x − μ
                var = _channel_sum(yc, L, yc) / m
            else:
                mean, var = self.running_mean[c].astype(x.dtype), self.running_var[c]
                if not self.kernels:
                    xp.subtract(xc, _plane(mean, L), out=yc)
            inv_std = (1 / xp.sqrt(var + self.eps)).astype(x.dtype, copy=False)
            scale = (gamma[c] * inv_std).astype(x.dtype, copy=False)
            shift = beta[c].astype(x.dtype, copy=False)
            if self.kernels:                       # one share, every channel: y = (x − μ)·γ/σ + β [ReLU]
                from ..cuda import norm_kernels
                norm_kernels.batch_norm_forward(x, mean, scale, shift, self.relu, out=y)
                return mean, var, inv_std
            xp.multiply(yc, _plane(scale, L), out=yc)
            xp.add(yc, _plane(shift, L), out=yc)                                # y = γ·x̂ + β
            if self.relu:
                xp.maximum(yc, 0, out=yc)
            return mean, var, inv_std

        self.shares = parallel.split(x.shape[1], m, self.min_share, backend.device_of(x))
        self.by_kernels = cpu.kernels_apply(x, gamma, beta) and x.ndim > 2
        if self.by_kernels:                        # CPU, numba: one compiled pass per share (minicnn.cpu)
            mean, var, self.inv_std = self._forward_by_kernels(x, gamma, beta, y)
        else:
            mean, var, self.inv_std = (xp.concatenate(part) for part in zip(*parallel.run(normalise, self.shares)))
        if self.use_batch_stats and self.running_mean is not None:
            self.running_mean[...] = (1 - self.momentum) * self.running_mean + self.momentum * mean
            self.running_var[...] = (1 - self.momentum) * self.running_var + self.momentum * var * (m / (m - 1))
        self.x, self.mean, self.gamma = x, mean, gamma
        if self.relu:
            self.y = y                             # backward's mask y > 0 (the output, no copy)
        return y

    def _forward_by_kernels(self, x, gamma, beta, y):
        """y (forward's output array) from x by the compiled kernels; returns μ, σ², 1/σ."""
        from ..cpu.norm_kernels import batch_norm_forward       # imports numba (minicnn.cpu)
        N, C = x.shape[:2]
        x3 = np.ascontiguousarray(x).reshape(N, C, -1)
        if self.use_batch_stats:
            mean, var = np.empty(C, x.dtype), np.empty(C, x.dtype)
        else:
            mean, var = self.running_mean.astype(x.dtype), self.running_var.astype(x.dtype)
        inv_std = np.empty(C, x.dtype)
        parallel.run(lambda c: batch_norm_forward(
            x3, gamma, beta, mean, var, inv_std, y.reshape(x3.shape), c.start, c.stop, self.eps,
            self.use_batch_stats, self.relu), self.shares)
        return mean, var, inv_std

    def _backward_by_kernels(self, gy):
        from ..cpu.norm_kernels import batch_norm_backward
        N, C = gy.shape[:2]
        x3, gy3 = np.ascontiguousarray(self.x).reshape(N, C, -1), np.ascontiguousarray(gy).reshape(N, C, -1)
        y3 = self.y.reshape(x3.shape) if self.relu else x3                     # not read without the ReLU
        gx, g_gamma, g_beta = np.empty(gy.shape, dtype=gy.dtype), np.empty(C, gy.dtype), np.empty(C, gy.dtype)
        parallel.run(lambda c: batch_norm_backward(
            x3, gy3, y3, self.mean, self.inv_std, self.gamma, gx.reshape(x3.shape), g_gamma, g_beta, c.start,
            c.stop, self.use_batch_stats, self.relu, self.needs_input_grad[0]), self.shares)
        return gx, g_gamma, g_beta

    def backward(self, gy):
        xp = backend.get_array_module(gy)
        if self.by_kernels and cpu.kernels_apply(gy, self.x):
            gx, g_gamma, g_beta = self._backward_by_kernels(gy)
            return (gx if self.needs_input_grad[0] else None, g_gamma if self.needs_input_grad[1] else None,
                    g_beta if self.needs_input_grad[2] else None)
        m, L, needs_x = gy.size // gy.shape[1], gy.size // (gy.shape[0] * gy.shape[1]), self.needs_input_grad[0]
        gx = xp.empty(gy.shape, dtype=gy.dtype)    # holds x − μ, then gx
        kernels = self.kernels and kernels_apply(gy) and gy.dtype == self.x.dtype

        def gradients(c):                          # one thread's channels: gx[:, c], gγ[c], gβ[c]
            gyc, gxc, inv_std = _by_image(gy[:, c]), _by_image(gx[:, c]), self.inv_std[c]
            if self.relu:                          # through the ReLU: gy' = gy·[y > 0], used by every sum below
                gyc = gyc * (_by_image(self.y[:, c]) > 0)      # (xp.where is ~10× slower on random signs)
            xp.subtract(_by_image(self.x[:, c]), _plane(self.mean[c], L), out=gxc)   # gx = x − μ = x̂·σ
            g_beta = _channel_sum(gyc, L)
            g_gamma = _channel_sum(gyc, L, gxc) * inv_std                       # Σ gy·x̂
            scale = (self.gamma[c] * inv_std).astype(gy.dtype, copy=False)      # γ/σ
            if needs_x and self.use_batch_stats:   # gx = (γ/σ)·(gy − Σgy/m − (x − μ)·(Σgy·x̂)/(σ·m))
                k1 = (-g_gamma * inv_std / m).astype(gy.dtype)
                k2 = (g_beta / m).astype(gy.dtype)
                if kernels:                        # one share, every channel: the chain in one kernel
                    from ..cuda import norm_kernels
                    norm_kernels.batch_norm_backward(self.x, gyc.reshape(gy.shape), self.mean, k1, k2, scale, out=gx)
                    return g_gamma, g_beta
                xp.multiply(gxc, _plane(k1, L), out=gxc)
                xp.add(gxc, gyc, out=gxc)
                xp.subtract(gxc, _plane(k2, L), out=gxc)
                xp.multiply(gxc, _plane(scale, L), out=gxc)
            elif needs_x:
                xp.multiply(gyc, _plane(scale, L), out=gxc)
            return g_gamma, g_beta

        g_gamma, g_beta = (xp.concatenate(part) for part in zip(*parallel.run(gradients, self.shares)))
        g_gamma = g_gamma.astype(self.gamma.dtype, copy=False) if self.needs_input_grad[1] else None
        g_beta = g_beta.astype(self.gamma.dtype, copy=False) if self.needs_input_grad[2] else None
        return gx if needs_x else None, g_gamma, g_beta


class BatchNormReLU(BatchNorm):
    """relu(batch_norm(x)) as one Function: y = max(γ·x̂ + β, 0), x̂ as in ``BatchNorm``.

    forward     BatchNorm's pass with the ReLU applied in the same place: in place on each thread's
                channels on the CPU, inside the normalising kernel on the GPU. No extra array is made.
    backward    gy' = gy·[y > 0] (where y > 0 exactly where γ·x̂ + β > 0), then BatchNorm's backward
                with gy': gx = (γ/σ)/m·(m·gy' − Σgy' − x̂·Σ(gy'·x̂)), gγ = Σ gy'·x̂, gβ = Σ gy'.
    Cached: BatchNorm's (x, μ, 1/σ) and y, the output itself.
    """

    relu = True


def _by_image(a):
    """A share of the channels, (N, c, *), as (N, c·L): each image's values of these channels are one
    contiguous run (a view), so the passes below run along whole runs instead of one channel at a time."""
    return a.reshape(a.shape[0], -1)


def _plane(v, L):
    """Per-channel values (c,) repeated over each channel's L values, (c·L,): what broadcasts against
    ``_by_image`` rows. NumPy's inner loops then run over c·L values with both operands contiguous,
    ~2× faster for 7×7 to 28×28 maps than broadcasting (1, c, 1, 1), whose inner loop is one channel."""
    return backend.get_array_module(v).repeat(v, L)


def _channel_sum(a, L, b=None):
    """Σ a, or Σ a·b, per channel of a (N, c·L) share: shape (c,), without a temporary array.
    The plain sum is a matrix-vector product with ones per image (BLAS: long runs, blocked sums);
    float16 is accumulated in float32 (and the sum returned as float32)."""
    xp = backend.get_array_module(a)
    dtype = np.promote_types(a.dtype, np.float32)
    a = a.reshape(a.shape[0], -1, L)
    if b is None:
        if a.dtype == dtype:
            return xp.matmul(a, xp.ones(L, dtype=dtype)).sum(axis=0)
        return a.sum(axis=(0, 2), dtype=dtype)
    return xp.einsum("ncl,ncl->c", a, b.reshape(a.shape), dtype=dtype)


def _check_vector(op, name, value, channels, x_shape):
    if value is not None and tuple(value.shape) != (channels,):
        raise ValueError(f"{op}: {name} must have shape ({channels},) to match the {channels} "
                         f"channels of the input of shape {tuple(x_shape)}, got shape {tuple(value.shape)}")


def batch_norm(x, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1,
               eps=1e-5):
    """Batch normalisation with PyTorch's semantics (``torch.nn.functional.batch_norm``).

    Inputs:
        x             (N, C) or (N, C, H, W) — any (N, C, *) works; statistics are per channel C
        running_mean  (C,) array or None; updated IN PLACE when batch statistics are used
        running_var   (C,) array or None; updated in place with the unbiased batch variance
        weight, bias  γ and β, (C,) each, or None (then γ = 1, β = 0)
        training      True: normalise with the batch mean and biased batch variance and update the
                      running statistics; False: normalise with the running statistics.
                      Without running statistics (both None) batch statistics are always used.
        momentum      running = (1 − momentum)·running + momentum·batch_stat. PyTorch's momentum 0.1
                      is TensorFlow's / Keras' ``decay`` (or "momentum") 0.9: decay = 1 − momentum.
        eps           added to the variance: 1e-5 is PyTorch's default; Inception-v3 uses 1e-3.
    Returns:
        y, the same shape and dtype as x.

    Gradients (see ``BatchNorm``): with batch statistics
    gx = (γ/σ)/m · (m·gy − Σgy − x̂·Σ(gy·x̂)), otherwise gx = gy·γ/√(running_var + eps);
    gγ = Σ gy·x̂, gβ = Σ gy.
    """
    return _batch_norm("batch_norm", BatchNorm, x, running_mean, running_var, weight, bias, training,
                       momentum, eps)


def batch_norm_relu(x, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1,
                    eps=1e-5):
    """relu(batch_norm(x, …)) fused into one Function (``BatchNormReLU``): the same arguments, running
    statistics and checks as ``batch_norm``; returns y = max(γ·x̂ + β, 0), x's shape and dtype.

    Against ``F.relu(F.batch_norm(x, …))`` it saves the ReLU's own pass and the extra output array;
    on a GPU the normalisation and the ReLU are one CUDA kernel. Gradients: those of batch_norm with
    gy' = gy·[y > 0] in place of gy.
    """
    return _batch_norm("batch_norm_relu", BatchNormReLU, x, running_mean, running_var, weight, bias,
                       training, momentum, eps)


def _batch_norm(op, function, x, running_mean, running_var, weight, bias, training, momentum, eps):
    """Check batch_norm's arguments (errors name ``op``) and apply ``function`` (BatchNorm or BatchNormReLU)."""
    x = x if isinstance(x, Tensor) else Tensor(x)
    if x.ndim < 2:
        raise ValueError(f"{op}: expected an input of shape (N, C) or (N, C, H, W), "
                         f"got shape {x.shape}")
    if x.dtype.kind != "f":
        raise ValueError(f"{op}: expected a floating-point input, got dtype {x.dtype}")
    if (running_mean is None) != (running_var is None):
        raise ValueError(f"{op}: running_mean and running_var must both be arrays or both be None, "
                         f"got {type(running_mean).__name__} and {type(running_var).__name__}")
    running_mean, running_var = _raw(running_mean), _raw(running_var)
    if running_mean is not None and not (hasattr(running_mean, "shape") and hasattr(running_var, "shape")):
        raise ValueError(f"{op}: running_mean and running_var must be arrays (they are updated in "
                         f"place), got {type(running_mean).__name__} and {type(running_var).__name__}")
    channels = x.shape[1]
    for name, value in (("running_mean", running_mean), ("running_var", running_var),
                        ("weight", weight), ("bias", bias)):
        _check_vector(op, name, value, channels, x.shape)
    if not isinstance(momentum, numbers.Real):
        raise ValueError(f"{op}: momentum must be a number, got {momentum!r} "
                         f"(nn.BatchNorm handles momentum=None, the cumulative average)")
    backend.check_same_backend(op, x, running_mean, running_var, weight, bias)
    use_batch_stats = training or running_mean is None
    if use_batch_stats and x.size // channels <= 1:
        raise ValueError(f"{op}: expected more than 1 value per channel when training, "
                         f"got input shape {x.shape}")
    xp = backend.get_array_module(x)
    weight = Tensor(xp.ones(channels, x.dtype)) if weight is None else weight
    bias = Tensor(xp.zeros(channels, x.dtype)) if bias is None else bias
    # float(): a NumPy float64 scalar would promote float32 arrays to float64 (NEP 50); Python floats don't.
    return function(running_mean, running_var, use_batch_stats, float(momentum), float(eps))(x, weight, bias)


# ---------------------------------------------------------------- local response norm ----------

def _window_sum(v, before, after):
    """out[:, c] = Σ_{c' = c − before}^{c + after} v[:, c'], channels outside 0..C−1 counting as 0.

    A loop over the before + after + 1 channel offsets (never over pixels): each step adds one
    shifted view of the zero-padded array. No cumulative sum, so float32 loses no precision to
    the difference of two large prefix sums.
    """
    xp = backend.get_array_module(v)
    channels = v.shape[1]
    widths = [(0, 0)] * v.ndim
    widths[1] = (before, after)
    padded = xp.pad(v, widths)
    out = padded[:, :channels].copy()
    for offset in range(1, before + after + 1):
        out += padded[:, offset:offset + channels]
    return out


class LocalResponseNorm(Function):
    """Local response normalisation across channels: x (N, C, *) -> y (N, C, *).

    With the window of ``size`` channels around c, W(c) = {c − size//2, …, c + (size−1)//2}
    (PyTorch's padding; symmetric for odd sizes) and α' the alpha inside the sum:

        s_c = k + α' Σ_{c' ∈ W(c)} a_{c'}²,        b_c = a_c · s_c^(−β)

    Backward. ∂b_c/∂a_j = δ_cj · s_c^(−β) − β·a_c·s_c^(−β−1) · 2α'·a_j · [j ∈ W(c)], so

        gx_j = gy_j · s_j^(−β) − 2α'β · a_j · Σ_{c : j ∈ W(c)} gy_c · a_c · s_c^(−β−1)

    and {c : j ∈ W(c)} = {j − (size−1)//2, …, j + size//2} is the window mirrored: the same
    window for odd sizes, shifted by one channel for even sizes.
    Cached: a, s and s^(−β). On a GPU (float32/float64 CuPy arrays) both passes are CUDA kernels, one
    thread per element looping over its window (``minicnn/cuda/norm_kernels.py``).
    """

    def __init__(self, size, alpha_in_sum, beta, k):
        self.size, self.before, self.after = size, size // 2, (size - 1) // 2
        self.alpha, self.beta, self.k = alpha_in_sum, beta, k

    def forward(self, a):
        self.a, self.kernels = a, kernels_apply(a)
        if self.kernels:
            from ..cuda import norm_kernels
            y, self.s, self.s_pow = norm_kernels.lrn_forward(a, self.size, self.alpha, self.beta, self.k)
            return y
        self.s = self.k + self.alpha * _window_sum(a * a, self.before, self.after)
        self.s_pow = self.s ** -self.beta
        return a * self.s_pow

    def backward(self, gy):
        a, s, s_pow = self.a, self.s, self.s_pow
        if self.kernels and kernels_apply(gy) and gy.dtype == a.dtype:
            from ..cuda import norm_kernels
            return norm_kernels.lrn_backward(a, gy, s, s_pow, self.size, self.alpha, self.beta)
        inner = _window_sum(gy * a * s_pow / s, self.after, self.before)    # the mirrored window
        return gy * s_pow - (2 * self.alpha * self.beta) * a * inner


_LRN_CONVENTIONS = ("pytorch", "paper")


def local_response_norm(x, size, alpha=1e-4, beta=0.75, k=1.0, convention="pytorch"):
    """Local response normalisation across channels (AlexNet §3.3; ``torch.nn.functional.local_response_norm``).

    Inputs:
        x           (N, C, *) with at least one trailing axis, e.g. (N, C, H, W)
        size        n, the number of neighbouring channels summed over: the window of channel c is
                    c − size//2 … c + (size−1)//2 (PyTorch's padding; centred for odd sizes)
        alpha, beta, k   see below
        convention  where alpha goes:
                    "pytorch" (default; also Caffe): b_c = a_c / (k + (α/n) Σ a_{c'}²)^β — alpha is
                              divided by the window size, exactly like torch.nn.LocalResponseNorm;
                    "paper"   (AlexNet; also Paddle):  b_c = a_c / (k + α Σ a_{c'}²)^β.
                    Pitfall: the paper's α = 1e-4 with n = 5 is α = 5e-4 in the "pytorch"
                    convention, and PyTorch's α = 1e-4 means 2e-5 in the paper's formula. The paper
                    uses k = 2, n = 5, α = 1e-4, β = 0.75: ``local_response_norm(x, 5, 1e-4, 0.75,
                    2.0, convention="paper")`` reproduces it. (PyTorch's default k is 1.0.)
                    For an even size the paper's formula (c − n/2 … c + n/2) would span n + 1
                    channels; both conventions here use the n-channel window above.
    Returns:
        y, the same shape and dtype as x.

    Gradient (see ``LocalResponseNorm``), with s = k + α' Σ_window a²:
    gx = gy·s^(−β) − 2α'β·a·Σ_mirrored window(gy·a·s^(−β−1)).
    """
    x = x if isinstance(x, Tensor) else Tensor(x)
    if x.ndim < 3:
        raise ValueError(f"local_response_norm: expected an input of shape (N, C, *) with 3 or more "
                         f"dimensions, e.g. (N, C, H, W), got shape {x.shape}")
    if x.dtype.kind != "f":
        raise ValueError(f"local_response_norm: expected a floating-point input, got dtype {x.dtype}")
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"local_response_norm: size must be a positive int, got {size!r}")
    if convention not in _LRN_CONVENTIONS:
        raise ValueError(f"local_response_norm: convention must be 'pytorch' or 'paper', got {convention!r}")
    alpha_in_sum = float(alpha) / size if convention == "pytorch" else float(alpha)
    return LocalResponseNorm(int(size), alpha_in_sum, float(beta), float(k))(x)
