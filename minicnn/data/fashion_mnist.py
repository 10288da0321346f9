"""Fashion-MNIST: 28x28 grey images of clothing in 10 classes (Xiao, Rasul and Vollgraf, 2017).

Two ways in:

- `fashion_mnist_mini()` — the bundled subset, always available, no download: 1000 images per class from the
  official training set (10,000) and 200 per class from the official test set (2,000), stored in
  `minicnn/data/fashion_mnist_mini.npz` and built by `scripts/make_mini_fashion_mnist.py`. Enough to train the
  small networks of the lessons in seconds. The file also keeps `train_index` / `test_index`, the positions of
  each image in the original files, so anyone holding the full data can check where every image came from.
- `fashion_mnist(root=None, train=True, download=False)` — the full data set (60,000 train / 10,000 test) read
  from the four official IDX files, found on disk (see `fashion_mnist` for where it looks, Debian's package
  included) or, with download=True, downloaded from Zalando's mirrors and checked against their SHA-256.

Shapes: N images, H = W = 28. Images are uint8 (N, H, W) in 0..255, labels int64 (N,) in 0..9, indexing
`CLASSES`. Arrays only: turning them into Tensors, scaling and adding a channel axis are the caller's business.
"""
import functools
from pathlib import Path

import numpy as np

from minicnn.data.datasets import ArrayDataset, check_images_and_labels
from minicnn.data.download import cache_dir, search_dirs as dataset_search_dirs
from minicnn.data.mnist import MNIST_FILES, load_idx_split

__all__ = ["CLASSES", "fashion_mnist_mini", "fashion_mnist", "FASHION_MNIST_FILES", "FASHION_MNIST_SHA256",
           "FASHION_MNIST_MIRRORS", "default_cache_dir", "search_dirs"]

CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
           "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")

MINI_PATH = Path(__file__).with_name("fashion_mnist_mini.npz")

# The official file names, per split: (images, labels), the same as MNIST's. A directory may hold them
# gzip-compressed (as distributed) or already decompressed (the same names without ".gz").
FASHION_MNIST_FILES = MNIST_FILES

# SHA-256 of the official .gz files, i.e. those whose MD5s Zalando's README publishes (8d4fb7e6...,
# 25c81989..., bef4ecab..., bb300cfd...; 26,421,880 / 29,515 / 4,422,102 / 5,148 bytes). The same values are
# pinned by torchvision's prototype datasets, and tests/test_download.py confirms them from Debian's copies:
# Debian's files hold the very same compressed data under a gzip header without the file name and time stamp,
# and putting those back yields files with Zalando's MD5s and exactly these SHA-256s. Only downloads are
# checked against these values; files found on disk (Debian's included) are checked by reading them.
FASHION_MNIST_SHA256 = {
    "train-images-idx3-ubyte.gz": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
    "train-labels-idx1-ubyte.gz": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
    "t10k-images-idx3-ubyte.gz": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
    "t10k-labels-idx1-ubyte.gz": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
}

# Tried in this order; each file is fetched from mirror + file name.
FASHION_MNIST_MIRRORS = (
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",  # Zalando's S3 bucket, the official link
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",  # the repository
)

# Where Debian's package `dataset-fashion-mnist` installs the four files.
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")

HOW_TO_GET_THE_FILES = (
    "Or get them by hand: `apt-get install dataset-fashion-mnist` (Debian/Ubuntu), or put the four files "
    "train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz and "
    "t10k-labels-idx1-ubyte.gz (from https://github.com/zalandoresearch/fashion-mnist) in a directory and pass "
    "fashion_mnist(root=that_directory), or set MINICNN_DATA. For a quick start without any files, use "
    "fashion_mnist_mini(), bundled with minicnn."
)


# ---------------------------------------------------------------------------------------------------------
# The bundled mini set


def fashion_mnist_mini(as_dataset=False):
    """The bundled Fashion-MNIST subset: 1000 images per class for training, 200 per class for testing.

    Returns:
        x_train: uint8 (10000, 28, 28)   y_train: int64 (10000,)
        x_test:  uint8 (2000, 28, 28)    y_test:  int64 (2000,)
        or, with as_dataset=True, (train_set, test_set): two ArrayDatasets over the same arrays.
    Images keep the original order of the official files (the subset is a sorted selection, so classes are
    interleaved, not grouped). The arrays are read once, cached, and returned read-only
    (`flags.writeable == False`): every call hands out the same arrays, so writing into them raises
    ValueError instead of silently corrupting the data for the next caller. Take `.copy()` (or
    `.astype(np.float32)`, which copies too) to get arrays you may modify.
    """
    x_train, y_train, x_test, y_test = _load_mini(MINI_PATH)
    if as_dataset:
        return (ArrayDataset(x_train, y_train, classes=CLASSES), ArrayDataset(x_test, y_test, classes=CLASSES))
    return x_train, y_train, x_test, y_test


@functools.lru_cache(maxsize=None)
def _load_mini(path):
    if not path.exists():
        raise FileNotFoundError(f"the bundled Fashion-MNIST subset {path} is missing; rebuild it with "
                                f"`python scripts/make_mini_fashion_mnist.py` (needs the full data set)")
    with np.load(path, allow_pickle=False) as npz:
        arrays = (npz["x_train"], npz["y_train"].astype(np.int64), npz["x_test"], npz["y_test"].astype(np.int64))
    for images, labels in (arrays[:2], arrays[2:]):
        check_images_and_labels(images, labels, source=str(path), image_shape=(28, 28), num_classes=len(CLASSES))
    for array in arrays:
        array.flags.writeable = False
    return arrays


# ---------------------------------------------------------------------------------------------------------
# The full data set, from the official IDX files


def default_cache_dir():
    """~/.cache/minicnn/fashion-mnist: where downloads go (unless MINICNN_DATA is set) and users may keep files."""
    return cache_dir("fashion-mnist")


def search_dirs(root=None):
    """The directories `fashion_mnist` looks in, in order.

    With `root` given, only `root`: an explicit choice is never silently replaced by other data. Otherwise:
    $MINICNN_DATA/fashion-mnist and $MINICNN_DATA (when the variable is set; it may name either a data root
    shared by several data sets or the Fashion-MNIST directory itself), then `default_cache_dir()`, then
    Debian's install location /usr/share/datasets/fashion-mnist.
    """
    return dataset_search_dirs("fashion-mnist", root, extra_dirs=[DEBIAN_DIR])


def fashion_mnist(root=None, train=True, download=False, progress=True, as_dataset=False):
    """The full Fashion-MNIST training (60,000) or test (10,000) split, read from the official IDX files.

    Inputs:
        root: directory holding the files (only this directory is searched), or None to search (see
            `search_dirs`): $MINICNN_DATA, ~/.cache/minicnn/fashion-mnist, then Debian's
            /usr/share/datasets/fashion-mnist. The first directory that holds both files of the requested
            split wins; each file may be ".gz" or raw.
        train: True for the training split (train-*), False for the test split (t10k-*).
        download: when the files are found nowhere, download them (into root, or $MINICNN_DATA/fashion-mnist,
            or ~/.cache/minicnn/fashion-mnist), verified against FASHION_MNIST_SHA256. Default False, as in
            torchvision: nothing touches the network unless asked to.
        progress: show a progress bar while downloading.
        as_dataset: return an ArrayDataset (with `classes`) instead of the two arrays.
    Returns:
        images: uint8 (N, 28, 28), labels: int64 (N,) in 0..9 — fresh arrays, yours to modify.
    Raises:
        FileNotFoundError listing every directory looked in and how to get the files (download=True).
        DownloadError when every mirror fails; ValueError when a file is not a valid image / label file.
    """
    images, labels = load_idx_split("Fashion-MNIST", "fashion-mnist", FASHION_MNIST_FILES, train=train, root=root,
                                    download=download, progress=progress, sha256=FASHION_MNIST_SHA256,
                                    mirrors=FASHION_MNIST_MIRRORS, how_to=HOW_TO_GET_THE_FILES,
                                    extra_dirs=[DEBIAN_DIR], num_classes=len(CLASSES))
    return ArrayDataset(images, labels, classes=CLASSES) if as_dataset else (images, labels)
