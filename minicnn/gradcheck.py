"""Numerical gradient checking: is a backward pass right?

The check compares the gradients that backpropagation computes with central finite differences

    dL/dθ_i ≈ (L(θ + h·e_i) − L(θ − h·e_i)) / 2h,     L = Σ fn(inputs) · G

in float64, where G is a fixed **random** upstream gradient. (An all-ones G — the classic mistake —
makes softmax's gradient identically zero, so a wrong softmax or batch-norm backward would pass.)

Two modes:
  * ``"elementwise"``: every element of every checked tensor (2 forward passes each) — for small
    tensors and lessons;
  * ``"directional"``: a random unit direction d over all checked tensors at once: the numerical
    (L(θ + h·d) − L(θ − h·d)) / 2h against the analytic Σ ⟨∂L/∂θ, d⟩ — two forward passes per
    direction, so whole networks can be checked.

Every input that requires a gradient and every parameter in ``params`` is checked. The report names
the worst element and its relative error; a failed check raises ``GradcheckError``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import backend
from .autograd import Tensor, no_grad

__all__ = ["gradcheck", "GradcheckError", "GradcheckResult", "numerical_grad"]


class GradcheckError(AssertionError):
    """The analytic and numerical gradients disagree (the message holds the report)."""


@dataclass
class GradcheckResult:
    ok: bool
    mode: str
    checked: list = field(default_factory=list)      # names of the tensors that were checked
    worst_name: str = ""
    worst_index: tuple = ()
    analytic: float = 0.0
    numerical: float = 0.0
    relative_error: float = 0.0

    def __str__(self):
        verdict = "passed" if self.ok else "FAILED"
        where = f"{self.worst_name}{list(self.worst_index) if self.worst_index else ''}"
        return (f"gradcheck ({self.mode}) {verdict} on {', '.join(self.checked)}; worst: {where} "
                f"analytic={self.analytic:.10g} numerical={self.numerical:.10g} "
                f"relative error={self.relative_error:.3g}")


def _outputs(fn, inputs):
    out = fn(*inputs)
    return list(out) if isinstance(out, (tuple, list)) else [out]


def _loss(fn, inputs, upstream):
    """L = Σ_k Σ out_k · G_k as a Python float, with no graph recorded."""
    with no_grad():
        outs = _outputs(fn, inputs)
    return float(sum(float((o.data.astype(np.float64) * g).sum()) for o, g in zip(outs, upstream)))


def numerical_grad(fn, inputs, upstream, target, eps=1e-6):
    """Central-difference gradient of L = Σ fn(*inputs)·upstream with respect to ``target``'s array."""
    xp = backend.get_array_module(target.data)
    flat = target.data.reshape(-1)           # a view: perturbing it perturbs the tensor
    grad = xp.zeros(flat.shape, np.float64)
    for i in range(flat.size):
        original = flat[i].item()
        flat[i] = original + eps
        plus = _loss(fn, inputs, upstream)
        flat[i] = original - eps
        minus = _loss(fn, inputs, upstream)
        flat[i] = original
        grad[i] = (plus - minus) / (2 * eps)
    return grad.reshape(target.shape)


def _prepare(inputs, params):
    tensors, checked = [], []
    for i, x in enumerate(inputs):
        t = x if isinstance(x, Tensor) else Tensor(np.array(x, dtype=np.float64), requires_grad=True)
        tensors.append(t)
        if t.requires_grad:
            checked.append((f"input {i}", t))
    for j, p in enumerate(params):
        name = p[0] if isinstance(p, tuple) else f"param {j}"
        checked.append((name, p[1] if isinstance(p, tuple) else p))
    for name, t in checked:
        if t.dtype != np.float64:
            raise TypeError(f"gradcheck: {name} has dtype {t.dtype}; gradient checks need float64 "
                            f"(build inputs and modules under minicnn.default_dtype(np.float64), or "
                            f"call module.double())")
        if not t.data.flags.c_contiguous:
            t.data = backend.get_array_module(t.data).ascontiguousarray(t.data)
    return tensors, checked


def gradcheck(fn, inputs, params=(), *, mode="elementwise", eps=1e-6, atol=1e-6, rtol=1e-4,
              directions=3, seed=0, raise_exception=True):
    """Check ``fn``'s backward against central finite differences.

    fn        callable taking the input Tensors and returning a Tensor (or a tuple of Tensors)
    inputs    Tensors or arrays; arrays become float64 Tensors that require grad, Tensors are
              checked if they require grad
    params    tensors ``fn`` uses besides its inputs (e.g. ``module.parameters()``, or
              ``module.named_parameters()`` for named reports); must be float64
    mode      "elementwise" or "directional" (``directions`` random directions)
    Passes when |analytic − numerical| ≤ atol + rtol·|numerical| everywhere.
    Returns a GradcheckResult; raises GradcheckError on failure unless raise_exception=False.
    """
    if mode not in ("elementwise", "directional"):
        raise ValueError(f"gradcheck: mode must be 'elementwise' or 'directional', got {mode!r}")
    inputs, checked = _prepare(inputs, list(params))
    if not checked:
        raise ValueError("gradcheck: nothing to check: no input requires grad and no params were given")
    rng = np.random.default_rng(seed)
    outs = _outputs(fn, inputs)
    xp = backend.get_array_module(outs[0].data)
    upstream = [xp.asarray(rng.standard_normal(o.shape)) for o in outs]

    for _, t in checked:
        t.grad = None
    live = [(o, g) for o, g in zip(outs, upstream) if o.requires_grad]
    for k, (o, g) in enumerate(live):
        o.backward(g, retain_graph=k < len(live) - 1)
    analytic = {name: (xp.zeros(t.shape) if t.grad is None else t.grad.data.astype(np.float64))
                for name, t in checked}

    result = GradcheckResult(ok=True, mode=mode, checked=[name for name, _ in checked])
    worst_ratio = -1.0

    def consider(name, index, a, n):
        nonlocal worst_ratio
        ratio = abs(a - n) / (atol + rtol * abs(n))
        if ratio > worst_ratio:
            worst_ratio = ratio
            result.worst_name, result.worst_index, result.analytic, result.numerical = name, index, a, n
            result.relative_error = abs(a - n) / max(abs(a), abs(n), 1e-300)

    if mode == "elementwise":
        for name, t in checked:
            numeric = backend.as_numpy(numerical_grad(fn, inputs, upstream, t, eps))
            a = backend.as_numpy(analytic[name])
            ratio = np.abs(a - numeric) / (atol + rtol * np.abs(numeric))
            i = np.unravel_index(int(np.argmax(ratio)), a.shape) if a.size else ()
            if a.size:
                consider(name, tuple(int(k) for k in i), float(a[i]), float(numeric[i]))
    else:
        for k in range(directions):
            direction = {name: xp.asarray(rng.standard_normal(t.shape)) for name, t in checked}
            norm = float(np.sqrt(sum(float((d * d).sum()) for d in direction.values())))
            a = sum(float((analytic[name] * d).sum()) for name, d in direction.items()) / norm
            originals = {name: t.data.copy() for name, t in checked}
            losses = []
            for sign in (1, -1):
                for name, t in checked:
                    t.data[...] = originals[name] + sign * eps * direction[name] / norm
                losses.append(_loss(fn, inputs, upstream))
            for name, t in checked:
                t.data[...] = originals[name]
            consider(f"direction {k}", (), a, (losses[0] - losses[1]) / (2 * eps))
    result.ok = worst_ratio <= 1.0
    if not result.ok and raise_exception:
        raise GradcheckError(str(result))
    return result
