"""``Optimizer``: the base class of SGD, RMSprop and Adam, with PyTorch's parameter groups and state dicts.

An optimizer holds

    param_groups  a list of dicts; each has "params" (a list of tensors) and its own options (lr,
                  momentum, weight_decay …), so that e.g. biases and BN parameters can go without weight
                  decay ("no bias decay"). Options a group does not give come from ``defaults``.
                  lr schedulers change ``group["lr"]`` between steps.
    state         per-parameter state, ``{param: {"momentum_buffer": array, ...}}``; arrays live on the
                  parameter's device with its dtype

A subclass implements ``update(param, grad, state, group)`` — one parameter's update, in place, on raw
arrays — and ``step()`` calls it for every parameter that has a gradient, under ``no_grad()``.

``state_dict()`` refers to parameters by their position (0, 1, 2 … across the groups in order), as
PyTorch does, so it can be saved with ``minicnn.save`` and loaded into a fresh optimizer over a fresh
model: training then continues exactly where it stopped.
"""
from __future__ import annotations

from collections import defaultdict

import numpy as np

from .. import backend
from ..autograd import Tensor, enable_grad, no_grad

__all__ = ["Optimizer", "required"]


class _RequiredParameter:
    """The default of an option that has none (SGD's lr): every parameter group must then give it."""

    def __repr__(self):
        return "<required parameter>"


required = _RequiredParameter()


class Optimizer:
    """Base class: ``Optimizer(params, defaults)``.

    params    an iterable of Tensors, or of dicts (parameter groups) with a "params" entry and options
    defaults  a dict of the options, used where a group does not give its own
    """

    def __init__(self, params, defaults):
        self.defaults = dict(defaults)
        self.state = defaultdict(dict)  # Tensor -> dict, as in PyTorch; Tensors hash by identity
        self.param_groups = []
        if isinstance(params, (Tensor, dict)):
            raise TypeError(f"{self._name}: params should be an iterable of Tensors or of dicts (parameter "
                            f"groups), got a single {type(params).__name__}; wrap it in a list")
        if isinstance(params, (set, frozenset)):
            raise TypeError(self._unordered_message)
        groups = list(params)
        if not groups:
            raise ValueError(f"{self._name}: got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    @property
    def _name(self):
        return type(self).__name__

    @property
    def _unordered_message(self):
        return (f"{self._name}: parameters must be given in an ordered collection, got a set; its order "
                f"changes between runs, and state dicts refer to parameters by position")

    def add_param_group(self, param_group):
        """Add a group ``{"params": [...], option: value ...}``; missing options come from ``defaults``.

        Used to unfreeze layers while training: the new parameters get their own options.
        """
        if not isinstance(param_group, dict):
            raise TypeError(f"{self._name}.add_param_group: expected a dict with a 'params' entry, "
                            f"got {type(param_group).__name__}")
        if "params" not in param_group:
            raise ValueError(f"{self._name}.add_param_group: the group has no 'params' entry; "
                             f"got keys {sorted(param_group)}")
        params = param_group["params"]
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, (set, frozenset)):
            raise TypeError(self._unordered_message)
        params = list(params)
        for i, p in enumerate(params):
            if not isinstance(p, Tensor):
                raise TypeError(f"{self._name}: can only optimize Tensors, got {type(p).__name__} at position {i}")
            if not p.is_leaf:
                raise ValueError(f"{self._name}: can only optimize leaf Tensors (parameters), but the one at "
                                 f"position {i} (shape {p.shape}) is the result of an operation")
        # By identity: Tensor's == compares elementwise.
        seen = {id(p) for group in self.param_groups for p in group["params"]}
        if len({id(p) for p in params}) != len(params) or any(id(p) in seen for p in params):
            raise ValueError(f"{self._name}: some parameters appear more than once (within a group or in "
                             f"several groups); each parameter must be given once")

        group = dict(param_group, params=params)
        for option, default in self.defaults.items():
            if default is required and option not in group:
                raise ValueError(f"{self._name}: parameter group {len(self.param_groups)} does not give "
                                 f"{option!r}, which has no default; pass {option}=... to {self._name}")
            group.setdefault(option, default)
        self.check_options(group)
        self.param_groups.append(group)

    def check_options(self, group):
        """Raise ValueError naming the optimizer if a group's options are invalid (subclasses override)."""

    def zero_grad(self, set_to_none=True):
        """Clear every parameter's gradient: ``grad = None`` (default), or zeros if ``set_to_none=False``.

        The zeros are a new array: ``.grad`` arrays may be shared between parameters by backward.
        """
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                else:
                    xp = backend.get_array_module(p.grad.data)
                    p.grad = Tensor(xp.zeros_like(p.grad.data))

    def step(self, closure=None):
        """Update every parameter that has a gradient; parameters with ``grad is None`` are skipped.

        closure  optional function that re-evaluates the model and returns the loss (it is run with
                 gradients enabled, before the update); its result is returned
        """
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        with no_grad():
            for group in self.param_groups:
                for p in group["params"]:
                    if p.grad is None:
                        continue
                    state = self.state[p]
                    backend.check_same_backend(f"{self._name}.step", p.data, p.grad.data,
                                               *(v for v in state.values() if hasattr(v, "shape")))
                    self.update(p.data, p.grad.data, state, group)
        return loss

    def update(self, param, grad, state, group):
        """Update one parameter array ``param`` in place from ``grad``; ``grad`` must not be modified.

        state  this parameter's state dict (starts empty; keep momentum buffers etc. here)
        group  the parameter's group: its options
        """
        raise NotImplementedError(f"{self._name}.update")

    # ---- state dicts --------------------------------------------------------------------------------

    def state_dict(self):
        """``{"state": {index: {name: array}}, "param_groups": [{option: value, "params": [index, ...]}]}``.

        Parameters are numbered 0, 1, 2 … across the groups in order. As in PyTorch the arrays are the
        optimizer's own (not copies): save the dict (``minicnn.save``) before training on.
        """
        index = {}
        groups = []
        for group in self.param_groups:
            numbers = []
            for p in group["params"]:
                index[id(p)] = len(index)
                numbers.append(index[id(p)])
            groups.append(dict(group, params=numbers))
        state = {index[id(p)]: dict(s) for p, s in self.state.items() if s}
        return {"state": dict(sorted(state.items())), "param_groups": groups}

    def load_state_dict(self, state_dict):
        """Restore options and per-parameter state from ``state_dict()`` (possibly via save/load).

        The optimizer must have the same groups with the same numbers of parameters. State arrays are
        copied onto each parameter's device, floating ones cast to its dtype.
        """
        name = f"{self._name}.load_state_dict"
        if not isinstance(state_dict, dict) or not {"state", "param_groups"} <= set(state_dict):
            raise ValueError(f"{name}: expected a dict with 'state' and 'param_groups' entries (from "
                             f"state_dict()), got {type(state_dict).__name__}"
                             + (f" with keys {sorted(map(str, state_dict))}" if isinstance(state_dict, dict) else ""))
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"{name}: the state dict has {len(saved_groups)} parameter groups, this optimizer "
                             f"has {len(self.param_groups)}")
        for i, (saved, group) in enumerate(zip(saved_groups, self.param_groups)):
            if len(saved["params"]) != len(group["params"]):
                raise ValueError(f"{name}: parameter group {i} has {len(saved['params'])} parameters in the "
                                 f"state dict and {len(group['params'])} in this optimizer")
        params = {}
        for saved, group in zip(saved_groups, self.param_groups):
            params.update(zip(saved["params"], group["params"]))

        state = {}
        for index, saved_state in state_dict["state"].items():
            if index not in params:
                raise ValueError(f"{name}: the state dict has state for parameter {index!r}, but its groups "
                                 f"only list parameters {sorted(params)}")
            p = params[index]
            state[p] = {key: _to_parameter(value, p, f"{name}: state[{index!r}][{key!r}]")
                        for key, value in saved_state.items()}
        groups = [dict(saved, params=group["params"]) for saved, group in zip(saved_groups, self.param_groups)]
        for group in groups:
            self.check_options(group)
        self.state, self.param_groups = defaultdict(dict, state), groups

    def __repr__(self):
        lines = [f"{self._name} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {key}: {group[key]}" for key in sorted(group) if key != "params"]
        return "\n".join(lines + [")"])


def _to_parameter(value, p, where):
    """A copy of a saved state value on ``p``'s device; floating arrays take ``p``'s dtype. Scalars pass."""
    if isinstance(value, Tensor):
        value = value.data
    if not hasattr(value, "shape"):
        return value
    if value.ndim > 0 and value.shape != p.shape:
        raise ValueError(f"{where} has shape {value.shape}, but the parameter has shape {p.shape}; is this "
                         f"the state dict of another model?")
    dtype = p.dtype if np.dtype(value.dtype).kind == "f" else value.dtype
    xp = backend.get_array_module(p.data)
    return xp.array(backend.to_device(value, p.device), dtype=dtype, copy=True)
