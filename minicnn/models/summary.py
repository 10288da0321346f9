"""What a network does to the shape of its input: parameter counts, a per-layer summary with
multiply-adds, and the check that an input is large enough for a network's pooling stack.

    count_parameters(model)               number of parameter values (each shared Parameter once)
    summary(model, (3, 224, 224))         one forward pass on zeros of shape (1, 3, 224, 224);
                                          prints a table and returns a ModelSummary
    check_input_size(model, x)            raises InputTooSmallError naming the layer where the
                                          feature map vanishes and the smallest input that works

Multiply-add (MAC) convention — the one of papers.md §8.1 and of torchvision's "GFLOPS", which are
in fact MACs:
    Conv2d   Cout·OH·OW · (C/G)·KH·KW    (one multiply-add per weight per output position; bias free)
    Linear   in_features · out_features  (per sample)
    every other layer (BatchNorm, ReLU, pooling, LRN, dropout, residual add …) counts 0.
So the totals are those of the papers' tables (AlexNet 0.714 G, VGG-16 15.470 G, ResNet-50 4.089 G).
Counts are for one image: the summary runs a batch of one.

How the summary sees every layer without touching any class: for the duration of one forward pass,
each recorded module INSTANCE gets its own ``forward`` attribute (which shadows the class's method
and calls it), restored in a ``finally`` block. Recorded modules are the leaves (layers without
sub-modules) and any module that owns parameters directly. A module called twice gets two rows;
its parameters are listed on the first.

Input-size check. Shape letters: H, W input height and width; KH, KW, SH, SW, PH, PW the kernel,
stride and padding of a window (convolution or pooling). Every window layer maps a length
H to floor((H + 2·PH − DH·(KH − 1) − 1)/SH) + 1 (ceil for ceil-mode pooling); when that reaches
0 the network cannot run. The check traces H and W through the window layers in the order a chain
network applies them (registration order, or an explicit list for branched networks) and, on
failure, searches the smallest input that survives.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np

from .. import backend
from ..autograd import Tensor, no_grad
from ..functional.pool import pool_output_size
from ..nn.conv import Conv2d
from ..nn.layers import Linear
from ..nn.pool import AdaptiveAvgPool2d, AdaptiveMaxPool2d, GlobalAvgPool2d

__all__ = ["count_parameters", "summary", "LayerSummary", "ModelSummary", "check_input_size",
           "trace_feature_map", "InputSizeError", "InputTooSmallError", "window_layers"]


# ---------------------------------------------------------------- counting ---------------------

def count_parameters(model, trainable_only=False):
    """The number of parameter values of ``model`` (each shared Parameter counted once)."""
    return sum(int(p.size) for p in model.parameters() if p.requires_grad or not trainable_only)


@dataclass
class LayerSummary:
    """One row of a summary: a module call."""
    name: str                 # qualified name, e.g. "features.0"
    type: str                 # class name, e.g. "Conv2d"
    output_shape: tuple       # batch of one; a tuple of shapes if the module returns several tensors
    params: int               # parameters the module owns directly (0 on a second call)
    macs: int                 # multiply-adds of this call (see the module docstring)


@dataclass
class ModelSummary:
    """The structure ``summary`` returns; ``str()`` (or ``print``) gives the table."""
    model: str
    input_shape: tuple
    output_shape: tuple
    rows: list = field(default_factory=list)
    total_params: int = 0
    trainable_params: int = 0
    total_macs: int = 0

    @property
    def uncalled_params(self):
        """Parameters of modules the forward pass never called (e.g. Inception's auxiliary head in
        eval mode): part of ``total_params``, absent from the rows."""
        return self.total_params - sum(row.params for row in self.rows)

    def table(self):
        header = ("Layer", "Type", "Output shape", "Params", "MACs")
        body = [(r.name, r.type, _shape_text(r.output_shape), f"{r.params:,}", f"{r.macs:,}")
                for r in self.rows]
        widths = [max(len(line[i]) for line in [header, *body]) for i in range(5)]
        aligns = ("<", "<", "<", ">", ">")

        def line(cells):
            return "  ".join(f"{c:{a}{w}}" for c, a, w in zip(cells, aligns, widths)).rstrip()

        rule = "-" * len(line(header))
        lines = [f"{self.model}: input {self.input_shape} -> output {_shape_text(self.output_shape)}",
                 rule, line(header), rule, *map(line, body), rule,
                 f"Total params:     {self.total_params:,} (trainable {self.trainable_params:,})",
                 f"Total MACs:       {self.total_macs:,} ({self.total_macs / 1e9:.3f} G, one image)"]
        if self.uncalled_params:
            lines.append(f"Params in modules not called by this forward pass: {self.uncalled_params:,}")
        lines.append("MACs: Conv2d Cout·OH·OW·(C/G)·KH·KW and Linear in·out; other layers count 0.")
        return "\n".join(lines)

    def __str__(self):
        return self.table()


def _shape_text(shape):
    if shape and isinstance(shape[0], tuple):
        return ", ".join(map(str, shape))
    return str(shape)


def _shapes(output):
    if isinstance(output, Tensor):
        return tuple(output.shape)
    if isinstance(output, (tuple, list)):
        return tuple(_shapes(o) for o in output)
    return ()


def _macs(module, output):
    """Multiply-adds of one call (batch of one): each weight value is used once per output position."""
    if not isinstance(output, Tensor) or not isinstance(module, (Conv2d, Linear)):
        return 0
    out_features = output.shape[1] if isinstance(module, Conv2d) else output.shape[-1]
    positions = int(output.size) // int(out_features)          # OH·OW for a conv, 1 for a linear
    return positions * int(module.weight.size)                 # = Cout·OH·OW·(C/G)·KH·KW or in·out


def _is_recorded(module):
    # Leaves, and modules owning parameters themselves (their row carries those parameters).
    return next(module.children(), None) is None or next(module.parameters(recurse=False), None) is not None


def summary(model, input_shape, verbose=True):
    """Run ``model`` once on zeros of shape (1, *input_shape) — in eval mode, without recording a
    graph — and return a ModelSummary with one row per layer call: qualified name, type, output
    shape, parameters and multiply-adds. Prints the table unless ``verbose=False``. The model's
    training mode is restored afterwards."""
    first = next(iter(model.parameters()), None)
    xp = backend.get_array_module(first.data) if first is not None else np
    dtype = first.dtype if first is not None else backend.get_default_dtype()
    x = Tensor(xp.zeros((1, *input_shape), dtype=dtype))

    rows, seen = [], set()
    recorded = [(name or type(model).__name__, m) for name, m in model.named_modules() if _is_recorded(m)]

    def recorder(name, module, original):
        def forward(*args, **kwargs):
            out = original(*args, **kwargs)
            params = 0 if id(module) in seen else sum(int(p.size) for p in module.parameters(recurse=False))
            seen.add(id(module))
            rows.append(LayerSummary(name, type(module).__name__, _shapes(out), params, _macs(module, out)))
            return out
        return forward

    was_training = [(m, m.training) for m in model.modules()]
    own_forward = {id(m): m.__dict__.get("forward") for _, m in recorded}
    try:
        for name, m in recorded:
            m.forward = recorder(name, m, m.forward)       # an instance attribute, not a class change
        model.eval()
        with no_grad():
            out = model(x)
    finally:
        for _, m in recorded:
            if own_forward[id(m)] is None:
                m.__dict__.pop("forward", None)
            else:
                m.forward = own_forward[id(m)]
        for m, mode in was_training:
            object.__setattr__(m, "training", mode)

    result = ModelSummary(type(model).__name__, (1, *input_shape), _shapes(out), rows,
                          count_parameters(model), count_parameters(model, trainable_only=True),
                          sum(r.macs for r in rows))
    if verbose:
        print(result.table())
    return result


# ---------------------------------------------------------------- input-size check -------------

class InputSizeError(ValueError):
    """An input whose height or width the network cannot take; the message names the layer and an
    input size that works."""


class InputTooSmallError(InputSizeError):
    """An input too small for a network's stack of strided windows: the feature map vanishes."""


def _pair(value):
    return (int(value), int(value)) if isinstance(value, (int, np.integer)) else tuple(int(v) for v in value)


def window_layers(model):
    """(qualified name, module) of the layers that change the spatial size — convolutions, pooling,
    adaptive and global pooling — in registration order (= the order a chain network applies them)."""
    return [(name, m) for name, m in model.named_modules()
            if hasattr(m, "kernel_size") or isinstance(m, (AdaptiveAvgPool2d, AdaptiveMaxPool2d, GlobalAvgPool2d))]


def _step(module, size, axis):
    """The output length along ``axis`` (0 = height, 1 = width) of one layer for input length ``size``."""
    if isinstance(module, GlobalAvgPool2d):
        return 1
    if isinstance(module, (AdaptiveAvgPool2d, AdaptiveMaxPool2d)):
        target = module.output_size
        target = target if isinstance(target, (tuple, list)) else (target, target)
        return size if target[axis] is None else int(target[axis])
    kernel = _pair(module.kernel_size)[axis]
    stride = _pair(module.stride if module.stride is not None else module.kernel_size)[axis]
    padding = _pair(getattr(module, "padding", 0))[axis]
    dilation = _pair(getattr(module, "dilation", 1))[axis]
    return pool_output_size(size, kernel, stride, padding, dilation, bool(getattr(module, "ceil_mode", False)))


def _trace_axis(layers, size, axis):
    """[(name, module, input length, output length)] until the first output length below 1."""
    steps = []
    for name, module in layers:
        out = _step(module, size, axis) if size >= 1 else 0
        steps.append((name, module, size, out))
        if out < 1:
            break
        size = out
    return steps


def trace_feature_map(layers, input_size):
    """(name, (OH, OW)) after each of ``layers`` for an input of ``input_size`` = (H, W); stops at
    the first layer whose output would be empty (its size then has a 0 or a negative entry)."""
    H, W = _pair(input_size)
    rows = list(itertools.zip_longest(_trace_axis(layers, H, 0), _trace_axis(layers, W, 1)))
    trace = []
    for by_height, by_width in rows:
        name = (by_height or by_width)[0]
        trace.append((name, (by_height[3] if by_height else 0, by_width[3] if by_width else 0)))
        if min(trace[-1][1]) < 1:
            break
    return trace


def _working_range(layers, axis, final=None, limit=4096):
    """(smallest, largest) input length along ``axis`` that survives every layer and, if ``final``
    is given, ends at exactly ``final`` (without ``final`` the largest is not searched: None).
    None if no length up to ``limit`` works."""
    good = []
    for size in range(1, limit + 1):
        steps = _trace_axis(layers, size, axis)
        if len(steps) == len(layers) and steps[-1][3] >= 1 and (final is None or steps[-1][3] == final):
            if final is None:
                return size, None
            good.append(size)
        elif good:
            break
    return (good[0], good[-1]) if good else None


def _describe(module):
    if not hasattr(module, "kernel_size"):
        return type(module).__name__
    k, s = _pair(module.kernel_size), _pair(module.stride if module.stride is not None else module.kernel_size)
    return f"{type(module).__name__} {k[0]}×{k[1]}/{s[0]}" + ("" if s[0] == s[1] else f",{s[1]}")


def check_input_size(model, x, layers=None, final_size=None):
    """Raise InputTooSmallError if an input of x's shape (N, C, H, W) would shrink to nothing in
    ``layers`` (default: ``window_layers(model)``, right for chain networks; a branched network
    passes its main path), or, with ``final_size`` = (OH, OW), if the last feature map is not the
    size a fixed fully connected head was built for (InputSizeError). The message names the layer and the smallest
    input size that works."""
    layers = window_layers(model) if layers is None else list(layers)
    shape = tuple(x.shape)
    if len(shape) != 4:
        raise ValueError(f"{type(model).__name__}: expected an input of shape (N, C, H, W), got {shape}")
    H, W = shape[2:]
    final = _pair(final_size) if final_size is not None else (None, None)
    trace = trace_feature_map(layers, (H, W))
    name, size = trace[-1] if trace else ("", (H, W))
    vanished = min(size) < 1
    if not vanished and (final_size is None or size == final):
        return
    need = [_working_range(layers, axis, final[axis]) for axis in (0, 1)]
    if None in need:
        works = "no input size up to 4096 works"
    elif final_size is None:
        works = f"the smallest input that works is {need[0][0]}×{need[1][0]}"
    elif need[0][0] == need[0][1] and need[1][0] == need[1][1]:
        works = f"the input that works is {need[0][0]}×{need[1][0]}"
    else:
        works = (f"inputs from {need[0][0]}×{need[1][0]} to {need[0][1]}×{need[1][1]} work "
                 f"(or build the model for this input size)")
    model_name = type(model).__name__
    if vanished:
        module = dict(layers)[name]
        before = trace[-2][1] if len(trace) > 1 else (H, W)
        raise InputTooSmallError(
            f"{model_name}: input {H}×{W} is too small: the feature map vanishes at layer {name!r} "
            f"({_describe(module)}), whose input is only {before[0]}×{before[1]}; {works}.")
    raise InputSizeError(
        f"{model_name}: input {H}×{W} gives a {size[0]}×{size[1]} feature map after layer {name!r}, but the "
        f"fully connected head was built for {final[0]}×{final[1]}; {works}.")
