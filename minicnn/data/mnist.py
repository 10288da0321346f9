"""MNIST: 28x28 grey images of handwritten digits 0-9 (LeCun, Bottou, Bengio and Haffner, 1998).

`mnist(root=None, train=True, download=False)` reads the training (60,000) or test (10,000) split from the
four official IDX files, found on disk or downloaded (see minicnn/data/download.py for where it looks and
how it downloads). Shapes: N images, H = W = 28. Images are uint8 (N, H, W) in 0..255 (0 is the background),
labels int64 (N,) in 0..9.

Fashion-MNIST was made as a drop-in replacement for MNIST, with the same four file names and the same IDX
format, so the reading code for both lives here: `load_idx_split` finds (or downloads) the two files of a
split, reads them and checks them. fashion_mnist.py calls it with its own names, checksums and mirrors.

The original site, yann.lecun.com, has answered 403/503 for years; the mirrors below serve the same bytes,
and every download is checked against the SHA-256 of the official files.
"""
import numpy as np

from minicnn.data.datasets import ArrayDataset, check_images_and_labels
from minicnn.data.download import find_or_download
from minicnn.data.idx import read_idx

__all__ = ["mnist", "CLASSES", "MNIST_FILES", "MNIST_SHA256", "MNIST_MIRRORS", "load_idx_split",
           "find_idx_files"]

CLASSES = ("0", "1", "2", "3", "4", "5", "6", "7", "8", "9")

# The official file names, per split: (images, labels). A directory may hold them gzip-compressed (as
# distributed) or already decompressed (the same names without ".gz").
MNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}

# SHA-256 of the official .gz files (9,912,422 / 28,881 / 1,648,877 / 4,542 bytes; their MD5s, as used by
# torchvision, are f68b3c2d..., d53e105e..., 9fb629c4..., ec29112d...). The same values are pinned by
# torchvision's prototype datasets and TensorFlow's mirror users.
MNIST_SHA256 = {
    "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}

# Tried in this order; each file is fetched from mirror + file name.
MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",        # PyTorch's mirror
    "https://storage.googleapis.com/cvdf-datasets/mnist/",   # TensorFlow's mirror
    "http://yann.lecun.com/exdb/mnist/",                     # the original page
)

HOW_TO_GET_THE_FILES = (
    "Or get them by hand: put train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz "
    "and t10k-labels-idx1-ubyte.gz (from any mirror above) in a directory and pass mnist(root=that_directory), "
    "or set MINICNN_DATA to a directory holding them (or holding an mnist/ directory with them)."
)


def mnist(root=None, train=True, download=False, progress=True, as_dataset=False):
    """The MNIST training (60,000) or test (10,000) split, read from the official IDX files.

    Inputs:
        root: directory holding the files (only this directory is searched), or None to search
            $MINICNN_DATA/mnist, $MINICNN_DATA and ~/.cache/minicnn/mnist. Each file may be ".gz" or raw.
        train: True for the training split (train-*), False for the test split (t10k-*).
        download: when the files are not found, download them (into root, or $MINICNN_DATA/mnist, or
            ~/.cache/minicnn/mnist), verified against their SHA-256. Default False, as in torchvision.
        progress: show a progress bar while downloading.
        as_dataset: return an ArrayDataset (with `classes`) instead of the two arrays.
    Returns:
        images: uint8 (N, 28, 28), labels: int64 (N,) in 0..9 — fresh arrays, yours to modify.
    Raises:
        FileNotFoundError listing every directory looked in and how to get the files (download=True).
        DownloadError when every mirror fails; ValueError when a file is not a valid image / label file.
    """
    images, labels = load_idx_split("MNIST", "mnist", MNIST_FILES, train=train, root=root, download=download,
                                    progress=progress, sha256=MNIST_SHA256, mirrors=MNIST_MIRRORS,
                                    how_to=HOW_TO_GET_THE_FILES)
    return ArrayDataset(images, labels, classes=CLASSES) if as_dataset else (images, labels)


def load_idx_split(title, dataset, files, *, train, root, download, progress, sha256, mirrors, how_to,
                   extra_dirs=(), num_classes=10):
    """Find (or download) the two IDX files of one split of an MNIST-like data set, read and check them.

    Inputs:
        title: the data set's name for messages ("MNIST"); dataset: its directory name ("mnist").
        files: {"train": (images name, labels name), "test": (...)}, the ".gz" names.
        sha256: {name: SHA-256} of the official .gz files; mirrors: base URLs.
        extra_dirs: places searched after the cache when root is None (Debian's, for Fashion-MNIST).
    Returns:
        images: uint8 (N, 28, 28), labels: int64 (N,) in 0..num_classes-1.
    """
    split = "train" if train else "test"
    names = files[split]
    images_path, labels_path = find_or_download(
        dataset, lambda directory: find_idx_files(directory, names), root=root, allow_download=download,
        files={name: sha256[name] for name in names}, mirrors=mirrors, extra_dirs=extra_dirs, progress=progress,
        what=f"{title} {split} files ({' and '.join(names)}, or the same without .gz)", how_to=how_to)
    images = read_idx(images_path)
    labels = read_idx(labels_path).astype(np.int64)
    check_images_and_labels(images, labels, source=f"{images_path} + {labels_path}", image_shape=(28, 28),
                            num_classes=num_classes)
    return images, labels


def find_idx_files(directory, gz_names):
    """The paths of all `gz_names` in `directory` (each as named, or without ".gz"), or None if one is missing."""
    paths = []
    for gz_name in gz_names:
        candidates = [directory / gz_name, directory / gz_name[:-len(".gz")]]
        found = [path for path in candidates if path.is_file()]
        if not found:
            return None
        paths.append(found[0])
    return paths
