"""ImageFolder: a data set of your own images, one subdirectory per class.

    root/
      cat/   001.png  002.jpg ...
      dog/   001.png ...

The classes are the subdirectory names in sorted order, and a class's label is its position in that order
(cat -> 0, dog -> 1), the same convention as torchvision's ImageFolder, so the labels do not depend on the
order the file system lists things in. Within a class, files are taken in sorted order too. Files and
directories whose names start with "." are ignored, and so are files whose extension is not an image's.

Images are decoded with Pillow, an optional dependency (`pip install minicnn[images]` or
`pip install Pillow`), imported only when an ImageFolder is created: importing minicnn.data never needs it.

Shapes: each image comes out as uint8 (C, H, W), the layout conv2d takes: C = 3 for mode "RGB" (the
default), 1 for "L" (grey), 4 for "RGBA". Images are decoded when accessed, one at a time, so a folder larger
than memory still works; `arrays()` decodes them all into one (N, C, H, W) array when they share one size.
"""
import operator
from pathlib import Path

import numpy as np

from minicnn.data.datasets import ArrayDataset

__all__ = ["ImageFolder", "IMAGE_EXTENSIONS"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".ppm", ".pgm", ".pbm", ".tif", ".tiff", ".webp")


def _import_pillow():
    try:
        from PIL import Image
    except ImportError:
        raise ImportError("ImageFolder decodes images with Pillow, which is not installed: "
                          "`pip install minicnn[images]` (or `pip install Pillow`)") from None
    return Image


class ImageFolder:
    """Images in root/<class name>/<file>, decoded on access to (uint8 (C, H, W) array, int label).

    Inputs:
        root: the directory holding one subdirectory per class.
        mode: the Pillow mode every image is converted to: "RGB" (C = 3, default), "L" (C = 1), "RGBA" (C = 4).
        transform: None, or a function image -> image applied to each decoded (C, H, W) array.
    Attributes:
        classes: the class names (sorted subdirectory names); class_to_index: {name: label};
        samples: [(path, label)], in class order then file-name order; labels: int64 (N,).
    Raises:
        FileNotFoundError when root is not a directory or holds no image in any class subdirectory.
        ImportError naming the extra to install when Pillow is missing.
    """

    def __init__(self, root, mode="RGB", transform=None):
        self._image = _import_pillow()
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise FileNotFoundError(f"ImageFolder: {self.root} is not a directory; expected one subdirectory "
                                    f"per class, each holding that class's images")
        if transform is not None and not callable(transform):
            raise TypeError(f"ImageFolder: transform must be callable or None, got {type(transform).__name__}")
        self.mode = mode
        self.transform = transform
        self.classes = tuple(sorted(entry.name for entry in self.root.iterdir()
                                    if entry.is_dir() and not entry.name.startswith(".")))
        self.class_to_index = {name: index for index, name in enumerate(self.classes)}
        self.samples = [(path, label) for label, name in enumerate(self.classes)
                        for path in sorted((self.root / name).iterdir())
                        if path.is_file() and not path.name.startswith(".")
                        and path.suffix.lower() in IMAGE_EXTENSIONS]
        if not self.samples:
            raise FileNotFoundError(
                f"ImageFolder: no images under {self.root}: expected files ending in "
                f"{', '.join(IMAGE_EXTENSIONS)} inside one subdirectory per class; found the classes "
                f"{list(self.classes) or 'none'}")
        self.labels = np.array([label for _, label in self.samples], dtype=np.int64)

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, index):
        index = operator.index(index)  # ints and NumPy integers only
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"ImageFolder index {index} is out of range for {n} images")
        path, label = self.samples[index]
        image = self.load(path)
        if self.transform is not None:
            image = self.transform(image)
        return image, self.labels[index]

    def load(self, path):
        """Decode one image file to a uint8 (C, H, W) array in this folder's mode."""
        with self._image.open(path) as picture:
            pixels = np.asarray(picture.convert(self.mode), dtype=np.uint8)  # (H, W) or (H, W, C)
        if pixels.ndim == 2:
            pixels = pixels[:, :, None]  # (H, W) -> (H, W, 1)
        return np.ascontiguousarray(pixels.transpose(2, 0, 1))  # (H, W, C) -> (C, H, W)

    def arrays(self):
        """Every image decoded (without the transform): images uint8 (N, C, H, W), labels int64 (N,).

        Raises ValueError naming the first file whose size differs from the first image's: stacking needs
        one size (resize the files first, or use the dataset with a cropping transform).
        """
        images = []
        for path, _ in self.samples:
            image = self.load(path)
            if images and image.shape != images[0].shape:
                raise ValueError(f"ImageFolder.arrays: {path} is {image.shape} (C, H, W) but "
                                 f"{self.samples[0][0]} is {images[0].shape}; all images must share one size")
            images.append(image)
        return np.stack(images), self.labels.copy()

    def to_array_dataset(self, transform=None):
        """All images decoded into memory as an ArrayDataset (faster epochs for small folders)."""
        images, labels = self.arrays()
        return ArrayDataset(images, labels, transform=transform, classes=self.classes)

    def __repr__(self):
        return f"ImageFolder({str(self.root)!r}, {len(self)} images, {len(self.classes)} classes, mode={self.mode!r})"
