"""SE-ResNet (Hu, Shen, Albanie, Sun, Wu; CVPR 2018): a ResNet with a Squeeze-and-Excitation gate on
every residual branch.

Each block becomes (papers.md §6.1; the gate is ``minicnn.nn.SqueezeExcitation``)

    y = ReLU(SE(F(x)) + shortcut(x)),     SE(u) = u · σ(W₂ ReLU(W₁ mean_{H,W}(u)))

so the gate rescales the channels of the branch output before the addition, never the identity path.
Everything else — Table 1's stages, the options shortcut / stem / downsample / zero_init_residual /
small_input / width — is ``minicnn.models.resnet``'s; the SE options are

  se_reduction  r = 16 (the paper's default; its Table 10 compares 2, 4, 8, 16, 32)
  se_bias       the FC biases of the gate: True as in the public pretrained SE-ResNets, False as in the
                paper's ablations (SE-ResNet-50: 28,088,024 vs 28,071,976 parameters)

Stride placement — which layout the reference numbers assume. The SE paper's costs (SE-ResNet-50 3.87
vs ResNet-50 3.86 GFLOPs), papers.md §8.1's GMACs (SE-ResNet-50 3.860, -101 7.575, -152 11.289) and the
public pretrained SE-ResNets (Cadene's, timm's, osmr's) all follow the Caffe release of ResNet: the
stride of a bottleneck on its FIRST 1×1 conv, ``stride_on="1x1"``. papers.md §9's small-input numbers
(SE-ResNet-50-small 1.300 GMACs = ResNet-50-small 1.298 + the gates) put it on the 3×3, like
torchvision. The default here is "3x3", the same as ``resnet50``'s, so that ``resnet50()`` against
``se_resnet50()`` compares SE and nothing else (4.089 vs 4.092 GMACs); pass ``stride_on="1x1"`` to
both for the paper's layout (3.858 vs 3.860). Parameter counts do not depend on it; basic blocks
(18, 34) have only one place for the stride.

Parameter counts (1000 classes, SE biases; papers.md §8.1, §9): SE-ResNet-18 11,778,592, -34 21,958,868,
-50 28,088,024, -101 49,326,872, -152 66,821,848; small-input SE-ResNet-18 11,263,042, -50 26,051,834
(10 classes, 32×32×3).
"""
from __future__ import annotations

from functools import partial

from .. import nn
from .registry import register
from .resnet import cifar_resnet, resnet

__all__ = ["se_resnet", "se_resnet18", "se_resnet34", "se_resnet50", "se_resnet101", "se_resnet152",
           "se_resnet20"]


def se_gate(reduction=16, bias=True, min_hidden=1):
    """The factory ``channels -> SqueezeExcitation`` that ResNet puts at the end of each residual branch."""
    return partial(nn.SqueezeExcitation, reduction=reduction, bias=bias, min_hidden=min_hidden)


def se_resnet(depth, num_classes=1000, in_channels=3, small_input=False, shortcut="B", stride_on="3x3",
              stem="default", downsample="default", zero_init_residual=False, width=64, se_reduction=16,
              se_bias=True):
    """SE-ResNet-``depth`` (18, 34, 50, 101, 152): ``resnet(depth, ...)`` with an SE gate on every branch."""
    return resnet(depth, num_classes, in_channels, small_input, shortcut, stride_on, stem, downsample,
                  zero_init_residual, width, se=se_gate(se_reduction, se_bias), name=f"SE-ResNet-{depth}")


@register
def se_resnet18(num_classes=1000, in_channels=3, small_input=False, shortcut="B", stride_on="3x3",
                stem="default", downsample="default", zero_init_residual=False, width=64, se_reduction=16,
                se_bias=True):
    """SE-ResNet-18: 11,778,592 parameters, 1.814 GMACs (11,263,042 small, 10 classes)."""
    return se_resnet(18, num_classes, in_channels, small_input, shortcut, stride_on, stem, downsample,
                     zero_init_residual, width, se_reduction, se_bias)


@register
def se_resnet34(num_classes=1000, in_channels=3, small_input=False, shortcut="B", stride_on="3x3",
                stem="default", downsample="default", zero_init_residual=False, width=64, se_reduction=16,
                se_bias=True):
    """SE-ResNet-34: 21,958,868 parameters, 3.664 GMACs."""
    return se_resnet(34, num_classes, in_channels, small_input, shortcut, stride_on, stem, downsample,
                     zero_init_residual, width, se_reduction, se_bias)


@register
def se_resnet50(num_classes=1000, in_channels=3, small_input=False, shortcut="B", stride_on="3x3",
                stem="default", downsample="default", zero_init_residual=False, width=64, se_reduction=16,
                se_bias=True):
    """SE-ResNet-50: 28,088,024 parameters (28,071,976 with se_bias=False), 4.092 GMACs (3.860 with
    stride_on="1x1", the SE paper's layout)."""
    return se_resnet(50, num_classes, in_channels, small_input, shortcut, stride_on, stem, downsample,
                     zero_init_residual, width, se_reduction, se_bias)


@register
def se_resnet101(num_classes=1000, in_channels=3, small_input=False, shortcut="B", stride_on="3x3",
                 stem="default", downsample="default", zero_init_residual=False, width=64, se_reduction=16,
                 se_bias=True):
    """SE-ResNet-101: 49,326,872 parameters, 7.575 GMACs with stride_on="1x1"."""
    return se_resnet(101, num_classes, in_channels, small_input, shortcut, stride_on, stem, downsample,
                     zero_init_residual, width, se_reduction, se_bias)


@register
def se_resnet152(num_classes=1000, in_channels=3, small_input=False, shortcut="B", stride_on="3x3",
                 stem="default", downsample="default", zero_init_residual=False, width=64, se_reduction=16,
                 se_bias=True):
    """SE-ResNet-152: 66,821,848 parameters, 11.289 GMACs with stride_on="1x1"."""
    return se_resnet(152, num_classes, in_channels, small_input, shortcut, stride_on, stem, downsample,
                     zero_init_residual, width, se_reduction, se_bias)


@register
def se_resnet20(num_classes=10, in_channels=3, se_reduction=4, se_bias=True, width=16):
    """The CIFAR ResNet-20 with SE gates. r = 4 by default, not 16: with 16, 32 and 64 channels r = 16
    would leave gates of 1, 2 and 4 hidden units (papers.md §9). 278,206 parameters (272,095 with r = 16)."""
    return cifar_resnet(20, num_classes, in_channels, width=width, se=se_gate(se_reduction, se_bias),
                        name="SE-ResNet-20 (CIFAR)")
