"""AlexNet (Krizhevsky, Sutskever & Hinton 2012), in the two versions learners meet.

    alexnet(...)        torchvision's single-tower "one weird trick" variant (Krizhevsky 2014):
                        conv 64-192-384-256-256, no LRN, no groups, adaptive 6×6 average pool, 224
                        input; 61,100,840 parameters, 0.714 GMACs (papers.md §2.2, §8.1)
    alexnet_paper(...)  the 2012 paper's network: 96-256-384-384-256, ReLU → LRN after conv1 and conv2,
                        overlapping 3×3/2 max pooling, conv2/4/5 split in two groups (the two GPUs),
                        fc 4096-4096 with dropout 0.5, 227×227 input; 60,965,224 parameters grouped,
                        62,378,344 ungrouped (papers.md §2.1)

Shape letters: N batch, C channels, H, W height and width.

Paper details that differ between sources, each a named option (papers.md §11):
  * 224 vs 227. The paper says 224×224, but an unpadded 11×11 stride-4 conv maps only 227 to the
    55×55 of its figure; at 224 the maps become 54 → 26 → 12 → 5 and fc6 would see 6400 values.
    ``alexnet_paper`` is built for 227 and refuses other sizes with an error saying so; torchvision
    pads conv1 by 2 instead, so 224 works there.
  * LRN's α. The paper divides by (k + α Σ a²)^β; Caffe and PyTorch by (k + α/n Σ a²)^β, so the
    same α = 1e-4 is five times weaker there. ``lrn_convention="paper"`` (default) is the paper's
    formula; ``"pytorch"`` is what Caffe's reference AlexNet computed with the same constants.
  * Dropout. The paper drops with p = 0.5 while training and multiplies by 0.5 at test time
    (``dropout_mode="paper"``); inverted dropout (``"inverted"``) scales while training instead.
    Both give the same expected activations.
  * Initialisation (``init``). "paper" (``alexnet_paper``'s default): weights N(0, 0.01²); biases 1
    in conv2, conv4, conv5, fc6 and fc7 ("accelerates the early stages of learning by providing the
    ReLUs with positive inputs"), 0 elsewhere. "pytorch" (torchvision's ``alexnet``): the layers'
    default U(±1/√fan_in). "kaiming": He normal N(0, 2/fan_in), zero biases — the default of the
    small-input variants, which barely move from the other two in a few hundred SGD steps (the
    signal shrinks by about √3 per layer under "pytorch"; the paper's recipe took days on ImageNet).

Small-input variants (``small_input=True``, papers.md §9) for 32×32×3 (CIFAR) and 28×28×1
(Fashion-MNIST): conv1 becomes 5×5 stride 1 padding 2, LRN after conv1 and conv2 and the three
overlapping pools stay (32 → 15 → 7 → 3, 28 → 13 → 6 → 2), the FC layers shrink (1024 for
``alexnet``, 4096 kept for ``alexnet_paper``). The first FC layer's fan-in depends on the input
size, so these take ``input_size`` (32 by default): AlexNet-small has 5,871,434 parameters at 32×32×3
and 4,557,514 at 28×28×1 (10 classes).

``width_mult`` scales every conv and hidden FC width (rounded, and kept even where groups=2): a
narrow network of full depth for fast tests and lessons.
"""
from __future__ import annotations

from collections import OrderedDict

from .. import nn
from ..functional.math import flatten
from ..functional.pool import pool_output_size
from .registry import register
from .summary import check_input_size

__all__ = ["AlexNet", "alexnet", "alexnet_paper"]

# LRN constants of the paper (§3.3): k = 2, n = 5, α = 1e-4, β = 0.75, after ReLU in conv1 and conv2.
LRN_SIZE, LRN_ALPHA, LRN_BETA, LRN_K = 5, 1e-4, 0.75, 2.0


class AlexNet(nn.Module):
    """features (convolutions and pools) → avgpool → flatten → classifier (FC layers).

    features    Sequential, (N, C, H, W) -> (N, Cf, h, w)
    avgpool     AdaptiveAvgPool2d((h, w)) or, for a network built for one input size, Identity
    classifier  Sequential, (N, Cf·h·w) -> (N, num_classes)
    final_size  (h, w) the classifier needs when there is no adaptive pool, else None; an input of
                another size is refused with the size that works
    """

    def __init__(self, features, avgpool, classifier, final_size=None):
        super().__init__()
        self.features, self.avgpool, self.classifier = features, avgpool, classifier
        self.final_size = final_size

    def forward(self, x):
        check_input_size(self, x, final_size=self.final_size)
        x = self.avgpool(self.features(x))
        return self.classifier(flatten(x, 1))


def _width(channels, width_mult, multiple=1):
    """round(channels · width_mult) to a positive multiple of ``multiple`` (2 for a two-group conv)."""
    return max(multiple, int(round(channels * width_mult / multiple)) * multiple)


def _final_size(size, layers):
    """Spatial size after (kernel, stride, padding) windows applied in turn to ``size``."""
    for kernel, stride, padding in layers:
        size = pool_output_size(size, kernel, stride, padding)
    return size


def _lrn(convention):
    return nn.LocalResponseNorm(LRN_SIZE, alpha=LRN_ALPHA, beta=LRN_BETA, k=LRN_K, convention=convention)


@register
def alexnet(num_classes=1000, in_channels=3, dropout=0.5, small_input=False, input_size=32, width_mult=1.0,
            init=None):
    """torchvision's AlexNet (64-192-384-256-256, 61,100,840 parameters at 1000 classes), for 224×224
    inputs (any size ≥ 63 runs, thanks to the adaptive 6×6 pool).

    small_input  AlexNet-small of papers.md §9 for ``input_size`` 32 or 28: conv1 5×5/1 pad 2, LRN
                 after conv1 and conv2 (paper constants), FC 1024-1024; an adaptive pool to the
                 natural final size lets other input sizes run too.
    width_mult   scales the widths (conv and hidden FC) for narrow, full-depth test networks.
    init         "pytorch" (the layers' default, torchvision's) or "kaiming"; None picks "pytorch"
                 for the ImageNet network and "kaiming" for the small-input one.
    """
    init = _check_init("alexnet", init, ("pytorch", "kaiming"), "kaiming" if small_input else "pytorch")
    c1, c2, c3, c4, c5 = (_width(c, width_mult) for c in (64, 192, 384, 256, 256))
    if small_input:
        hidden = _width(1024, width_mult)
        side = _final_size(input_size, [(5, 1, 2), (3, 2, 0), (5, 1, 2), (3, 2, 0), (3, 1, 1), (3, 1, 1),
                                        (3, 1, 1), (3, 2, 0)])
        if side < 1:
            raise ValueError(f"alexnet: small_input needs input_size ≥ 15, got {input_size}")
        stem = [nn.Conv2d(in_channels, c1, 5, padding=2), nn.ReLU(), _lrn("paper"), nn.MaxPool2d(3, 2),
                nn.Conv2d(c1, c2, 5, padding=2), nn.ReLU(), _lrn("paper"), nn.MaxPool2d(3, 2)]
    else:
        hidden, side = _width(4096, width_mult), 6
        stem = [nn.Conv2d(in_channels, c1, 11, stride=4, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
                nn.Conv2d(c1, c2, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2)]
    features = nn.Sequential(*stem,
                             nn.Conv2d(c2, c3, 3, padding=1), nn.ReLU(),
                             nn.Conv2d(c3, c4, 3, padding=1), nn.ReLU(),
                             nn.Conv2d(c4, c5, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2))
    classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(c5 * side * side, hidden), nn.ReLU(),
                               nn.Dropout(dropout), nn.Linear(hidden, hidden), nn.ReLU(),
                               nn.Linear(hidden, num_classes))
    model = AlexNet(features, nn.AdaptiveAvgPool2d((side, side)), classifier)
    _initialise(model, init)
    return model


@register
def alexnet_paper(num_classes=1000, in_channels=3, grouped=True, lrn_convention="paper", small_input=False,
                  input_size=None, dropout=0.5, dropout_mode="paper", init="paper", width_mult=1.0):
    """The 2012 paper's AlexNet (60,965,224 parameters grouped, 62,378,344 with ``grouped=False``),
    for 227×227 inputs.

    grouped         conv2, conv4 and conv5 in two groups: each half of the kernels sees only the
                    maps "on its GPU" (groups=2); conv3 and the FC layers are full
    lrn_convention  "paper" (α inside the sum, the paper's formula) or "pytorch" (α/n, Caffe's)
    dropout_mode    "paper" (× (1 − p) at test time) or "inverted"
    init            "paper" (N(0, 0.01), biases 1 in conv2/4/5, fc6, fc7), "pytorch" (layer defaults)
                    or "kaiming" (He normal, zero biases)
    small_input     conv1 5×5/1 pad 2 for ``input_size`` 32 (default) or 28, FC 4096 kept: 29,983,114
                    parameters ungrouped at 32×32×3 and 10 classes (papers.md §9)
    The network has no adaptive pool: it refuses inputs whose pool5 output is not what fc6 was built
    for (6×6 at 227), naming the size that works.
    """
    init = _check_init("alexnet_paper", init, ("paper", "pytorch", "kaiming"), "paper")
    groups = 2 if grouped else 1
    c1, c2, c3, c4, c5 = (_width(c, width_mult, groups) for c in (96, 256, 384, 384, 256))
    hidden = _width(4096, width_mult)
    if small_input:
        input_size = 32 if input_size is None else input_size
        conv1 = nn.Conv2d(in_channels, c1, 5, stride=1, padding=2)
        windows = [(5, 1, 2)]
    else:
        input_size = 227 if input_size is None else input_size
        conv1 = nn.Conv2d(in_channels, c1, 11, stride=4)
        windows = [(11, 4, 0)]
    side = _final_size(input_size, windows + [(3, 2, 0), (5, 1, 2), (3, 2, 0), (3, 1, 1), (3, 1, 1), (3, 1, 1),
                                              (3, 2, 0)])
    if side < 1:
        raise ValueError(f"alexnet_paper: input_size {input_size} is too small for the pooling stack")
    features = nn.Sequential(OrderedDict([
        ("conv1", conv1), ("relu1", nn.ReLU()), ("norm1", _lrn(lrn_convention)), ("pool1", nn.MaxPool2d(3, 2)),
        ("conv2", nn.Conv2d(c1, c2, 5, padding=2, groups=groups)), ("relu2", nn.ReLU()),
        ("norm2", _lrn(lrn_convention)), ("pool2", nn.MaxPool2d(3, 2)),
        ("conv3", nn.Conv2d(c2, c3, 3, padding=1)), ("relu3", nn.ReLU()),
        ("conv4", nn.Conv2d(c3, c4, 3, padding=1, groups=groups)), ("relu4", nn.ReLU()),
        ("conv5", nn.Conv2d(c4, c5, 3, padding=1, groups=groups)), ("relu5", nn.ReLU()),
        ("pool5", nn.MaxPool2d(3, 2)),
    ]))
    classifier = nn.Sequential(OrderedDict([
        ("fc6", nn.Linear(c5 * side * side, hidden)), ("relu6", nn.ReLU()),
        ("drop6", nn.Dropout(dropout, dropout_mode)),
        ("fc7", nn.Linear(hidden, hidden)), ("relu7", nn.ReLU()),
        ("drop7", nn.Dropout(dropout, dropout_mode)),
        ("fc8", nn.Linear(hidden, num_classes)),
    ]))
    model = AlexNet(features, nn.Identity(), classifier, final_size=(side, side))
    _initialise(model, init)
    return model


def _check_init(function, init, allowed, default):
    init = default if init is None else init
    if init not in allowed:
        raise ValueError(f"{function}: init must be one of {allowed}, got {init!r}")
    return init


# The paper's layers whose bias starts at 1 (the ReLUs after them get positive inputs from the start).
PAPER_BIAS_ONE = ("features.conv2", "features.conv4", "features.conv5", "classifier.fc6", "classifier.fc7")


def _initialise(model, init):
    """Initialise the conv and FC layers: "pytorch" leaves the layers' own init; "paper" draws weights
    from N(0, 0.01²), biases 1 in PAPER_BIAS_ONE and 0 elsewhere; "kaiming" N(0, 2/fan_in), biases 0."""
    if init == "pytorch":
        return
    for name, module in model.named_modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            if init == "paper":
                nn.init.normal_(module.weight, 0.0, 0.01)
                nn.init.constant_(module.bias, 1.0 if name in PAPER_BIAS_ONE else 0.0)
            else:
                nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
                nn.init.zeros_(module.bias)
