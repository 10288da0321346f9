"""SGD: stochastic gradient descent with momentum, Nesterov momentum and L2 weight decay (PyTorch's rule)."""
from __future__ import annotations

import numbers

from .optimizer import Optimizer, required

__all__ = ["SGD"]


class SGD(Optimizer):
    """``SGD(params, lr, momentum=0, dampening=0, nesterov=False, weight_decay=0)``.

    For each parameter p with gradient ∇ (b is its momentum buffer, kept in ``state["momentum_buffer"]``):

        g = ∇ + weight_decay · p                      L2 weight decay folded into the gradient
        b = g                                         on the parameter's first step
        b = momentum · b + (1 − dampening) · g        on later steps
        g = g + momentum · b   (nesterov)   or   g = b   (classical momentum)      [only if momentum ≠ 0]
        p = p − lr · g

    lr multiplies the whole buffer at every step. With a constant lr and no dampening this is the
    same as the Caffe/AlexNet form v = momentum · v − lr · g, p = p + v; the two differ right after
    the lr changes.

    params  Tensors, or parameter groups (dicts) with their own options, e.g. weight_decay=0 for biases
    lr      the learning rate; no default: give it here or in every parameter group
    """

    def __init__(self, params, lr=required, momentum=0, dampening=0, nesterov=False, weight_decay=0):
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening, nesterov=nesterov,
                        weight_decay=weight_decay)
        self.check_options(defaults)
        super().__init__(params, defaults)

    def check_options(self, group):
        for option in ("lr", "momentum", "dampening", "weight_decay"):
            value = group[option]
            if value is required:
                continue
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise TypeError(f"SGD: {option} must be a number, got {value!r} of type {type(value).__name__}")
            if option != "dampening" and not value >= 0:     # `not >=` also rejects NaN
                raise ValueError(f"SGD: {option} must be >= 0, got {value}")
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError(f"SGD: nesterov=True needs momentum > 0 and dampening = 0, got "
                             f"momentum={group['momentum']} and dampening={group['dampening']}")

    def update(self, param, grad, state, group):
        # float(): a NumPy float64 option would otherwise promote float32 arrays to float64.
        lr, momentum = float(group["lr"]), float(group["momentum"])
        dampening, weight_decay = float(group["dampening"]), float(group["weight_decay"])
        g = grad
        if weight_decay != 0:
            g = g + weight_decay * param                    # a new array: grad itself is never changed
        if momentum != 0:
            buffer = state.get("momentum_buffer")
            if buffer is None:
                buffer = state["momentum_buffer"] = g.copy()   # copy: g may be the grad array
            else:
                buffer *= momentum
                buffer += (1 - dampening) * g
            g = g + momentum * buffer if group["nesterov"] else buffer
        param -= lr * g
