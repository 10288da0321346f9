"""Learning-rate schedules, with PyTorch's ``torch.optim.lr_scheduler`` API.

    optimizer = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    scheduler = optim.lr_scheduler.StepLR(optimizer, step_size=30, gamma=0.1)
    for epoch in range(90):
        for images, labels in loader:
            ...; optimizer.step()
        scheduler.step()                       # once per epoch

A scheduler counts its own steps in ``last_epoch`` (t). Building it records each group's lr as
``group["initial_lr"]`` (the base lr η; kept if already there) and sets the lr for t = 0;
``step()`` moves to t + 1 and sets the lr for it. What t counts is the caller's choice: call
``step()`` once per epoch and t is the epoch, once per batch and t is the batch (cosine decay and
warm-up in Bag of Tricks count batches). ``get_last_lr()`` lists the lrs it last set, one per group.

Every schedule but ReduceLROnPlateau is a closed form, lr(t) = f(η, t): the lr at step t depends on t
alone, which is easy to read and to test. PyTorch computes the same values recursively (multiplying the
current lr), which lets it stack schedulers on one optimizer; here one schedule is wrapped in another
instead: ``LinearWarmup(optimizer, m, after=CosineAnnealingLR(...))``. A scheduler owns the lr: an lr
set by hand is overwritten at the next ``step()``.

Checkpoints: ``scheduler.state_dict()`` is a dict of numbers and lists, for ``minicnn.save``. The lrs
themselves travel in the optimizer's state dict (its groups, with ``initial_lr``). To resume, build the
optimizer and the scheduler as at the start, then load both.

The papers' schedules (papers.md §2.4, §3.2, §4.2, §4.4, §5.2, §7.4):

    AlexNet, VGG, ResNet   lr ÷10 when validation error stops improving:
                           ReduceLROnPlateau(optimizer, mode="min", factor=0.1, patience=...), step(val_error)
    step decay             ÷10 every 30 epochs: StepLR(optimizer, 30, 0.1); or MultiStepLR(optimizer, [30, 60, 80])
    Inception-v3           ×0.94 every 2 epochs: StepLR(optimizer, step_size=2, gamma=0.94), per epoch
                           (TF-slim's exponential_decay with staircase=True; per batch: step_size=2·batches
                           per epoch). ExponentialLR(optimizer, gamma=0.94 ** 0.5) is the smooth version.
    Bag of Tricks          lr = linear_scaling_rule(0.1, batch_size); 5 warm-up epochs, then cosine, per batch:
                           LinearWarmup(optimizer, 5 * n, after=CosineAnnealingLR(optimizer, T_max=(epochs - 5) * n))
                           with n batches per epoch
"""
from __future__ import annotations

import math
import numbers

from ..autograd import Tensor
from .optimizer import Optimizer

__all__ = ["LRScheduler", "LambdaLR", "StepLR", "MultiStepLR", "ExponentialLR", "CosineAnnealingLR",
           "ReduceLROnPlateau", "LinearWarmup", "linear_scaling_rule"]


def linear_scaling_rule(base_lr, batch_size, base_batch_size=256):
    """The lr for ``batch_size``: ``base_lr · batch_size / base_batch_size`` (Goyal et al. 2017).

    A batch k times larger averages k times as many gradients, so its gradient is less noisy and a
    k-times-larger step keeps the progress per example the same. Bag of Tricks: 0.1 · b/256 for ResNet-50
    (b = 1024 → 0.4). Large lrs need a warm-up (``LinearWarmup``) to start stably.
    """
    _check_number("linear_scaling_rule", "base_lr", base_lr, minimum=0)
    _check_int("linear_scaling_rule", "batch_size", batch_size, minimum=1)
    _check_int("linear_scaling_rule", "base_batch_size", base_batch_size, minimum=1)
    return base_lr * batch_size / base_batch_size


class LRScheduler:
    """Base class: a subclass writes ``get_lr()``, the lrs (one per group) at step ``self.last_epoch``.

    optimizer  the Optimizer whose ``param_groups[i]["lr"]`` it sets
    base_lrs   the groups' ``initial_lr`` (η), recorded when the scheduler is built
    """

    def __init__(self, optimizer):
        self.optimizer = _check_optimizer(type(self).__name__, optimizer)
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])      # a second scheduler keeps the first's base
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = 0
        self._set_lrs(self.get_lr())

    def get_lr(self):
        """The lr of each parameter group at step ``last_epoch``."""
        raise NotImplementedError(f"{type(self).__name__}.get_lr")

    def step(self):
        """Advance to the next epoch (or batch) and set its lr in the optimizer."""
        self.last_epoch += 1
        self._set_lrs(self.get_lr())

    def get_last_lr(self):
        """The lrs set by the last ``step()`` (or by building the scheduler), one per parameter group."""
        return list(self._last_lr)

    def _set_lrs(self, lrs):
        groups = self.optimizer.param_groups
        if len(groups) != len(lrs):
            raise ValueError(f"{type(self).__name__}: the optimizer has {len(groups)} parameter groups but the "
                             f"scheduler was built for {len(lrs)}; build the scheduler after add_param_group")
        for group, lr in zip(groups, lrs):
            group["lr"] = lr
        self._last_lr = list(lrs)

    # ---- state dicts --------------------------------------------------------------------------------

    _not_saved = ("optimizer",)

    def state_dict(self):
        """The scheduler's state (counters and options, not the optimizer): a dict for ``minicnn.save``."""
        return self._own_state()

    def load_state_dict(self, state_dict):
        """Restore ``state_dict()`` (possibly via save/load) into a scheduler built the same way."""
        self._load_own_state(state_dict)

    def _own_state(self):
        # Copies of the lists: the state dict is a snapshot, unchanged by later steps.
        return {key: list(value) if isinstance(value, list) else value
                for key, value in vars(self).items() if key not in self._not_saved}

    def _check_own_state(self, state_dict):
        expected = set(self._own_state())
        if not isinstance(state_dict, dict) or set(state_dict) != expected:
            got = sorted(map(str, state_dict)) if isinstance(state_dict, dict) else type(state_dict).__name__
            raise ValueError(f"{type(self).__name__}.load_state_dict: expected a dict with keys {sorted(expected)} "
                             f"(from {type(self).__name__}.state_dict()), got {got}")

    def _load_own_state(self, state_dict):
        self._check_own_state(state_dict)
        self.__dict__.update({key: list(value) if isinstance(value, (list, tuple)) else value
                              for key, value in state_dict.items()})


class LambdaLR(LRScheduler):
    """``LambdaLR(optimizer, lr_lambda)``: lr(t) = η · lr_lambda(t).

    lr_lambda  a function of the step t returning a factor, or a list of them, one per parameter group

    The functions are not part of the state dict (functions cannot be saved without pickle): build the
    scheduler with the same functions, then load the state.
    """

    _not_saved = ("optimizer", "lr_lambdas")

    def __init__(self, optimizer, lr_lambda):
        _check_optimizer("LambdaLR", optimizer)
        groups = len(optimizer.param_groups)
        lambdas = list(lr_lambda) if isinstance(lr_lambda, (list, tuple)) else [lr_lambda] * groups
        if len(lambdas) != groups:
            raise ValueError(f"LambdaLR: expected one lr_lambda or {groups} (one per parameter group), "
                             f"got {len(lambdas)}")
        for i, function in enumerate(lambdas):
            if not callable(function):
                raise TypeError(f"LambdaLR: lr_lambda must be a function of the step, got "
                                f"{type(function).__name__}" + (f" at position {i}" if groups > 1 else ""))
        self.lr_lambdas = lambdas
        super().__init__(optimizer)

    def get_lr(self):
        return [base * function(self.last_epoch) for base, function in zip(self.base_lrs, self.lr_lambdas)]


class StepLR(LRScheduler):
    """``StepLR(optimizer, step_size, gamma=0.1)``: lr(t) = η · gamma^⌊t / step_size⌋.

    ÷10 every 30 epochs: ``StepLR(optimizer, 30, 0.1)``. Inception-v3's ×0.94 every 2 epochs:
    ``StepLR(optimizer, step_size=2, gamma=0.94)`` stepped per epoch.
    """

    def __init__(self, optimizer, step_size, gamma=0.1):
        self.step_size = _check_int("StepLR", "step_size", step_size, minimum=1)
        self.gamma = _check_number("StepLR", "gamma", gamma, minimum=0, strict=True)
        super().__init__(optimizer)

    def get_lr(self):
        return [base * self.gamma ** (self.last_epoch // self.step_size) for base in self.base_lrs]


class MultiStepLR(LRScheduler):
    """``MultiStepLR(optimizer, milestones, gamma=0.1)``: lr(t) = η · gamma^(number of milestones ≤ t).

    milestones  increasing step numbers; from each one on, the lr is multiplied by gamma once more.
                ResNet's ÷10 at epochs 30 and 60: ``MultiStepLR(optimizer, [30, 60])``
    """

    def __init__(self, optimizer, milestones, gamma=0.1):
        if isinstance(milestones, (str, bytes)) or not hasattr(milestones, "__iter__"):
            raise ValueError(f"MultiStepLR: milestones must be a list of step numbers, got {milestones!r}")
        milestones = [_check_int("MultiStepLR", "each milestone", m, minimum=0) for m in milestones]
        if any(a >= b for a, b in zip(milestones, milestones[1:])):
            raise ValueError(f"MultiStepLR: milestones must be strictly increasing, got {milestones}")
        self.milestones = milestones
        self.gamma = _check_number("MultiStepLR", "gamma", gamma, minimum=0, strict=True)
        super().__init__(optimizer)

    def get_lr(self):
        passed = sum(1 for m in self.milestones if m <= self.last_epoch)
        return [base * self.gamma ** passed for base in self.base_lrs]


class ExponentialLR(LRScheduler):
    """``ExponentialLR(optimizer, gamma)``: lr(t) = η · gamma^t, a factor gamma every step.

    Inception-v3 decays ×0.94 every 2 epochs in steps (``StepLR(optimizer, 2, 0.94)``); the smooth
    curve through the same points is ``ExponentialLR(optimizer, gamma=0.94 ** 0.5)`` per epoch.
    """

    def __init__(self, optimizer, gamma):
        self.gamma = _check_number("ExponentialLR", "gamma", gamma, minimum=0, strict=True)
        super().__init__(optimizer)

    def get_lr(self):
        return [base * self.gamma ** self.last_epoch for base in self.base_lrs]


class CosineAnnealingLR(LRScheduler):
    """``CosineAnnealingLR(optimizer, T_max, eta_min=0)``: half a cosine from η down to eta_min in T_max steps.

        lr(t) = eta_min + (η − eta_min) · (1 + cos(π · t / T_max)) / 2

    Bag of Tricks' cosine decay (eta_min = 0, t and T_max counted in batches, warm-up excluded). Past
    T_max the cosine goes on and the lr rises again, as PyTorch's does (SGDR without restarts):
    choose T_max = the number of steps you will take.
    """

    def __init__(self, optimizer, T_max, eta_min=0):
        self.T_max = _check_int("CosineAnnealingLR", "T_max", T_max, minimum=1)
        self.eta_min = _check_number("CosineAnnealingLR", "eta_min", eta_min, minimum=0)
        super().__init__(optimizer)

    def get_lr(self):
        cosine = (1 + math.cos(math.pi * self.last_epoch / self.T_max)) / 2
        return [self.eta_min + (base - self.eta_min) * cosine for base in self.base_lrs]


class ReduceLROnPlateau(LRScheduler):
    """``ReduceLROnPlateau(optimizer, mode="min", factor=0.1, patience=10, threshold=1e-4,
    threshold_mode="rel", cooldown=0, min_lr=0, eps=1e-8)``; ``step(metric)`` once per epoch.

    "Divide the learning rate by 10 when the validation error stops improving" (AlexNet, VGG, ResNet),
    with PyTorch's rules. Each ``step(metric)``:

        better   mode "min": metric < best·(1 − threshold) ("rel") or metric < best − threshold ("abs");
                 mode "max": metric > best·(1 + threshold) or metric > best + threshold
        if better: best = metric, bad epochs = 0;  else: bad epochs += 1
        during a cooldown (the ``cooldown`` epochs after a reduction) bad epochs are not counted
        if bad epochs > patience: lr = max(lr · factor, min_lr) for each group (skipped when the change
                 would be at most eps), then the cooldown starts and bad epochs = 0

    So with patience p the lr drops after p + 1 epochs without improvement. Unlike the other schedules
    this one multiplies the current lr: it has no closed form, it depends on the metrics.

    mode       "min" for a loss or an error, "max" for an accuracy
    min_lr     a number, or a list with one per parameter group
    """

    def __init__(self, optimizer, mode="min", factor=0.1, patience=10, threshold=1e-4, threshold_mode="rel",
                 cooldown=0, min_lr=0, eps=1e-8):
        name = "ReduceLROnPlateau"
        self.optimizer = _check_optimizer(name, optimizer)
        if mode not in ("min", "max"):
            raise ValueError(f"{name}: mode must be 'min' or 'max', got {mode!r}")
        if threshold_mode not in ("rel", "abs"):
            raise ValueError(f"{name}: threshold_mode must be 'rel' or 'abs', got {threshold_mode!r}")
        self.mode, self.threshold_mode = mode, threshold_mode
        self.factor = _check_number(name, "factor", factor, minimum=0, strict=True)
        if not factor < 1:
            raise ValueError(f"{name}: factor must be < 1 (it multiplies the lr), got {factor}")
        self.patience = _check_int(name, "patience", patience, minimum=0)
        self.threshold = _check_number(name, "threshold", threshold, minimum=0)
        self.cooldown = _check_int(name, "cooldown", cooldown, minimum=0)
        self.eps = _check_number(name, "eps", eps, minimum=0)
        groups = len(optimizer.param_groups)
        min_lrs = list(min_lr) if isinstance(min_lr, (list, tuple)) else [min_lr] * groups
        if len(min_lrs) != groups:
            raise ValueError(f"{name}: expected one min_lr or {groups} (one per parameter group), got {len(min_lrs)}")
        self.min_lrs = [_check_number(name, "min_lr", m, minimum=0) for m in min_lrs]
        self.best = math.inf if mode == "min" else -math.inf
        self.num_bad_epochs = 0
        self.cooldown_counter = 0
        self.last_epoch = 0
        self._last_lr = [group["lr"] for group in optimizer.param_groups]

    def get_lr(self):
        return [group["lr"] for group in self.optimizer.param_groups]

    def step(self, metric):
        """Record this epoch's validation ``metric`` (a number) and reduce the lr if it has plateaued."""
        if isinstance(metric, Tensor):
            metric = metric.item()
        try:
            if isinstance(metric, (str, bytes)):
                raise TypeError
            current = float(metric)                          # also NumPy scalars and 0-d arrays
        except (TypeError, ValueError):
            raise TypeError(f"ReduceLROnPlateau.step: expected the metric as a number, got "
                            f"{type(metric).__name__}") from None
        self.last_epoch += 1
        if self._is_better(current):
            self.best, self.num_bad_epochs = current, 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        lrs = self.get_lr()
        if self.num_bad_epochs > self.patience:
            lrs = [self._reduced(lr, min_lr) for lr, min_lr in zip(lrs, self.min_lrs)]
            self.cooldown_counter, self.num_bad_epochs = self.cooldown, 0
        self._set_lrs(lrs)

    def _is_better(self, current):
        if self.mode == "min":
            return current < (self.best * (1 - self.threshold) if self.threshold_mode == "rel"
                              else self.best - self.threshold)
        return current > (self.best * (1 + self.threshold) if self.threshold_mode == "rel"
                          else self.best + self.threshold)

    def _reduced(self, lr, min_lr):
        new_lr = max(lr * self.factor, min_lr)
        return new_lr if lr - new_lr > self.eps else lr


class LinearWarmup(LRScheduler):
    """``LinearWarmup(optimizer, warmup_steps, after=None, start_factor=0)``: a linear ramp to η, then ``after``.

    Bag of Tricks §3 (Goyal et al. 2017): at the start of training the parameters are far from any
    solution and a large lr diverges, so the lr climbs linearly over the first m = warmup_steps batches
    (or epochs), then the wrapped schedule runs as if training started there:

        lr(t) = η · (s + (1 − s) · (t + 1) / m)        for t = 0 … m − 1   (s = start_factor)
        lr(t) = after's lr at its step t − m           for t ≥ m           (η if after is None)

    With s = 0 the i-th batch (i = t + 1 = 1 … m) gets i·η/m, Bag of Tricks' "from 0": the ramp starts
    at 0 and reaches η on the m-th batch. (PyTorch's LinearLR(start_factor=s', total_iters=m − 1) gives the
    same ramp for s' = s + (1 − s)/m.)

    after  any other scheduler built on the same optimizer before this one (StepLR, CosineAnnealingLR,
           ReduceLROnPlateau …). It is stepped by this one, only after the warm-up; do not step it
           yourself. With ReduceLROnPlateau call ``step(metric)``: the metrics of warm-up steps are
           ignored, as the model is still warming up.
    """

    _not_saved = ("optimizer", "after")

    def __init__(self, optimizer, warmup_steps, after=None, start_factor=0):
        _check_optimizer("LinearWarmup", optimizer)
        self.warmup_steps = _check_int("LinearWarmup", "warmup_steps", warmup_steps, minimum=1)
        start_factor = _check_number("LinearWarmup", "start_factor", start_factor, minimum=0)
        if not start_factor <= 1:
            raise ValueError(f"LinearWarmup: start_factor must be in [0, 1], got {start_factor}")
        self.start_factor = start_factor
        if after is not None:
            if not isinstance(after, LRScheduler):
                raise TypeError(f"LinearWarmup: after must be a scheduler (StepLR, CosineAnnealingLR, …) or None, "
                                f"got {type(after).__name__}")
            if after.optimizer is not optimizer:
                raise ValueError(f"LinearWarmup: after ({type(after).__name__}) was built on another optimizer; "
                                 f"build it on the one given to LinearWarmup")
        self.after = after
        super().__init__(optimizer)

    def get_lr(self):
        t, m, s = self.last_epoch, self.warmup_steps, self.start_factor
        if t < m:
            return [base * (s + (1 - s) * (t + 1) / m) for base in self.base_lrs]
        return list(self.base_lrs) if self.after is None else self.after.get_last_lr()

    def step(self, metric=None):
        """Advance one step; past the warm-up, step the wrapped schedule (``metric`` for ReduceLROnPlateau)."""
        plateau = isinstance(self.after, ReduceLROnPlateau)
        if metric is not None and not plateau:
            raise ValueError(f"LinearWarmup.step: got a metric, but only a wrapped ReduceLROnPlateau takes one "
                             f"(after is {type(self.after).__name__})")
        if plateau and metric is None:
            raise ValueError("LinearWarmup.step: the wrapped ReduceLROnPlateau needs the metric: step(metric)")
        self.last_epoch += 1
        if plateau and self.last_epoch > self.warmup_steps:
            self.after.step(metric)
        elif self.after is not None and self.last_epoch > self.warmup_steps:
            self.after.step()
        self._set_lrs(self.get_lr())

    def state_dict(self):
        """This scheduler's state, with the wrapped one's under "after"."""
        return dict(self._own_state(), after=None if self.after is None else self.after.state_dict())

    def load_state_dict(self, state_dict):
        if not isinstance(state_dict, dict) or "after" not in state_dict:
            got = sorted(map(str, state_dict)) if isinstance(state_dict, dict) else type(state_dict).__name__
            raise ValueError(f"LinearWarmup.load_state_dict: expected a dict from LinearWarmup.state_dict(), "
                             f"got {got}")
        state_dict = dict(state_dict)
        after = state_dict.pop("after")
        if (after is None) != (self.after is None):
            raise ValueError(f"LinearWarmup.load_state_dict: the state dict was saved "
                             f"{'without' if after is None else 'with'} a wrapped scheduler, this one has "
                             f"{'none' if self.after is None else type(self.after).__name__}")
        self._check_own_state(state_dict)         # both checked before either is changed
        if self.after is not None:
            self.after.load_state_dict(after)
        self._load_own_state(state_dict)


# ---- argument checks ----------------------------------------------------------------------------------

def _check_optimizer(name, optimizer):
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"{name}: expected a minicnn Optimizer (SGD, RMSprop, Adam …), got {type(optimizer).__name__}")
    return optimizer


def _check_int(name, option, value, minimum):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not value >= minimum:
        raise ValueError(f"{name}: {option} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_number(name, option, value, minimum, strict=False):
    """A real number >= minimum (> minimum if strict), finite; returned as given."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{name}: {option} must be a finite number, got {value!r}")
    if (strict and not value > minimum) or not value >= minimum:
        raise ValueError(f"{name}: {option} must be {'>' if strict else '>='} {minimum}, got {value!r}")
    return value
