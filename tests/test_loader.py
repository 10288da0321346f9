"""Specification of minicnn.data.loader.DataLoader: every example once per epoch, seeded orders that change
per epoch, resuming from state_dict, transforms on a background thread, errors and early stops."""
import gc
import threading
import time

import numpy as np
import pytest

from minicnn import backend
from minicnn.data.loader import DataLoader


def arrays(n=23, seed=0):
    """Images whose first pixel is their own index, so every batch says which examples it holds."""
    images = np.random.default_rng(seed).integers(0, 256, (n, 1, 4, 4))
    images[:, 0, 0, 0] = np.arange(n)
    return images, np.arange(n) * 10


def seen(loader):
    return [batch[1] // 10 for batch in loader]


def loader_threads():
    return [t for t in threading.enumerate() if t.name == "minicnn-DataLoader" and t.is_alive()]


class ListDataset:
    """A data set known only through len() and [i] (no array fast path)."""

    def __init__(self, images, labels):
        self.images_, self.labels_ = images, labels

    def __len__(self):
        return len(self.labels_)

    def __getitem__(self, i):
        return self.images_[i], self.labels_[i]


@pytest.mark.parametrize("num_workers", [0, 1])
@pytest.mark.parametrize("shuffle", [False, True])
def test_every_example_is_seen_exactly_once_per_epoch(shuffle, num_workers):
    x, y = arrays(23)
    loader = DataLoader((x, y), batch_size=5, shuffle=shuffle, seed=3, num_workers=num_workers)
    assert len(loader) == 5
    for _ in range(2):
        batches = seen(loader)
        assert [len(b) for b in batches] == [5, 5, 5, 5, 3]
        assert sorted(np.concatenate(batches).tolist()) == list(range(23))


def test_drop_last_drops_only_the_incomplete_batch_and_covers_the_rest_once():
    x, y = arrays(23)
    loader = DataLoader((x, y), batch_size=5, shuffle=True, seed=3, drop_last=True)
    assert len(loader) == 4
    for _ in range(3):
        indices = np.concatenate(seen(loader))
        assert len(indices) == 20 and len(set(indices.tolist())) == 20


def test_images_and_labels_stay_paired():
    x, y = arrays(23)
    for images, labels in DataLoader((x, y), batch_size=4, shuffle=True, seed=0):
        np.testing.assert_array_equal(images, x[labels // 10])


def test_without_shuffle_the_order_is_the_data_order():
    x, y = arrays(12)
    assert np.concatenate(seen(DataLoader((x, y), batch_size=5))).tolist() == list(range(12))


def test_the_same_seed_gives_the_same_orders_and_different_epochs_different_orders():
    x, y = arrays(40)
    loader, again = (DataLoader((x, y), 8, shuffle=True, seed=7) for _ in range(2))
    first = [np.concatenate(seen(loader)) for _ in range(3)]
    second = [np.concatenate(seen(again)) for _ in range(3)]
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[0], first[1]) and not np.array_equal(first[1], first[2])
    other_seed = np.concatenate(seen(DataLoader((x, y), 8, shuffle=True, seed=8)))
    assert not np.array_equal(first[0], other_seed)


def test_set_epoch_selects_that_epochs_order_like_distributed_sampler():
    x, y = arrays(30)
    loader = DataLoader((x, y), 4, shuffle=True, seed=1)
    epochs = [np.concatenate(seen(loader)) for _ in range(3)]
    loader.set_epoch(1)
    np.testing.assert_array_equal(np.concatenate(seen(loader)), epochs[1])
    assert loader.epoch == 2


def test_seed_none_comes_from_minicnn_manual_seed():
    import minicnn
    x, y = arrays(30)
    minicnn.manual_seed(5)
    a = np.concatenate(seen(DataLoader((x, y), 4, shuffle=True)))
    minicnn.manual_seed(5)
    b = np.concatenate(seen(DataLoader((x, y), 4, shuffle=True)))
    np.testing.assert_array_equal(a, b)


def add_noise(images, rng):
    return images + rng.integers(0, 1000, images.shape)


@pytest.mark.parametrize("num_workers", [0, 1])
def test_resuming_from_a_mid_epoch_state_dict_continues_the_same_batches_and_augmentation(num_workers):
    x, y = arrays(50)
    reference = DataLoader((x, y), 6, shuffle=True, seed=11, transform=add_noise, num_workers=num_workers)
    uninterrupted = [b for _ in range(2) for b in reference]          # two epochs, 18 batches

    run = DataLoader((x, y), 6, shuffle=True, seed=11, transform=add_noise, num_workers=num_workers)
    first_part = []
    for _ in range(2):
        for batch in run:
            first_part.append(batch)
            if len(first_part) == 12:                # epoch 1, batch 3 delivered: "crash" here
                state = run.state_dict()
                break
        if len(first_part) == 12:
            break
    assert state["epoch"] == 1 and state["position"] == 3

    resumed = DataLoader((x, y), 6, shuffle=True, seed=999, transform=add_noise, num_workers=num_workers)
    resumed.load_state_dict(state)
    resumed.set_epoch(1)                             # what the Trainer calls: must keep the position
    rest = list(resumed)
    assert len(first_part) + len(rest) == len(uninterrupted)
    for (a, la), (b, lb) in zip(first_part + rest, uninterrupted):
        np.testing.assert_array_equal(la, lb)
        np.testing.assert_array_equal(a, b)
    assert resumed.state_dict() == {"seed": 11, "epoch": 2, "position": 0}


def test_state_dict_between_epochs_points_at_the_next_epoch():
    x, y = arrays(20)
    loader = DataLoader((x, y), 5, shuffle=True, seed=2)
    assert loader.state_dict() == {"seed": 2, "epoch": 0, "position": 0}
    for i, _ in enumerate(loader):
        delivered = i + 1
        expected = (0, delivered) if delivered < len(loader) else (1, 0)
        assert (loader.state_dict()["epoch"], loader.state_dict()["position"]) == expected
    assert loader.state_dict() == {"seed": 2, "epoch": 1, "position": 0}


def test_an_iteration_stopped_early_is_an_epoch_and_the_next_iteration_starts_the_next_one():
    x, y = arrays(20)
    loader = DataLoader((x, y), 5, shuffle=True, seed=2)
    reference = DataLoader((x, y), 5, shuffle=True, seed=2)
    next(iter(loader))
    reference.set_epoch(1)
    np.testing.assert_array_equal(np.concatenate(seen(loader)), np.concatenate(seen(reference)))


def test_the_transform_runs_on_a_background_thread_with_a_seeded_generator():
    x, y = arrays(20)
    threads, generators = [], []

    def record(images, rng):
        threads.append(threading.get_ident())
        generators.append(rng)
        return images

    list(DataLoader((x, y), 5, transform=record, seed=0))
    assert len(threads) == 4 and threading.get_ident() not in threads
    assert all(isinstance(g, np.random.Generator) for g in generators)

    threads.clear()
    list(DataLoader((x, y), 5, transform=record, seed=0, num_workers=0))
    assert set(threads) == {threading.get_ident()}


def test_the_next_batch_is_made_while_the_consumer_works_on_the_current_one():
    x, y = arrays(20)
    made = [threading.Event() for _ in range(4)]

    def mark(images, rng):
        made[int(images[0, 0, 0, 0]) // 5].set()
        return images

    loader = DataLoader((x, y), 5, transform=mark, seed=0, prefetch=1)
    for i, _ in enumerate(loader):
        if i == 0:
            # The consumer holds batch 0 and waits: only a background thread can make batch 1 meanwhile.
            assert made[1].wait(timeout=5)


def test_a_slow_transform_overlaps_with_a_slow_consumer():
    x, y = arrays(24)
    delay, batches = 0.05, 6

    def slow(images, rng):
        time.sleep(delay)
        return images

    started = time.perf_counter()
    for _ in DataLoader((x, y), 4, transform=slow, seed=0):
        time.sleep(delay)
    elapsed = time.perf_counter() - started
    assert elapsed < 0.8 * 2 * delay * batches        # serial would take 2 · delay · batches


def test_an_exception_in_the_background_thread_reaches_the_consumer_with_its_traceback():
    x, y = arrays(20)

    def fail_on_third_batch(images, rng):
        if images[0, 0, 0, 0] == 10:
            raise KeyError("bad image 10")
        return images

    received = []
    with pytest.raises(KeyError, match="bad image 10") as info:
        for batch in DataLoader((x, y), 5, transform=fail_on_third_batch, seed=0):
            received.append(batch)
    assert len(received) == 2
    assert any(entry.name == "fail_on_third_batch" for entry in info.traceback)
    assert loader_threads() == []


@pytest.mark.parametrize("stop", ["break", "exception", "abandon"])
def test_stopping_early_leaves_no_live_thread(stop):
    x, y = arrays(200)
    loader = DataLoader((x, y), 2, seed=0, prefetch=1)     # the thread is blocked on a full queue
    if stop == "break":
        for _ in loader:
            break
    elif stop == "exception":
        with pytest.raises(ZeroDivisionError):
            for _ in loader:
                1 / 0
    else:
        iterator = iter(loader)
        next(iterator)
        del iterator
        gc.collect()
    assert loader_threads() == []


def test_a_dataset_with_len_and_getitem_is_batched_like_arrays():
    x, y = arrays(17)
    from_arrays = list(DataLoader((x, y), 4, shuffle=True, seed=5))
    from_dataset = list(DataLoader(ListDataset(x, y), 4, shuffle=True, seed=5))
    for (a, la), (b, lb) in zip(from_arrays, from_dataset):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(la, lb)


def test_a_bare_array_gives_bare_batches():
    x, _ = arrays(10)
    batches = list(DataLoader(x, 4))
    assert [b.shape for b in batches] == [(4, 1, 4, 4), (4, 1, 4, 4), (2, 1, 4, 4)]


def test_read_only_arrays_give_writable_batches():
    x, y = arrays(10)
    x.flags.writeable = False
    images, _ = next(iter(DataLoader((x, y), 4)))
    assert images.flags.writeable


@pytest.mark.parametrize("kwargs, error", [
    ({"batch_size": 0}, ValueError), ({"num_workers": 2}, ValueError), ({"prefetch": 0}, ValueError),
    ({"seed": -1}, ValueError), ({"device": "tpu"}, ValueError), ({"transform": 3}, TypeError),
])
def test_bad_arguments_are_refused_when_given(kwargs, error):
    with pytest.raises(error):
        DataLoader(arrays(10), **kwargs)


def test_arrays_of_different_lengths_are_refused():
    with pytest.raises(ValueError, match="one first-axis length"):
        DataLoader((np.zeros((5, 2)), np.zeros(4)))


def test_a_transform_that_changes_the_batch_size_is_an_error():
    with pytest.raises(ValueError, match="batch axis"):
        list(DataLoader(arrays(10), 4, transform=lambda images, rng: images[:1]))


def test_device_cuda_hands_out_cupy_arrays():
    if not backend.gpu_available():
        pytest.skip("CuPy with a CUDA GPU is not available")
    x, y = arrays(10)
    images, labels = next(iter(DataLoader((x, y), 4, device="cuda")))
    assert backend.device_of(images) == "cuda" and backend.device_of(labels) == "cuda"
    np.testing.assert_array_equal(backend.as_numpy(images), x[:4])
