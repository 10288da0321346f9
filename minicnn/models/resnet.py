"""ResNet (He, Zhang, Ren, Sun 2015) with the Bag-of-Tricks tweaks (He et al. 2019) and the paper's CIFAR nets.

Shape letters: N batch, C channels, H, W height and width. Every block computes

    y = ReLU(F(x) + shortcut(x))          F = the residual branch, BN after every conv, ReLU after the add

Table 1 of the paper (ImageNet, 224×224 input; "output" is the feature map size at the end of the row):

    stage    output  attribute  blocks                                        18   34   50   101  152
    conv1    112     stem       7×7, 64, stride 2                             all depths
    conv2_x  56      stem       3×3 max pool, stride 2                        all depths
                     layer1     basic      [3×3, 64;  3×3, 64]                ×2   ×3
                                bottleneck [1×1, 64;  3×3, 64;  1×1, 256]               ×3   ×3   ×3
    conv3_x  28      layer2     basic      [3×3, 128; 3×3, 128]               ×2   ×4
                                bottleneck [1×1, 128; 3×3, 128; 1×1, 512]               ×4   ×4   ×8
    conv4_x  14      layer3     basic      [3×3, 256; 3×3, 256]               ×2   ×6
                                bottleneck [1×1, 256; 3×3, 256; 1×1, 1024]              ×6   ×23  ×36
    conv5_x  7       layer4     basic      [3×3, 512; 3×3, 512]               ×2   ×3
                                bottleneck [1×1, 512; 3×3, 512; 1×1, 2048]              ×3   ×3   ×3
    head     1       avgpool,   global average pool, 1000-way fully connected, softmax
                     fc
    multiply-adds (the paper's "FLOPs")                                       1.8G 3.6G 3.8G 7.6G 11.3G

``RESNET_LAYOUTS`` below is that table in code; ``ResNet.feature_sizes`` reproduces its output column.
The first block of conv3_x, conv4_x and conv5_x has stride 2. A block holds ``residual`` (F, a
Sequential conv1, bn1, relu1, … ) and ``shortcut`` (torchvision calls its projection ``downsample``, so
state_dict keys inside blocks differ from torchvision's; stage names layer1…layer4 and fc are the same).

Options where the sources differ (papers.md §4.3, §5.1, §11), each a named argument:
  * ``stride_on`` (bottleneck blocks): "3x3" puts the stride on the 3×3 conv (torchvision, "v1.5",
    Bag of Tricks' ResNet-B, the default here); "1x1" puts it on the first 1×1 conv, as the paper's
    released Caffe models do. Same parameters, different MACs: ResNet-50 4.089 vs 3.858 G.
  * ``shortcut`` when the shape changes: "A" identity on the first C channels, zeros for the extra ones,
    and stride-2 subsampling x[:, :, ::2, ::2] (parameter-free; the zero channels are appended after
    the C existing ones); "B" a 1×1 projection + BN only where the shape changes (torchvision's, the
    paper's choice for 50/101/152); "C" a projection in every block; None: no shortcut at all (the
    "plain" nets of the degradation experiment).
  * ``stem="C"`` (ResNet-C): three 3×3 convs with 32, 32, 64 channels, the first with stride 2, instead
    of the 7×7 (the max pool stays).
  * ``downsample="D"`` (ResNet-D): the projection of a stride-2 block becomes a 2×2 average pool with
    stride 2 (ceil mode, dividing by the real pixels only, so odd sizes match the main branch) followed
    by a stride-1 1×1 conv, so that it no longer ignores 3/4 of its input.
  * ``zero_init_residual`` (Bag of Tricks §3.1, "zero γ"): γ = 0 in the last BN of every residual branch,
    so every block starts as y = ReLU(shortcut(x)).
  * ``small_input`` (papers.md §9, kuangliu's CIFAR ResNets): a 3×3 stride-1 stem and no max pool, for
    28×28 and 32×32 images (the final map is 4×4); with ``stem="C"`` the three 3×3 convs have stride 1.
  * ``width``: the channels of conv2_x (64 in the paper); the stages have width·(1, 2, 4, 8) (×4 at the
    output of a bottleneck), the ResNet-C stem width/2, width/2, width. Small widths make full-depth
    networks fast enough for tests.

Initialisation follows the paper and torchvision: He (kaiming) normal with fan_out for every conv,
BN γ = 1 (0 with zero_init_residual), β = 0; the fc layer keeps Linear's default.

The paper's CIFAR-10 networks (§4.2 there, papers.md §5.4): a 3×3 stem with 16 channels, three stages of
n basic blocks on 32×32, 16×16, 8×8 maps with 16, 32, 64 channels, option-A shortcuts, global average
pool and a 10-way fc: 6n + 2 layers (``resnet20`` … ``resnet110``); ``plain20`` … ``plain110`` are the same
without shortcuts.

Parameter counts (1000 classes; papers.md §8.1): resnet18 11,689,512, resnet34 21,797,672,
resnet50 25,557,032, resnet101 44,549,160, resnet152 60,192,808; ResNet-50-C/D 25,576,264.
"""
from __future__ import annotations

from collections import OrderedDict

from .. import nn
from ..functional.math import pad
from .registry import register
from .summary import InputSizeError, check_input_size, trace_feature_map, window_layers

__all__ = ["ResNet", "ResidualBlock", "BasicBlock", "Bottleneck", "ZeroPadShortcut", "RESNET_LAYOUTS",
           "CIFAR_BLOCKS", "resnet", "resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
           "cifar_resnet", "resnet20", "resnet32", "resnet44", "resnet56", "resnet110",
           "plain20", "plain32", "plain44", "plain56", "plain110"]

SHORTCUTS = ("A", "B", "C", None)
STRIDE_ON = ("3x3", "1x1")
STEMS = ("default", "C")
DOWNSAMPLES = ("default", "D")


def conv3x3(in_channels, out_channels, stride=1):
    """3×3 convolution, padding 1, no bias (the BN that follows has its own β)."""
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)


def conv1x1(in_channels, out_channels, stride=1):
    """1×1 convolution, no bias."""
    return nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)


# ---------------------------------------------------------------- shortcuts --------------------

class ZeroPadShortcut(nn.Module):
    """Option A: (N, C, H, W) -> (N, Cout, ⌈H/s⌉, ⌈W/s⌉) without parameters.

    y[:, :C] = x[:, :, ::s, ::s]  (identity on the existing channels, subsampled by the stride),
    y[:, C:] = 0                  (the Cout − C new channels);    gx = gy[:, :C] put back on the grid.
    """

    def __init__(self, in_channels, out_channels, stride=1):
        super().__init__()
        if out_channels < in_channels:
            raise ValueError(f"ZeroPadShortcut: option A can only add channels, got {in_channels} -> "
                             f"{out_channels}")
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride

    def forward(self, x):
        if self.stride > 1:
            x = x[:, :, ::self.stride, ::self.stride]
        return pad(x, (0, 0, 0, 0, 0, self.out_channels - self.in_channels))

    def extra_repr(self):
        return f"{self.in_channels}, {self.out_channels}, stride={self.stride}"


def make_shortcut(in_channels, out_channels, stride, option, downsample):
    """The shortcut of one block: None (plain net), Identity, ZeroPadShortcut or a projection."""
    if option is None:
        return None
    if option in ("A", "B") and stride == 1 and in_channels == out_channels:
        return nn.Identity()
    if option == "A":
        return ZeroPadShortcut(in_channels, out_channels, stride)
    if downsample == "D" and stride > 1:
        return nn.Sequential(OrderedDict(
            pool=nn.AvgPool2d(stride, stride, ceil_mode=True, count_include_pad=False),
            conv=conv1x1(in_channels, out_channels),
            bn=nn.BatchNorm2d(out_channels)))
    return nn.Sequential(OrderedDict(conv=conv1x1(in_channels, out_channels, stride),
                                     bn=nn.BatchNorm2d(out_channels)))


# ---------------------------------------------------------------- blocks -----------------------

class ResidualBlock(nn.Module):
    """y = ReLU(residual(x) + shortcut(x)); without a shortcut (plain nets) y = ReLU(residual(x)).

    Subclasses build ``self.residual`` (a Sequential ending in BN, then the optional SE gate) and
    ``self.shortcut``; ``expansion`` is out_channels / channels.
    """

    expansion = 1

    def _finish(self, residual, out_channels, in_channels, stride, shortcut, downsample, se):
        if se is not None:
            residual["se"] = se(out_channels)             # SE-ResNet: gate the branch before the add
        self.residual = nn.Sequential(residual)
        self.shortcut = make_shortcut(in_channels, out_channels, stride, shortcut, downsample)
        self.relu = nn.ReLU()

    def forward(self, x):
        y = self.residual(x)
        if self.shortcut is not None:
            y = y + self.shortcut(x)
        return self.relu(y)


class BasicBlock(ResidualBlock):
    """ResNet-18/34 and CIFAR block: [3×3, C] → [3×3, C]; (N, Cin, H, W) -> (N, C, H/s, W/s)."""

    expansion = 1

    def __init__(self, in_channels, channels, stride=1, shortcut="B", downsample="default", stride_on="3x3",
                 zero_init_residual=False, se=None):
        super().__init__()
        # stride_on only matters for bottlenecks: a basic block's only place for the stride is its first 3×3.
        self._finish(OrderedDict(
            conv1=conv3x3(in_channels, channels, stride), bn1=nn.BatchNorm2d(channels), relu1=nn.ReLU(),
            conv2=conv3x3(channels, channels), bn2=nn.BatchNorm2d(channels, zero_init=zero_init_residual),
        ), channels, in_channels, stride, shortcut, downsample, se)


class Bottleneck(ResidualBlock):
    """ResNet-50/101/152 block: [1×1, C] → [3×3, C] → [1×1, 4C]; (N, Cin, H, W) -> (N, 4C, H/s, W/s).

    The stride sits on the 3×3 (``stride_on="3x3"``, torchvision / ResNet-B) or on the first 1×1
    (``"1x1"``, the paper's Caffe release).
    """

    expansion = 4

    def __init__(self, in_channels, channels, stride=1, shortcut="B", downsample="default", stride_on="3x3",
                 zero_init_residual=False, se=None):
        super().__init__()
        out_channels = channels * self.expansion
        stride_1x1, stride_3x3 = (1, stride) if stride_on == "3x3" else (stride, 1)
        self._finish(OrderedDict(
            conv1=conv1x1(in_channels, channels, stride_1x1), bn1=nn.BatchNorm2d(channels), relu1=nn.ReLU(),
            conv2=conv3x3(channels, channels, stride_3x3), bn2=nn.BatchNorm2d(channels), relu2=nn.ReLU(),
            conv3=conv1x1(channels, out_channels),
            bn3=nn.BatchNorm2d(out_channels, zero_init=zero_init_residual),
        ), out_channels, in_channels, stride, shortcut, downsample, se)


# ---------------------------------------------------------------- the network ------------------

#                 block        blocks per stage: conv2_x, conv3_x, conv4_x, conv5_x      (Table 1)
RESNET_LAYOUTS = {
    18:  (BasicBlock, (2, 2, 2, 2)),
    34:  (BasicBlock, (3, 4, 6, 3)),
    50:  (Bottleneck, (3, 4, 6, 3)),
    101: (Bottleneck, (3, 4, 23, 3)),
    152: (Bottleneck, (3, 8, 36, 3)),
}

# CIFAR-10 (the paper's §4.2): depth 6n + 2 -> n basic blocks in each of the three stages.
CIFAR_BLOCKS = {20: 3, 32: 5, 44: 7, 56: 9, 110: 18, 1202: 200}


class ResNet(nn.Module):
    """A stem, stages of residual blocks, global average pool and one fc: (N, in_channels, H, W) -> (N, classes).

    block        BasicBlock or Bottleneck
    layers       blocks per stage, e.g. (3, 4, 6, 3); the first stage keeps the size, the others halve it
    widths       channels per stage (the block's C; a bottleneck outputs 4C), e.g. (64, 128, 256, 512)
    small_input  3×3 stride-1 stem without max pool (28×28 / 32×32 images) instead of 7×7/2 + max pool
    stem         "default" (one conv) or "C" (three 3×3 convs: widths[0]/2, widths[0]/2, widths[0])
    shortcut, stride_on, downsample, zero_init_residual: see the module docstring
    se           None, or a factory ``channels -> Module`` put at the end of every residual branch
                 (SE-ResNet: ``minicnn.models.senet``)
    name         used in error messages ("ResNet-50")
    """

    def __init__(self, block, layers, widths=(64, 128, 256, 512), num_classes=1000, in_channels=3,
                 small_input=False, stem="default", shortcut="B", stride_on="3x3", downsample="default",
                 zero_init_residual=False, se=None, name="ResNet"):
        super().__init__()
        _check_option("shortcut", shortcut, SHORTCUTS)
        _check_option("stride_on", stride_on, STRIDE_ON)
        _check_option("stem", stem, STEMS)
        _check_option("downsample", downsample, DOWNSAMPLES)
        if downsample == "D" and shortcut not in ("B", "C"):
            raise ValueError(f"{name}: downsample='D' changes the projection shortcut, so it needs "
                             f"shortcut 'B' or 'C', got {shortcut!r}")
        if len(layers) != len(widths):
            raise ValueError(f"{name}: {len(layers)} stages in layers but {len(widths)} widths")
        self.name, self.in_channels = name, in_channels
        self.stem = self._make_stem(in_channels, widths[0], small_input, stem)

        channels = widths[0]
        for i, (blocks, width) in enumerate(zip(layers, widths)):
            stage = nn.Sequential()
            for j in range(blocks):
                stride = 2 if i > 0 and j == 0 else 1
                stage.append(block(channels, width, stride, shortcut=shortcut, downsample=downsample,
                                   stride_on=stride_on, zero_init_residual=zero_init_residual, se=se))
                channels = width * block.expansion
            self.add_module(f"layer{i + 1}", stage)
        self.num_stages = len(layers)

        self.avgpool = nn.GlobalAvgPool2d()
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(channels, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    @staticmethod
    def _make_stem(in_channels, width, small_input, stem):
        """conv1 of Table 1 and the max pool that opens conv2_x (stride 1 and no pool if small_input)."""
        stride = 1 if small_input else 2
        if stem == "C":
            half = max(width // 2, 1)
            layers = OrderedDict(
                conv1=conv3x3(in_channels, half, stride), bn1=nn.BatchNorm2d(half), relu1=nn.ReLU(),
                conv2=conv3x3(half, half), bn2=nn.BatchNorm2d(half), relu2=nn.ReLU(),
                conv3=conv3x3(half, width), bn3=nn.BatchNorm2d(width), relu3=nn.ReLU())
        elif small_input:
            layers = OrderedDict(conv1=conv3x3(in_channels, width), bn1=nn.BatchNorm2d(width), relu1=nn.ReLU())
        else:
            layers = OrderedDict(conv1=nn.Conv2d(in_channels, width, 7, stride=2, padding=3, bias=False),
                                 bn1=nn.BatchNorm2d(width), relu1=nn.ReLU())
        if not small_input:
            layers["maxpool"] = nn.MaxPool2d(3, stride=2, padding=1)
        return nn.Sequential(layers)

    def stages(self):
        return [getattr(self, f"layer{i + 1}") for i in range(self.num_stages)]

    def forward(self, x):
        self._check_input(x)
        x = self.stem(x)
        for stage in self.stages():
            x = stage(x)
        return self.fc(self.flatten(self.avgpool(x)))

    # ---- feature-map sizes and input checks ------------------------------------------------------
    def main_path(self):
        """(name, layer) of the convolutions and pools an input passes through on the way to the fc,
        in order: the stem, every block's residual branch, the global pool (shortcuts run beside them
        and end the same size)."""
        return [(name, m) for name, m in window_layers(self) if ".shortcut." not in name]

    def feature_sizes(self, input_size):
        """(name, (OH, OW)) after the stem and after every stage for an input of size (H, W) or H:
        the "output size" column of Table 1 (224 -> 56, 56, 28, 14, 7)."""
        trace = trace_feature_map(self.main_path(), input_size)
        stages = ["stem"] + [f"layer{i + 1}" for i in range(self.num_stages)]
        return [(stage, [size for name, size in trace if name.split(".")[0] == stage][-1]) for stage in stages]

    def _check_input(self, x):
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"{self.name}: expected an input of shape (N, {self.in_channels}, H, W), "
                             f"got {tuple(x.shape)}")
        check_input_size(self, x, self.main_path())
        if self.training and x.shape[0] == 1:
            self._check_batch_norm_gets_two_values(tuple(x.shape[2:]))

    def _check_batch_norm_gets_two_values(self, input_size):
        """A 1×1 map with a batch of one leaves each BN (one after every conv) a single value per channel."""
        layers = self.main_path()
        convs = {name for name, m in layers if isinstance(m, nn.Conv2d)}

        def first_single_pixel(size):
            return next(((name, out) for name, out in trace_feature_map(layers, size)
                         if name in convs and out[0] * out[1] < 2), None)

        problem = first_single_pixel(input_size)
        if problem is not None:
            works = next(s for s in range(2, 4097) if first_single_pixel((s, s)) is None)
            (H, W), (name, out) = input_size, problem
            raise InputSizeError(
                f"{self.name}: an input of {H}×{W} is too small to train with a batch of 1: the feature map "
                f"at {name} is {out[0]}×{out[1]}, so the batch norm after it sees one value per channel; use "
                f"an input of at least {works}×{works}, a batch of 2 or more, or eval()")


def _check_option(name, value, allowed):
    if value not in allowed:
        raise ValueError(f"ResNet: {name} must be one of {allowed}, got {value!r}")


# ---------------------------------------------------------------- builders ---------------------

def resnet(depth, num_classes=1000, in_channels=3, small_input=False, shortcut="B", stride_on="3x3",
           stem="default", downsample="default", zero_init_residual=False, width=64, se=None, name=None):
    """ResNet-``depth`` (18, 34, 50, 101 or 152) from Table 1; see the module docstring for the options."""
    if depth not in RESNET_LAYOUTS:
        raise ValueError(f"resnet: depth must be one of {sorted(RESNET_LAYOUTS)}, got {depth!r}")
    block, layers = RESNET_LAYOUTS[depth]
    return ResNet(block, layers, tuple(width * k for k in (1, 2, 4, 8)), num_classes, in_channels,
                  small_input, stem, shortcut, stride_on, downsample, zero_init_residual, se,
                  name=name or f"ResNet-{depth}")


@register
def resnet18(num_classes=1000, in_channels=3, small_input=False, shortcut="B", stride_on="3x3",
             stem="default", downsample="default", zero_init_residual=False, width=64):
    """ResNet-18: basic blocks ×(2, 2, 2, 2); 11,689,512 parameters (11,173,962 small, 10 classes)."""
    return resnet(18, num_classes, in_channels, small_input, shortcut, stride_on, stem, downsample,
                  zero_init_residual, width)


@register
def resnet34(num_classes=1000, in_channels=3, small_input=False, shortcut="B", stride_on="3x3",
             stem="default", downsample="default", zero_init_residual=False, width=64):
    """ResNet-34: basic blocks ×(3, 4, 6, 3); 21,797,672 parameters (A 21,623,848, C 22,716,840)."""
    return resnet(34, num_classes, in_channels, small_input, shortcut, stride_on, stem, downsample,
                  zero_init_residual, width)


@register
def resnet50(num_classes=1000, in_channels=3, small_input=False, shortcut="B", stride_on="3x3",
             stem="default", downsample="default", zero_init_residual=False, width=64):
    """ResNet-50: bottlenecks ×(3, 4, 6, 3); 25,557,032 parameters, 4.089 GMACs (3.858 with stride_on="1x1")."""
    return resnet(50, num_classes, in_channels, small_input, shortcut, stride_on, stem, downsample,
                  zero_init_residual, width)


@register
def resnet101(num_classes=1000, in_channels=3, small_input=False, shortcut="B", stride_on="3x3",
              stem="default", downsample="default", zero_init_residual=False, width=64):
    """ResNet-101: bottlenecks ×(3, 4, 23, 3); 44,549,160 parameters."""
    return resnet(101, num_classes, in_channels, small_input, shortcut, stride_on, stem, downsample,
                  zero_init_residual, width)


@register
def resnet152(num_classes=1000, in_channels=3, small_input=False, shortcut="B", stride_on="3x3",
              stem="default", downsample="default", zero_init_residual=False, width=64):
    """ResNet-152: bottlenecks ×(3, 8, 36, 3); 60,192,808 parameters."""
    return resnet(152, num_classes, in_channels, small_input, shortcut, stride_on, stem, downsample,
                  zero_init_residual, width)


def cifar_resnet(depth, num_classes=10, in_channels=3, shortcut="A", width=16, zero_init_residual=False,
                 se=None, name=None):
    """The paper's CIFAR-10 ResNet with 6n + 2 layers: 3×3 stem (width), n basic blocks on each of
    width·(1, 2, 4) channels, global average pool, fc. ``shortcut=None`` gives the plain net; ``se``
    as in ``ResNet``."""
    if depth not in CIFAR_BLOCKS:
        raise ValueError(f"cifar_resnet: depth must be one of {sorted(CIFAR_BLOCKS)}, got {depth!r}")
    n = CIFAR_BLOCKS[depth]
    kind = "Plain" if shortcut is None else "ResNet"
    return ResNet(BasicBlock, (n, n, n), (width, 2 * width, 4 * width), num_classes, in_channels,
                  small_input=True, shortcut=shortcut, zero_init_residual=zero_init_residual, se=se,
                  name=name or f"{kind}-{depth} (CIFAR)")


@register
def resnet20(num_classes=10, in_channels=3, shortcut="A", width=16):
    """CIFAR ResNet-20 (n = 3): 269,722 parameters, 8.75% CIFAR-10 test error in the paper."""
    return cifar_resnet(20, num_classes, in_channels, shortcut, width)


@register
def resnet32(num_classes=10, in_channels=3, shortcut="A", width=16):
    """CIFAR ResNet-32 (n = 5): 464,154 parameters, 7.51%."""
    return cifar_resnet(32, num_classes, in_channels, shortcut, width)


@register
def resnet44(num_classes=10, in_channels=3, shortcut="A", width=16):
    """CIFAR ResNet-44 (n = 7): 658,586 parameters, 7.17%."""
    return cifar_resnet(44, num_classes, in_channels, shortcut, width)


@register
def resnet56(num_classes=10, in_channels=3, shortcut="A", width=16):
    """CIFAR ResNet-56 (n = 9): 853,018 parameters, 6.97%."""
    return cifar_resnet(56, num_classes, in_channels, shortcut, width)


@register
def resnet110(num_classes=10, in_channels=3, shortcut="A", width=16):
    """CIFAR ResNet-110 (n = 18): 1,727,962 parameters, 6.43% (warm up at lr 0.01 first, papers.md §5.4)."""
    return cifar_resnet(110, num_classes, in_channels, shortcut, width)


@register
def plain20(num_classes=10, in_channels=3, width=16):
    """Plain-20: ResNet-20 without shortcuts (the degradation experiment, the paper's Fig. 6)."""
    return cifar_resnet(20, num_classes, in_channels, None, width)


@register
def plain32(num_classes=10, in_channels=3, width=16):
    """Plain-32: ResNet-32 without shortcuts."""
    return cifar_resnet(32, num_classes, in_channels, None, width)


@register
def plain44(num_classes=10, in_channels=3, width=16):
    """Plain-44: ResNet-44 without shortcuts."""
    return cifar_resnet(44, num_classes, in_channels, None, width)


@register
def plain56(num_classes=10, in_channels=3, width=16):
    """Plain-56: ResNet-56 without shortcuts."""
    return cifar_resnet(56, num_classes, in_channels, None, width)


@register
def plain110(num_classes=10, in_channels=3, width=16):
    """Plain-110: ResNet-110 without shortcuts."""
    return cifar_resnet(110, num_classes, in_channels, None, width)
