"""The Dataset protocol; ArrayDataset, images and labels already in memory; checks on loaded arrays.

A dataset, to minicnn, is anything with

    len(dataset)        the number of examples, N
    dataset[i]          (image array, label) for 0 <= i < N (negative i counts from the end)

and the DataLoader (minicnn/data/loader.py) batches such objects: it picks indices, asks for the examples and
stacks them into (N, ...) arrays. Datasets hand out NumPy arrays, not Tensors; the training loop turns batches
into Tensors (and moves them to the GPU).

ArrayDataset wraps the (images, labels) arrays that every loader in this package returns, e.g.

    train_set = ArrayDataset(*mnist(train=True), transform=random_crop)   # or mnist(..., as_dataset=True)

`transform` is a per-example function, image -> image, run at every access (so a random one gives a fresh
result each epoch). The batch transforms of minicnn/data/transforms.py, called as transform(images, rng) on a
whole batch, belong to the DataLoader instead, which is the faster place for them. `images` and `labels` are
exposed so a loader may slice whole batches at once when there is no per-example transform.
"""
import operator

import numpy as np

__all__ = ["ArrayDataset", "check_images_and_labels"]


class ArrayDataset:
    """Examples held in two arrays: images (N, ...) and labels (N,).

    Inputs:
        images: array-like (N, ...), e.g. uint8 (N, H, W) or (N, C, H, W). Kept as given (not copied), so
            the bundled, read-only Fashion-MNIST arrays stay read-only.
        labels: array-like (N,) of class indices.
        transform: None, or a function image -> image applied by __getitem__ to one example.
        classes: optional sequence of class names, classes[label] naming each label.
    dataset[i] returns (transform(images[i]), labels[i]): the image as an array, the label as a NumPy
    integer scalar (np.int64 for the loaders of this package).
    """

    def __init__(self, images, labels, transform=None, classes=None):
        images = np.asarray(images)
        labels = np.asarray(labels)
        if images.ndim < 1:
            raise ValueError("ArrayDataset: expected images of shape (N, ...), got a 0-d array")
        if labels.ndim != 1 or len(labels) != len(images):
            raise ValueError(f"ArrayDataset: expected labels of shape ({len(images)},) to match images of "
                             f"shape {images.shape}, got labels of shape {labels.shape}")
        if transform is not None and not callable(transform):
            raise TypeError(f"ArrayDataset: transform must be callable or None, got {type(transform).__name__}")
        self.images = images
        self.labels = labels
        self.transform = transform
        self.classes = tuple(classes) if classes is not None else None

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, index):
        try:
            index = operator.index(index)  # ints and NumPy integers; slices and floats are refused
        except TypeError:
            raise TypeError(f"ArrayDataset indices must be integers, got {type(index).__name__}; "
                            f"the DataLoader batches examples one index at a time") from None
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"ArrayDataset index {index} is out of range for a dataset of {n} examples")
        image = self.images[index]
        if self.transform is not None:
            image = self.transform(image)
        return image, self.labels[index]

    def __repr__(self):
        transform = "" if self.transform is None else f", transform={self.transform!r}"
        return (f"ArrayDataset({len(self)} examples, images {self.images.dtype} {self.images.shape[1:]} "
                f"each{transform})")


def check_images_and_labels(images, labels, source, image_shape, num_classes):
    """Refuse arrays that cannot be the named data set, saying where they came from and what was expected.

    Inputs:
        images: the array read, expected uint8 (N, *image_shape).
        labels: the array read, expected (N,) integers in 0..num_classes-1.
        source: the file(s) the arrays came from, for the message.
    Raises:
        ValueError naming `source`, the expected and the found dtype, shape or label range.
    """
    expected = "(N, " + ", ".join(str(size) for size in image_shape) + ")"
    if images.dtype != np.uint8 or images.shape[1:] != tuple(image_shape):
        raise ValueError(f"{source}: expected uint8 images of shape {expected}, "
                         f"found {images.dtype} of shape {images.shape}")
    if labels.ndim != 1 or len(labels) != len(images):
        raise ValueError(f"{source}: expected labels of shape ({len(images)},) to match the images, "
                         f"found shape {labels.shape}")
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"{source}: expected labels in 0..{num_classes - 1}, "
                         f"found values from {labels.min()} to {labels.max()}")
