"""Held-out data: a training/validation(/test) split and k-fold cross-validation, as index arrays.

Why: the test set is looked at once, at the end; every choice made while training (learning rate, epochs,
when to divide the rate by 10 as AlexNet and VGG do) is made on a validation set carved out of the training
data. With little data, k-fold cross-validation validates on every example once, over k trainings.

Splits are seeded (default seed 0): a split must come out the same every time the program runs, or a resumed
run would validate on images it has trained on. ``stratify=labels`` keeps each class's share of the data in
every part (to within one example per class), which matters for small or unbalanced data sets. Index arrays
come back sorted (a split is a set; the DataLoader does the shuffling).
"""
import numpy as np

__all__ = ["train_val_split", "train_val_test_split", "k_fold"]


def _rng(seed):
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def _count(n_or_arrays):
    """N, and the arrays to split (None when only N was given)."""
    if isinstance(n_or_arrays, (int, np.integer)) and not isinstance(n_or_arrays, bool):
        return int(n_or_arrays), None
    arrays = n_or_arrays if isinstance(n_or_arrays, (tuple, list)) else (n_or_arrays,)
    arrays = tuple(np.asarray(a) for a in arrays)
    if not arrays or len({len(a) for a in arrays}) != 1:
        raise ValueError(f"split: expected N or arrays of one length, got shapes {[a.shape for a in arrays]}")
    return len(arrays[0]), arrays


def _classes(stratify, n):
    """Each class's example indices in increasing order, for stratify (n,) labels; one group without labels."""
    if stratify is None:
        return [np.arange(n)]
    labels = np.asarray(stratify)
    if labels.shape != (n,):
        raise ValueError(f"split: stratify must hold one label per example, shape ({n},), got {labels.shape}")
    classes, inverse = np.unique(labels, return_inverse=True)
    return [np.flatnonzero(inverse == c) for c in range(len(classes))]


def _allocate(sizes, total):
    """Split ``total`` among groups proportionally to ``sizes`` with whole numbers (largest remainder)."""
    sizes = np.asarray(sizes)
    quotas = sizes * total / sizes.sum()
    counts = np.floor(quotas).astype(int)
    order = np.argsort(-(quotas - counts), kind="stable")           # largest fractional parts first
    counts[order[:total - counts.sum()]] += 1
    return counts


def _held_out(n, fraction, seed, stratify, name):
    """Sorted (kept, held-out) indices with round(n·fraction) held out, drawn per class."""
    if not 0 < fraction < 1:
        raise ValueError(f"{name}: the fraction must be in (0, 1), got {fraction}")
    n_out = int(round(n * fraction))
    if not 0 < n_out < n:
        raise ValueError(f"{name}: a fraction {fraction} of {n} examples leaves an empty part")
    rng, groups = _rng(seed), _classes(stratify, n)
    counts = _allocate([len(g) for g in groups], n_out)
    held = np.concatenate([rng.choice(g, k, replace=False) for g, k in zip(groups, counts)])
    mask = np.zeros(n, bool)
    mask[held] = True
    return np.flatnonzero(~mask), np.flatnonzero(mask)


def _take(arrays, index):
    parts = tuple(a[index] for a in arrays)
    return parts[0] if len(parts) == 1 else parts


def train_val_split(n_or_arrays, val_fraction=0.1, seed=0, stratify=None):
    """Split N examples into training and validation parts.

    n_or_arrays   N, or an array or tuple of arrays of length N (e.g. (images, labels))
    val_fraction  the validation share; round(N · val_fraction) examples are validated
    seed          an int or a numpy Generator
    stratify      None, or labels (N,): each class contributes its share to both parts (to within one example)

    Returns (train_idx, val_idx) sorted int arrays for N; for arrays, (train_part, val_part), each the arrays
    indexed like the input: x_train, x_val = train_val_split(x, ...) or
    (x_train, y_train), (x_val, y_val) = train_val_split((x, y), 0.1, stratify=y).
    """
    n, arrays = _count(n_or_arrays)
    train, val = _held_out(n, val_fraction, seed, stratify, "train_val_split")
    return (train, val) if arrays is None else (_take(arrays, train), _take(arrays, val))


def train_val_test_split(n_or_arrays, val_fraction, test_fraction, seed=0, stratify=None):
    """Three disjoint parts of N (e.g. 6:2:2 is val_fraction=0.2, test_fraction=0.2), drawn like train_val_split.
    Returns (train, val, test) indices, or the three parts of the arrays."""
    n, arrays = _count(n_or_arrays)
    if not (val_fraction > 0 and test_fraction > 0 and val_fraction + test_fraction < 1):
        raise ValueError(f"train_val_test_split: expected positive fractions that leave a training part, got "
                         f"val_fraction={val_fraction}, test_fraction={test_fraction}")
    rng = _rng(seed)
    rest, test = _held_out(n, test_fraction, rng, stratify, "train_val_test_split")
    rest_labels = None if stratify is None else np.asarray(stratify)[rest]
    train, val = _held_out(len(rest), val_fraction / (1 - test_fraction), rng, rest_labels, "train_val_test_split")
    parts = (rest[train], rest[val], test)
    return parts if arrays is None else tuple(_take(arrays, p) for p in parts)


def k_fold(n, k, seed=0, stratify=None, shuffle=True):
    """Yield (train_idx, val_idx) for each of k folds: the folds are disjoint and cover 0..n−1, so every example
    is validated exactly once; fold sizes differ by at most one.

    stratify: labels (n,); each class is dealt round the folds in turn, so its count in any two folds differs
    by at most one. shuffle=False deals the examples in order (no randomness).
    """
    n = int(n)
    if not 2 <= k <= n:
        raise ValueError(f"k_fold: need 2 <= k <= n, got k={k}, n={n}")
    rng = _rng(seed)
    groups = [rng.permutation(g) if shuffle else g for g in _classes(stratify, n)]
    dealt = np.concatenate(groups)           # class after class; consecutive positions go to consecutive folds
    fold_of = np.empty(n, int)
    fold_of[dealt] = np.arange(n) % k
    for fold in range(k):
        yield np.flatnonzero(fold_of != fold), np.flatnonzero(fold_of == fold)
