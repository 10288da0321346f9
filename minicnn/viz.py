"""Every figure of minicnn, drawn with matplotlib.

matplotlib is imported inside each function, never at the top, so ``import minicnn`` stays fast and
works without it; figures are drawn with the non-interactive Agg backend (files, no window), so they
work on servers and in tests.

    plot_history(history, path)                    loss, accuracy (top-1/top-5) and learning rate per epoch
    plot_confusion_matrix(counts, path, classes)   true class (rows) × predicted class (columns)

Each function writes a PNG at ``path`` (creating its directory) and returns the path.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

__all__ = ["plot_history", "plot_confusion_matrix"]


def _pyplot():
    """matplotlib.pyplot on the Agg backend (imported on first use)."""
    import matplotlib
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    return plt


def _records(history):
    records = history.records if hasattr(history, "records") else list(history)
    if not records:
        raise ValueError("plot_history: the history has no epochs yet")
    return records


def _column(records, key):
    rows = [r for r in records if r.get(key) is not None]
    return [r["epoch"] for r in rows], [r[key] for r in rows]


def _save(fig, path):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Written beside the target and renamed: a reader never sees half a PNG.
    temporary = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(temporary, dpi=100)
    os.replace(temporary, path)
    return path


def plot_history(history, path, title=None):
    """Three panels against the epoch: training and validation loss; training and validation top-1
    accuracy (and validation top-5); the learning rate (step by step when recorded). ``history`` is a
    ``minicnn.training.History`` or a list of its records."""
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator
    records = _records(history)
    fig, (loss_ax, acc_ax, lr_ax) = plt.subplots(1, 3, figsize=(13, 3.8))
    for key, label in (("train_loss", "train"), ("val_loss", "validation")):
        epochs, values = _column(records, key)
        if values:
            loss_ax.plot(epochs, values, marker="o", label=label)
    loss_ax.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    for key, label in (("train_acc", "train top-1"), ("val_acc", "validation top-1"), ("val_top5", "validation top-5")):
        epochs, values = _column(records, key)
        if values:
            acc_ax.plot(epochs, [100 * v for v in values], marker="o", label=label)
    acc_ax.set(xlabel="epoch", ylabel="%", title="accuracy")
    # The lr within each epoch when the records have it (a per-step schedule), else one point per epoch.
    steps, values = [], []
    for r in records:
        trace = r.get("lr_steps") or ([r["lr"]] if r.get("lr") is not None else [])
        steps += [r["epoch"] - 1 + (i + 1) / len(trace) for i in range(len(trace))]
        values += trace
    lr_ax.plot(steps, values, marker="o" if len(values) <= len(records) else None)
    lr_ax.set(xlabel="epoch", ylabel="learning rate", title="learning rate")
    for ax in (loss_ax, acc_ax):
        ax.legend()
    for ax in (loss_ax, acc_ax, lr_ax):
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    try:
        return _save(fig, path)
    finally:
        plt.close(fig)


def plot_confusion_matrix(counts, path, classes=None, normalize=True, title="confusion matrix"):
    """A heat map of ``counts`` (K, K) (rows: true class, columns: predicted), each row normalised to
    fractions when ``normalize``; the diagonal is the per-class recall. Cells are annotated."""
    plt = _pyplot()
    counts = np.asarray(counts)
    K = counts.shape[0]
    values = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1) if normalize else counts
    classes = list(classes) if classes is not None else [str(k) for k in range(K)]
    size = max(4.0, 0.6 * K + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    image = ax.imshow(values, cmap="Blues", vmin=0)
    fig.colorbar(image, ax=ax, fraction=0.046)
    ax.set_xticks(range(K), classes, rotation=45, ha="right")
    ax.set_yticks(range(K), classes)
    ax.set(xlabel="predicted class", ylabel="true class", title=title)
    threshold = values.max() / 2 if values.size else 0
    for i in range(K):
        for j in range(K):
            text = f"{values[i, j]:.2f}" if normalize else f"{int(values[i, j])}"
            ax.text(j, i, text, ha="center", va="center", fontsize=7,
                    color="white" if values[i, j] > threshold else "black")
    fig.tight_layout()
    try:
        return _save(fig, path)
    finally:
        plt.close(fig)
