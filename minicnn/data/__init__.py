"""Data sets as NumPy arrays: readers for on-disk formats and the data sets built on them.

    idx.py            read_idx / write_idx: the IDX format of MNIST and Fashion-MNIST (gzip or raw)
    fashion_mnist.py  fashion_mnist_mini(): the bundled 10,000 + 2,000 image subset, always available;
                      fashion_mnist(root, train): the full 60,000 + 10,000 from the official IDX files;
                      CLASSES: the 10 class names

This package moves arrays, not Tensors: it never imports minicnn.autograd (nor matplotlib), so it can be used
and tested on its own. Images come out as uint8 (N, H, W) and labels as int64 (N,).
"""
from minicnn.data.fashion_mnist import CLASSES, fashion_mnist, fashion_mnist_mini
from minicnn.data.idx import read_idx, write_idx

FASHION_MNIST_CLASSES = CLASSES

__all__ = ["fashion_mnist_mini", "fashion_mnist", "CLASSES", "FASHION_MNIST_CLASSES", "read_idx", "write_idx"]
