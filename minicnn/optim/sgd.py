"""SGD: stochastic gradient descent with momentum, Nesterov momentum and L2 weight decay.

Two ways of writing momentum, both a named option (papers.md §2.4 and §11.9):

    momentum_form="pytorch"   b = μ·b + g;        p = p − lr·b      (lr outside the buffer)
    momentum_form="caffe"     v = μ·v − lr·g;     p = p + v         (lr inside the velocity: AlexNet, Caffe)
"""
from __future__ import annotations

import numbers

from .. import backend
from .optimizer import Optimizer, required

__all__ = ["SGD"]

MOMENTUM_FORMS = ("pytorch", "caffe")


class SGD(Optimizer):
    """``SGD(params, lr, momentum=0, dampening=0, nesterov=False, weight_decay=0, momentum_form="pytorch")``.

    momentum_form="pytorch" (default; PyTorch's rule). For each parameter p with gradient ∇ (b is its
    momentum buffer, kept in ``state["momentum_buffer"]``):

        g = ∇ + weight_decay · p                      L2 weight decay folded into the gradient
        b = g                                         on the parameter's first step
        b = momentum · b + (1 − dampening) · g        on later steps
        g = g + momentum · b   (nesterov)   or   g = b   (classical momentum)      [only if momentum ≠ 0]
        p = p − lr · g

    momentum_form="caffe" (AlexNet's update, as written in the paper and in Caffe's SGDSolver;
    v is the velocity, kept in ``state["velocity"]``, starting at 0):

        v = momentum · v − lr · (∇ + weight_decay · p)
        p = p + v

    The two forms take the same steps while the lr is constant (then v = −lr · b exactly). They differ
    when the lr changes: the PyTorch form multiplies the whole buffer, i.e. all the past gradients, by
    the new lr at once, while the Caffe form keeps the past gradients at the lr they were taken with and
    applies the new lr to new gradients only. Right after an lr drop ÷10 the PyTorch step is therefore
    ~10× smaller at once, the Caffe step shrinks gradually as the velocity decays. The Caffe form takes
    no dampening and no Nesterov momentum (ValueError).

    params         Tensors, or parameter groups (dicts) with their own options, e.g. weight_decay=0 for biases
    lr             the learning rate; no default: give it here or in every parameter group
    momentum_form  "pytorch" or "caffe", as above
    """

    def __init__(self, params, lr=required, momentum=0, dampening=0, nesterov=False, weight_decay=0,
                 momentum_form="pytorch"):
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening, nesterov=nesterov,
                        weight_decay=weight_decay)
        # The option enters the groups (and state dicts) only when it is not the default, so a
        # PyTorch-form SGD keeps the group layout of PyTorch's SGD; a group may still give its own.
        if momentum_form != "pytorch":
            defaults["momentum_form"] = momentum_form
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
        form = group.get("momentum_form", "pytorch")
        if form not in MOMENTUM_FORMS:
            raise ValueError(f"SGD: momentum_form must be one of {MOMENTUM_FORMS}, got {form!r}")
        if form == "caffe" and (group["nesterov"] or group["dampening"] != 0):
            raise ValueError(f"SGD: momentum_form='caffe' has no dampening and no Nesterov momentum, got "
                             f"dampening={group['dampening']} and nesterov={group['nesterov']}")

    def update(self, param, grad, state, group):
        # float(): a NumPy float64 option would otherwise promote float32 arrays to float64.
        lr, momentum = float(group["lr"]), float(group["momentum"])
        dampening, weight_decay = float(group["dampening"]), float(group["weight_decay"])
        xp = backend.get_array_module(param)
        g, fresh = grad, False          # fresh: g is this update's own array, free to be overwritten
        if weight_decay != 0:
            g, fresh = xp.multiply(param, weight_decay), True    # a new array: grad itself is never changed
            g += grad
        if group.get("momentum_form", "pytorch") == "caffe":
            self._caffe_update(param, g, state, lr, momentum)
            return
        if momentum != 0:
            buffer = state.get("momentum_buffer")
            if buffer is None:
                buffer = state["momentum_buffer"] = g.copy()   # copy: g may be the grad array
            else:
                buffer *= momentum
                buffer += g if dampening == 0 else (1 - dampening) * g
            if group["nesterov"]:
                g, fresh = g + momentum * buffer, True
            else:
                g, fresh = buffer, False
        # p = p − lr·g, the product written over g when g is this update's own array.
        param -= xp.multiply(g, lr, out=g if fresh else None)

    @staticmethod
    def _caffe_update(param, g, state, lr, momentum):
        if momentum == 0:
            param -= lr * g
            return
        velocity = state.get("velocity")
        if velocity is None:
            velocity = state["velocity"] = -lr * g         # μ·0 − lr·g
        else:
            velocity *= momentum
            velocity -= lr * g
        param += velocity
