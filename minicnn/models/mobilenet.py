"""MobileNet v1 (Howard et al. 2017), the third baseline of "Bag of Tricks" (papers.md §4.5).

A 3×3 stride-2 convolution with 32 channels, then 13 depthwise separable convolutions, global
average pooling and one FC layer; 4,231,976 parameters and 0.569 GMACs at 224×224 (the paper:
4.2 M and 569 M mult-adds).

Shape letters: N batch, C input channels, Cout output channels, H, W height and width, K classes.

A depthwise separable convolution splits a 3×3 convolution C → Cout (9·C·Cout weights per output
position) into
    depthwise  3×3, groups = C: each channel filtered on its own     9·C        (+ BN + ReLU)
    pointwise  1×1: mixes the channels                                C·Cout     (+ BN + ReLU)
which costs 1/Cout + 1/9 of the full convolution: about 8-9 times fewer multiply-adds.

    width_mult   the paper's width multiplier α: every layer has round(α·channels) channels
    small_input  papers.md §9: the stem has stride 1 (32×32 → 2×2 at the last stage instead of
                 0.07 pixels); 3,217,226 parameters at 10 classes. Any input size runs (global pool).

Convolutions have no bias (BatchNorm follows each); initialisation as torchvision's MobileNets:
Kaiming normal (fan_out) convs, BN γ = 1, β = 0, FC N(0, 0.01²) with zero bias.
"""
from __future__ import annotations

from collections import OrderedDict

from .. import nn
from ..functional.math import flatten
from .registry import register
from .summary import check_input_size

__all__ = ["MobileNetV1", "DepthwiseSeparableConv", "mobilenet_v1", "MOBILENET_V1_BLOCKS"]

# (output channels, stride) of the 13 depthwise separable blocks (the paper's Table 1).
MOBILENET_V1_BLOCKS = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
                       (512, 1), (512, 1), (512, 1), (512, 1), (512, 1),
                       (1024, 2), (1024, 1)]


class DepthwiseSeparableConv(nn.Module):
    """(N, C, H, W) -> (N, Cout, H/stride, W/stride): depthwise 3×3 + BN + ReLU, pointwise 1×1 + BN + ReLU."""

    def __init__(self, in_channels, out_channels, stride=1):
        super().__init__()
        self.depthwise = nn.Conv2d(in_channels, in_channels, 3, stride=stride, padding=1, groups=in_channels,
                                   bias=False)
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.relu1 = nn.ReLU()
        self.pointwise = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu2 = nn.ReLU()

    def forward(self, x):
        x = self.relu1(self.bn1(self.depthwise(x)))
        return self.relu2(self.bn2(self.pointwise(x)))


class MobileNetV1(nn.Module):
    """features (stem + 13 depthwise separable blocks) → global average pool → flatten → fc."""

    def __init__(self, num_classes=1000, in_channels=3, width_mult=1.0, small_input=False):
        super().__init__()

        def width(channels):
            return max(1, int(round(channels * width_mult)))

        channels = width(32)
        layers = [("stem", nn.Sequential(OrderedDict([
            ("conv", nn.Conv2d(in_channels, channels, 3, stride=1 if small_input else 2, padding=1, bias=False)),
            ("bn", nn.BatchNorm2d(channels)),
            ("relu", nn.ReLU())])))]
        for i, (out_channels, stride) in enumerate(MOBILENET_V1_BLOCKS, start=1):
            layers.append((f"block{i}", DepthwiseSeparableConv(channels, width(out_channels), stride)))
            channels = width(out_channels)
        self.features = nn.Sequential(OrderedDict(layers))
        self.avgpool = nn.GlobalAvgPool2d()
        self.fc = nn.Linear(channels, num_classes)
        self._initialise()

    def _initialise(self):
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, 0.0, 0.01)
                nn.init.zeros_(module.bias)

    def forward(self, x):
        check_input_size(self, x)
        x = self.avgpool(self.features(x))
        return self.fc(flatten(x, 1))


@register
def mobilenet_v1(num_classes=1000, in_channels=3, width_mult=1.0, small_input=False):
    """MobileNet v1 1.0-224 (4,231,976 parameters at 1000 classes); see the module docstring."""
    return MobileNetV1(num_classes, in_channels, width_mult, small_input)
