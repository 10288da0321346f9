"""Losses: cross-entropy (class indices or soft targets, label smoothing), nll, KL, distillation, MSE.

Notation: N batch, K classes; x logits (N, K); p = softmax(x) along K; q a target distribution (N, K);
gy = dL/d(loss) (upstream), gx = dL/dx.

Every loss takes ``reduction``: "mean" (average over the N samples), "sum", or "none" (one value per
sample, shape (N,)). ``mse_loss`` and ``kl_div`` reduce over elements instead, as in PyTorch.

Cross-entropy is one fused ``Function`` (softmax and log in one step), for two reasons: log-sum-exp
keeps it finite for logits in the hundreds, and its gradient is just p − q.

Label smoothing (papers.md §4.4 and §11.8) replaces the target q by a softened one. Two conventions:

    smoothing_convention   true class        every other class   source
    "pytorch"              1 − ε + ε/K       ε/K                 Inception-v3 (Szegedy et al. 2016),
                                                                 PyTorch's ``label_smoothing``
    "k-1"                  1 − ε             ε/(K − 1)           Bag of Tricks (He et al. 2019), eq. for q_i

Both are the linear map q' = a·q + b applied to the (one-hot or soft) target q:
"pytorch": a = 1 − ε, b = ε/K;  "k-1": a = 1 − εK/(K − 1), b = ε/(K − 1) — the same as "pytorch" with
ε' = εK/(K − 1), so for K = 1000 and ε = 0.1 the two differ only by 0.01%; for K = 10 by 11%.
"""
from __future__ import annotations

import numbers

import numpy as np

from .. import backend
from ..autograd import Function, Tensor
from ..cuda.launch import kernels_apply

__all__ = ["cross_entropy", "nll_loss", "kl_div", "distillation_loss", "mse_loss",
           "REDUCTIONS", "SMOOTHING_CONVENTIONS"]

REDUCTIONS = ("mean", "sum", "none")
SMOOTHING_CONVENTIONS = ("pytorch", "k-1")


# ---------------------------------------------------------------- helpers ----------------------

def log_softmax_rows(x):
    """log softmax of raw (N, K) arrays along axis 1 via log-sum-exp (the max is subtracted first):
    finite however far apart the scores are. Also used by training.evaluation."""
    xp = backend.get_array_module(x)
    shifted = x - x.max(axis=1, keepdims=True)
    return shifted - xp.log(xp.exp(shifted).sum(axis=1, keepdims=True))


def _reduce(losses, reduction):
    """Per-sample losses (N,) → the reduced loss: a 0-d array for "mean"/"sum", (N,) for "none"."""
    xp = backend.get_array_module(losses)
    if reduction == "none":
        return losses
    return xp.asarray(losses.mean() if reduction == "mean" else losses.sum())


def _per_sample_grad(gy, n, reduction):
    """The upstream gradient of each sample's loss as a column (N, 1): the adjoint of ``_reduce``."""
    if reduction == "none":
        return gy[:, None]
    g = gy / n if reduction == "mean" else gy
    return backend.get_array_module(gy).broadcast_to(g, (n, 1))


def _check_reduction(op, reduction, allowed=REDUCTIONS):
    if reduction not in allowed:
        raise ValueError(f"{op}: reduction must be one of {allowed}, got {reduction!r}")


def _logits(op, x, name="input"):
    """``x`` as a floating (N, K) Tensor, or a ValueError naming ``op``."""
    x = x if isinstance(x, Tensor) else Tensor(x)
    if x.ndim != 2:
        raise ValueError(f"{op}: expected {name} of shape (N, K) (a batch of N rows of K class scores), "
                         f"got shape {x.shape}")
    if x.dtype.kind != "f":
        raise ValueError(f"{op}: expected floating-point {name}, got dtype {x.dtype}")
    return x


def _class_indices(op, target, n, k):
    """Check integer class indices: shape (N,), values in [0, K)."""
    if target.ndim != 1 or target.shape[0] != n:
        raise ValueError(f"{op}: class-index target must have shape (N,) = ({n},) for input of shape "
                         f"({n}, {k}), got shape {target.shape}")
    if target.size:
        low, high = int(target.data.min()), int(target.data.max())
        if low < 0 or high >= k:
            raise ValueError(f"{op}: class indices must be in [0, {k}) for K = {k} classes, got values "
                             f"in [{low}, {high}]")


def _as_target(target):
    if isinstance(target, Tensor):
        return target
    return Tensor(target if hasattr(target, "shape") else np.asarray(target))


def _smoothing(label_smoothing, convention, k):
    """(a, b) such that the smoothed target is a·q + b (see the module docstring)."""
    eps = float(label_smoothing)
    if eps == 0:
        return 1.0, 0.0
    if convention == "pytorch":
        return 1 - eps, eps / k
    if k < 2:
        raise ValueError(f"cross_entropy: smoothing_convention 'k-1' needs K >= 2 classes, got K = {k}")
    return 1 - eps * k / (k - 1), eps / (k - 1)


# ---------------------------------------------------------------- cross-entropy ----------------

class CrossEntropy(Function):
    """loss_i = −Σ_k q_ik · log p_ik, p = softmax(x), q = a·target + b (smoothed; a = 1, b = 0 without).

    Inputs: x (N, K) logits; target (N,) class indices (→ one-hot) or (N, K) probabilities.
    Output: () for "mean"/"sum", (N,) for "none".
    Backward: gx_i = (p_i · Σ_k q_ik − q_i) · gy_i  (= p_i − q_i when q_i sums to 1), divided by N for
    "mean";  g(target)_i = −a · log p_i · gy_i for soft targets.
    Cached: q and log p (N, K); on a GPU (float32/float64 CuPy logits) both passes are CUDA kernels,
    one thread per row, which cache only x, the target and two numbers per row (its max and log-sum-exp).
    """
    def __init__(self, reduction, a, b):
        self.reduction, self.a, self.b = reduction, a, b

    def forward(self, x, target):
        xp = backend.get_array_module(x)
        n = x.shape[0]
        self.kernels = kernels_apply(x) and x.shape[1] > 0
        if self.kernels:                           # GPU: one thread per row (minicnn/cuda/loss_kernels.py)
            from ..cuda import loss_kernels
            if target.ndim == 2:
                self.target_dtype = target.dtype
                target = target.astype(x.dtype, copy=False)
            losses, self.row_max, self.row_lse = loss_kernels.cross_entropy_forward(x, target, self.a, self.b)
            self.x, self.target = x, target
            return _reduce(losses, self.reduction)
        if target.ndim == 1:
            q = xp.zeros_like(x)
            q[xp.arange(n), target] = 1
        else:
            self.target_dtype = target.dtype
            q = target.astype(x.dtype, copy=False)
        self.q = self.a * q + self.b
        self.log_p = log_softmax_rows(x)
        return _reduce(-(self.q * self.log_p).sum(axis=1), self.reduction)

    def backward(self, gy):
        xp = backend.get_array_module(gy)
        if self.kernels:
            from ..cuda import loss_kernels
            n = self.x.shape[0]
            g = xp.ascontiguousarray(_per_sample_grad(gy, n, self.reduction)[:, 0], dtype=self.x.dtype)
            gx, gt = loss_kernels.cross_entropy_backward(
                self.x, self.target, self.row_max, self.row_lse, g, self.a, self.b,
                want_gx=self.needs_input_grad[0], want_gt=self.needs_input_grad[1])
            return gx, (gt.astype(self.target_dtype, copy=False) if gt is not None else None)
        g = _per_sample_grad(gy, self.q.shape[0], self.reduction)
        gx = gt = None
        if self.needs_input_grad[0]:
            gx = (xp.exp(self.log_p) * self.q.sum(axis=1, keepdims=True) - self.q) * g
        if self.needs_input_grad[1]:
            gt = (-self.a * self.log_p * g).astype(self.target_dtype, copy=False)
        return gx, gt


def cross_entropy(input, target, reduction="mean", label_smoothing=0.0, smoothing_convention="pytorch"):
    """Softmax cross-entropy between logits and a target, like ``torch.nn.functional.cross_entropy``.

    input                 logits (N, K), floating point (not probabilities: softmax is applied here)
    target                class indices (N,), integer, each in [0, K); or a target distribution (N, K),
                          floating point (mixup, distillation), cast to the logits' dtype
    reduction             "mean" (over N), "sum" or "none" → shape (), () or (N,)
    label_smoothing       ε in [0, 1]; 0 turns smoothing off
    smoothing_convention  "pytorch" (ε/K everywhere, Inception-v3) or "k-1" (1 − ε on the true class,
                          ε/(K − 1) elsewhere, Bag of Tricks); see the module docstring
    Gradient (mean): (softmax(input) − smoothed target) / N.
    """
    _check_reduction("cross_entropy", reduction)
    if smoothing_convention not in SMOOTHING_CONVENTIONS:
        raise ValueError(f"cross_entropy: smoothing_convention must be one of {SMOOTHING_CONVENTIONS}, "
                         f"got {smoothing_convention!r}")
    if isinstance(label_smoothing, bool) or not isinstance(label_smoothing, numbers.Real) \
            or not 0 <= label_smoothing <= 1:
        raise ValueError(f"cross_entropy: label_smoothing must be in [0, 1], got {label_smoothing!r}")
    x = _logits("cross_entropy", input)
    n, k = x.shape
    target = _as_target(target)
    if target.dtype.kind in "iu":
        _class_indices("cross_entropy", target, n, k)
    elif target.dtype.kind == "f":
        if target.shape != x.shape:
            raise ValueError(f"cross_entropy: a soft (probability) target must have the input's shape "
                             f"(N, K) = {x.shape}, got shape {target.shape}; class indices must be an "
                             f"integer array of shape ({n},)")
    else:
        raise ValueError(f"cross_entropy: target must be integer class indices of shape ({n},) or floating "
                         f"probabilities of shape {x.shape}, got dtype {target.dtype} with shape {target.shape}")
    a, b = _smoothing(label_smoothing, smoothing_convention, k)
    return CrossEntropy(reduction, a, b)(x, target)


# ---------------------------------------------------------------- nll --------------------------

class NLLLoss(Function):
    """loss_i = −input[i, target_i];  gx[i, target_i] = −gy_i (÷ N for "mean"), 0 elsewhere."""
    def __init__(self, reduction):
        self.reduction = reduction

    def forward(self, log_probs, target):
        xp = backend.get_array_module(log_probs)
        self.shape, self.target = log_probs.shape, target
        return _reduce(-log_probs[xp.arange(self.shape[0]), target], self.reduction)

    def backward(self, gy):
        xp = backend.get_array_module(gy)
        n = self.shape[0]
        gx = xp.zeros(self.shape, gy.dtype)
        gx[xp.arange(n), self.target] = -_per_sample_grad(gy, n, self.reduction)[:, 0]
        return gx, None


def nll_loss(input, target, reduction="mean"):
    """Negative log-likelihood of the true classes, like ``torch.nn.functional.nll_loss``.

    input   log-probabilities (N, K), e.g. ``log_softmax(logits, dim=1)``
    target  class indices (N,), integer, each in [0, K)
    ``nll_loss(log_softmax(x, 1), t)`` equals ``cross_entropy(x, t)``.
    """
    _check_reduction("nll_loss", reduction)
    x = _logits("nll_loss", input)
    target = _as_target(target)
    if target.dtype.kind not in "iu":
        raise ValueError(f"nll_loss: target must be integer class indices of shape ({x.shape[0]},), got "
                         f"dtype {target.dtype} with shape {target.shape}")
    _class_indices("nll_loss", target, *x.shape)
    return NLLLoss(reduction)(x, target)


# ---------------------------------------------------------------- KL divergence ----------------

class KLDiv(Function):
    """Pointwise l = q · (log q − input), input = log-probabilities, q = target (0 · log 0 = 0); reduced.

    With log_target (the target holds t = log q): l = e^t · (t − input).
    Backward: g(input) = −q · gy;  g(target) = (log q + 1 − input) · gy (−∞ where q = 0), or
    e^t · (t − input + 1) · gy with log_target.
    """
    def __init__(self, reduction, log_target):
        self.reduction, self.log_target = reduction, log_target

    def forward(self, x, t):
        xp = backend.get_array_module(x)
        if self.log_target:
            q, log_q = xp.exp(t), t
        else:
            q, log_q = t, xp.log(xp.where(t > 0, t, 1))      # log q, with 0 in place of log 0
        self.x, self.q, self.log_q = x, q, log_q
        pointwise = q * (log_q - x)
        if self.reduction == "none":
            return pointwise
        return xp.asarray(pointwise.sum() / self._divisor())

    def _divisor(self):
        return {"none": 1, "sum": 1, "mean": self.x.size, "batchmean": self.x.shape[0]}[self.reduction]

    def backward(self, gy):
        xp = backend.get_array_module(gy)
        g = gy / self._divisor()
        gx = -self.q * g if self.needs_input_grad[0] else None
        gt = None
        if self.needs_input_grad[1]:
            if self.log_target:
                gt = self.q * (self.log_q + 1 - self.x) * g
            else:
                gt = xp.where(self.q > 0, (self.log_q + 1 - self.x) * g, -xp.inf)
        return gx, gt


def kl_div(input, target, reduction="mean", log_target=False):
    """KL(target ‖ exp(input)) pointwise, like ``torch.nn.functional.kl_div`` (note the argument order).

    input       log-probabilities, any shape (e.g. ``log_softmax(student, dim=1)``)
    target      probabilities of the same shape (log-probabilities if ``log_target``)
    reduction   "mean" averages over *all elements* (PyTorch's semantics, which is not the KL of a batch);
                "batchmean" divides the sum by N (the true mean KL per sample); "sum"; "none" (pointwise)
    """
    _check_reduction("kl_div", reduction, REDUCTIONS + ("batchmean",))
    x, t = (v if isinstance(v, Tensor) else Tensor(v) for v in (input, target))
    if x.shape != t.shape:
        raise ValueError(f"kl_div: input and target must have the same shape, got {x.shape} and {t.shape}")
    if x.dtype.kind != "f" or x.dtype != t.dtype:
        raise ValueError(f"kl_div: expected floating-point input and target of one dtype, got "
                         f"{x.dtype} and {t.dtype}")
    if reduction == "batchmean" and x.ndim == 0:
        raise ValueError("kl_div: reduction 'batchmean' needs a batch axis, got a 0-d input")
    return KLDiv(reduction, bool(log_target))(x, t)


# ---------------------------------------------------------------- distillation -----------------

class Distillation(Function):
    """loss_i = T² · KL(p^T_teacher,i ‖ p^T_student,i),  p^T = softmax(logits / T).

    Backward (teacher fixed): g(student)_i = T² · (1/T) · (p^T_student,i − p^T_teacher,i) · gy_i
                                           = T · (p^T_student,i − p^T_teacher,i) · gy_i  (÷ N for "mean").
    """
    def __init__(self, T, reduction):
        self.T, self.reduction = T, reduction

    def forward(self, student, teacher):
        xp = backend.get_array_module(student)
        log_ps = log_softmax_rows(student / self.T)
        log_pt = log_softmax_rows(teacher.astype(student.dtype, copy=False) / self.T)
        self.ps, self.pt = xp.exp(log_ps), xp.exp(log_pt)
        kl = (self.pt * (log_pt - log_ps)).sum(axis=1)
        return _reduce(kl * (self.T * self.T), self.reduction)

    def backward(self, gy):
        g = _per_sample_grad(gy, self.ps.shape[0], self.reduction)
        return self.T * (self.ps - self.pt) * g, None


def distillation_loss(student_logits, teacher_logits, T, reduction="mean"):
    """Knowledge-distillation loss (Hinton et al. 2015): T² · KL(softmax(teacher/T) ‖ softmax(student/T)).

    student_logits  (N, K) floating point
    teacher_logits  (N, K); a fixed target: detached here, no gradient flows into the teacher
    T               temperature > 0 (Bag of Tricks uses T = 20, papers.md §4.4)
    reduction       "mean" (over the N samples), "sum" or "none" → (), () or (N,)
    The T² keeps the gradient's size independent of T (it scales as 1/T² otherwise, Hinton §2).
    Bag of Tricks writes the soft term as T²·CE(softmax(r/T), softmax(z/T)); it differs from this KL by
    the teacher's entropy, a constant, so the gradients are identical. Add the hard-label
    ``cross_entropy`` yourself: loss = cross_entropy(z, y) + distillation_loss(z, r, T).
    """
    _check_reduction("distillation_loss", reduction)
    if isinstance(T, bool) or not isinstance(T, numbers.Real) or not 0 < T < float("inf"):
        raise ValueError(f"distillation_loss: temperature T must be a positive finite number, got {T!r}")
    s = _logits("distillation_loss", student_logits, "student_logits")
    t = _logits("distillation_loss", teacher_logits, "teacher_logits")
    if s.shape != t.shape:
        raise ValueError(f"distillation_loss: student_logits and teacher_logits must have the same shape "
                         f"(N, K), got {s.shape} and {t.shape}")
    return Distillation(float(T), reduction)(s, Tensor(t.data))


# ---------------------------------------------------------------- mean squared error -----------

class MSELoss(Function):
    """Pointwise l = (x − t)², reduced over all elements;  gx = 2 (x − t) · gy (÷ size for "mean"), gt = −gx."""
    def __init__(self, reduction):
        self.reduction = reduction

    def forward(self, x, t):
        xp = backend.get_array_module(x)
        self.diff = x - t
        squared = self.diff * self.diff
        if self.reduction == "none":
            return squared
        return xp.asarray(squared.mean() if self.reduction == "mean" else squared.sum())

    def backward(self, gy):
        g = gy / self.diff.size if self.reduction == "mean" else gy
        gx = 2 * self.diff * g
        return (gx if self.needs_input_grad[0] else None), (-gx if self.needs_input_grad[1] else None)


def mse_loss(input, target, reduction="mean"):
    """Mean squared error Σ (input − target)² / size, like ``torch.nn.functional.mse_loss``.

    input, target  the same shape, floating point and the same dtype
    reduction      "mean" (over all elements), "sum", or "none" (pointwise, input's shape)
    """
    _check_reduction("mse_loss", reduction)
    x, t = (v if isinstance(v, Tensor) else Tensor(v) for v in (input, target))
    if x.shape != t.shape:
        raise ValueError(f"mse_loss: input and target must have the same shape, got {x.shape} and {t.shape}")
    if x.dtype.kind != "f" or x.dtype != t.dtype:
        raise ValueError(f"mse_loss: expected floating-point input and target of one dtype, got "
                         f"{x.dtype} and {t.dtype}")
    return MSELoss(reduction)(x, t)
