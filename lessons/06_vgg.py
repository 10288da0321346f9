# %% [markdown]
# # Lesson 06 — VGG: depth from stacks of 3×3, initialising from A, scale jittering, dense evaluation
#
# Simonyan and Zisserman (2014) asked one question: what does **depth** buy, if everything else is kept
# simple? All their convolutions are 3×3 with stride 1 and padding 1, five 2×2 max pools halve the map,
# widths go 64 → 128 → 256 → 512, and three FC layers end the network. Configurations A (11 weight
# layers) to E (19) differ only in how many 3×3 convs each stage stacks. The lesson:
#
# 1. why **stacks of 3×3**: two have a 5×5 receptive field, three a 7×7 one — with 27C² instead of 49C²
#    weights and three ReLUs instead of one;
# 2. **configurations A–E**, their parameter counts, and the depth result on a small scale;
# 3. the paper's **initialisation of deeper nets from A** (`init_from_vgg_a`);
# 4. **scale jittering** (training scale S drawn from [Smin, Smax]);
# 5. **dense evaluation** by turning the FC layers into convolutions (`fc_to_conv`), and multi-crop.

# %%
import inspect
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
sys.path.insert(0, str(HERE.parent))                  # the repository root: minicnn without installing

from _lesson import savefig, setup  # noqa: E402

args = setup("VGG: 3×3 stacks, configurations A–E, init from A, scale jitter, dense evaluation")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import minicnn  # noqa: E402
import minicnn.functional as F  # noqa: E402
from minicnn import models, nn, optim  # noqa: E402
from minicnn.autograd import Tensor, no_grad  # noqa: E402
from minicnn.data import DataLoader, fashion_mnist_mini, transforms as T  # noqa: E402
from minicnn.training import Trainer, predict_logits, protocol_proba, resize  # noqa: E402

minicnn.manual_seed(0)


def show_source(obj, first=None):
    """Print the source of a minicnn function or class (the first ``first`` lines)."""
    lines = inspect.getsource(obj).splitlines()
    print(f"# {obj.__module__}.{obj.__qualname__}")
    print("\n".join(lines[:first] + ["    ..."] if first and len(lines) > first else lines))


# %% [markdown]
# ## 1. Stacks of 3×3: receptive field and parameters
#
# The receptive field of an output pixel is the set of input pixels its value depends on — exactly the
# pixels where the gradient of that output with respect to the input is non-zero. We let autograd find
# it: stack k 3×3 convolutions (`minicnn.functional.conv2d`, all-ones kernels so nothing cancels),
# backpropagate from the centre pixel, and look where the gradient lands.

# %%
def receptive_field(kernel_sizes, size=15):
    """|∂ y[centre] / ∂ x| for a stack of convs with the given kernel sizes (stride 1, 'same' padding)."""
    x = Tensor(np.zeros((1, 1, size, size), np.float64), requires_grad=True)
    h = x
    for k in kernel_sizes:
        h = F.conv2d(h, Tensor(np.ones((1, 1, k, k))), padding=k // 2)
    h[0, 0, size // 2, size // 2].backward()
    return np.abs(x.grad.data[0, 0])


fields = {"one 3×3": [3], "two 3×3": [3, 3], "three 3×3": [3, 3, 3], "one 7×7": [7]}
fig, axes = plt.subplots(1, 4, figsize=(10, 2.8))
for ax, (name, ks) in zip(axes, fields.items()):
    g = receptive_field(ks)
    rows, cols = np.nonzero(g)
    extent = f"{np.ptp(rows) + 1}×{np.ptp(cols) + 1}"
    print(f"{name:10s}: receptive field {extent}")
    ax.imshow(g, cmap="viridis")
    ax.set_title(f"{name}: {extent}", fontsize=9)
    ax.axis("off")
assert [np.ptp(receptive_field(ks).nonzero()[0]) + 1 for ks in ([3, 3], [3, 3, 3])] == [5, 7]
fig.suptitle("Where the gradient of the centre output lands (three 3×3 weight the centre more)", fontsize=9)
savefig(fig, args, "06_receptive_field")

# %% [markdown]
# Same 7×7 field, different cost. For C input and C output channels (no biases):

# %%
C = 64
three = nn.Sequential(*[nn.Conv2d(C, C, 3, padding=1, bias=False) for _ in range(3)])
seven = nn.Conv2d(C, C, 7, padding=3, bias=False)
p3, p7 = models.count_parameters(three), models.count_parameters(seven)
print(f"C = {C}: three 3×3 = {p3:,} = 27·C²  ({p3 // C ** 2}·C²);  one 7×7 = {p7:,} = 49·C²  ({p7 // C ** 2}·C²);"
      f"  the 7×7 has {p7 / p3 - 1:.0%} more")
assert p3 == 27 * C * C and p7 == 49 * C * C

# %% [markdown]
# ## 2. Configurations A–E
#
# `minicnn.models.vgg` builds any column of the paper's Table 1 from `VGG_CONFIGS`, a list per
# configuration in which a number is a 3×3 conv of that width, `"M"` a max pool, `"C1-…"` a 1×1 conv
# (configuration C) and `"LRN"` A-LRN's normalisation:

# %%
for name, config in models.VGG_CONFIGS.items():
    print(f"{name:6s} {config}")
show_source(models.vgg)

# %%
builders = {"A (vgg11)": models.vgg11, "B (vgg13)": models.vgg13, "C (vgg_c)": models.vgg_c,
            "D (vgg16)": models.vgg16, "E (vgg19)": models.vgg19}
paper_millions = {"A (vgg11)": 133, "B (vgg13)": 133, "C (vgg_c)": 134, "D (vgg16)": 138, "E (vgg19)": 144}
counts = {}
for name, build in builders.items():
    # The quick run counts the small-input (32×32, one FC) networks; the full run the ImageNet ones.
    net = build(num_classes=10, small_input=True) if args.quick else build()
    counts[name] = models.count_parameters(net)
    del net
    print(f"{name}: {counts[name]:>12,} parameters" + ("" if args.quick else
          f"   (paper's Table 2: {paper_millions[name]}M)"))
if not args.quick:
    assert counts["D (vgg16)"] == 138_357_544 and counts["A (vgg11)"] == 132_863_336

# %% [markdown]
# The full run prints A 132,863,336; B 133,047,848; C 133,638,952; D 138,357,544; E 143,667,240 —
# the paper's 133/133/134/138/144 million. Eight more conv layers (A → E) add only 8% parameters:
# 124M of them sit in the three FC layers (fc6 alone: 7·7·512·4096 = 102.8M).
#
# ## 3. Depth on a small scale: A, D from scratch, D initialised from A
#
# The paper trained A from random weights and then initialised the deeper nets with "the first four
# convolutional layers and the last three fully-connected layers" of A (the rest random), because
# deep plain nets were hard to start (they later found Glorot initialisation works without it).
# `minicnn.models.init_from_vgg_a` does that copy:

# %%
show_source(models.init_from_vgg_a)

# %% [markdown]
# On Fashion-MNIST we use the small-input VGG (papers.md §9: the same conv stacks, then a global
# average pool and one FC layer), with batch norm (BN), at 1/8 of the width (8-16-32-64-64 channels)
# so three networks train in minutes on a CPU. Images are zero-padded to 32×32 (five 2×2 pools need
# 32) and trained with **scale jittering**: each image rescaled so its side is S ~ U[32, 48], then a
# random 32×32 crop and a flip — the paper's S ∈ [256, 512] for 224 crops, scaled down.

# %%
x_train, y_train, x_test, y_test = fashion_mnist_mini()
n_train, n_test = (128, 100) if args.quick else (1200, 500)
epochs, width = (1, 0.125) if args.quick else (2, 0.125)
x_train, y_train, x_test, y_test = x_train[:n_train], y_train[:n_train], x_test[:n_test], y_test[:n_test]
prepare = T.Compose([T.ToFloat(), T.Normalize([0.2860], [0.3530]), T.Pad(2)])      # 28 → 32
jitter = T.ScaleJitter(32, 48, 32)
augment = T.Compose([prepare, jitter, T.RandomHorizontalFlip()])

# %%
rng = np.random.default_rng(1)
sample = prepare(x_train[:6])
fig, axes = plt.subplots(3, 6, figsize=(8, 4.2))
for col in range(6):
    axes[0, col].imshow(sample[col, 0], cmap="gray")
    axes[0, col].set_title("original 32×32", fontsize=7)
    for row in (1, 2):
        S, top, left = jitter.sample(1, 32, 32, rng)
        axes[row, col].imshow(jitter(sample[col:col + 1], np.random.default_rng(int(S[0]) + row))[0, 0], cmap="gray")
        axes[row, col].set_title("jittered crop", fontsize=7)
for ax in axes.flat:
    ax.axis("off")
fig.suptitle("Scale jittering: rescale to S ~ U[32, 48], take a random 32×32 crop", fontsize=9)
savefig(fig, args, "06_scale_jitter")


# %%
def train(model, label):
    loader = DataLoader((x_train, y_train), batch_size=64, shuffle=True, seed=0, transform=augment)
    val = DataLoader((x_test, y_test), batch_size=250, transform=prepare)
    optimizer = optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    started = time.perf_counter()
    history = Trainer(model, optimizer, loader, val, progress=False, log=lambda s: print(f"{label}: {s}")).fit(epochs)
    print(f"{label}: {models.count_parameters(model):,} parameters, {time.perf_counter() - started:.0f} s")
    return [r["train_loss"] for r in history.records], [r["val_acc"] for r in history.records]


def small_vgg(config):
    return models.vgg(config, batch_norm=True, num_classes=10, in_channels=1, small_input=True, width_mult=width)


minicnn.manual_seed(0)
net_a = small_vgg("A")
curves = {"A (11 layers)": train(net_a, "A")}
minicnn.manual_seed(0)
net_d = small_vgg("D")
curves["D (16), random init"] = train(net_d, "D random")
minicnn.manual_seed(0)
net_d_from_a = models.init_from_vgg_a(small_vgg("D"), net_a)
curves["D (16), init from A"] = train(net_d_from_a, "D from A")

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.3))
for label, (loss, acc) in curves.items():
    ax1.plot(range(1, epochs + 1), loss, "o-", label=label)
    ax2.plot(range(1, epochs + 1), np.array(acc) * 100, "o-", label=label)
ax1.set(xlabel="epoch", ylabel="training loss")
ax2.set(xlabel="epoch", ylabel="test accuracy % (centre)")
ax1.legend(fontsize=8)
fig.suptitle(f"VGG-small ×{width} with BN on {n_train} Fashion-MNIST images", fontsize=9)
savefig(fig, args, "06_depth_and_init_from_a")

# %% [markdown]
# A caution the full run taught us: after so few steps at lr 0.05, the test accuracy measured in
# eval mode lags far behind the training accuracy. Batch norm's running mean and variance are
# exponential averages over the last ~10 batches (momentum 0.1), but the weights moved fast during
# those batches, so the averages describe a network that no longer exists. Recomputing them with
# the final weights — one pass over the training images in train mode without gradients, equal
# weights per batch (`momentum=None`) — is all it takes ("precise BN"); no weight changes.

# %%
def recalibrate_batch_norm(model):
    """Recompute every BatchNorm's running statistics with the final weights (cumulative average)."""
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    with no_grad():
        for x, _ in DataLoader((x_train, y_train), batch_size=250, transform=augment, seed=1):
            model(Tensor(x))
    for m in norms:
        m.momentum = 0.1
    return model.eval()


def test_accuracy(model):
    return float((predict_logits(model.eval(), prepare(x_test)).argmax(1) == y_test).mean())


for label, net in (("A", net_a), ("D random", net_d), ("D from A", net_d_from_a)):
    before = test_accuracy(net)
    print(f"{label:9s}: test accuracy {before:.1%} with the running statistics, "
          f"{test_accuracy(recalibrate_batch_norm(net)):.1%} after recomputing them")

# %% [markdown]
# ## 4. Dense evaluation: the FC layers become convolutions
#
# At test time VGG does not crop. It turns fc6 (7·7·512 → 4096) into a 7×7 convolution and fc7, fc8
# into 1×1 convolutions; the network then slides over an image of any size Q and returns a map of
# class scores, which is averaged over space. `minicnn.models.fc_to_conv` reshapes the weights:

# %%
show_source(models.fc_to_conv)

# %% [markdown]
# The check, on an ImageNet-head VGG-A (fc6 on a 7×7 map) built at 1/16 width so it runs on a CPU:
# at the training size 224 the converted network must give **the same logits**; at Q = 256, 384, 512
# it gives 2×2, 6×6 and 10×10 score maps (papers.md §3.3).

# %%
head_net = models.vgg("A", num_classes=10, in_channels=1, width_mult=1 / 16).eval()
dense_net = models.fc_to_conv(head_net).eval()
x224 = np.random.default_rng(0).normal(size=(2, 1, 224, 224)).astype(np.float32)
with no_grad():
    logits = head_net(Tensor(x224)).data
    maps = {q: dense_net(Tensor(np.zeros((1, 1, q, q), np.float32))).data.shape for q in ((256, 384) if args.quick
                                                                                          else (256, 384, 512))}
    same = dense_net(Tensor(x224)).data
print(f"224: fc head logits vs conv head map {same.shape}: max |difference| = {np.abs(same[:, :, 0, 0] - logits).max():.2e}")
for q, shape in maps.items():
    print(f"Q = {q}: class-score map {shape[2]}×{shape[3]}")
assert np.allclose(same[:, :, 0, 0], logits, atol=1e-4)

# %% [markdown]
# Our small-input VGG ends in a global average pool and one FC layer, which is fully convolutional
# already (averaging features then applying a linear layer = averaging per-position scores), so it
# runs as it is on larger images. We compare, with the trained D-from-A network, the paper's test
# protocols (scaled: Q ∈ {32, 40, 48} for S ∈ [32, 48]):
#
# * single scale, the 32×32 image (Q = 32);
# * **dense** at three scales, each with its flip, softmax averaged (`protocol_proba(..., "multiscale")`);
# * **multi-crop**: 32×32 crops of the image at Q = 40 — four corners, centre and flips;
# * both together (the paper's best: they are complementary, different padding at the borders).

# %%
model = net_d_from_a.eval()
x = prepare(x_test)
p_single = protocol_proba(model, x, "center", crop_size=32)
p_dense = protocol_proba(model, x, "multiscale", scales=[32, 40, 48])
p_crops = protocol_proba(model, resize(x, 40), "10crop", crop_size=32)
results = {"single 32": p_single, "dense, 3 scales": p_dense, "multi-crop (Q=40)": p_crops,
           "dense + multi-crop": (p_dense + p_crops) / 2}
accuracies = {k: float((p.argmax(1) == y_test).mean()) for k, p in results.items()}
for k, a in accuracies.items():
    print(f"{k:20s} test accuracy {a:.2%}")

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3), gridspec_kw={"width_ratios": [2, 1]})
ax1.bar(range(len(accuracies)), [a * 100 for a in accuracies.values()])
ax1.set_xticks(range(len(accuracies)), list(accuracies), fontsize=8)
ax1.set_ylim(min(accuracies.values()) * 100 - 3, max(accuracies.values()) * 100 + 1)
ax1.set_ylabel("test accuracy %")
with no_grad():
    class_map = dense_net(Tensor(np.random.default_rng(0).normal(size=(1, 1, 384, 384)).astype(np.float32))).data
ax2.imshow(class_map[0].argmax(0), cmap="tab10", vmin=0, vmax=9)
ax2.set_title(f"fc_to_conv VGG-A at Q = 384:\narg-max class of its {class_map.shape[2]}×{class_map.shape[3]} score map",
              fontsize=8)
ax2.axis("off")
savefig(fig, args, "06_dense_evaluation")

# %% [markdown]
# ## What the full run printed
#
# (`python lessons/06_vgg.py`: VGG-small with BN at width ×0.125, 2 epochs of SGD — lr 0.05, momentum
# 0.9, weight decay 5e-4, batch 64, i.e. 38 steps — on 1,200 bundled Fashion-MNIST training images with
# scale jittering, tested on 500; about 2–3 minutes per network on a shared, loaded 2-core CPU.)
#
# * Receptive fields found by autograd: 3×3, **5×5** (two 3×3), **7×7** (three 3×3); parameters at C = 64:
#   110,592 = 27C² vs 200,704 = 49C² (the 7×7 has 81% more).
# * Table 2 from the models: A 132,863,336; B 133,047,848; C 133,638,952; D 138,357,544; E 143,667,240.
# * Training accuracy after 2 epochs: A 53.6%, D random 44.6%, **D from A 51.3%** (its first epoch: 34.5%
#   vs 20.2% for D random) — the copied layers give the deeper net a head start, as the paper intended.
#   The test accuracies in the right panel of the curves (eval mode, BN running statistics) are
#   misleadingly low — 29.2%, 18.6%, 16.2% — for the reason of the caution above; after recomputing the
#   statistics: **A 61.4%, D random 56.4%, D from A 60.4%**. At 38 steps the deeper net does not beat A
#   (the paper's D − A gain, 2.6 top-1 points, needs training to convergence), but initialising from A
#   recovers most of the gap to it.
# * fc_to_conv: at 224 the converted VGG-A gives the same logits (max |difference| 0.0); at Q = 256, 384,
#   512 it gives 2×2, 6×6 and 10×10 score maps, as papers.md §3.3 computes.
# * Protocols, D from A: single 32×32 **60.4%**, dense at 3 scales **63.8%**, multi-crop at Q = 40
#   **64.6%**, dense + multi-crop 63.0%. Multi-scale and multi-crop testing help (+3.4 and +4.2 points:
#   the network was trained on jittered, enlarged crops, so the test images at Q = 40–48 look more like
#   its training images); combining the two did not help further here (the paper: +0.2).
#
# Summary: small filters stacked deep see as far as big ones for less; the 11-to-19-layer family
# differs only in stack heights; deeper plain nets were started from A; training and testing over
# several scales, and dense evaluation through FC layers rewritten as convolutions, complete the recipe.
#
# Exercises: (1) train without batch norm (`batch_norm=False`) and see whether D still starts without
# `init_from_vgg_a`; (2) replace the three 3×3 of a stage by one 7×7 and compare (the paper's "shallow B");
# (3) evaluate the trained network densely on the 64×64 image and plot its 2×2 class-score map.
