"""Data sets as NumPy arrays: readers for on-disk formats, the data sets built on them, and their download.

    idx.py            read_idx / write_idx: the IDX format of MNIST and Fashion-MNIST (gzip or raw)
    fashion_mnist.py  fashion_mnist_mini(): the bundled 10,000 + 2,000 image subset, always available;
                      fashion_mnist(root, train, download): the full 60,000 + 10,000 from the official IDX
                      files; CLASSES: the 10 class names
    mnist.py          mnist(root, train, download): the 60,000 + 10,000 handwritten digits
    cifar.py          cifar10(root, train, download): 50,000 + 10,000 colour images, from the binary version
    image_folder.py   ImageFolder(root): your own images, one subdirectory per class (needs Pillow)
    datasets.py       the Dataset protocol (len, dataset[i] -> (image, label)) and ArrayDataset
    download.py       download(): mirrors, SHA-256, atomic writes; where data sets are looked for and cached
    loader.py         DataLoader: shuffled, seeded batches of any of the above, batch transforms on a thread
    transforms.py     batch transforms: crops, flips, scale jitter, PCA colour noise (minicnn.data.transforms)
    split.py          train_val_split, train_val_test_split, k_fold

Full data sets are looked for in root (when given), else $MINICNN_DATA, ~/.cache/minicnn/<dataset> (and, for
Fashion-MNIST, Debian's /usr/share/datasets/fashion-mnist); with download=True they are fetched when missing.

This package moves arrays, not Tensors: it never imports minicnn.autograd (nor matplotlib), so it can be used
and tested on its own. Images come out as uint8 — (N, H, W) for the grey IDX data sets, (N, C, H, W) for
CIFAR-10 and image folders — and labels as int64 (N,).
"""
from minicnn.data.cifar import CLASSES as CIFAR10_CLASSES
from minicnn.data.cifar import cifar10
from minicnn.data.datasets import ArrayDataset
from minicnn.data.download import DownloadError, download
from minicnn.data.fashion_mnist import CLASSES, fashion_mnist, fashion_mnist_mini
from minicnn.data.idx import read_idx, write_idx
from minicnn.data.image_folder import ImageFolder
from minicnn.data.loader import DataLoader
from minicnn.data.mnist import CLASSES as MNIST_CLASSES
from minicnn.data.mnist import mnist
from minicnn.data.split import k_fold, train_val_split, train_val_test_split

FASHION_MNIST_CLASSES = CLASSES

__all__ = ["fashion_mnist_mini", "fashion_mnist", "CLASSES", "FASHION_MNIST_CLASSES", "mnist", "MNIST_CLASSES",
           "cifar10", "CIFAR10_CLASSES", "ImageFolder", "ArrayDataset", "download", "DownloadError",
           "read_idx", "write_idx", "DataLoader", "train_val_split", "train_val_test_split", "k_fold"]
