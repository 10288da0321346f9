"""Adam (Kingma & Ba 2015) and AdamW (Loshchilov & Hutter 2019), with PyTorch's update rules.

Adam keeps two running averages per parameter: m of the gradient and v of its square, both started
at 0 and therefore biased towards 0 in the first steps; dividing by 1 − β^t undoes that bias. The step
is lr·m̂/(√v̂ + ε): about lr per coordinate whatever the gradient's scale.

Adam and AdamW differ only in weight decay:

    Adam    g = ∇ + wd·p                 L2 decay in the gradient, so it is divided by √v̂ like the rest:
                                         parameters with large gradients are barely decayed
    AdamW   p = p − lr·wd·p              decoupled: every parameter shrinks by the same factor per step
"""
from __future__ import annotations

import math
import numbers

from .. import backend
from .optimizer import Optimizer

__all__ = ["Adam", "AdamW"]


class Adam(Optimizer):
    """``Adam(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False)``.

    For each parameter p with gradient ∇, at its t-th step (t = 1, 2 …; PyTorch's ``torch.optim.Adam``):

        g  = ∇ + weight_decay·p                          (AdamW instead: p = p − lr·weight_decay·p)
        m  = β1·m + (1 − β1)·g                           m, v start at 0
        v  = β2·v + (1 − β2)·g²
        v* = max(v*, v)  (amsgrad)   or   v* = v         v* starts at 0
        p  = p − lr/(1 − β1^t) · m / (√v* / √(1 − β2^t) + eps)

    State: ``step`` (t, an int), ``exp_avg`` (m), ``exp_avg_sq`` (v), ``max_exp_avg_sq`` (v*, amsgrad
    only). Note that eps is added after the bias correction of v, as PyTorch and the paper do.

    params        Tensors, or parameter groups (dicts) with their own options
    lr            the learning rate
    betas         (β1, β2), the decays of the two running averages, each in [0, 1)
    eps           added to the denominator; >= 0
    weight_decay  L2 weight decay folded into the gradient (AdamW: decoupled decay)
    amsgrad       divide by the largest v so far (Reddi et al. 2018), so steps never grow because v shrank
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False):
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad)
        self.check_options(defaults)
        super().__init__(params, defaults)

    def check_options(self, group):
        name = self._name                                   # Adam or AdamW
        for option in ("lr", "eps", "weight_decay"):
            value = group[option]
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise TypeError(f"{name}: {option} must be a number, got {value!r} of type {type(value).__name__}")
            if not value >= 0:                               # `not >=` also rejects NaN
                raise ValueError(f"{name}: {option} must be >= 0, got {value}")
        betas = group["betas"]
        if (not isinstance(betas, (tuple, list)) or len(betas) != 2
                or any(isinstance(b, bool) or not isinstance(b, numbers.Real) for b in betas)):
            raise TypeError(f"{name}: betas must be a pair of numbers (beta1, beta2), got {betas!r}")
        for i, beta in enumerate(betas):
            if not 0 <= beta < 1:
                raise ValueError(f"{name}: betas[{i}] must be in [0, 1), got {beta}")
        if not isinstance(group["amsgrad"], bool):
            raise TypeError(f"{name}: amsgrad must be True or False, got {group['amsgrad']!r}")

    def update(self, param, grad, state, group):
        # float(): a NumPy float64 option would otherwise promote float32 arrays to float64.
        lr, eps, weight_decay = float(group["lr"]), float(group["eps"]), float(group["weight_decay"])
        beta1, beta2 = (float(b) for b in group["betas"])
        xp = backend.get_array_module(param)
        if not state:
            state["step"] = 0
            state["exp_avg"] = xp.zeros_like(param)
            state["exp_avg_sq"] = xp.zeros_like(param)
            if group["amsgrad"]:
                state["max_exp_avg_sq"] = xp.zeros_like(param)
        state["step"] += 1
        t = state["step"]

        g = self._decay(param, grad, lr, weight_decay)
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        exp_avg *= beta1
        exp_avg += (1 - beta1) * g
        exp_avg_sq *= beta2
        exp_avg_sq += (1 - beta2) * (g * g)
        if group["amsgrad"]:
            if "max_exp_avg_sq" not in state:                   # amsgrad switched on mid-training
                state["max_exp_avg_sq"] = xp.zeros_like(param)
            xp.maximum(state["max_exp_avg_sq"], exp_avg_sq, out=state["max_exp_avg_sq"])
            exp_avg_sq = state["max_exp_avg_sq"]

        step_size = lr / (1 - beta1 ** t)
        denominator = xp.sqrt(exp_avg_sq) / math.sqrt(1 - beta2 ** t) + eps
        param -= step_size * (exp_avg / denominator)

    @staticmethod
    def _decay(param, grad, lr, weight_decay):
        """Adam's L2 decay: return the gradient with weight_decay·p added (a new array; grad is kept)."""
        return grad + weight_decay * param if weight_decay != 0 else grad


class AdamW(Adam):
    """``AdamW(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False)``.

    Adam with decoupled weight decay (PyTorch's ``torch.optim.AdamW``): before Adam's step, with the
    plain gradient,

        p = p − lr·weight_decay·p

    so the decay does not pass through m and v. As in PyTorch the decay is multiplied by the lr, so an
    lr schedule schedules it too; the paper multiplies it by the schedule multiplier η_t but not by the
    base lr α, so its λ corresponds to weight_decay·lr here.
    Note the default weight_decay is 1e-2, PyTorch's, where Adam's is 0.
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad)

    @staticmethod
    def _decay(param, grad, lr, weight_decay):
        if weight_decay != 0:
            param *= 1 - lr * weight_decay
        return grad
