"""DataLoader: batches of a data set, shuffled reproducibly and augmented on a background thread.

    loader = DataLoader((x_train, y_train), batch_size=128, shuffle=True, seed=0,
                        transform=Compose([ToFloat(), RandomCrop(32, padding=4), RandomHorizontalFlip()]))
    for epoch in range(epochs):
        for images, labels in loader:          # images (B, C, H, W) float32, labels (B,) int64
            ...

Shape letters: N examples in the data set, B the batch size.

What one epoch e does, batch b = 0, 1, …, len(loader) − 1:

    order    a permutation of 0..N−1 drawn from a generator seeded with (seed, e)     [shuffle; else 0..N−1]
    index    order[b·B : (b+1)·B]
    arrays   images[index], labels[index]      one fancy index per array for (images, labels) arrays;
                                               dataset[i] for each i, stacked, for any other data set
    images   transform(images, rng)            rng seeded with (seed, e, b): the batch's augmentation
    arrays   moved to ``device``               one transfer per array (minicnn.backend.to_device)

Every random number depends only on (seed, e, b), never on timing or on the thread that draws it, so a run is
reproducible, every epoch has its own order and augmentation, and a run resumed from ``state_dict()`` (the
seed, the epoch and the number of batches already delivered) sees exactly the batches it would have seen.
Each ``iter(loader)`` is one epoch; the epoch counter then moves on by itself, or is set with
``set_epoch(e)`` like PyTorch's DistributedSampler.

Data parallelism (``num_replicas`` W > 1, this process's ``rank`` r; the role of PyTorch's DistributedSampler):
every rank draws the same ``order`` (the same seed and epoch), global batch b is order[b·W·B : (b+1)·W·B], and
rank r takes its r-th slice of B examples. The W shards of a step are disjoint, and together they are exactly
the batch b of one process with batch size W·B — which is why W ranks train like one process. A last global
batch of R < W·B examples (without ``drop_last``) is padded with examples from the start of the order to
W·⌈R/W⌉, as PyTorch pads, so every rank gets ⌈R/W⌉. Augmentation draws from (seed, e, b, r): each rank its own.

Why a background thread (AlexNet computed its augmentation on the CPU while the GPU trained on the previous
batch, making it "computationally free", papers.md §2.3): one thread prepares up to ``prefetch`` batches ahead
into a bounded queue while the training loop works. NumPy releases Python's global lock inside its array
loops, and the loop on the main thread waits on the GPU, so the two overlap. An exception raised while making
a batch is raised again in the training loop, the same exception object with its original traceback.
Stopping early (``break``, an exception in the loop) stops the thread: it finishes the batch it is making,
then exits, and the loop's ``finally`` waits for it, so no thread outlives its iteration. ``num_workers=0``
makes every batch on the calling thread instead (easier to debug).
"""
import math
import queue
import threading

import numpy as np

from .. import backend
from .. import random as minicnn_random

__all__ = ["DataLoader"]

_SHUFFLE, _AUGMENT = 0, 1          # spawn keys: the two streams of random numbers drawn from one seed


def _generator(seed, *key):
    """A generator for (seed, purpose, epoch[, batch]); different keys give independent streams."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


def _as_arrays(data):
    """The arrays to slice whole batches from, and whether batches are bare arrays (not tuples).

    (images, labels) or any tuple/list of arrays of one length; a bare array; or a data set without a
    per-example transform that exposes ``images`` and ``labels`` (minicnn.data.ArrayDataset). None for any
    other data set, which is read one example at a time.
    """
    if isinstance(data, np.ndarray):
        return (data,), True
    if isinstance(data, (tuple, list)):
        arrays = tuple(np.asarray(a) for a in data)
        lengths = {len(a) for a in arrays}
        if not arrays or any(a.ndim == 0 for a in arrays) or len(lengths) != 1:
            raise ValueError(f"DataLoader: expected arrays with one first-axis length N, e.g. (images, labels), "
                             f"got shapes {[a.shape for a in arrays]}")
        return arrays, False
    if not (hasattr(data, "__len__") and hasattr(data, "__getitem__")):
        raise TypeError(f"DataLoader: expected (images, labels) arrays or a data set with len() and [i], "
                        f"got {type(data).__name__}")
    if getattr(data, "transform", None) is None and hasattr(data, "images") and hasattr(data, "labels"):
        return (np.asarray(data.images), np.asarray(data.labels)), False
    return None, False


def _collate(examples):
    """Stack a list of examples, each an array or a tuple (image, label, …), into one batch tuple."""
    if isinstance(examples[0], tuple):
        return tuple(np.stack(field) for field in zip(*examples))
    return (np.stack(examples),)


class DataLoader:
    """Iterate over a data set in batches: ``for x, y in DataLoader((images, labels), batch_size=128): …``.

    data          (images, labels) arrays (any tuple of arrays of one length; batches are tuples like it),
                  a bare array (batches are arrays), or a data set with len() and dataset[i] -> (image, label)
    batch_size    B; the last batch is smaller when B does not divide N, unless ``drop_last``
    shuffle       a new order every epoch (seeded); False keeps 0..N−1
    seed          the seed of every random number (order and augmentation), an int >= 0; None draws one from
                  minicnn's generator, so ``minicnn.manual_seed`` makes the run repeatable
    transform     None, or ``transform(images, rng)`` on the batch's first array (minicnn.data.transforms)
    device        "cpu", or "cuda" to hand out CuPy arrays (moved on the background thread)
    prefetch      how many finished batches may wait in the queue (bounded memory)
    num_workers   1: one background thread makes the batches; 0: the calling thread does
    num_replicas  W, the number of data-parallel processes sharing every batch (see above); 1: no sharding
    rank          r, this process's rank in 0..W−1 (minicnn.distributed.get_rank())

    ``len(loader)`` is the number of batches per epoch (the same on every rank).
    """

    def __init__(self, data, batch_size=1, shuffle=False, drop_last=False, seed=None, transform=None,
                 device="cpu", prefetch=2, num_workers=1, num_replicas=1, rank=0):
        self.data = data
        self._arrays, self._bare = _as_arrays(data)
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"DataLoader: batch_size must be a positive integer, got {batch_size!r}")
        if transform is not None and not callable(transform):
            raise TypeError(f"DataLoader: transform must be callable(images, rng) or None, got {transform!r}")
        if device not in ("cpu", "cuda"):
            raise ValueError(f"DataLoader: device must be 'cpu' or 'cuda', got {device!r}")
        if device == "cuda" and not backend.gpu_available():
            raise RuntimeError("DataLoader: device='cuda' needs CuPy and a visible CUDA GPU")
        if num_workers not in (0, 1):
            raise ValueError(f"DataLoader: num_workers must be 0 (the calling thread) or 1 (one background "
                             f"thread), got {num_workers!r}")
        if not isinstance(prefetch, (int, np.integer)) or prefetch < 1:
            raise ValueError(f"DataLoader: prefetch must be an integer >= 1, got {prefetch!r}")
        if isinstance(num_replicas, bool) or not isinstance(num_replicas, (int, np.integer)) or num_replicas < 1:
            raise ValueError(f"DataLoader: num_replicas must be a positive integer, got {num_replicas!r}")
        if isinstance(rank, bool) or not isinstance(rank, (int, np.integer)) or not 0 <= rank < num_replicas:
            raise ValueError(f"DataLoader: rank must be an integer in 0..{num_replicas - 1}, got {rank!r}")
        if seed is None:
            seed = int(minicnn_random.default_generator().integers(2 ** 63))
        if not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"DataLoader: seed must be an integer >= 0 or None, got {seed!r}")
        self.batch_size, self.shuffle, self.drop_last = int(batch_size), bool(shuffle), bool(drop_last)
        self.seed, self.transform, self.device = int(seed), transform, device
        self.prefetch, self.num_workers = int(prefetch), num_workers
        self.num_replicas, self.rank = int(num_replicas), int(rank)
        self.epoch, self._start = 0, 0       # where the next iteration begins: epoch, batch
        self._running = None                 # [epoch, batches delivered] of the iteration under way

    def __len__(self):
        n = len(self._arrays[0]) if self._arrays is not None else len(self.data)
        step = self.batch_size * self.num_replicas           # examples per step over all ranks
        return n // step if self.drop_last else math.ceil(n / step)

    def __repr__(self):
        return (f"DataLoader({len(self)} batches of {self.batch_size}, shuffle={self.shuffle}, "
                f"drop_last={self.drop_last}, seed={self.seed}, transform={self.transform!r}, "
                f"device={self.device!r}, epoch={self.epoch}"
                + (f", rank {self.rank} of {self.num_replicas})" if self.num_replicas > 1 else ")"))

    # ---- epochs and checkpoints ----------------------------------------------------------------------
    def set_epoch(self, epoch):
        """Make the next iteration epoch ``epoch`` (its order and augmentation), from its first batch. Setting
        the epoch the loader is already at changes nothing, so a state loaded mid-epoch stays mid-epoch."""
        if epoch < 0:
            raise ValueError(f"DataLoader.set_epoch: the epoch must be >= 0, got {epoch}")
        if epoch != self.epoch:
            self.epoch, self._start = int(epoch), 0

    def state_dict(self):
        """{"seed", "epoch", "position"}: the next batch to hand out is batch ``position`` of ``epoch``.
        Inside a loop, it counts the batches delivered so far; a finished epoch counts as the next one's start."""
        epoch, position = self._running if self._running is not None else (self.epoch, self._start)
        if position >= len(self):
            epoch, position = epoch + 1, 0
        return {"seed": self.seed, "epoch": epoch, "position": position}

    def load_state_dict(self, state):
        """Continue from ``state_dict()``: the next iteration hands out the rest of that epoch."""
        position = int(state["position"])
        if not 0 <= position <= len(self):
            raise ValueError(f"DataLoader.load_state_dict: position {position} is outside this loader's "
                             f"{len(self)} batches per epoch (a different data set or batch size?)")
        self.seed, self.epoch, self._start = int(state["seed"]), int(state["epoch"]), position
        self._running = None

    # ---- iteration ------------------------------------------------------------------------------------
    def __iter__(self):
        epoch, start = self.epoch, self._start
        self.epoch, self._start = epoch + 1, 0           # the next iteration is the next epoch
        running = self._running = [epoch, start]
        return self._iterate(running)

    def _iterate(self, running):
        epoch, start = running
        n = len(self._arrays[0]) if self._arrays is not None else len(self.data)
        order = _generator(self.seed, _SHUFFLE, epoch).permutation(n) if self.shuffle else np.arange(n)
        batches = range(start, len(self))

        def make_batch(b):
            return self._make_batch(self._shard(order, b), epoch, b)

        made = (make_batch(b) for b in batches) if self.num_workers == 0 else _in_background(make_batch, batches,
                                                                                            self.prefetch)
        try:
            for b, batch in zip(batches, made):
                running[1] = b + 1
                yield batch[0] if self._bare else batch
        finally:
            made.close()                                  # stops and joins the background thread
            if self._running is running:
                self._running = None

    def _shard(self, order, b):
        """The examples of batch b on this rank: its slice of global batch b (all of it when W = 1)."""
        W, B = self.num_replicas, self.batch_size
        batch = order[b * W * B:(b + 1) * W * B]
        if W == 1:
            return batch
        per_rank = math.ceil(len(batch) / W)
        if len(batch) < W * per_rank:                         # the last batch: pad from the start, as PyTorch
            batch = np.concatenate([batch, np.resize(order, W * per_rank - len(batch))])
        return batch[self.rank * per_rank:(self.rank + 1) * per_rank]

    def _make_batch(self, index, epoch, b):
        if self._arrays is not None:
            arrays = [a[index] for a in self._arrays]
        else:
            arrays = list(_collate([self.data[int(i)] for i in index]))
        if self.transform is not None:
            key = (_AUGMENT, epoch, b) if self.num_replicas == 1 else (_AUGMENT, epoch, b, self.rank)
            arrays[0] = self.transform(arrays[0], _generator(self.seed, *key))
            if len(arrays[0]) != len(index):
                raise ValueError(f"DataLoader: the transform returned {len(arrays[0])} images for a batch of "
                                 f"{len(index)}; it must keep the batch axis first")
        if self.device != "cpu":
            arrays = [backend.to_device(a, self.device) for a in arrays]
        return tuple(arrays)


_BATCH, _END, _ERROR = "batch", "end", "error"


def _in_background(make, keys, depth):
    """Yield make(key) for each key, computed by one background thread at most ``depth`` batches ahead.

    The thread's exceptions are raised here. Closing this generator (the consumer stopped early) sets ``stop``;
    the thread sees it before its next batch or while waiting for room in the queue, and is joined.
    """
    slots, stop = queue.Queue(maxsize=depth), threading.Event()

    def put(item):
        while not stop.is_set():
            try:
                slots.put(item, timeout=0.05)
                return True
            except queue.Full:
                pass
        return False

    def work():
        try:
            for key in keys:
                if stop.is_set() or not put((_BATCH, make(key))):
                    return
            put((_END, None))
        except BaseException as error:                  # handed over to the consumer and raised there
            put((_ERROR, error))

    thread = threading.Thread(target=work, name="minicnn-DataLoader", daemon=True)
    thread.start()
    try:
        while True:
            try:
                kind, payload = slots.get(timeout=0.05)
            except queue.Empty:
                if not thread.is_alive() and slots.empty():
                    raise RuntimeError("DataLoader: the background thread stopped without a batch") from None
                continue
            if kind == _END:
                return
            if kind == _ERROR:
                raise payload
            yield payload
    finally:
        stop.set()
        thread.join()
