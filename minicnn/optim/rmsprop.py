"""RMSprop (Hinton's lecture 6e): divide each gradient by a running root mean square of its recent values.

Two sources, two different updates (papers.md §7.4 and §11.7), both here behind one option:

    PyTorch (default)          ms = α·ms + (1−α)·g²                  ms starts at 0
                               b  = μ·b + g / (√ms + ε)              b starts at 0
                               p  = p − lr·b

    TensorFlow                 ms = ρ·ms + (1−ρ)·g²                  ms starts at 1 (!)
    (eps_inside_sqrt=True)     b  = μ·b + lr·g / √(ms + ε)           b starts at 0
                               p  = p − b

Inception-v3 was trained with the TensorFlow update, ρ = 0.9, ε = 1.0, μ = 0.9
(``RMSprop.tensorflow(params)`` gives these settings). What the differences do:

* ε under the root. √(ms + ε) against √ms + ε: with ε = 1 the denominators differ by up to √2 (at
  ms = 1); for small ε TensorFlow's ε acts like PyTorch's √ε (TF's default 1e-10 ≈ PyTorch's 1e-5).
  Either way ε = 1.0 is large: for gradients well below 1 the step is about lr·g, SGD with momentum,
  and only large gradients are scaled down.
* ms starting at 1 keeps TensorFlow's first steps near lr·g/√(1 + ε) for small gradients.
  PyTorch's ms starts at 0, so its first step is lr·g / (√(1−α)·|g| + ε), which is ≈ lr/√(1−α)
  per coordinate for small ε: 10·lr with α = 0.99, whatever the size of the gradient.
* lr inside the buffer (TensorFlow, like Caffe's SGD) only matters when the lr changes, which it
  does every 2 epochs in Inception-v3's schedule: past steps keep the lr they were taken with.
"""
from __future__ import annotations

import numbers

from .. import backend
from .optimizer import Optimizer

__all__ = ["RMSprop"]


class RMSprop(Optimizer):
    """``RMSprop(params, lr=0.01, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0, centered=False,
    eps_inside_sqrt=False)``.

    For each parameter p with gradient ∇, g = ∇ + weight_decay·p (L2 decay folded into the gradient).
    State: ``square_avg`` (ms), ``grad_avg`` (ḡ, only if centered), ``momentum_buffer`` (b, only if
    momentum > 0); all arrays of p's shape, dtype and device.

    eps_inside_sqrt=False — PyTorch's ``torch.optim.RMSprop``, step for step:

        ms = alpha·ms + (1 − alpha)·g²                     ms starts at 0
        ḡ  = alpha·ḡ + (1 − alpha)·g      (centered)       ḡ starts at 0
        d  = √(ms − ḡ²) + eps  (centered)   or   √ms + eps
        b  = momentum·b + g / d;   p = p − lr·b            (momentum > 0; b starts at 0)
        p  = p − lr·g / d                                  (momentum = 0)

    eps_inside_sqrt=True — TensorFlow's ``tf.compat.v1.train.RMSPropOptimizer`` (its ApplyRMSProp and
    ApplyCenteredRMSProp kernels), the optimizer of Inception-v3 and TF-slim. Three differences:

        ms = alpha·ms + (1 − alpha)·g²                     ms starts at 1: TF's "rms" slot is
                                                           initialised with ones, not zeros
        ḡ  = alpha·ḡ + (1 − alpha)·g      (centered)       ḡ starts at 0
        d  = √(ms − ḡ² + eps)  (centered)   or   √(ms + eps)      eps inside the root
        b  = momentum·b + lr·g / d;   p = p − b            lr inside the buffer, as in Caffe's SGD:
                                                           an lr change acts on new gradients only

    (TF's ``decay`` is ``alpha`` here. Keras's ``tf.keras.optimizers.RMSprop`` is a third variant: ms
    starts at 0; it is not offered.) TF-slim's weight decay 4e-5 is an L2 loss wd·½‖w‖², whose
    gradient wd·w is what ``weight_decay`` adds.

    params           Tensors, or parameter groups (dicts) with their own options
    lr               the learning rate
    alpha            the decay of the running mean square (TF: decay, ρ), in [0, 1]
    eps              added to the denominator (PyTorch) or under its root (TF); >= 0
    weight_decay     L2 weight decay, folded into the gradient
    momentum         the momentum μ of the buffer b; 0 takes plain RMSprop steps
    centered         divide by the running standard deviation √(ms − ḡ²) instead of the root mean square
    eps_inside_sqrt  False: PyTorch's update; True: TensorFlow's, as described above
    """

    def __init__(self, params, lr=0.01, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0, centered=False,
                 eps_inside_sqrt=False):
        defaults = dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
                        centered=centered, eps_inside_sqrt=eps_inside_sqrt)
        self.check_options(defaults)
        super().__init__(params, defaults)

    @classmethod
    def tensorflow(cls, params, lr=0.045, decay=0.9, momentum=0.9, eps=1.0, weight_decay=0, centered=False):
        """RMSprop with TensorFlow's update and Inception-v3's settings (papers.md §7.4).

        lr 0.045, decay 0.9 and ε = 1.0 are the paper's; momentum 0.9 is TF-slim's. The paper trained
        50 asynchronous replicas with batch 32 each; scale lr to your batch. The rest of the recipe:

            optimizer = optim.RMSprop.tensorflow([{"params": weights, "weight_decay": 4e-5},
                                                  {"params": biases_and_bn}])
            scheduler = optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.94)   # per epoch
            ... loss.backward(); minicnn.training.clip_grad_norm_(model.parameters(), 2.0); optimizer.step()
        """
        return cls(params, lr=lr, alpha=decay, eps=eps, weight_decay=weight_decay, momentum=momentum,
                   centered=centered, eps_inside_sqrt=True)

    def check_options(self, group):
        for option in ("lr", "alpha", "eps", "weight_decay", "momentum"):
            value = group[option]
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise TypeError(f"RMSprop: {option} must be a number, got {value!r} of type "
                                f"{type(value).__name__}")
            if not value >= 0:                               # `not >=` also rejects NaN
                raise ValueError(f"RMSprop: {option} must be >= 0, got {value}")
        if not group["alpha"] <= 1:
            raise ValueError(f"RMSprop: alpha must be in [0, 1], got {group['alpha']}")
        for option in ("centered", "eps_inside_sqrt"):
            if not isinstance(group[option], bool):
                raise TypeError(f"RMSprop: {option} must be True or False, got {group[option]!r}")

    def update(self, param, grad, state, group):
        # float(): a NumPy float64 option would otherwise promote float32 arrays to float64.
        lr, alpha, eps = float(group["lr"]), float(group["alpha"]), float(group["eps"])
        weight_decay, momentum = float(group["weight_decay"]), float(group["momentum"])
        tensorflow = group["eps_inside_sqrt"]
        xp = backend.get_array_module(param)
        g = grad + weight_decay * param if weight_decay != 0 else grad

        if "square_avg" not in state:
            state["square_avg"] = xp.ones_like(param) if tensorflow else xp.zeros_like(param)
        square_avg = state["square_avg"]
        square_avg *= alpha
        square_avg += (1 - alpha) * (g * g)
        variance = square_avg
        if group["centered"]:
            if "grad_avg" not in state:
                state["grad_avg"] = xp.zeros_like(param)
            grad_avg = state["grad_avg"]
            grad_avg *= alpha
            grad_avg += (1 - alpha) * g
            variance = square_avg - grad_avg * grad_avg
        denominator = xp.sqrt(variance + eps) if tensorflow else xp.sqrt(variance) + eps

        # TF keeps lr inside the buffer and steps by it; PyTorch keeps lr outside and steps by lr·buffer.
        scaled = lr * g / denominator if tensorflow else g / denominator
        if momentum > 0:
            if "momentum_buffer" not in state:
                state["momentum_buffer"] = xp.zeros_like(param)
            buffer = state["momentum_buffer"]
            buffer *= momentum
            buffer += scaled
            scaled = buffer
        if tensorflow:
            param -= scaled
        else:
            param -= lr * scaled
