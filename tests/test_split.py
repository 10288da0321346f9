"""Specification of minicnn.data.split: disjoint, covering, seeded and (optionally) stratified splits and folds."""
import numpy as np
import pytest

from minicnn.data.split import k_fold, train_val_split, train_val_test_split


def unbalanced_labels(seed=0):
    """1000 labels in 4 classes with shares 50%, 30%, 15%, 5%, shuffled."""
    labels = np.repeat(np.arange(4), [500, 300, 150, 50])
    return np.random.default_rng(seed).permutation(labels)


def assert_partition(parts, n):
    joined = np.concatenate(parts)
    assert len(joined) == n and np.array_equal(np.sort(joined), np.arange(n))


def test_train_val_split_is_disjoint_covering_and_the_requested_size():
    train, val = train_val_split(1000, 0.2, seed=0)
    assert len(val) == 200
    assert_partition([train, val], 1000)
    assert np.all(np.diff(train) > 0) and np.all(np.diff(val) > 0)


def test_train_val_split_is_the_same_for_the_same_seed_and_differs_for_another():
    a, b, c = (train_val_split(100, 0.3, seed=s)[1] for s in (4, 4, 5))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_a_stratified_split_keeps_every_class_share_to_within_one_example():
    labels = unbalanced_labels()
    train, val = train_val_split(len(labels), 0.1, seed=1, stratify=labels)
    assert len(val) == 100
    assert_partition([train, val], len(labels))
    for c, count in enumerate([500, 300, 150, 50]):
        assert abs(np.sum(labels[val] == c) - count * 0.1) <= 1
        assert abs(np.sum(labels[train] == c) - count * 0.9) <= 1


def test_a_split_of_arrays_returns_the_arrays_split_with_pairs_kept():
    images = np.arange(50)[:, None, None] * np.ones((1, 2, 2))
    labels = np.arange(50) % 5
    (x_train, y_train), (x_val, y_val) = train_val_split((images, labels), 0.2, stratify=labels)
    assert x_val.shape == (10, 2, 2) and x_train.shape == (40, 2, 2)
    np.testing.assert_array_equal(x_val[:, 0, 0].astype(int) % 5, y_val)
    assert np.bincount(y_val).tolist() == [2] * 5
    only_train, only_val = train_val_split(images, 0.2)
    assert len(only_train) == 40 and len(only_val) == 10


def test_train_val_test_split_gives_three_disjoint_stratified_parts():
    labels = unbalanced_labels()
    train, val, test = train_val_test_split(len(labels), 0.2, 0.2, seed=0, stratify=labels)
    assert (len(train), len(val), len(test)) == (600, 200, 200)
    assert_partition([train, val, test], len(labels))
    for part, share in ((val, 0.2), (test, 0.2), (train, 0.6)):
        for c, count in enumerate([500, 300, 150, 50]):
            assert abs(np.sum(labels[part] == c) - count * share) <= 1


@pytest.mark.parametrize("fraction", [0.0, 1.0, 0.0001])
def test_a_split_that_leaves_an_empty_part_is_refused(fraction):
    with pytest.raises(ValueError):
        train_val_split(100, fraction)


@pytest.mark.parametrize("n, k", [(103, 5), (10, 10), (7, 2)])
def test_k_fold_validates_every_example_exactly_once_and_trains_on_the_rest(n, k):
    folds = list(k_fold(n, k, seed=3))
    assert len(folds) == k
    assert_partition([val for _, val in folds], n)
    for train, val in folds:
        assert_partition([train, val], n)
    sizes = [len(val) for _, val in folds]
    assert max(sizes) - min(sizes) <= 1


def test_stratified_k_fold_keeps_each_class_balanced_across_folds():
    labels = unbalanced_labels()
    folds = list(k_fold(len(labels), 7, seed=0, stratify=labels))
    assert_partition([val for _, val in folds], len(labels))
    for c in range(4):
        per_fold = [np.sum(labels[val] == c) for _, val in folds]
        assert max(per_fold) - min(per_fold) <= 1


def test_k_fold_is_seeded_and_shuffle_false_deals_in_order():
    a = [val for _, val in k_fold(20, 4, seed=1)]
    b = [val for _, val in k_fold(20, 4, seed=1)]
    c = [val for _, val in k_fold(20, 4, seed=2)]
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))
    first_fold = next(k_fold(8, 4, shuffle=False))[1]
    np.testing.assert_array_equal(first_fold, [0, 4])


@pytest.mark.parametrize("k", [1, 11])
def test_k_fold_needs_two_to_n_folds(k):
    with pytest.raises(ValueError, match="2 <= k <= n"):
        list(k_fold(10, k))
