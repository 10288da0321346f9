"""Exponential moving average (EMA) of the parameters, used for evaluation (Inception-v3 §8,
"a running average of the parameters"; TF-slim's decay 0.9999, papers.md §7.4).

After every optimizer step, for every parameter θ with average θ̄:

    θ̄ ← d·θ̄ + (1 − d)·θ          d = decay

so θ̄ averages roughly the last 1/(1 − d) steps (10,000 for 0.9999). The averaged weights are
smoother than the last iterate and usually evaluate a little better; training itself never uses them.

Warm-up (TensorFlow's ``ExponentialMovingAverage(num_updates=...)``): with ``warmup=True`` the
decay of update number n (1, 2, 3 …) is min(d, (1 + n)/(10 + n)), so early averages are not
dominated by the random initial weights — essential for short runs, where 0.9999 would still be
~99% the initialisation after 100 steps. ``warmup=False`` is the plain formula.

Buffers (batch-norm running statistics) are not averaged: they are running averages already, and
evaluation with the averaged weights uses the model's current ones. The averages are kept in the
parameters' dtype (float32) on their device.
"""
from __future__ import annotations

import contextlib

from .. import backend

__all__ = ["ModelEMA"]


class ModelEMA:
    """The moving average of ``model``'s parameters: ``ema.update(model)`` after each step,
    ``with ema.average_parameters(model): evaluate(model)`` to evaluate with the averages."""

    def __init__(self, model, decay=0.9999, warmup=True):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"ModelEMA: decay must be in [0, 1), got {decay}")
        self.decay, self.warmup = float(decay), bool(warmup)
        self.num_updates = 0
        self.shadow = {name: p.data.copy() for name, p in model.named_parameters()}

    def current_decay(self):
        """The decay the next update uses (see the module docstring for warm-up)."""
        n = self.num_updates + 1
        return min(self.decay, (1 + n) / (10 + n)) if self.warmup else self.decay

    def update(self, model):
        """θ̄ ← d·θ̄ + (1 − d)·θ for every parameter, in place."""
        d = self.current_decay()
        for name, p in model.named_parameters():
            average = self.shadow[name]
            average *= average.dtype.type(d)
            average += average.dtype.type(1 - d) * p.data.astype(average.dtype, copy=False)
        self.num_updates += 1

    def copy_to(self, model):
        """Overwrite ``model``'s parameters with the averages."""
        for name, p in model.named_parameters():
            p.data[...] = self.shadow[name]

    @contextlib.contextmanager
    def average_parameters(self, model):
        """Inside the block ``model``'s parameters hold the averages; the trained values come back
        afterwards (also after an exception)."""
        saved = {name: p.data.copy() for name, p in model.named_parameters()}
        self.copy_to(model)
        try:
            yield model
        finally:
            for name, p in model.named_parameters():
                p.data[...] = saved[name]

    def state_dict(self):
        return {"decay": self.decay, "warmup": self.warmup, "num_updates": self.num_updates,
                "shadow": dict(self.shadow)}

    def load_state_dict(self, state):
        missing = set(self.shadow) - set(state["shadow"])
        if missing:
            raise ValueError(f"ModelEMA.load_state_dict: no average for parameters {sorted(missing)}")
        self.decay, self.warmup = float(state["decay"]), bool(state["warmup"])
        self.num_updates = int(state["num_updates"])
        for name, average in self.shadow.items():
            value = backend.to_device(state["shadow"][name], backend.device_of(average))
            average[...] = value
