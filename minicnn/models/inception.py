"""Inception-v3 (Szegedy, Vanhoucke, Ioffe, Shlens, Wojna: "Rethinking the Inception Architecture for
Computer Vision", CVPR 2016) as released (TensorFlow, then torchvision), and its small-input variant.

Shape letters: N batch, C channels, H, W height and width, K classes.

The paper's design principles (papers.md §7.1), and where each shows up below:
  * Factorise large convolutions into smaller ones. A 5×5 conv sees the same 5×5 window as two
    stacked 3×3 convs, which cost (9 + 9)/25 = 18/25 of it (28% cheaper) with a ReLU in between:
    the ``branch3x3dbl`` of every InceptionA block. (The released 35×35 blocks still keep a 5×5
    branch beside it: ``branch5x5``.)
  * Factorise n×n into 1×n followed by n×1: 2n/n² of the cost (n = 7: 14/49; a 3×3 as 1×3 + 3×1
    saves 33%). It works best on medium grids (12 to 20 pixels), so InceptionC uses 1×7 / 7×1
    pairs on the 17×17 map, with padding (0, 3) / (3, 0) to keep the size.
  * Expand the filter bank on the coarsest grid to avoid representational bottlenecks: InceptionE
    (8×8) splits a branch into a 1×3 and a 3×1 conv side by side and concatenates both.
  * Efficient grid-size reduction: pooling first (35 → 17) would make a representational
    bottleneck; expanding the channels first and then pooling runs the expensive conv on the large
    grid. InceptionB and InceptionD instead run stride-2 conv branches in parallel with a stride-2
    max pool and concatenate them (the paper's Figure 10): the grid halves while the channels grow.
  * BatchNorm after every conv ("BasicConv2d" = conv without bias + BN with eps 1e-3 + ReLU).

The released network (papers.md §7.2; torchvision's module names, so state dicts line up):

    299×299×3  Conv2d_1a_3x3 3×3/2 32 → Conv2d_2a_3x3 3×3 32 → Conv2d_2b_3x3 3×3 64 pad 1 → maxpool1 3×3/2
               → Conv2d_3b_1x1 1×1 80 → Conv2d_4a_3x3 3×3 192 → maxpool2 3×3/2            35×35×192
    Mixed_5b/5c/5d  InceptionA (pool features 32, 64, 64)                                  35×35×256/288/288
    Mixed_6a        InceptionB: grid reduction                                             17×17×768
    Mixed_6b…6e     InceptionC (7×7 channels 128, 160, 160, 192)                           17×17×768
    AuxLogits       on Mixed_6e's output, training only: avg pool 5×5/3 → 1×1 conv 128 → 5×5 conv 768
                    → FC K                                                                 K
    Mixed_7a        InceptionD: grid reduction                                             8×8×1280
    Mixed_7b/7c     InceptionE                                                             8×8×2048
    avgpool (global) → dropout (p = 0.5) → fc                                              K

It differs from the paper's Table 1 (papers.md §7.2, §11.6): the released stem has 1×1 80 → 3×3 192 →
max pool where the table has 3×3 80 → 3×3/2 192 → 3×3 288, and the 35×35 blocks take 192 channels and
keep a 5×5 branch. Parameter counts refer to the released model: 27,161,264 with the auxiliary head,
23,834,568 without (the head is 3,326,696); 5.713 GMACs at 299 (papers.md §8.1; the paper's Table 3
says 4.8 "Bn ops").

Auxiliary classifier (papers.md §7.3). The paper found that side heads do not speed up early training
but regularise: near the end the network with one is slightly better. It runs only in training mode:
    model.train(); logits, aux_logits = model(x)     # an InceptionOutputs namedtuple, like PyTorch's
    loss = cross_entropy(logits, y) + 0.4 * cross_entropy(aux_logits, y)    # ``inception_loss``
    model.eval();  logits = model(x)                 # a Tensor; the head is not run
With ``aux_logits=False`` the head is not built and the model always returns the logits alone.
The weight 0.4 is TF-slim's (cited by Inception-v4 and NASNet). torchvision's head has BatchNorm in
its convs but not on its FC layer; the paper's "BN-auxiliary" normalises that FC too.

Smallest inputs (a clear InputTooSmallError otherwise, naming the layer where the map vanishes):
75×75 for the main path (torchvision's ``min_size``; 75 → 37 → 35 → 35 → 17 → 17 → 15 → 7 → 3 → 1),
but 299×299 in training mode with the auxiliary head: its 5×5 conv needs a 5×5 map, which its 5×5/3
pool only gives from a 17×17 one. Training also needs two values per channel at every BN: the
auxiliary head ends at 1×1, so it cannot train on a batch of one (PyTorch refuses too).

Small inputs (``small_input=True``, papers.md §9, weiaicunzai's CIFAR-100 Inception-v3): the stem
convs have stride 1 and padding 1 (the 1×1 and the last 3×3 unchanged) and both stem max pools go;
every Mixed block is unchanged. 32 → 30 (stem) → 14 (Mixed_6a) → 6 (Mixed_7a); 28 → 26 → 12 → 5.
10 classes: 21,806,058 parameters at 32×32×3, 21,805,482 at 28×28×1 (3.096 and 2.273 GMACs). The
auxiliary head's 5×5/3 pool turns the 14×14 map into 4×4, so its second conv is 4×4 instead of 5×5
(+1,680,650 parameters at 10 classes). On 28×28 the map is 12×12 and a floor-mode pool would give
3×3, so this pool rounds up (ceil mode: 4×4 from both 12 and 14, and the same windows as floor mode
on 14). The smallest inputs are 9×9 without and 27×27 with the auxiliary head.

Other options:
  * ``width_mult`` scales every channel count (rounded, at least 1): a narrow network of full depth
    for tests and lessons. The counts above are for 1.0.
  * ``count_include_pad`` of the 3×3/1 average pools in the pool branches: True divides by 9 at the
    border too (torchvision's, the default); False divides by the real pixels only, as TensorFlow's
    ``SAME`` padding in the original release.
  * ``transform_input`` (torchvision's): turns an input normalised with ImageNet's mean and std into
    the (x − 0.5)/0.5 scaling the TensorFlow weights were trained with. Only for 3 channels.
  * ``dropout``: the drop probability before the final FC (torchvision 0.5; TF-slim keeps 0.8, i.e. 0.2).

Initialisation: truncated normal std 0.1 for every conv and FC weight (0.01 for the auxiliary head's
second conv, 0.001 for its FC), cut at ±2 std as TensorFlow's ``truncated_normal`` does (torchvision
passes the absolute bounds ±2, which hardly cut at std 0.1); BN γ = 1, β = 0; FC biases keep Linear's
default, as torchvision's.
"""
from __future__ import annotations

from collections import namedtuple
from functools import partial

from .. import nn
from ..functional.loss import cross_entropy
from ..functional.math import cat, flatten
from .registry import register
from .summary import InputSizeError, InputTooSmallError, check_input_size, trace_feature_map, window_layers

__all__ = ["Inception3", "InceptionOutputs", "BasicConv2d", "InceptionA", "InceptionB", "InceptionC",
           "InceptionD", "InceptionE", "InceptionAux", "inception_v3", "inception_loss"]

BN_EPS = 1e-3            # the TensorFlow release's BatchNorm epsilon (PyTorch's default is 1e-5)
AUX_LOSS_WEIGHT = 0.4    # TF-slim's weight of the auxiliary loss (papers.md §7.3)

InceptionOutputs = namedtuple("InceptionOutputs", ["logits", "aux_logits"])
InceptionOutputs.__doc__ = """What Inception3 returns in training mode with the auxiliary head (PyTorch's
name): logits (N, K) from the main classifier, aux_logits (N, K) from the head on Mixed_6e."""


def _scaled(channels, width_mult):
    return max(1, int(round(channels * width_mult)))


class BasicConv2d(nn.Module):
    """conv (no bias: BN's β replaces it) → BN (eps 1e-3) → ReLU: (N, C, H, W) -> (N, Cout, OH, OW)."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, bias=False)
        self.bn = nn.BatchNorm2d(out_channels, eps=BN_EPS)
        self.relu = nn.ReLU()
        self.out_channels = out_channels

    def forward(self, x):
        return self.relu(self.bn(self.conv(x)))


class InceptionBlock(nn.Module):
    """Shared by the five block types: branches run side by side on the same input and their outputs
    are concatenated along C. ``out_channels`` is the sum of the branches' channels. ``MAIN_BRANCH``
    names one branch (its layers in order); every branch ends at the same H×W, so tracing that one
    gives the block's output size (``Inception3.main_path``)."""

    MAIN_BRANCH = ()

    @staticmethod
    def concatenate(branches):
        return cat(branches, dim=1)


class InceptionA(InceptionBlock):
    """35×35 block (Mixed_5b/5c/5d; the paper's Figure 5 plus a 5×5 branch): size kept, C -> 224 + P.

        branch1x1       1×1 64
        branch5x5       1×1 48 → 5×5 64 (pad 2)
        branch3x3dbl    1×1 64 → 3×3 96 → 3×3 96: the 5×5 window factorised into two 3×3 (18/25 the cost)
        branch_pool     avg pool 3×3/1 pad 1 → 1×1 P (pool_features)
    """

    MAIN_BRANCH = ("branch1x1",)

    def __init__(self, in_channels, pool_features, width_mult=1.0, count_include_pad=True):
        super().__init__()
        w = partial(_scaled, width_mult=width_mult)
        self.branch1x1 = BasicConv2d(in_channels, w(64), 1)
        self.branch5x5_1 = BasicConv2d(in_channels, w(48), 1)
        self.branch5x5_2 = BasicConv2d(w(48), w(64), 5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, w(64), 1)
        self.branch3x3dbl_2 = BasicConv2d(w(64), w(96), 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(w(96), w(96), 3, padding=1)
        self.pool = nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=count_include_pad)
        self.branch_pool = BasicConv2d(in_channels, _scaled(pool_features, width_mult), 1)
        self.out_channels = w(64) + w(64) + w(96) + _scaled(pool_features, width_mult)

    def forward(self, x):
        branch1x1 = self.branch1x1(x)
        branch5x5 = self.branch5x5_2(self.branch5x5_1(x))
        branch3x3dbl = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        branch_pool = self.branch_pool(self.pool(x))
        return self.concatenate([branch1x1, branch5x5, branch3x3dbl, branch_pool])


class InceptionB(InceptionBlock):
    """Grid reduction 35 -> 17 (Mixed_6a; the paper's Figure 10): C -> 384 + 96 + C.

        branch3x3       3×3/2 384
        branch3x3dbl    1×1 64 → 3×3 96 (pad 1) → 3×3/2 96
        pool            max pool 3×3/2 (its C channels pass through unchanged)
    """

    MAIN_BRANCH = ("branch3x3",)

    def __init__(self, in_channels, width_mult=1.0):
        super().__init__()
        w = partial(_scaled, width_mult=width_mult)
        self.branch3x3 = BasicConv2d(in_channels, w(384), 3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, w(64), 1)
        self.branch3x3dbl_2 = BasicConv2d(w(64), w(96), 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(w(96), w(96), 3, stride=2)
        self.pool = nn.MaxPool2d(3, stride=2)
        self.out_channels = w(384) + w(96) + in_channels

    def forward(self, x):
        branch3x3 = self.branch3x3(x)
        branch3x3dbl = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return self.concatenate([branch3x3, branch3x3dbl, self.pool(x)])


class InceptionC(InceptionBlock):
    """17×17 block with 7×7 convolutions factorised into 1×7 and 7×1 (Mixed_6b…6e; Figure 6, n = 7):
    size kept, C -> 768. c = channels_7x7 (128, 160, 160, 192).

        branch1x1       1×1 192
        branch7x7       1×1 c → 1×7 c (pad 0,3) → 7×1 192 (pad 3,0)
        branch7x7dbl    1×1 c → 7×1 c → 1×7 c → 7×1 c → 1×7 192: two factorised 7×7s
        branch_pool     avg pool 3×3/1 pad 1 → 1×1 192
    """

    MAIN_BRANCH = ("branch1x1",)

    def __init__(self, in_channels, channels_7x7, width_mult=1.0, count_include_pad=True):
        super().__init__()
        w = partial(_scaled, width_mult=width_mult)
        c = w(channels_7x7)
        row, column = dict(kernel_size=(1, 7), padding=(0, 3)), dict(kernel_size=(7, 1), padding=(3, 0))
        self.branch1x1 = BasicConv2d(in_channels, w(192), 1)
        self.branch7x7_1 = BasicConv2d(in_channels, c, 1)
        self.branch7x7_2 = BasicConv2d(c, c, **row)
        self.branch7x7_3 = BasicConv2d(c, w(192), **column)
        self.branch7x7dbl_1 = BasicConv2d(in_channels, c, 1)
        self.branch7x7dbl_2 = BasicConv2d(c, c, **column)
        self.branch7x7dbl_3 = BasicConv2d(c, c, **row)
        self.branch7x7dbl_4 = BasicConv2d(c, c, **column)
        self.branch7x7dbl_5 = BasicConv2d(c, w(192), **row)
        self.pool = nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=count_include_pad)
        self.branch_pool = BasicConv2d(in_channels, w(192), 1)
        self.out_channels = 4 * w(192)

    def forward(self, x):
        branch1x1 = self.branch1x1(x)
        branch7x7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        branch7x7dbl = x
        for i in range(1, 6):
            branch7x7dbl = getattr(self, f"branch7x7dbl_{i}")(branch7x7dbl)
        branch_pool = self.branch_pool(self.pool(x))
        return self.concatenate([branch1x1, branch7x7, branch7x7dbl, branch_pool])


class InceptionD(InceptionBlock):
    """Grid reduction 17 -> 8 (Mixed_7a): C -> 320 + 192 + C.

        branch3x3       1×1 192 → 3×3/2 320
        branch7x7x3     1×1 192 → 1×7 192 → 7×1 192 → 3×3/2 192
        pool            max pool 3×3/2
    """

    MAIN_BRANCH = ("branch3x3_1", "branch3x3_2")

    def __init__(self, in_channels, width_mult=1.0):
        super().__init__()
        w = partial(_scaled, width_mult=width_mult)
        self.branch3x3_1 = BasicConv2d(in_channels, w(192), 1)
        self.branch3x3_2 = BasicConv2d(w(192), w(320), 3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(in_channels, w(192), 1)
        self.branch7x7x3_2 = BasicConv2d(w(192), w(192), (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(w(192), w(192), (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(w(192), w(192), 3, stride=2)
        self.pool = nn.MaxPool2d(3, stride=2)
        self.out_channels = w(320) + w(192) + in_channels

    def forward(self, x):
        branch3x3 = self.branch3x3_2(self.branch3x3_1(x))
        branch7x7x3 = x
        for i in range(1, 5):
            branch7x7x3 = getattr(self, f"branch7x7x3_{i}")(branch7x7x3)
        return self.concatenate([branch3x3, branch7x7x3, self.pool(x)])


class InceptionE(InceptionBlock):
    """8×8 block with an expanded filter bank (Mixed_7b/7c; Figure 7): size kept, C -> 2048.

        branch1x1       1×1 320
        branch3x3       1×1 384 → {1×3 384 ‖ 3×1 384} concatenated: 768
        branch3x3dbl    1×1 448 → 3×3 384 → {1×3 384 ‖ 3×1 384} concatenated: 768
        branch_pool     avg pool 3×3/1 pad 1 → 1×1 192
    The 1×3 and 3×1 convs run side by side on the same map instead of one after the other: on the
    coarsest grid the paper widens the representation rather than deepening it.
    """

    MAIN_BRANCH = ("branch1x1",)

    def __init__(self, in_channels, width_mult=1.0, count_include_pad=True):
        super().__init__()
        w = partial(_scaled, width_mult=width_mult)
        row, column = dict(kernel_size=(1, 3), padding=(0, 1)), dict(kernel_size=(3, 1), padding=(1, 0))
        self.branch1x1 = BasicConv2d(in_channels, w(320), 1)
        self.branch3x3_1 = BasicConv2d(in_channels, w(384), 1)
        self.branch3x3_2a = BasicConv2d(w(384), w(384), **row)
        self.branch3x3_2b = BasicConv2d(w(384), w(384), **column)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, w(448), 1)
        self.branch3x3dbl_2 = BasicConv2d(w(448), w(384), 3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(w(384), w(384), **row)
        self.branch3x3dbl_3b = BasicConv2d(w(384), w(384), **column)
        self.pool = nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=count_include_pad)
        self.branch_pool = BasicConv2d(in_channels, w(192), 1)
        self.out_channels = w(320) + 4 * w(384) + w(192)

    def forward(self, x):
        branch1x1 = self.branch1x1(x)
        y = self.branch3x3_1(x)
        branch3x3 = self.concatenate([self.branch3x3_2a(y), self.branch3x3_2b(y)])
        y = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        branch3x3dbl = self.concatenate([self.branch3x3dbl_3a(y), self.branch3x3dbl_3b(y)])
        branch_pool = self.branch_pool(self.pool(x))
        return self.concatenate([branch1x1, branch3x3, branch3x3dbl, branch_pool])


class InceptionAux(nn.Module):
    """The auxiliary classifier on Mixed_6e's 17×17×768 map: (N, C, 17, 17) -> (N, K).

        pool       avg pool 5×5/3: 17×17 -> 5×5 (small inputs: 14×14 or 12×12 -> 4×4, ceil mode)
        conv0      1×1 128
        conv1      5×5 768 (small inputs: 4×4): -> 1×1
        avgpool    adaptive average pool to 1×1 (larger inputs give a larger map here)
        fc         768 -> K
    """

    def __init__(self, in_channels, num_classes, width_mult=1.0, small_input=False):
        super().__init__()
        kernel = 4 if small_input else 5
        self.pool = nn.AvgPool2d(5, stride=3, ceil_mode=small_input)
        self.conv0 = BasicConv2d(in_channels, _scaled(128, width_mult), 1)
        self.conv1 = BasicConv2d(_scaled(128, width_mult), _scaled(768, width_mult), kernel)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(_scaled(768, width_mult), num_classes)
        self.conv1.conv.stddev = 0.01          # initialisation (read by Inception3), torchvision's values
        self.fc.stddev = 0.001

    def forward(self, x):
        x = self.conv1(self.conv0(self.pool(x)))
        return self.fc(flatten(self.avgpool(x), 1))


class Inception3(nn.Module):
    """Inception-v3: (N, in_channels, H, W) -> logits (N, K), or InceptionOutputs(logits, aux_logits)
    in training mode with ``aux_logits=True``. See the module docstring for the layout and options."""

    def __init__(self, num_classes=1000, in_channels=3, aux_logits=True, small_input=False, dropout=0.5,
                 transform_input=False, width_mult=1.0, count_include_pad=True):
        super().__init__()
        if transform_input and in_channels != 3:
            raise ValueError(f"Inception3: transform_input re-normalises the three ImageNet colour channels, "
                             f"but in_channels={in_channels}")
        if not width_mult > 0:
            raise ValueError(f"Inception3: width_mult must be positive, got {width_mult!r}")
        self.num_classes, self.in_channels, self.small_input = num_classes, in_channels, small_input
        self.transform_input, self.width_mult = transform_input, width_mult
        w = partial(_scaled, width_mult=width_mult)
        pool_options = dict(width_mult=width_mult, count_include_pad=count_include_pad)

        # Stem. Small inputs: stride 1 and padding 1 instead of stride 2 / valid, and no max pools.
        stride, padding = (1, 1) if small_input else (2, 0)
        self.Conv2d_1a_3x3 = BasicConv2d(in_channels, w(32), 3, stride=stride, padding=padding)
        self.Conv2d_2a_3x3 = BasicConv2d(w(32), w(32), 3, padding=padding)
        self.Conv2d_2b_3x3 = BasicConv2d(w(32), w(64), 3, padding=1)
        self.maxpool1 = nn.Identity() if small_input else nn.MaxPool2d(3, stride=2)
        self.Conv2d_3b_1x1 = BasicConv2d(w(64), w(80), 1)
        self.Conv2d_4a_3x3 = BasicConv2d(w(80), w(192), 3)
        self.maxpool2 = nn.Identity() if small_input else nn.MaxPool2d(3, stride=2)

        self.Mixed_5b = InceptionA(w(192), 32, **pool_options)
        self.Mixed_5c = InceptionA(self.Mixed_5b.out_channels, 64, **pool_options)
        self.Mixed_5d = InceptionA(self.Mixed_5c.out_channels, 64, **pool_options)
        self.Mixed_6a = InceptionB(self.Mixed_5d.out_channels, width_mult)
        self.Mixed_6b = InceptionC(self.Mixed_6a.out_channels, 128, **pool_options)
        self.Mixed_6c = InceptionC(self.Mixed_6b.out_channels, 160, **pool_options)
        self.Mixed_6d = InceptionC(self.Mixed_6c.out_channels, 160, **pool_options)
        self.Mixed_6e = InceptionC(self.Mixed_6d.out_channels, 192, **pool_options)
        self.AuxLogits = (InceptionAux(self.Mixed_6e.out_channels, num_classes, width_mult, small_input)
                          if aux_logits else None)
        self.Mixed_7a = InceptionD(self.Mixed_6e.out_channels, width_mult)
        self.Mixed_7b = InceptionE(self.Mixed_7a.out_channels, **pool_options)
        self.Mixed_7c = InceptionE(self.Mixed_7b.out_channels, **pool_options)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(self.Mixed_7c.out_channels, num_classes)
        self._initialise()

    @property
    def aux_logits(self):
        return self.AuxLogits is not None

    def _initialise(self):
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                std = getattr(m, "stddev", 0.1)
                nn.init.trunc_normal_(m.weight, 0.0, std, a=-2 * std, b=2 * std)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _transform_input(self, x):
        """ImageNet normalisation (x − mean)/std -> TensorFlow's (x − 0.5)/0.5, channel by channel."""
        mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
        return cat([x[:, c:c + 1] * (std[c] / 0.5) + (mean[c] - 0.5) / 0.5 for c in range(3)], dim=1)

    def forward(self, x):
        self._check_input(x)
        if self.transform_input:
            x = self._transform_input(x)
        # Sizes for a 299×299 input (small_input, 32×32: 32 through the stem to 30, 14 after Mixed_6a, 6 after 7a).
        x = self.Conv2d_1a_3x3(x)          # N × 32 × 149 × 149
        x = self.Conv2d_2a_3x3(x)          # N × 32 × 147 × 147
        x = self.Conv2d_2b_3x3(x)          # N × 64 × 147 × 147
        x = self.maxpool1(x)               # N × 64 × 73 × 73
        x = self.Conv2d_3b_1x1(x)          # N × 80 × 73 × 73
        x = self.Conv2d_4a_3x3(x)          # N × 192 × 71 × 71
        x = self.maxpool2(x)               # N × 192 × 35 × 35
        x = self.Mixed_5b(x)               # N × 256 × 35 × 35
        x = self.Mixed_5c(x)               # N × 288 × 35 × 35
        x = self.Mixed_5d(x)               # N × 288 × 35 × 35
        x = self.Mixed_6a(x)               # N × 768 × 17 × 17
        x = self.Mixed_6b(x)               # N × 768 × 17 × 17
        x = self.Mixed_6c(x)               # N × 768 × 17 × 17
        x = self.Mixed_6d(x)               # N × 768 × 17 × 17
        x = self.Mixed_6e(x)               # N × 768 × 17 × 17
        aux = self.AuxLogits(x) if self.aux_logits and self.training else None     # N × K
        x = self.Mixed_7a(x)               # N × 1280 × 8 × 8
        x = self.Mixed_7b(x)               # N × 2048 × 8 × 8
        x = self.Mixed_7c(x)               # N × 2048 × 8 × 8
        x = self.dropout(self.avgpool(x))  # N × 2048 × 1 × 1
        logits = self.fc(flatten(x, 1))    # N × K
        return logits if aux is None else InceptionOutputs(logits, aux)

    # ---- feature-map sizes and input checks ------------------------------------------------------
    def main_path(self):
        """(name, layer) of the convolutions and pools on the way to the fc, in order: the stem, one
        branch of each Mixed block (its MAIN_BRANCH; the others end the same size) and the global pool."""
        path = []
        for name, m in window_layers(self):
            top, _, rest = name.partition(".")
            block = getattr(self, top)
            if top == "AuxLogits" or (isinstance(block, InceptionBlock)
                                      and rest.split(".")[0] not in block.MAIN_BRANCH):
                continue
            path.append((name, m))
        return path

    def aux_path(self):
        """(name, layer) on the way to the auxiliary classifier: the main path up to Mixed_6e, then the head."""
        path = self.main_path()
        end = max(i for i, (name, _) in enumerate(path) if name.startswith("Mixed_6e."))
        return path[:end + 1] + [(name, m) for name, m in window_layers(self) if name.startswith("AuxLogits.")]

    def feature_sizes(self, input_size):
        """(block name, (OH, OW)) after every stem layer and Mixed block for an input (H, W) or H:
        at 299 the output column of the layout table (149, 147, 147, 73, 73, 71, 35, 35 … 17 … 8)."""
        blocks = {}
        for name, size in trace_feature_map(self.main_path(), input_size):
            top = name.split(".")[0]
            if top != "avgpool":
                blocks[top] = size           # the last layer of a block gives the block's output
        return list(blocks.items())

    def _check_input(self, x):
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"Inception3: expected an input of shape (N, {self.in_channels}, H, W), "
                             f"got {tuple(x.shape)}")
        check_input_size(self, x, self.main_path())
        if not self.training:
            return
        paths = [self.main_path()]
        if self.aux_logits:
            try:
                check_input_size(self, x, self.aux_path())
            except InputTooSmallError as error:
                raise InputTooSmallError(
                    f"{error} That is the auxiliary classifier, which runs in training mode only; in eval() "
                    f"mode or with aux_logits=False the main path needs only "
                    f"{self._smallest_input(self.main_path())}.") from None
            paths.append(self.aux_path())
        for layers in paths:
            self._check_batch_norm_gets_two_values(x, layers)

    @staticmethod
    def _smallest_input(layers):
        size = next(s for s in range(1, 4097) if min(trace_feature_map(layers, (s, s))[-1][1]) >= 1)
        return f"{size}×{size}"

    def _check_batch_norm_gets_two_values(self, x, layers):
        """In training every BN (one after each conv) needs two values per channel: N·OH·OW ≥ 2."""
        N, (H, W) = x.shape[0], x.shape[2:]
        convs = {name for name, m in layers if isinstance(m, nn.Conv2d)}

        def first_single_value(size, batch):
            return next(((name, out) for name, out in trace_feature_map(layers, size)
                         if name in convs and batch * out[0] * out[1] < 2), None)

        def trains(size, batch):
            trace = trace_feature_map(layers, size)
            survives = len(trace) == len(layers) and min(trace[-1][1]) >= 1
            return survives and first_single_value(size, batch) is None

        problem = first_single_value((H, W), N)
        if problem is not None:
            name, out = problem
            works = next((f"an input of at least {s}×{s}, " for s in range(1, 4097) if trains((s, s), N)), "")
            raise InputSizeError(
                f"Inception3: a batch of {N} at {H}×{W} is too small to train: the feature map after layer "
                f"{name!r} is {out[0]}×{out[1]}, so the batch norm after it sees one value per channel; use "
                f"{works}a batch of 2 or more, or eval()")


def inception_loss(outputs, target, aux_weight=AUX_LOSS_WEIGHT, **loss_options):
    """The training loss of Inception-v3: cross_entropy(logits) + aux_weight · cross_entropy(aux_logits).

    outputs   InceptionOutputs (training mode with the auxiliary head) or plain logits (N, K)
    target    class indices (N,) or soft targets (N, K); ``loss_options`` go to cross_entropy
              (e.g. label_smoothing=0.1, the paper's label-smoothing regularisation)
    """
    if isinstance(outputs, InceptionOutputs):
        return (cross_entropy(outputs.logits, target, **loss_options)
                + aux_weight * cross_entropy(outputs.aux_logits, target, **loss_options))
    return cross_entropy(outputs, target, **loss_options)


@register
def inception_v3(num_classes=1000, in_channels=3, aux_logits=True, small_input=False, dropout=0.5,
                 transform_input=False, width_mult=1.0, count_include_pad=True):
    """Inception-v3 as released (torchvision's layout and names): 27,161,264 parameters with the
    auxiliary head, 23,834,568 without (1000 classes); ``small_input=True`` for 28×28 / 32×32 images.
    See the module docstring."""
    return Inception3(num_classes, in_channels, aux_logits, small_input, dropout, transform_input, width_mult,
                      count_include_pad)
