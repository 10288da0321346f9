# %% [markdown]
# # Lesson 02 — A linear classifier and softmax cross-entropy on Fashion-MNIST
#
# Before any convolution: the simplest model that classifies images. Ten scores, one per class,
# each a weighted sum of the 784 pixels:
#
#     scores = x Wᵀ + b          x (N, 784), W (10, 784), b (10,)  →  scores (N, 10)
#
# This lesson covers
#
# 1. **softmax and cross-entropy** — turning scores into probabilities and a loss, and why
#    log-sum-exp keeps them finite;
# 2. **training with SGD** — first by hand with the autograd of lesson 01, then with `optim.SGD`;
# 3. **train / validation / test** and **k-fold cross-validation** — the data-set discipline of the
#    lecture notes (seed article 003): the test set is looked at once; every choice is made on
#    validation data; with little data, k-fold validates on every example once. We choose the
#    learning rate by 5-fold cross-validation;
# 4. what the model learned: **weight templates** (each row of W as a 28×28 image), **loss
#    curves** and a **confusion matrix**.
#
# Data: the full Fashion-MNIST (60,000 + 10,000 images) when it is on this machine, else the
# 12,000 images bundled with minicnn. `--quick` uses 2,000 bundled images and a few steps.

# %%
import inspect
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
sys.path[:0] = [str(HERE), str(HERE.parent)]   # the minicnn next to these lessons

from _lesson import savefig, setup  # noqa: E402

args = setup("Lesson 02: a linear classifier and softmax cross-entropy on Fashion-MNIST")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import minicnn  # noqa: E402
import minicnn.functional as F  # noqa: E402
from minicnn import Tensor, no_grad, optim  # noqa: E402
from minicnn.data import CLASSES, fashion_mnist, fashion_mnist_mini  # noqa: E402
from minicnn.data.loader import DataLoader  # noqa: E402
from minicnn.data.split import k_fold, train_val_split, train_val_test_split  # noqa: E402
from minicnn.functional.linear import Linear  # noqa: E402
from minicnn.gradcheck import gradcheck  # noqa: E402


def show(obj):
    """Print the source of a minicnn class or function."""
    print(f"# {obj.__module__}.{obj.__qualname__}")
    print(inspect.getsource(obj))


# %% [markdown]
# ## 1. Softmax and cross-entropy
#
# Softmax turns K scores into probabilities, p_k = e^(s_k) / Σ_j e^(s_j). Cross-entropy is the
# negative log-probability of the true class y: L = −log p_y. Written naively, e^(s) overflows
# float32 for scores above about 88 — and a badly scaled network produces such scores. Softmax
# does not change when a constant is subtracted from every score, so subtract the largest one m:
#
#     log Σ_j e^(s_j) = m + log Σ_j e^(s_j − m)          (log-sum-exp; the largest term is e⁰ = 1)
#
#     L = −s_y + m + log Σ_j e^(s_j − m)

# %%
scores = np.array([[1000.0, 1001.0, 1002.0]], dtype=np.float32)
with np.errstate(over="ignore", invalid="ignore"):
    naive = np.exp(scores) / np.exp(scores).sum()
m = scores.max()
stable = np.exp(scores - m) / np.exp(scores - m).sum()
print("naive softmax of [1000, 1001, 1002]:", naive)
print("stable softmax:                     ", stable)
print("F.softmax:                          ", F.softmax(Tensor(scores), dim=1).data)

# %% [markdown]
# minicnn's cross-entropy fuses the softmax and the log (`minicnn/functional/loss.py`): its forward
# is the log-sum-exp above, and its backward is simply p − onehot(y), divided by N for the mean.

# %%
show(minicnn.functional.loss.log_softmax_rows)
show(minicnn.functional.loss.CrossEntropy)

# %%
logits = np.array([[2.0, 1.0, 0.1], [0.5, 2.5, -1.0]])
targets = np.array([0, 2])
by_hand = -np.mean([logits[i, t] - np.log(np.exp(logits[i]).sum()) for i, t in enumerate(targets)])
print(f"cross-entropy by hand {by_hand:.6f}, F.cross_entropy {F.cross_entropy(Tensor(logits), targets).item():.6f}")
huge = F.cross_entropy(Tensor(scores), np.array([0])).item()
print(f"cross-entropy of [1000, 1001, 1002] with true class 0: {huge:.4f} (finite; exactly 2 + log(1 + e⁻¹ + e⁻²))")
print(gradcheck(lambda s: F.cross_entropy(s, targets), [logits]))

# %% [markdown]
# ## 2. The data, and three disjoint parts of it
#
# The official test split is put aside now and touched **once**, at the very end. Everything we
# decide — the learning rate, the number of epochs — is decided on validation data carved out of
# the training split (`train_val_split`, stratified so every class keeps its share). The lecture
# notes' 6:2:2 or 7:1.5:1.5 splits of one pool are `train_val_test_split`.

# %%
if args.quick:
    x_all, y_all, x_test, y_test = fashion_mnist_mini()
    x_all, y_all, x_test, y_test = x_all[:2000], y_all[:2000], x_test[:500], y_test[:500]
    source = "bundled mini set, first 2,000 / 500 images (--quick)"
else:
    try:
        (x_all, y_all), (x_test, y_test) = fashion_mnist(train=True), fashion_mnist(train=False)
        source = "full Fashion-MNIST"
    except FileNotFoundError:
        x_all, y_all, x_test, y_test = fashion_mnist_mini()
        source = "bundled mini set (the full set was not found)"
print(f"data: {source}: {len(x_all)} training images, {len(x_test)} test images, shape {x_all.shape[1:]}")


def flat(images):
    """uint8 (N, 28, 28) → float32 (N, 784) in [0, 1]."""
    return (images.reshape(len(images), -1) / 255.0).astype(np.float32)


X_all, X_test = flat(x_all), flat(x_test)
(X_train, y_train), (X_val, y_val) = train_val_split((X_all, y_all), val_fraction=0.1, stratify=y_all)
print(f"train_val_split: {len(X_train)} train, {len(X_val)} validation; per-class validation counts "
      f"{np.bincount(y_val)}")
parts = train_val_test_split(100, val_fraction=0.2, test_fraction=0.2)
print("train_val_test_split of 100 examples, 6:2:2 →", [len(p) for p in parts])

# %% [markdown]
# ## 3. Training by hand, then with `optim.SGD`
#
# The parameters are two leaf tensors. A zero start is fine for a linear model (every class score
# gets a different gradient from the first step on; lesson 03 explains why deeper networks need
# random starts). One SGD step is: scores → loss → backward → move every parameter a little
# against its gradient, p ← p − lr·∇p, without recording a graph (`no_grad`).

# %%
def new_parameters():
    W = Tensor(np.zeros((10, 784), np.float32), requires_grad=True)
    b = Tensor(np.zeros(10, np.float32), requires_grad=True)
    return W, b


show(Linear)
W, b = new_parameters()
xb, yb = Tensor(X_train[:128]), y_train[:128]
for step in range(3):
    loss = F.cross_entropy(F.linear(xb, W, b), yb)
    W.zero_grad()
    b.zero_grad()
    loss.backward()
    with no_grad():
        W.data -= 0.1 * W.grad.data
        b.data -= 0.1 * b.grad.data
    print(f"step {step}: loss {loss.item():.4f}")
print(f"the first loss is log(10) = {np.log(10):.4f}: all-zero scores give every class 1/10")

# %% [markdown]
# `optim.SGD` does the same loop over a list of parameters, with two common additions: momentum
# (a running sum of past gradients, b ← μ·b + g, step p ← p − lr·b, which smooths the noise of
# small batches) and weight decay (g ← g + λ·p, an L2 penalty). Its update, from
# `minicnn/optim/sgd.py`:

# %%
show(optim.SGD.update)
W2, b2 = new_parameters()
sgd = optim.SGD([W2, b2], lr=0.1)
for step in range(3):
    loss = F.cross_entropy(F.linear(xb, W2, b2), yb)
    sgd.zero_grad()
    loss.backward()
    sgd.step()
print("optim.SGD(lr=0.1) after 3 steps equals the hand-written loop:", np.allclose(W.data, W2.data))

# %% [markdown]
# A `DataLoader` hands out shuffled mini-batches (a new, seeded order every epoch). One function
# trains a fresh model; another measures loss and accuracy without a graph.

# %%
print(DataLoader.__doc__.split("\n\n")[0])


def evaluate(W, b, X, y):
    """(mean cross-entropy, accuracy) of the linear model on (X, y), no graph recorded."""
    with no_grad():
        logits = F.linear(Tensor(X), W, b)
        return F.cross_entropy(logits, y).item(), float((logits.data.argmax(1) == y).mean())


def train(X, y, lr, epochs, weight_decay=0.0, seed=0):
    """Train a fresh linear model with SGD (momentum 0.9, batch 128); returns W, b and a history."""
    W, b = new_parameters()
    sgd = optim.SGD([W, b], lr=lr, momentum=0.9, weight_decay=weight_decay)
    loader = DataLoader((X, y), batch_size=128, shuffle=True, seed=seed)
    history = []
    for epoch in range(epochs):
        losses = []
        for xb, yb in loader:
            loss = F.cross_entropy(F.linear(Tensor(xb), W, b), yb)
            sgd.zero_grad()
            loss.backward()
            sgd.step()
            losses.append(loss.item())
        history.append({"epoch": epoch + 1, "train_loss": float(np.mean(losses))})
    return W, b, history


# %% [markdown]
# ## 4. Choosing the learning rate by k-fold cross-validation
#
# k-fold (seed article 003): split the data into k folds; train k times, each time validating on
# one fold and training on the other k − 1; average. Every example is validated exactly once, and
# the spread over the folds shows how far a single validation number can be trusted. It costs k
# trainings, which is why the lecture notes recommend it for *small* data sets, where one held-out
# part would be too small to trust. A linear model trains in about a second per epoch, so here we
# can afford it on the whole training part: 5 folds × 5 learning rates × 5 epochs.

# %%
show(k_fold)

# %%
if args.quick:
    n_cv, k, cv_epochs, lrs = 1500, 3, 1, [0.01, 0.1]
else:
    n_cv, k, cv_epochs, lrs = len(X_train), 5, 5, [0.003, 0.01, 0.03, 0.1, 0.3]
X_cv, y_cv = X_train[:n_cv], y_train[:n_cv]
folds = list(k_fold(n_cv, k, seed=0, stratify=y_cv))
validated = np.sort(np.concatenate([val_idx for _, val_idx in folds]))
assert np.array_equal(validated, np.arange(n_cv)), "every example is validated exactly once"
print(f"{k} folds of {[len(v) for _, v in folds]} images; together they validate each of the "
      f"{n_cv} examples exactly once")

start = time.time()
cv_acc = {}
for lr in lrs:
    cv_acc[lr] = []
    for train_idx, val_idx in folds:
        W, b, _ = train(X_cv[train_idx], y_cv[train_idx], lr, cv_epochs)
        cv_acc[lr].append(evaluate(W, b, X_cv[val_idx], y_cv[val_idx])[1])
    print(f"lr {lr:<6} validation accuracy per fold {np.round(cv_acc[lr], 3)}  "
          f"mean {np.mean(cv_acc[lr]):.4f} ± {np.std(cv_acc[lr]):.4f}")
best_lr = max(lrs, key=lambda lr: np.mean(cv_acc[lr]))
print(f"k-fold choice: lr = {best_lr}  ({len(lrs) * k} trainings, {time.time() - start:.0f} s)")

# %%
fig, ax = plt.subplots(figsize=(6, 3.8))
for i, lr in enumerate(lrs):
    ax.scatter([i] * k, 100 * np.array(cv_acc[lr]), color="0.6", s=14, zorder=2)
    ax.errorbar(i, 100 * np.mean(cv_acc[lr]), yerr=100 * np.std(cv_acc[lr]), fmt="o", color="C0",
                capsize=4, zorder=3)
ax.set_xticks(range(len(lrs)), [str(lr) for lr in lrs])
ax.set(xlabel="learning rate (SGD, momentum 0.9)", ylabel="validation accuracy (%)",
       title=f"{k}-fold cross-validation on {n_cv} images, {cv_epochs} epochs\n"
             f"grey: each fold; blue: mean ± std; chosen lr = {best_lr}")
ax.grid(alpha=0.3)
fig.tight_layout()
savefig(fig, args, "02_kfold_learning_rate")
plt.close(fig)

# %% [markdown]
# ## 5. The final model: train on the training part, watch the validation part
#
# With the chosen learning rate we train on the whole training part and record, after every
# epoch, the training loss (mean over the epoch's batches) and the validation loss and accuracy,
# for twice the epochs of the cross-validation runs. The validation set makes one more choice: which epoch's parameters to keep ("early stopping":
# the epoch with the best validation accuracy).

# %%
def train_with_validation(X, y, lr, epochs, val, seed=0):
    """Like `train`, keeping a copy of the parameters of the epoch with the best validation accuracy."""
    W, b = new_parameters()
    sgd = optim.SGD([W, b], lr=lr, momentum=0.9)
    loader = DataLoader((X, y), batch_size=128, shuffle=True, seed=seed)
    history, best = [], None
    for epoch in range(epochs):
        losses = []
        for xb, yb in loader:
            loss = F.cross_entropy(F.linear(Tensor(xb), W, b), yb)
            sgd.zero_grad()
            loss.backward()
            sgd.step()
            losses.append(loss.item())
        val_loss, val_acc = evaluate(W, b, *val)
        history.append({"epoch": epoch + 1, "train_loss": float(np.mean(losses)),
                        "val_loss": val_loss, "val_acc": val_acc})
        if best is None or val_acc > best["val_acc"]:
            best = {"epoch": epoch + 1, "val_acc": val_acc, "W": W.data.copy(), "b": b.data.copy()}
    return best, history


epochs = 2 if args.quick else 2 * cv_epochs
start = time.time()
best, history = train_with_validation(X_train, y_train, best_lr, epochs, val=(X_val, y_val))
for record in history:
    print(f"epoch {record['epoch']:2d}: train loss {record['train_loss']:.4f}  "
          f"val loss {record['val_loss']:.4f}  val acc {record['val_acc']:.4f}")
print(f"{epochs} epochs in {time.time() - start:.0f} s; best validation accuracy after epoch "
      f"{best['epoch']}: its parameters are kept")
W, b = Tensor(best["W"]), Tensor(best["b"])

# %% [markdown]
# Only now, once, the test set:

# %%
test_loss, test_acc = evaluate(W, b, X_test, y_test)
train_loss, train_acc = evaluate(W, b, X_train, y_train)
val_acc = best["val_acc"]
print(f"accuracy: train {train_acc:.4f}   validation {val_acc:.4f}   test {test_acc:.4f}")
print(f"the validation estimate missed the test accuracy by {100 * (val_acc - test_acc):+.2f} points "
      f"(positive: optimistic — the best of {epochs} epochs was picked on it)")

# %%
epochs_axis = [r["epoch"] for r in history]
fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.6))
ax_loss.plot(epochs_axis, [r["train_loss"] for r in history], marker="o", label="train (mean over epoch)")
ax_loss.plot(epochs_axis, [r["val_loss"] for r in history], marker="o", label="validation")
ax_loss.set(xlabel="epoch", ylabel="cross-entropy", title=f"loss (lr = {best_lr})")
ax_acc.plot(epochs_axis, [100 * r["val_acc"] for r in history], marker="o", color="C1",
            label="validation")
ax_acc.axvline(best["epoch"], color="0.5", ls=":", label=f"kept: epoch {best['epoch']}")
ax_acc.axhline(100 * test_acc, color="C3", ls="--", label=f"test, measured once: {100 * test_acc:.1f}%")
ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
for ax in (ax_loss, ax_acc):
    ax.legend()
    ax.grid(alpha=0.3)
fig.tight_layout()
savefig(fig, args, "02_loss_curves")
plt.close(fig)

# %% [markdown]
# ## 6. What a linear classifier learns
#
# Score k is the dot product of the image with row k of W, so each row is a **template**: pixels
# with positive weight vote for the class, negative ones against. Shown as 28×28 images they are
# blurred prototypes — a trouser's two legs, a bag's rectangle, a sandal's sparse straps.

# %%
templates = W.data.reshape(10, 28, 28)
fig, axes = plt.subplots(2, 5, figsize=(11, 4.8))
limit = np.abs(templates).max()
for k_class, ax in enumerate(axes.flat):
    image = ax.imshow(templates[k_class], cmap="RdBu_r", vmin=-limit, vmax=limit)
    ax.set_title(CLASSES[k_class], fontsize=9)
    ax.axis("off")
fig.colorbar(image, ax=axes, fraction=0.025, label="weight (red: votes for the class)")
fig.suptitle("rows of W as 28×28 images: one template per class")
savefig(fig, args, "02_weight_templates")
plt.close(fig)

# %% [markdown]
# The confusion matrix counts, for every true class (row), the predicted classes (columns); its
# diagonal is each class's recall. `minicnn.training.confusion_matrix` counts and
# `minicnn.viz.plot_confusion_matrix` draws.

# %%
from minicnn.training import confusion_matrix  # noqa: E402
from minicnn.viz import plot_confusion_matrix  # noqa: E402

with no_grad():
    test_scores = F.linear(Tensor(X_test), W, b).data
counts = confusion_matrix(test_scores, y_test, num_classes=10)
recall = counts.diagonal() / counts.sum(axis=1)
for k_class in np.argsort(recall)[:3]:
    row = counts[k_class].copy()
    row[k_class] = 0
    print(f"{CLASSES[k_class]:<12} recall {recall[k_class]:.2f}; most often mistaken for "
          f"{CLASSES[int(row.argmax())]} ({row.max()} of {counts[k_class].sum()})")
path = plot_confusion_matrix(counts, Path(args.out) / "02_confusion_matrix.png", CLASSES,
                             title=f"linear classifier on the test set ({100 * test_acc:.1f}% accuracy)")
print(f"figure: {path}")

# %% [markdown]
# ## Summary (numbers of the full run on the full Fashion-MNIST)
#
# * Stable softmax: the naive formula gives `nan` for scores near 1000; subtracting the maximum
#   gives [0.090, 0.245, 0.665], and the cross-entropy stays finite (2.4076).
# * 5-fold cross-validation on 10,000 images (5 epochs each) chose **lr = 0.03** (validation
#   accuracy 82.5 % ± 0.6 %); lr = 0.003 reached only 77 %, and at lr = 0.3 the spread over folds
#   grows. The fold-to-fold spread (±0.5–2 points) is the uncertainty of a single validation number.
# * Trained 15 epochs on 54,000 images: train 86.9 %, validation 85.4 %, **test 84.0 %** — the
#   range the Fashion-MNIST authors report for linear classifiers (about 84 %). The validation
#   estimate was 1.4 points optimistic here.
# * The templates look like blurred clothes; the confusion matrix shows where a linear model fails:
#   Shirt is the worst class (recall 0.49), confused with T-shirt/top, Pullover and Coat, which
#   share its silhouette.
#
# Exercises: choose the weight decay the same way (`train(..., weight_decay=λ)` for λ in
# 0, 1e-4, 1e-3, 1e-2): how does its effect compare with the fold-to-fold spread? Try k = 10.
