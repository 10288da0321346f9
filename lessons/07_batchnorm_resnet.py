# %% [markdown]
# # Lesson 07 — Batch norm and ResNet: why deeper plain nets train worse, and what a shortcut changes
#
# VGG went to 19 layers; going further, He et al. (2015) observed **degradation**: a deeper plain
# network has *higher training error* than a shallower one (their Fig. 1 and Fig. 6: plain-56 above
# plain-20 on CIFAR-10). It is not over-fitting (the training error is worse) and, with batch norm,
# not vanishing gradients either. Their answer: let each block learn a residual, y = F(x) + x, so that
# an identity mapping is the easy default. This lesson measures:
#
# 1. **gradient norms per layer** of a deep plain net and a residual net, at initialisation and after
#    a few steps;
# 2. **the degradation experiment**, scaled down to a CPU: plain-20 vs plain-56 and ResNet-20 vs
#    ResNet-56 training error;
# 3. the cost of a **basic** block vs a **bottleneck** block (288 vs 17 HWC²), checked with `summary`;
# 4. **batch norm**'s effect on training, with and without it.

# %%
import inspect
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
sys.path.insert(0, str(HERE.parent))                  # the repository root: minicnn without installing

from _lesson import savefig, setup  # noqa: E402

args = setup("Batch norm and ResNet: gradient norms, degradation, bottleneck cost, BN on/off")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import minicnn  # noqa: E402
import minicnn.functional as F  # noqa: E402
from minicnn import models, optim  # noqa: E402
from minicnn.autograd import Tensor  # noqa: E402
from minicnn.data import DataLoader, fashion_mnist_mini, transforms as T  # noqa: E402
from minicnn.models.resnet import BasicBlock, Bottleneck, ResidualBlock, cifar_resnet  # noqa: E402
from minicnn.training import grad_norm, resize  # noqa: E402


def show_source(obj, first=None):
    """Print the source of a minicnn function or class (the first ``first`` lines)."""
    lines = inspect.getsource(obj).splitlines()
    print(f"# {obj.__module__}.{obj.__qualname__}")
    print("\n".join(lines[:first] + ["    ..."] if first and len(lines) > first else lines))


# %% [markdown]
# ## The code: a residual block, and the same block without its shortcut
#
# `minicnn.models.resnet.ResidualBlock.forward` is the whole idea in three lines. The CIFAR networks
# of the paper's §4.2 are `resnet20 … resnet110` (6n + 2 layers: a 3×3 stem, three stages of n basic
# blocks on 16/32/64 channels, global average pool, FC; option-A zero-padding shortcuts), and
# `plain20 … plain110` are the same networks with `shortcut=None`.

# %%
show_source(ResidualBlock.forward)
show_source(BasicBlock.__init__)
show_source(cifar_resnet)

# %% [markdown]
# ### The data, scaled down
#
# The paper trains on CIFAR-10 for 64k iterations of batch 128. We have a few minutes of a shared
# CPU, so: the bundled Fashion-MNIST subset, **resized to 14×14** (`minicnn.training.resize`, bilinear;
# the three stages then work on 14, 7 and 4 pixels), networks at **width 4** (4/8/16 channels instead
# of 16/32/64), batch 128 (the paper's), SGD with momentum 0.9, lr 0.1, weight decay 1e-4 (the paper's),
# only 30 steps (two passes over 1,920 images) — about 1/2000 of the paper's 64k iterations. Depths 20 and 56 are the paper's.

# %%
x_train, y_train, _, _ = fashion_mnist_mini()
n_train, epochs, width = (64, 1, 4) if args.quick else (1920, 2, 4)
batch_size = 32 if args.quick else 128
side = 14
prepare = T.Compose([T.ToFloat(), T.Normalize([0.2860], [0.3530])])
images = resize(prepare(x_train[:n_train]), side)
labels = y_train[:n_train]
print(f"{n_train} training images of {images.shape[1:]}, {epochs} epochs, width {width}")


def train(model, lr=0.1, record_every=None, label=""):
    """Plain SGD loop; returns the per-step training loss and error (and gradient norms when asked)."""
    optimizer = optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=1e-4)
    loader = DataLoader((images, labels), batch_size=batch_size, shuffle=True, seed=0)
    losses, errors, snapshots, step = [], [], {}, 0
    started = time.perf_counter()
    model.train()
    for epoch in range(epochs):
        loader.set_epoch(epoch)
        for x, y in loader:
            optimizer.zero_grad()
            logits = model(Tensor(x))
            loss = F.cross_entropy(logits, y)
            loss.backward()
            if record_every and step in record_every:
                snapshots[step] = conv_grad_norms(model)
            optimizer.step()
            losses.append(loss.item())
            errors.append(float((logits.data.argmax(1) != y).mean()))
            step += 1
    print(f"{label}: {step} steps in {time.perf_counter() - started:.0f} s, "
          f"training error over the last 5 steps {np.mean(errors[-5:]):.1%}")
    return np.array(losses), np.array(errors), snapshots


def conv_grad_norms(model):
    """The gradient norm of every conv weight, in the order of the forward pass."""
    return [grad_norm([p]) for name, p in model.named_parameters() if "conv" in name and p.ndim == 4]


# %% [markdown]
# ## 1. Gradient norms per layer, at initialisation and after a few steps
#
# Backpropagation multiplies by one Jacobian per layer. In a plain net the gradient reaching conv1
# passes through all 55 layers above it; in a residual net each block adds an identity path
# (∂y/∂x = I + ∂F/∂x), so some of the gradient skips every block. We record ‖∂L/∂W‖ of every conv
# weight of plain-56 and ResNet-56 at step 0 (initialisation) and after a few SGD steps — these
# runs are the 56-layer ones of the degradation experiment below.

# %%
record = {0, 15} if not args.quick else {0}
runs = {}
for name in ("plain20", "plain56", "resnet20", "resnet56"):
    minicnn.manual_seed(0)
    model = getattr(models, name)(num_classes=10, in_channels=1, width=width)
    runs[name] = train(model, record_every=record if name.endswith("56") else None, label=name)

fig, ax = plt.subplots(figsize=(8, 3.5))
for name, style in (("plain56", "-"), ("resnet56", "--")):
    for step, norms in sorted(runs[name][2].items()):
        ax.semilogy(range(1, len(norms) + 1), norms, style, label=f"{name}, step {step}")
ax.set(xlabel="conv layer (input → output)", ylabel="‖∂L/∂W‖")
ax.legend(fontsize=8)
ax.set_title("Gradient norm of each conv weight, 56-layer plain vs residual", fontsize=9)
savefig(fig, args, "07_gradient_norms")
for name in ("plain56", "resnet56"):
    for step, norms in sorted(runs[name][2].items()):
        print(f"{name} step {step}: ‖∂L/∂W‖ first conv {norms[0]:.3g}, last conv {norms[-1]:.3g}, "
              f"ratio last/first {norms[-1] / norms[0]:.3g}")

# %% [markdown]
# ## 2. The degradation experiment
#
# The paper's Fig. 6 (left): on CIFAR-10, plain-56 has a higher training error than plain-20 for the
# whole run; (middle) ResNet-56 is below ResNet-20. Here the same four networks trained above
# (smoothed over 5 steps):

# %%
def smooth(values, k=5):
    k = min(k, len(values))
    return np.convolve(values, np.ones(k) / k, mode="valid")


fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.4), sharey=True)
for ax, pair in ((ax1, ("plain20", "plain56")), (ax2, ("resnet20", "resnet56"))):
    for name, style in zip(pair, ("-", "--")):
        ax.plot(smooth(runs[name][1]) * 100, style, label=name)
    ax.set(xlabel="step", title=" vs ".join(pair))
    ax.legend()
ax1.set_ylabel("training error % (5-step mean)")
fig.suptitle(f"Degradation, scaled down: Fashion-MNIST {n_train} images at {side}×{side}, width {width}, "
             f"{epochs} epochs", fontsize=9)
savefig(fig, args, "07_degradation")
final = {name: float(np.mean(run[1][-5:])) for name, run in runs.items()}
for name, e in final.items():
    print(f"{name:9s} training error, last 5 steps: {e:.1%}")

# %% [markdown]
# ## 3. Basic block vs bottleneck: 288 vs 17 HWC²
#
# ResNet-50/101/152 replace the basic block by a bottleneck: 1×1 to reduce the width, 3×3, 1×1 to
# restore it. With C = 64 and the block's ends at 4C = 256 channels on an H×W map:
#
# * a basic block at 256 channels: two 3×3 convs, 2 · 9 · (4C)² = **288 HWC²** multiply-adds;
# * a bottleneck 256 → 64 → 64 → 256: 4C·C + 9C² + C·4C = **17 HWC²**;
# * a basic block at 64 channels: 2 · 9C² = 18 HWC² — the bottleneck costs about the same while its
#   ends are four times as wide.
#
# `minicnn.models.summary` counts the multiply-adds of each conv (Cout · OH · OW · Cin/G · KH · KW):

# %%
C, H = 64, 14
unit = H * H * C * C
costs = {}
for label, block, shape in (("basic, 256 channels", BasicBlock(4 * C, 4 * C), (4 * C, H, H)),
                            ("bottleneck 256→64→256", Bottleneck(4 * C, C), (4 * C, H, H)),
                            ("basic, 64 channels", BasicBlock(C, C), (C, H, H))):
    s = models.summary(block, shape, verbose=False)
    costs[label] = s.total_macs
    print(f"{label:22s}: {s.total_macs:>12,} MACs = {s.total_macs / unit:g} HWC²,  {s.total_params:,} parameters")
assert costs["basic, 256 channels"] == 288 * unit and costs["bottleneck 256→64→256"] == 17 * unit

# %% [markdown]
# ## 4. Batch normalisation on and off
#
# Batch norm (Ioffe & Szegedy 2015) normalises each channel over the batch and space, then scales and
# shifts it with learned γ, β (`minicnn.functional.norm`); it lets a network train at a higher
# learning rate and is what made the 20- and 56-layer nets above trainable from a He initialisation
# at all. The same VGG-A-small (lesson 06, width ×0.125, 32×32) with and without `batch_norm`, the
# same learning rate 0.05:

# %%
from minicnn.functional.norm import BatchNorm  # noqa: E402

show_source(BatchNorm, first=45)

# %%
images = T.Pad(2)(prepare(x_train[:n_train]))                       # 32×32 for VGG's five pools
bn_runs = {}
for use_bn in (True, False):
    minicnn.manual_seed(0)
    net = models.vgg("A", batch_norm=use_bn, num_classes=10, in_channels=1, small_input=True, width_mult=0.125)
    bn_runs[use_bn] = train(net, lr=0.05, label=f"VGG-A-small, batch_norm={use_bn}")

fig, ax = plt.subplots(figsize=(6, 3.3))
for use_bn, run in bn_runs.items():
    ax.plot(smooth(run[0]), label=f"batch_norm={use_bn}")
ax.set(xlabel="step", ylabel="training loss (5-step mean)", title="VGG-A-small, lr 0.05, with and without BN")
ax.legend()
savefig(fig, args, "07_batchnorm")
for use_bn, run in bn_runs.items():
    print(f"batch_norm={use_bn}: training loss, last 5 steps {np.mean(run[0][-5:]):.3f}, "
          f"error {np.mean(run[1][-5:]):.1%}")

# %% [markdown]
# ## What the full run printed
#
# (`python lessons/07_batchnorm_resnet.py`: 1,920 bundled Fashion-MNIST training images resized to 14×14,
# width 4 (4/8/16 channels), batch 128, SGD lr 0.1, momentum 0.9, weight decay 1e-4, **30 steps** per
# network; plain-56 took 377 s, plain-20 145 s on a shared, loaded 2-core CPU. This is a sketch of the
# paper's CIFAR-10 experiment at about 1/2000 of its training, not a reproduction.)
#
# * Gradient norms at initialisation: plain-56's conv1 gets ‖∂L/∂W‖ = **434**, its last conv 0.087 —
#   a ratio of 5,000 across the depth: with batch norm the gradient does not vanish towards the input,
#   it *explodes* (each BN layer divides by the batch's standard deviation). ResNet-56: 1.99 at conv1,
#   0.21 at the last conv — within a factor 10, and flat across the blocks. After 15 steps plain-56's
#   first layer is nearly silent (0.0015 vs 0.093 at the top: the early large steps pushed it into a
#   poor region), while ResNet-56's profile stays flat (0.17 to 0.35).
# * Degradation: training error over the last 5 steps — **plain-20 68.4%, plain-56 81.4%** (the deeper
#   plain net is worse on the training set, during the whole run: the paper's Fig. 6 left), **ResNet-20
#   43.3%, ResNet-56 44.1%** (both far below the plain nets; the paper's "56 below 20" needs far longer
#   training — here ResNet-56 led for the first 15 steps and the two were level at the end).
# * Block costs from `summary` (C = 64, 14×14): basic block at 256 channels **288 HWC²** (231,211,008
#   MACs, 1,180,672 parameters), bottleneck 256→64→256 **17 HWC²** (13,647,872 MACs, 70,400 parameters),
#   basic block at 64 channels 18 HWC².
# * Batch norm, VGG-A-small, lr 0.05, 30 steps: training loss over the last 5 steps **0.673 with BN vs
#   1.884 without**, training error 26.7% vs 69.7%.
#
# Exercises: (1) train longer (more data, `side = 28`, width 16) and see whether the gap between
# plain-20 and plain-56 opens or closes; (2) use `zero_init_residual=True` (Bag of Tricks: γ = 0 in
# each block's last BN) and compare the first steps; (3) count ResNet-50's MACs with `stride_on="1x1"`
# and `"3x3"` (papers.md §5.1: 3.858 vs 4.089 G).
