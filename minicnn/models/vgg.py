"""VGG (Simonyan & Zisserman, ICLR 2015): configurations A, A-LRN, B, C, D and E of the paper's
Table 1, dense (fully convolutional) evaluation, and the paper's initialisation of deep nets from A.

    vgg11 vgg13 vgg16 vgg19            A, B, D, E as torchvision builds them (same layer names, so
    vgg11_bn … vgg19_bn                torchvision state dicts load); + BatchNorm after every conv
    vgg11_lrn                          A-LRN: A with LRN after the first conv (AlexNet's constants)
    vgg_c, vgg_c_bn                    C: D with the third conv of stages 3-5 a 1×1 conv
    vgg(config, batch_norm, ...)       any configuration by its Table 1 name
    fc_to_conv(model)                  the FC head as convolutions, for dense evaluation (§3.2 of
                                       the paper): also works on AlexNet
    init_from_vgg_a(deeper, trained_a) copy A's first four convs and its three FC layers

Shape letters: N batch, C channels, H, W height and width, K classes.

Every configuration: 3×3 convs with stride 1 and padding 1 (size kept), ReLU after each, five 2×2/2
max pools (224 → 7), then FC-4096, FC-4096 (ReLU and dropout 0.5 after each), FC-K. torchvision adds
an adaptive 7×7 average pool before the head, so inputs other than 224 (≥ 32) run; the parameter
and MAC counts are the paper's (papers.md §8.1: D has 138,357,544 parameters and 15.470 GMACs).

Initialisation (``init``), which the paper and torchvision do differently (papers.md §3.2, §11):
  * "paper": weights N(0, 0.01²) and zero biases. (The paper says "10⁻² variance", i.e. std 0.1;
    Caffe practice and most re-implementations use std 0.01 — we follow practice and say so.) The
    paper trained A from this init and initialised the deeper nets from A (``init_from_vgg_a``).
  * "torchvision" (default): Kaiming normal (fan_out, ReLU gain) for convs, N(0, 0.01²) for the FC
    layers, zero biases, BatchNorm γ = 1, β = 0. With it (or Glorot's) the deep nets train from
    scratch, as the authors noted after the submission.

Small inputs (``small_input=True``, papers.md §9, kuangliu's CIFAR VGG): the same conv stack,
five pools take 32×32 to 1×1×512, a global average pool, and one FC 512 → K. Use the ``_bn``
versions to train D and E from scratch (the counts of §9 are theirs: A 9,231,114, B 9,416,010,
D 14,728,266, E 20,040,522 at 32×32×3, 10 classes). 28×28 Fashion-MNIST images do not survive
five floor-mode pools (28 → 14 → 7 → 3 → 1 → 0): **minicnn pads them to 32×32** (2 zero pixels on
each side, Fashion-MNIST's own black background), which keeps the network exactly the paper's
stack; a 28×28 input is refused with an error naming the pool where it vanishes and 32×32 as the
size that works. (Ceil-mode pooling, 28 → 14 → 7 → 4 → 2 → 1, would be the other way out.)

``width_mult`` scales every conv and hidden FC width: a narrow network of full depth for fast
tests and lessons.
"""
from __future__ import annotations

from collections import OrderedDict

import numpy as np

from .. import nn
from ..functional.math import flatten
from .registry import register
from .summary import check_input_size

__all__ = ["VGG", "VGG_CONFIGS", "vgg", "vgg11", "vgg13", "vgg16", "vgg19", "vgg11_bn", "vgg13_bn",
           "vgg16_bn", "vgg19_bn", "vgg11_lrn", "vgg_c", "vgg_c_bn", "fc_to_conv", "FullyConvolutional",
           "init_from_vgg_a"]

# Table 1 of the paper, column by column: "conv3-64" is a 3×3 convolution with 64 output channels
# (the paper's notation, receptive field - channels), "conv1-256" a 1×1 one, "LRN" local response
# normalisation, "maxpool" a 2×2 max pool with stride 2. ReLUs (and BatchNorm in the _bn versions)
# follow every convolution and are not written, as in the table.
VGG_CONFIGS = {
    "A": ["conv3-64", "maxpool",
          "conv3-128", "maxpool",
          "conv3-256", "conv3-256", "maxpool",
          "conv3-512", "conv3-512", "maxpool",
          "conv3-512", "conv3-512", "maxpool"],
    "A-LRN": ["conv3-64", "LRN", "maxpool",
              "conv3-128", "maxpool",
              "conv3-256", "conv3-256", "maxpool",
              "conv3-512", "conv3-512", "maxpool",
              "conv3-512", "conv3-512", "maxpool"],
    "B": ["conv3-64", "conv3-64", "maxpool",
          "conv3-128", "conv3-128", "maxpool",
          "conv3-256", "conv3-256", "maxpool",
          "conv3-512", "conv3-512", "maxpool",
          "conv3-512", "conv3-512", "maxpool"],
    "C": ["conv3-64", "conv3-64", "maxpool",
          "conv3-128", "conv3-128", "maxpool",
          "conv3-256", "conv3-256", "conv1-256", "maxpool",
          "conv3-512", "conv3-512", "conv1-512", "maxpool",
          "conv3-512", "conv3-512", "conv1-512", "maxpool"],
    "D": ["conv3-64", "conv3-64", "maxpool",
          "conv3-128", "conv3-128", "maxpool",
          "conv3-256", "conv3-256", "conv3-256", "maxpool",
          "conv3-512", "conv3-512", "conv3-512", "maxpool",
          "conv3-512", "conv3-512", "conv3-512", "maxpool"],
    "E": ["conv3-64", "conv3-64", "maxpool",
          "conv3-128", "conv3-128", "maxpool",
          "conv3-256", "conv3-256", "conv3-256", "conv3-256", "maxpool",
          "conv3-512", "conv3-512", "conv3-512", "conv3-512", "maxpool",
          "conv3-512", "conv3-512", "conv3-512", "conv3-512", "maxpool"],
}

# LRN as in AlexNet (the paper: "the parameters of the LRN layer are those of [AlexNet]").
LRN_SIZE, LRN_ALPHA, LRN_BETA, LRN_K = 5, 1e-4, 0.75, 2.0


class VGG(nn.Module):
    """features (the conv stack) → avgpool → flatten → classifier.

    features    Sequential, (N, C, H, W) -> (N, 512, H/32, W/32)
    avgpool     AdaptiveAvgPool2d: to 7×7 (ImageNet head) or 1×1 (small-input head)
    classifier  Sequential, (N, 512·7·7) -> (N, K): FC-4096, ReLU, dropout, FC-4096, ReLU, dropout,
                FC-K; or, for small inputs, the single FC 512 -> K
    """

    def __init__(self, features, avgpool, classifier):
        super().__init__()
        self.features, self.avgpool, self.classifier = features, avgpool, classifier

    def forward(self, x):
        check_input_size(self, x)
        x = self.avgpool(self.features(x))
        return self.classifier(flatten(x, 1))


def _width(channels, width_mult):
    return max(1, int(round(channels * width_mult)))


def make_features(config, in_channels=3, batch_norm=False, width_mult=1.0, lrn_convention="paper"):
    """The conv stack of a Table 1 column, as one Sequential (torchvision's layout: conv, [BN], ReLU,
    …, MaxPool). Returns (features, channels of its output)."""
    layers, channels = [], in_channels
    for item in config:
        if item == "maxpool":
            layers.append(nn.MaxPool2d(2, 2))
        elif item == "LRN":
            layers.append(nn.LocalResponseNorm(LRN_SIZE, alpha=LRN_ALPHA, beta=LRN_BETA, k=LRN_K,
                                               convention=lrn_convention))
        elif item.startswith("conv"):
            kernel, width = (int(v) for v in item[len("conv"):].split("-"))
            width = _width(width, width_mult)
            layers.append(nn.Conv2d(channels, width, kernel, padding=kernel // 2))
            if batch_norm:
                layers.append(nn.BatchNorm2d(width))
            layers.append(nn.ReLU())
            channels = width
        else:
            raise ValueError(f"vgg: unknown layer {item!r} in a configuration (expected 'convK-C', 'LRN' "
                             f"or 'maxpool')")
    return nn.Sequential(*layers), channels


def vgg(config, batch_norm=False, num_classes=1000, in_channels=3, small_input=False, init="torchvision",
        dropout=0.5, width_mult=1.0, lrn_convention="paper"):
    """A VGG network from a Table 1 configuration name ("A", "A-LRN", "B", "C", "D", "E") or a list
    of layers in the same notation.

    batch_norm      BatchNorm2d after every conv (torchvision's ``_bn`` models)
    small_input     the small-input head: global average pool + one FC 512 -> K (32×32 inputs)
    init            "torchvision" (Kaiming fan_out convs, N(0, 0.01) FC) or "paper" (all N(0, 0.01))
    dropout         after fc6 and fc7 (ImageNet head only)
    lrn_convention  for A-LRN: "paper" (α in the sum) or "pytorch" (α/n, Caffe's)
    """
    if init not in ("torchvision", "paper"):
        raise ValueError(f"vgg: init must be 'torchvision' or 'paper', got {init!r}")
    layers = VGG_CONFIGS[config] if isinstance(config, str) else list(config)
    features, channels = make_features(layers, in_channels, batch_norm, width_mult, lrn_convention)
    if small_input:
        avgpool = nn.AdaptiveAvgPool2d((1, 1))
        classifier = nn.Sequential(nn.Linear(channels, num_classes))
    else:
        hidden = _width(4096, width_mult)
        avgpool = nn.AdaptiveAvgPool2d((7, 7))
        classifier = nn.Sequential(nn.Linear(channels * 7 * 7, hidden), nn.ReLU(), nn.Dropout(dropout),
                                   nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(dropout),
                                   nn.Linear(hidden, num_classes))
    model = VGG(features, avgpool, classifier)
    _initialise(model, init)
    return model


def _initialise(model, init):
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            if init == "paper":
                nn.init.normal_(module.weight, 0.0, 0.01)
            else:
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, 0.0, 0.01)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)


def _constructor(name, config, batch_norm, doc):
    def build(num_classes=1000, in_channels=3, small_input=False, init="torchvision", dropout=0.5,
              width_mult=1.0, lrn_convention="paper"):
        return vgg(config, batch_norm, num_classes=num_classes, in_channels=in_channels,
                   small_input=small_input, init=init, dropout=dropout, width_mult=width_mult,
                   lrn_convention=lrn_convention)
    build.__name__ = build.__qualname__ = name
    build.__doc__ = (f"{doc}\n\n    Arguments as ``vgg`` (num_classes, in_channels, small_input, init, dropout, "
                     f"width_mult).")
    return register(build)


vgg11 = _constructor("vgg11", "A", False, "VGG-11, configuration A: 132,863,336 parameters, 7.609 GMACs.")
vgg13 = _constructor("vgg13", "B", False, "VGG-13, configuration B: 133,047,848 parameters, 11.308 GMACs.")
vgg16 = _constructor("vgg16", "D", False, "VGG-16, configuration D: 138,357,544 parameters, 15.470 GMACs.")
vgg19 = _constructor("vgg19", "E", False, "VGG-19, configuration E: 143,667,240 parameters, 19.632 GMACs.")
vgg11_bn = _constructor("vgg11_bn", "A", True, "VGG-11 with BatchNorm: 132,868,840 parameters.")
vgg13_bn = _constructor("vgg13_bn", "B", True, "VGG-13 with BatchNorm: 133,053,736 parameters.")
vgg16_bn = _constructor("vgg16_bn", "D", True, "VGG-16 with BatchNorm: 138,365,992 parameters.")
vgg19_bn = _constructor("vgg19_bn", "E", True, "VGG-19 with BatchNorm: 143,678,248 parameters.")
vgg11_lrn = _constructor("vgg11_lrn", "A-LRN", False,
                         "VGG-11 with LRN after the first conv (A-LRN): 132,863,336 parameters, as A.")
vgg_c = _constructor("vgg_c", "C", False,
                     "VGG configuration C (16 layers, 1×1 convs in stages 3-5): 133,638,952 parameters, "
                     "11.771 GMACs.")
vgg_c_bn = _constructor("vgg_c_bn", "C", True, "VGG configuration C with BatchNorm: 133,647,400 parameters.")


# ---------------------------------------------------------------- dense evaluation -------------

class FullyConvolutional(nn.Module):
    """A network whose FC head was turned into convolutions: (N, C, H, W) -> (N, K, OH, OW), a map
    of class scores, one per 224×224 (AlexNet: 227×227) window, sliding with the network's stride
    (32). The paper averages it over space (and over a flipped copy): ``scores.mean(axis=(2, 3))``."""

    def __init__(self, features, classifier):
        super().__init__()
        self.features, self.classifier = features, classifier

    def forward(self, x):
        check_input_size(self, x)
        return self.classifier(self.features(x))


def fc_to_conv(model):
    """Return the fully convolutional version of a VGG or AlexNet (``model.features``, an optional
    adaptive ``model.avgpool``, ``model.classifier`` with Linear layers), for dense evaluation.

    fc6 (C·h·w -> 4096) becomes an h×w convolution (7×7 for VGG, 6×6 for AlexNet) whose kernel is fc6's
    weight reshaped to (4096, C, h, w) — the flattening order of (C, h, w) — and every later FC a 1×1
    convolution; ReLU and dropout layers are kept. The adaptive pool is dropped: on the input size
    the head was built for the result is a 1×1 map holding the original logits; on a larger image
    it is a map of scores. The features module is shared with ``model``, not copied; the head's
    weights are copies.
    """
    classifier = getattr(model, "classifier", None)
    features = getattr(model, "features", None)
    if features is None or classifier is None:
        raise TypeError(f"fc_to_conv: expected a VGG or AlexNet (with .features and .classifier), "
                        f"got {type(model).__name__}")
    channels = [m.out_channels for m in features.modules() if isinstance(m, nn.Conv2d)][-1]
    head, first = [], True
    for module in classifier:
        if isinstance(module, nn.Linear):
            cin = channels if first else module.in_features
            area = module.in_features // cin
            side = int(round(np.sqrt(area)))
            if cin * side * side != module.in_features:
                raise ValueError(f"fc_to_conv: {module.in_features} inputs of the first FC layer are not "
                                 f"{cin} channels × a square map")
            conv = nn.Conv2d(cin, module.out_features, side, bias=module.bias is not None)
            # Same arrays' values, device and dtype: the kernel is fc6's rows, each reshaped to (C, h, w).
            conv.weight = nn.Parameter(module.weight.data.reshape(module.out_features, cin, side, side).copy())
            if module.bias is not None:
                conv.bias = nn.Parameter(module.bias.data.copy())
            head.append(conv)
            first = False
        else:
            head.append(module)
    converted = FullyConvolutional(features, nn.Sequential(*head))
    converted.train(model.training)
    return converted


# ---------------------------------------------------------------- initialising from A ----------

def _conv_slots(model):
    """[(stage, index in stage, conv, batch norm or None)] of a VGG, stages counted by max pools."""
    slots, stage, index, layers = [], 0, 0, list(model.features)
    for i, m in enumerate(layers):
        if isinstance(m, nn.MaxPool2d):
            stage, index = stage + 1, 0
        elif isinstance(m, nn.Conv2d):
            bn = layers[i + 1] if i + 1 < len(layers) and isinstance(layers[i + 1], nn.BatchNorm2d) else None
            slots.append((stage, index, m, bn))
            index += 1
    return slots


def init_from_vgg_a(deeper, trained_a):
    """Initialise a deeper VGG (B, C, D or E) from a trained net A, as the paper did: "the first four
    convolutional layers and the last three fully-connected layers" of A; the other layers keep
    their random initialisation. Modifies ``deeper`` in place and returns it.

    A's first four convs are conv1_1, conv2_1, conv3_1 and conv3_2 (stage_index); they go to the
    layers of the same name in the deeper net — the first conv of stages 1 and 2 and the first two of
    stage 3 — the only reading under which the shapes agree (the deeper nets' conv1_2 is 64 → 64,
    A's second conv 64 → 128). When both nets have BatchNorm, the norm after each copied conv is
    copied too. Returns ``deeper``.
    """
    names_a = {id(m): n for n, m in trained_a.named_modules()}
    names_d = {id(m): n for n, m in deeper.named_modules()}
    source = _conv_slots(trained_a)[:4]
    target = {(stage, index): (conv, bn) for stage, index, conv, bn in _conv_slots(deeper)}
    pairs = []
    for stage, index, conv, bn in source:
        if (stage, index) not in target:
            raise ValueError(f"init_from_vgg_a: the deeper net has no conv{stage + 1}_{index + 1}")
        to_conv, to_bn = target[(stage, index)]
        pairs.append((conv, to_conv))
        if bn is not None and to_bn is not None:
            pairs.append((bn, to_bn))
    fc_a = [m for m in trained_a.classifier if isinstance(m, nn.Linear)]
    fc_d = [m for m in deeper.classifier if isinstance(m, nn.Linear)]
    if len(fc_a) != len(fc_d):
        raise ValueError(f"init_from_vgg_a: A has {len(fc_a)} FC layers, the deeper net {len(fc_d)}")
    pairs += list(zip(fc_a, fc_d))
    for source_module, target_module in pairs:
        state = source_module.state_dict()
        own = target_module.state_dict()
        for key, value in state.items():
            if own[key].shape != value.shape:
                raise ValueError(f"init_from_vgg_a: {names_a[id(source_module)]}.{key} has shape {value.shape} "
                                 f"but {names_d[id(target_module)]}.{key} has {own[key].shape}")
        target_module.load_state_dict(state)
    return deeper
