"""Mixed-precision training: float16 compute, float32 master weights, dynamic loss scaling
(Micikevicius et al. 2018; Bag of Tricks §3.2, papers.md §4.2).

Why. float16 halves memory and, on GPUs with tensor cores, multiplies matrix throughput. But it has
10 mantissa bits and a range of about 6·10⁻⁸ … 65504: an update lr·g that is smaller than 2⁻¹¹ of a
weight vanishes when added in float16, and small gradients underflow to zero. Mixed precision keeps
each number where it is safe:

    what                        dtype     where in minicnn
    master weights, update      float32   the Parameters themselves, between steps; optimizer state
    forward and backward        float16   ``cast_parameters(model)`` + a float16 input
    batch-norm statistics       float32   BN buffers are never cast (batch_norm updates them in place)
    loss (softmax, log)         float32   the trainer casts the logits up before the loss
    gradients for the update    float32   ``GradScaler.unscale_`` casts them up and divides by the scale

The design, step by step (what ``Trainer`` does with ``amp=True``):

    with cast_parameters(model):                 # p.data <- float16 copy of the float32 master
        logits = model(x.astype(float16))        # every conv/matmul runs in float16
        loss = cross_entropy(logits.astype(float32), y)
        scaler.scale(loss).backward()            # backward of S·loss: p.grad = S·g, in float16
    # leaving the block puts the float32 masters back into p.data
    scaler.unscale_(optimizer)                   # p.grad <- float32(p.grad) / S; any inf/NaN?
    clip_grad_norm_(model.parameters(), 2.0)     # optional, on the true (unscaled) gradients
    scaler.step(optimizer)                       # skipped if an inf/NaN was found
    scaler.update()                              # halve S after an overflow, double it after N clean steps

The float16 copy is made afresh from the float32 masters at every step (one cast per parameter), so
the masters are the only state: checkpoints, EMA and the optimizer never see float16. Parameters stay
the same objects (only their ``.data`` array is swapped), so the optimizer keeps working on them.

Loss scaling. Gradients of S·loss are S times the true ones, which lifts small values out of the
float16 underflow range. Too large an S overflows to inf; then the step is skipped (the weights do
not move), S is halved, and training goes on. After ``growth_interval`` steps without overflow S is
doubled again, so S hovers just below the largest value that does not overflow ("dynamic" scaling).
With ``growth_interval`` huge and ``init_scale`` fixed you get static scaling.

On the CPU NumPy has no float16 matrix multiply (it converts element by element), so ``amp`` is
*slower* there; it is here to be read and tested on the CPU and to be fast with CuPy on a GPU.
"""
from __future__ import annotations

import contextlib
import math

import numpy as np

from .. import backend
from ..autograd import Tensor

__all__ = ["GradScaler", "cast_parameters"]


@contextlib.contextmanager
def cast_parameters(model, dtype=np.float16):
    """Inside the block every parameter of ``model`` holds a ``dtype`` copy of its (float32) master
    array; on leaving, the masters are put back (also after an exception). Gradients computed inside
    arrive in ``dtype``. Buffers (batch-norm statistics) are not cast."""
    params = [p for p in model.parameters()]
    masters = [p.data for p in params]
    try:
        for p in params:
            p.data = p.data.astype(dtype)
        yield model
    finally:
        for p, master in zip(params, masters):
            p.data = master


class GradScaler:
    """Dynamic loss scaling with PyTorch's ``torch.cuda.amp.GradScaler`` interface.

    init_scale       S at the start (2¹⁶)
    growth_factor    S ← S·growth_factor after ``growth_interval`` consecutive steps without inf/NaN (2)
    backoff_factor   S ← S·backoff_factor when a step's gradients hold inf/NaN (0.5)
    growth_interval  clean steps before growing (2000)
    enabled          False: every method is a pass-through (scale 1, no checks), so a training loop can
                     use one code path with and without mixed precision

    Per iteration: ``scale(loss).backward()``, optionally ``unscale_(optimizer)`` (before clipping),
    ``step(optimizer)``, ``update()``.
    """

    def __init__(self, init_scale=2.0 ** 16, growth_factor=2.0, backoff_factor=0.5, growth_interval=2000,
                 enabled=True):
        if not init_scale > 0 or not growth_factor > 1 or not 0 < backoff_factor < 1:
            raise ValueError(f"GradScaler: need init_scale > 0, growth_factor > 1 and 0 < backoff_factor < 1, "
                             f"got {init_scale}, {growth_factor}, {backoff_factor}")
        if int(growth_interval) < 1:
            raise ValueError(f"GradScaler: growth_interval must be a positive int, got {growth_interval}")
        self.enabled = bool(enabled)
        self._scale = float(init_scale)
        self.growth_factor, self.backoff_factor = float(growth_factor), float(backoff_factor)
        self.growth_interval = int(growth_interval)
        self._growth_tracker = 0        # consecutive clean steps since the last change of S
        self.skipped_steps = 0          # total steps skipped because of inf/NaN
        self._unscaled = False          # unscale_ already ran in this iteration
        self._found_inf = False         # ... and found inf/NaN

    def is_enabled(self):
        return self.enabled

    def get_scale(self):
        """The current loss scale S (1.0 when disabled)."""
        return self._scale if self.enabled else 1.0

    def scale(self, loss):
        """S·loss (a Tensor); backward of it gives S times the gradients."""
        if not self.enabled:
            return loss
        return loss * np.float32(self._scale)

    def unscale_(self, optimizer):
        """Divide every gradient of ``optimizer``'s parameters by S, in float32 (the parameter's own
        dtype), and note whether any is inf or NaN. Call at most once per iteration, before clipping."""
        if not self.enabled:
            return
        if self._unscaled:
            raise RuntimeError("GradScaler.unscale_ was already called since the last update()")
        inverse = 1.0 / self._scale
        found_inf = False
        for group in optimizer.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                xp = backend.get_array_module(p.grad.data)
                g = p.grad.data.astype(p.dtype) * p.dtype.type(inverse)      # float16 -> float32, / S
                if not bool(xp.isfinite(g).all()):
                    found_inf = True
                p.grad = Tensor(g)
        self._unscaled, self._found_inf = True, found_inf

    def step(self, optimizer):
        """``optimizer.step()`` unless the (unscaled) gradients hold inf/NaN; unscales first if needed.
        Returns None when the step was skipped (as PyTorch does), else the optimizer's return value."""
        if not self.enabled:
            return optimizer.step()
        if not self._unscaled:
            self.unscale_(optimizer)
        if self._found_inf:
            self.skipped_steps += 1
            return None
        return optimizer.step()

    @property
    def found_inf(self):
        """Whether the gradients of the current iteration held inf/NaN (its step is skipped)."""
        return self._found_inf

    def update(self, new_scale=None):
        """Adjust S for the next iteration: backoff after an overflow, growth after ``growth_interval``
        clean steps; or set it to ``new_scale``."""
        if not self.enabled:
            return
        if new_scale is not None:
            self._scale, self._growth_tracker = float(new_scale), 0
        elif self._found_inf:
            self._scale *= self.backoff_factor
            self._growth_tracker = 0
        else:
            self._growth_tracker += 1
            if self._growth_tracker == self.growth_interval:
                grown = self._scale * self.growth_factor
                if math.isfinite(grown):
                    self._scale = grown
                self._growth_tracker = 0
        self._unscaled = self._found_inf = False

    def state_dict(self):
        return {"scale": self._scale, "growth_factor": self.growth_factor,
                "backoff_factor": self.backoff_factor, "growth_interval": self.growth_interval,
                "growth_tracker": self._growth_tracker, "skipped_steps": self.skipped_steps,
                "enabled": self.enabled}

    def load_state_dict(self, state):
        self._scale = float(state["scale"])
        self.growth_factor, self.backoff_factor = float(state["growth_factor"]), float(state["backoff_factor"])
        self.growth_interval = int(state["growth_interval"])
        self._growth_tracker = int(state["growth_tracker"])
        self.skipped_steps = int(state.get("skipped_steps", 0))
        self.enabled = bool(state.get("enabled", self.enabled))
