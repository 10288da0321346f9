"""Fashion-MNIST: 28x28 grey images of clothing in 10 classes (Xiao, Rasul and Vollgraf, 2017).

Two ways in:

- `fashion_mnist_mini()` — the bundled subset, always available, no download: 1000 images per class from the
  official training set (10,000) and 200 per class from the official test set (2,000), stored in
  `minicnn/data/fashion_mnist_mini.npz` and built by `scripts/make_mini_fashion_mnist.py`. Enough to train the
  small networks of the lessons in seconds. The file also keeps `train_index` / `test_index`, the positions of
  each image in the original files, so anyone holding the full data can check where every image came from.
- `fashion_mnist(root=None, train=True)` — the full data set (60,000 train / 10,000 test) read from the four
  official IDX files, found on disk (see `fashion_mnist` for where it looks). Nothing is downloaded yet.

Shapes: N images, H = W = 28. Images are uint8 (N, H, W) in 0..255, labels int64 (N,) in 0..9, indexing
`CLASSES`. Arrays only: turning them into Tensors, scaling and adding a channel axis are the caller's business.
"""
import functools
import os
from pathlib import Path

import numpy as np

from minicnn.data.idx import read_idx

__all__ = ["CLASSES", "fashion_mnist_mini", "fashion_mnist", "FASHION_MNIST_FILES",
           "default_cache_dir", "search_dirs"]

CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
           "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")

MINI_PATH = Path(__file__).with_name("fashion_mnist_mini.npz")

# The official file names, per split: (images, labels). A directory may hold them gzip-compressed (as
# distributed) or already decompressed (the same names without ".gz").
FASHION_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}

# Where Debian's package `dataset-fashion-mnist` installs the four files.
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")

HOW_TO_GET_THE_FILES = (
    "To get the files: `apt-get install dataset-fashion-mnist` (Debian/Ubuntu), or put the four files "
    "train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz and "
    "t10k-labels-idx1-ubyte.gz (from https://github.com/zalandoresearch/fashion-mnist) in a directory and pass "
    "fashion_mnist(root=that_directory), or set MINICNN_DATA. For a quick start without any files, use "
    "fashion_mnist_mini()."
)


# ---------------------------------------------------------------------------------------------------------
# The bundled mini set


def fashion_mnist_mini():
    """The bundled Fashion-MNIST subset: 1000 images per class for training, 200 per class for testing.

    Returns:
        x_train: uint8 (10000, 28, 28)   y_train: int64 (10000,)
        x_test:  uint8 (2000, 28, 28)    y_test:  int64 (2000,)
    Images keep the original order of the official files (the subset is a sorted selection, so classes are
    interleaved, not grouped). The arrays are read once, cached, and returned read-only
    (`flags.writeable == False`): every call hands out the same arrays, so writing into them raises
    ValueError instead of silently corrupting the data for the next caller. Take `.copy()` (or
    `.astype(np.float32)`, which copies too) to get arrays you may modify.
    """
    return _load_mini(MINI_PATH)


@functools.lru_cache(maxsize=None)
def _load_mini(path):
    if not path.exists():
        raise FileNotFoundError(f"the bundled Fashion-MNIST subset {path} is missing; rebuild it with "
                                f"`python scripts/make_mini_fashion_mnist.py` (needs the full data set)")
    with np.load(path, allow_pickle=False) as npz:
        arrays = (npz["x_train"], npz["y_train"].astype(np.int64), npz["x_test"], npz["y_test"].astype(np.int64))
    for images, labels in (arrays[:2], arrays[2:]):
        _check_images_and_labels(images, labels, source=str(path))
    for array in arrays:
        array.flags.writeable = False
    return arrays


# ---------------------------------------------------------------------------------------------------------
# The full data set, from the official IDX files


def default_cache_dir():
    """~/.cache/minicnn/fashion-mnist: where a user (and, in a later version, a downloader) keeps the files."""
    return Path.home() / ".cache" / "minicnn" / "fashion-mnist"


def search_dirs(root=None):
    """The directories `fashion_mnist` looks in, in order.

    With `root` given, only `root`: an explicit choice is never silently replaced by other data. Otherwise:
    $MINICNN_DATA/fashion-mnist and $MINICNN_DATA (when the variable is set; it may name either a data root
    shared by several data sets or the Fashion-MNIST directory itself), then `default_cache_dir()`, then
    Debian's install location /usr/share/datasets/fashion-mnist.
    """
    if root is not None:
        return [Path(root).expanduser()]
    dirs = []
    env = os.environ.get("MINICNN_DATA")
    if env:
        dirs += [Path(env).expanduser() / "fashion-mnist", Path(env).expanduser()]
    dirs += [default_cache_dir(), DEBIAN_DIR]
    return dirs


def fashion_mnist(root=None, train=True):
    """The full Fashion-MNIST training (60,000) or test (10,000) split, read from the official IDX files.

    Inputs:
        root: directory holding the files, or None to search (see `search_dirs`): $MINICNN_DATA,
            ~/.cache/minicnn/fashion-mnist, then Debian's /usr/share/datasets/fashion-mnist. The first
            directory that holds both files of the requested split wins; each file may be ".gz" or raw.
        train: True for the training split (train-*), False for the test split (t10k-*).
    Returns:
        images: uint8 (N, 28, 28), labels: int64 (N,) in 0..9 — fresh arrays, yours to modify.
    Raises:
        FileNotFoundError listing every directory looked in and how to get the files.
        ValueError when a file is found but is not a valid image / label file.
    """
    # Seam for the downloader (a later issue): it will fetch the files into default_cache_dir(), checking
    # them against known checksums, before this search runs. Until then, nothing here touches the network.
    split = "train" if train else "test"
    looked = []
    for directory in search_dirs(root):
        paths = [_find_file(directory, name) for name in FASHION_MNIST_FILES[split]]
        if all(path is not None for path in paths):
            images_path, labels_path = paths
            images = read_idx(images_path)
            labels = read_idx(labels_path).astype(np.int64)
            _check_images_and_labels(images, labels, source=f"{images_path} + {labels_path}")
            return images, labels
        looked.append(f"  {directory}" + ("" if directory.is_dir() else "  (no such directory)"))
    wanted = " and ".join(FASHION_MNIST_FILES[split])
    raise FileNotFoundError(f"Fashion-MNIST {split} files ({wanted}, or the same without .gz) not found. "
                            f"Looked in:\n" + "\n".join(looked) + "\n" + HOW_TO_GET_THE_FILES)


def _find_file(directory, gz_name):
    """The path of `gz_name` or of its decompressed twin in `directory`, or None when neither exists."""
    for name in (gz_name, gz_name[:-len(".gz")]):
        path = directory / name
        if path.is_file():
            return path
    return None


def _check_images_and_labels(images, labels, source):
    """Refuse data that cannot be Fashion-MNIST, naming where it came from."""
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
        raise ValueError(f"{source}: expected uint8 images of shape (N, 28, 28), "
                         f"found {images.dtype} of shape {images.shape}")
    if labels.ndim != 1 or len(labels) != len(images):
        raise ValueError(f"{source}: expected labels of shape ({len(images)},) to match the images, "
                         f"found shape {labels.shape}")
    if len(labels) and (labels.min() < 0 or labels.max() >= len(CLASSES)):
        raise ValueError(f"{source}: expected labels in 0..{len(CLASSES) - 1}, "
                         f"found values from {labels.min()} to {labels.max()}")
