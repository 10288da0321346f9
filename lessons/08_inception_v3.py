# %% [markdown]
# # Lesson 08 — Inception-v3: factorised convolutions, grid reduction, the auxiliary head, label smoothing, RMSProp
#
# "Rethinking the Inception Architecture" (Szegedy et al., 2015) is a book of design rules for
# getting more accuracy per multiply-add. This lesson measures each of them on single blocks and on a
# small run:
#
# 1. **factorising** a 5×5 convolution into two 3×3 (28% cheaper), and an n×n into 1×n followed by n×1;
# 2. **efficient grid reduction**: halve the map and double the channels with a stride-2 conv branch
#    *beside* a pooling branch, instead of pooling first (a representational bottleneck) or convolving
#    first (three times the cost);
# 3. the **auxiliary classifier** on the 17×17 grid, a regulariser whose loss is added with weight 0.4;
# 4. **label smoothing** — train towards (1 − ε)·one-hot + ε/K — and what it does to the logits;
# 5. **RMSProp** in TensorFlow's form with ε = 1.0 and **gradient clipping** at global norm 2.0.

# %%
import inspect
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
sys.path.insert(0, str(HERE.parent))                  # the repository root: minicnn without installing

from _lesson import savefig, setup  # noqa: E402

args = setup("Inception-v3: factorisation, grid reduction, auxiliary head, label smoothing, RMSProp + clipping")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import minicnn  # noqa: E402
import minicnn.functional as F  # noqa: E402
from minicnn import models, nn, optim  # noqa: E402
from minicnn.autograd import Tensor, no_grad  # noqa: E402
from minicnn.data import DataLoader, fashion_mnist_mini, transforms as T  # noqa: E402
from minicnn.models.inception import BasicConv2d, InceptionA, InceptionB, InceptionC  # noqa: E402
from minicnn.training import clip_grad_norm_, predict_logits, resize  # noqa: E402

minicnn.manual_seed(0)


def show_source(obj, first=None):
    """Print the source of a minicnn function or class (the first ``first`` lines)."""
    lines = inspect.getsource(obj).splitlines()
    print(f"# {obj.__module__}.{obj.__qualname__}")
    print("\n".join(lines[:first] + ["    ..."] if first and len(lines) > first else lines))


def cost(module, shape):
    """(parameters, multiply-adds) of ``module`` on one input of ``shape``, by minicnn.models.summary."""
    s = models.summary(module, shape, verbose=False)
    return s.total_params, s.total_macs


# %% [markdown]
# ## 1. Factorising convolutions
#
# A 5×5 convolution sees the same window as two stacked 3×3 ones (lesson 06), at 25 vs 9 + 9 = 18
# weights per input–output channel pair: 28% less. Going further, a 3×3 is a 1×3 followed by a 3×1
# (6/9: 33% less), and a 7×7 a 1×7 followed by a 7×1 (14/49), with a ReLU between the halves. The paper
# uses the 1×7/7×1 pairs on the 17×17 grid (InceptionC, "Figure 6"), where they work best. We measure
# parameters and multiply-adds with `minicnn.models.summary` (C = 64 in and out, no biases, on the
# grid where the paper uses each kind):

# %%
C = 64


def conv(kh, kw):
    return nn.Conv2d(C, C, (kh, kw), padding=(kh // 2, kw // 2), bias=False)


pairs = {"5×5 vs two 3×3 (35×35)": (conv(5, 5), nn.Sequential(conv(3, 3), nn.ReLU(), conv(3, 3)), 35),
         "3×3 vs 1×3 + 3×1 (8×8)": (conv(3, 3), nn.Sequential(conv(1, 3), nn.ReLU(), conv(3, 1)), 8),
         "7×7 vs 1×7 + 7×1 (17×17)": (conv(7, 7), nn.Sequential(conv(1, 7), nn.ReLU(), conv(7, 1)), 17)}
savings = {}
for name, (full, factorised, size) in pairs.items():
    (p_full, m_full), (p_fact, m_fact) = cost(full, (C, size, size)), cost(factorised, (C, size, size))
    savings[name] = 1 - m_fact / m_full
    print(f"{name:26s}: params {p_full:>7,} → {p_fact:>7,}, MACs {m_full:>12,} → {m_fact:>12,}  "
          f"({savings[name]:.0%} cheaper)")
assert round(savings["5×5 vs two 3×3 (35×35)"], 2) == 0.28 and round(savings["3×3 vs 1×3 + 3×1 (8×8)"], 2) == 0.33

# %% [markdown]
# The blocks of the released network (`minicnn.models.inception`; torchvision's layout) use these
# factorisations. InceptionC's branches, for example:

# %%
show_source(InceptionC.__init__)
for name, block, shape in (("InceptionA (Mixed_5b), 35×35×192", InceptionA(192, 32), (192, 35, 35)),
                           ("InceptionC (Mixed_6b), 17×17×768", InceptionC(768, 128), (768, 17, 17))):
    p, m = cost(block, shape)
    print(f"{name}: {p:,} parameters, {m / 1e6:.1f} M multiply-adds")

# %% [markdown]
# ## 2. Efficient grid reduction
#
# Going from a 35×35×d grid to 17×17×2d (d = 320, as in the paper's Figure 9) can be done three ways:
#
# * **pool, then conv** (d → 2d on 17×17): cheap, but the 17×17×d map in between is a
#   *representational bottleneck* (principle 1 of the paper);
# * **conv, then pool** (d → 2d on 35×35): no bottleneck, but the conv runs on four times as many
#   positions;
# * **both in parallel** (Figure 10): a stride-2 conv d → d beside a stride-2 max pool of the d input
#   maps, concatenated to 2d. minicnn's `InceptionB` (Mixed_6a) is the released version of it.

# %%
d, S = 320, 35
ways = {"pool → conv": nn.Sequential(nn.MaxPool2d(3, 2), nn.Conv2d(d, 2 * d, 3, padding=1, bias=False)),
        "conv → pool": nn.Sequential(nn.Conv2d(d, 2 * d, 3, padding=1, bias=False), nn.MaxPool2d(3, 2)),
        "conv ‖ pool (Fig. 10)": None}


class ParallelReduction(nn.Module):
    """A stride-2 3×3 conv (d → d) beside a stride-2 3×3 max pool, concatenated: (N, d, 35, 35) -> (N, 2d, 17, 17)."""

    def __init__(self, d):
        super().__init__()
        self.conv, self.pool = nn.Conv2d(d, d, 3, stride=2, bias=False), nn.MaxPool2d(3, 2)

    def forward(self, x):
        return F.cat([self.conv(x), self.pool(x)], dim=1)


ways["conv ‖ pool (Fig. 10)"] = ParallelReduction(d)
reduction_macs = {}
for name, module in ways.items():
    s = models.summary(module, (d, S, S), verbose=False)
    reduction_macs[name] = s.total_macs
    print(f"{name:22s}: output {s.output_shape}, {s.total_macs / 1e6:7.1f} M multiply-adds")
p, m = cost(InceptionB(288), (288, 35, 35))
print(f"InceptionB (Mixed_6a), 35×35×288 → 17×17×768: {p:,} parameters, {m / 1e6:.1f} M multiply-adds")

fig, ax = plt.subplots(figsize=(6, 2.6))
ax.barh(list(reduction_macs), [m / 1e6 for m in reduction_macs.values()], color=["tab:orange", "tab:red", "tab:green"])
ax.set_xlabel("multiply-adds (millions), 35×35×320 → 17×17×640")
ax.set_title("Grid reduction: three ways", fontsize=9)
savefig(fig, args, "08_grid_reduction")

# %% [markdown]
# ## 3. The auxiliary classifier
#
# A small head on the 17×17 grid (after Mixed_6e: avg pool 5×5/3, 1×1 conv 128, 5×5 conv 768, FC)
# predicts the class too. GoogLeNet introduced such heads to push gradient into the lower layers;
# Inception-v3 found they do not speed up early training but improve the end result a little — they
# act as **regularisers** (more so with batch norm in the head). In training mode the model returns
# both outputs; the loss is `inception_loss` = CE(logits) + 0.4 · CE(aux_logits). In eval mode only
# the main logits come out and the head costs nothing.

# %%
show_source(models.inception_loss)
net = models.inception_v3(num_classes=10, in_channels=1, small_input=True, width_mult=1 / 16)
x_train, y_train, x_test, y_test = fashion_mnist_mini()
prepare = T.Compose([T.ToFloat(), T.Normalize([0.2860], [0.3530])])
batch, target = prepare(x_train[:8]), y_train[:8]
net.train()
outputs = net(Tensor(batch))
print(f"train mode: {type(outputs).__name__} with logits {outputs.logits.shape} and aux_logits {outputs.aux_logits.shape}")
print(f"  main CE {F.cross_entropy(outputs.logits, target).item():.4f}, aux CE "
      f"{F.cross_entropy(outputs.aux_logits, target).item():.4f}, inception_loss {models.inception_loss(outputs, target).item():.4f}")
net.eval()
with no_grad():
    print(f"eval mode: {type(net(Tensor(batch))).__name__} of shape {net(Tensor(batch)).shape}")
print(f"Inception-v3-small ×1/16: {models.count_parameters(net):,} parameters")
del net

# %% [markdown]
# ## 4 and 5. Label smoothing, RMSProp (ε = 1.0) and gradient clipping on a small run
#
# **Label smoothing** trains towards q′ = (1 − ε)·δ_y + ε/K instead of the one-hot δ_y (ε = 0.1). The
# paper's argument: with one-hot targets the log-likelihood is maximised only when the correct
# logit is infinitely larger than the others, which makes the model over-confident; the smoothed
# target bounds that gap (the optimum has z_y − z_k = log((1 − ε + ε/K)/(ε/K)) ≈ 4.5 for K = 10).
# `minicnn.functional.cross_entropy(..., label_smoothing=ε)`:

# %%
show_source(F.cross_entropy, first=38)

# %% [markdown]
# **RMSProp**, the paper's optimiser: a running mean of squared gradients, ms ← ρ·ms + (1 − ρ)·g², and
# the step lr · g / √(ms + ε) with ρ = 0.9, **ε = 1.0** — TensorFlow puts ε *inside* the square root;
# PyTorch's RMSprop divides by √ms + ε — and TensorFlow starts ms at 1, PyTorch at 0. With ε as large as
# 1.0 the two differ a lot (`optim.RMSprop.tensorflow` builds the TF form): the TF step is never larger than
# lr·g, so ε = 1.0 makes early training behave like momentum SGD and keeps tiny gradients from being
# blown up. The effective step of the two forms after one update, for gradients of
# different sizes (no momentum):

# %%
show_source(optim.RMSprop.update)
g = np.logspace(-3, 2, 60)
steps = {}
for label, make in (("TensorFlow form, ε = 1.0", lambda p: optim.RMSprop.tensorflow([p], lr=1.0, momentum=0)),
                    ("PyTorch form, ε = 1.0", lambda p: optim.RMSprop([p], lr=1.0, alpha=0.9, eps=1.0)),
                    ("PyTorch form, ε = 1e-8", lambda p: optim.RMSprop([p], lr=1.0, alpha=0.9, eps=1e-8))):
    param = nn.Parameter(np.zeros_like(g))
    opt = make(param)
    param.grad = Tensor(g.copy())
    opt.step()
    steps[label] = -param.data / g                     # the step divided by the gradient: an effective lr
fig, ax = plt.subplots(figsize=(6, 3))
for label, s in steps.items():
    ax.loglog(g, s, label=label)
ax.set(xlabel="|gradient|", ylabel="step / (lr · gradient)", title="RMSProp's first step: ε inside or outside √")
ax.legend(fontsize=8)
savefig(fig, args, "08_rmsprop_forms")
print(f"at |g| = 1: TF form step {steps['TensorFlow form, ε = 1.0'][np.argmin(abs(g - 1))]:.3f}·lr, "
      f"PyTorch ε=1 {steps['PyTorch form, ε = 1.0'][np.argmin(abs(g - 1))]:.3f}·lr, "
      f"PyTorch ε=1e-8 {steps['PyTorch form, ε = 1e-8'][np.argmin(abs(g - 1))]:.3f}·lr")

# %% [markdown]
# Now a small Inception network on Fashion-MNIST resized to 14×14 (to fit a shared CPU) — a stem of `BasicConv2d`, one `InceptionA` block (factorised 5×5
# branch), one `InceptionB` grid reduction, global average pool, FC — trained on Fashion-MNIST twice,
# with and without label smoothing, both with the TF RMSProp (the paper's lr 0.045, decay 0.9, ε = 1.0;
# TF-slim's momentum 0.9) and **clipping the global gradient norm at 2.0** (`minicnn.training.clip_grad_norm_`, which
# returns the norm before clipping — we record it).

# %%
show_source(clip_grad_norm_)


class MiniInception(nn.Module):
    """14×14×1 → stem (3×3 8, 3×3 16) → InceptionA → InceptionB (14→6) → global avg pool → FC 10."""

    def __init__(self, width=0.125):
        super().__init__()
        self.stem = nn.Sequential(BasicConv2d(1, 8, 3, padding=1), BasicConv2d(8, 16, 3, padding=1))
        self.mixed_a = InceptionA(16, 16, width_mult=width)
        self.mixed_b = InceptionB(self.mixed_a.out_channels, width_mult=width)
        self.pool = nn.GlobalAvgPool2d()
        self.fc = nn.Linear(self.mixed_b.out_channels, 10)

    def forward(self, x):
        return self.fc(self.pool(self.mixed_b(self.mixed_a(self.stem(x)))).reshape(x.shape[0], -1))


n_train, n_test, epochs = (128, 100, 1) if args.quick else (1280, 1000, 3)
images, labels = resize(prepare(x_train[:n_train]), 14), y_train[:n_train]          # 14×14: CPU-sized
test_images, test_labels = resize(prepare(x_test[:n_test]), 14), y_test[:n_test]


def train(smoothing):
    minicnn.manual_seed(0)
    model = MiniInception()
    optimizer = optim.RMSprop.tensorflow(model.parameters(), lr=0.045)
    loader = DataLoader((images, labels), batch_size=64, shuffle=True, seed=0)
    norms, started = [], time.perf_counter()
    model.train()
    for epoch in range(epochs):
        loader.set_epoch(epoch)
        for x, y in loader:
            optimizer.zero_grad()
            F.cross_entropy(model(Tensor(x)), y, label_smoothing=smoothing).backward()
            norms.append(clip_grad_norm_(model.parameters(), 2.0))
            optimizer.step()
    model.eval()
    logits = predict_logits(model, test_images)
    print(f"ε = {smoothing}: {len(norms)} steps in {time.perf_counter() - started:.0f} s, "
          f"{models.count_parameters(model):,} parameters")
    return model, logits, np.array(norms)


results = {eps: train(eps) for eps in (0.0, 0.1)}

# %%
stats = {}
for eps, (_, logits, norms) in results.items():
    z = logits - logits.mean(1, keepdims=True)
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    top2 = np.sort(logits, 1)[:, -2:]
    stats[eps] = dict(acc=float((logits.argmax(1) == test_labels).mean()), confidence=p.max(1),
                      gap=top2[:, 1] - top2[:, 0], norm=np.linalg.norm(z, axis=1), clipped=float((norms > 2).mean()))
    s = stats[eps]
    print(f"ε = {eps}: test accuracy {s['acc']:.1%}, mean max-softmax {s['confidence'].mean():.3f}, "
          f"mean top-1 − top-2 logit gap {s['gap'].mean():.2f}, mean ‖logits − mean‖ {s['norm'].mean():.2f}, "
          f"steps clipped {s['clipped']:.0%}")

fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(12, 3.2))
for eps, s in stats.items():
    ax1.hist(s["confidence"], bins=20, range=(0, 1), alpha=0.6, label=f"ε = {eps}")
    ax2.hist(s["gap"], bins=30, alpha=0.6, label=f"ε = {eps}")
    ax3.semilogy(results[eps][2], label=f"ε = {eps}")
ax1.set(xlabel="max softmax probability (test)", ylabel="images", title="confidence")
ax2.set(xlabel="top-1 minus top-2 logit (test)", title="logit gap")
ax3.axhline(2.0, color="k", ls=":", label="clip at 2.0")
ax3.set(xlabel="step", ylabel="global gradient norm before clipping", title="RMSProp (TF, ε=1) + clipping")
for ax in (ax1, ax2, ax3):
    ax.legend(fontsize=8)
savefig(fig, args, "08_label_smoothing")

# %% [markdown]
# ## What the full run printed
#
# (`python lessons/08_inception_v3.py`; the mini Inception has 21,558 parameters and trained 60 steps of
# batch 64 — 3 epochs of 1,280 images at 14×14 — in about 3 minutes per run on a shared 2-core CPU;
# tested on 1,000 images.)
#
# * Factorisation, measured by `summary` with C = 64: 5×5 → two 3×3 **28%** fewer multiply-adds
#   (125.4M → 90.3M on 35×35); 3×3 → 1×3 + 3×1 **33%**; 7×7 → 1×7 + 7×1 **71%**. InceptionA at 35×35×192:
#   255,904 parameters, 312.3M MACs; InceptionC at 17×17×768: 1,297,408 parameters, 374.1M MACs.
# * Grid reduction 35×35×320 → 17×17×640: pool → conv 532.7M MACs, conv → pool 2,257.9M (4.2×), conv ‖
#   pool **266.3M** (half of pool → conv, without its 17×17×320 bottleneck). Mixed_6a: 1,153,280
#   parameters, 401.9M MACs.
# * Auxiliary head: in train mode the model returns `InceptionOutputs(logits (8, 10), aux_logits (8, 10))`,
#   in eval mode a single (8, 10) tensor.
# * RMSProp's first step at |g| = 1: TF form (ε = 1 inside the root, ms starting at 1) 0.710·lr,
#   PyTorch form with ε = 1: 0.774·lr, PyTorch with ε = 1e-8: 3.419·lr.
# * Label smoothing, ε = 0 vs 0.1: mean max-softmax on the test images **0.629 vs 0.522**, mean gap
#   between the two largest logits **1.46 vs 0.98**, mean norm of the centred logit vector **9.70 vs
#   5.42** — smoothing keeps the logits small and the model less confident, as the paper argues. Test
#   accuracy 64.2% vs 62.7%: at 60 steps the paper's +0.2% is far below what one short run can resolve.
# * Clipping at 2.0 was **never triggered** in these runs (0% of steps): the global gradient norm stayed
#   between about 0.4 and 2.0 (right panel). With RMSProp's ε = 1.0 and BN the gradients of this small
#   network are already tame; clipping is the safety net for the large, 50-replica training of the paper.
#
# Exercises: (1) train the small network with PyTorch's RMSprop at ε = 1.0 and at ε = 1e-8 and compare;
# (2) remove the clipping and watch the first steps' gradient norms; (3) train `inception_v3(small_input=True,
# width_mult=1/8)` with `Trainer(recipe=Recipe(label_smoothing=0.1, clip_grad_norm=2.0, aux_weight=0.4))`
# with and without the auxiliary head (`aux_logits=False`).
