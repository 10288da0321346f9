"""CIFAR-10: 32x32 colour images in 10 classes (Krizhevsky, 2009), read from the binary version.

The binary version, cifar-10-binary.tar.gz ("suitable for C programs"), holds under cifar-10-batches-bin/ the
files data_batch_1.bin ... data_batch_5.bin (the 50,000 training images) and test_batch.bin (the 10,000 test
images). Each file is 10,000 records of 3073 bytes, nothing else (no header):

    byte 0              the label, 0..9 (indexing CLASSES)
    bytes 1 .. 1024     the red channel: 32 rows of 32 pixels, row after row
    bytes 1025 .. 2048  the green channel, the same way
    bytes 2049 .. 3072  the blue channel

So a record is already an image in (C, H, W) order: read a file as a uint8 (N, 3073) array, and column 0 is
the labels while columns 1: reshape to (N, 3, 32, 32) without moving a byte. minicnn keeps that layout.

Shapes: images are uint8 (N, C, H, W) = (N, 3, 32, 32) in 0..255, the layout conv2d takes; labels int64 (N,).
For (N, H, W, C), e.g. to show an image with matplotlib, use images.transpose(0, 2, 3, 1).

Why the binary version: the "python version" of CIFAR-10 is pickled, and unpickling a download runs whatever
code it holds. Here the bytes go through NumPy only. The archive is read where it lies, member by member,
without extracting anything to disk, and an archive holding a member that could escape its directory (an
absolute path, "..", a link or a device) is refused outright: it is not the official archive.
"""
import tarfile

import numpy as np

from minicnn.data.datasets import ArrayDataset, check_images_and_labels
from minicnn.data.download import find_or_download

__all__ = ["cifar10", "CLASSES", "CIFAR10_FILES", "CIFAR10_ARCHIVE", "CIFAR10_SHA256", "CIFAR10_MIRRORS",
           "read_cifar10_batch", "read_cifar10_archive"]

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")

C, H, W = 3, 32, 32
RECORD_SIZE = 1 + C * H * W  # 3073: one label byte, then the pixels

CIFAR10_DIR = "cifar-10-batches-bin"  # the directory inside the archive
CIFAR10_FILES = {
    "train": ("data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin"),
    "test": ("test_batch.bin",),
}
CIFAR10_ARCHIVE = "cifar-10-binary.tar.gz"

# SHA-256 of the official cifar-10-binary.tar.gz (170,052,171 bytes; the MD5 on the CIFAR page is
# c32a1d4ab5d03f1284b67883e8d87530).
CIFAR10_SHA256 = "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd"

# Tried in this order; the archive is fetched from mirror + CIFAR10_ARCHIVE. The first is the link on the
# CIFAR page; it redirects to the second, listed too so that a broken redirect does not stop a download.
CIFAR10_MIRRORS = (
    "https://www.cs.toronto.edu/~kriz/",
    "https://cave.cs.toronto.edu/kriz/",
)

HOW_TO_GET_THE_FILES = (
    f"Or get them by hand: download {CIFAR10_ARCHIVE} (the BINARY version, not the python one) from "
    f"https://www.cs.toronto.edu/~kriz/cifar.html and put it, or the {CIFAR10_DIR}/ directory extracted from it, "
    f"in a directory; then pass cifar10(root=that_directory), or set MINICNN_DATA to it."
)


def cifar10(root=None, train=True, download=False, progress=True, as_dataset=False):
    """The CIFAR-10 training (50,000) or test (10,000) split, from the binary version.

    Inputs:
        root: directory holding the data (only this directory is searched), or None to search
            $MINICNN_DATA/cifar-10, $MINICNN_DATA and ~/.cache/minicnn/cifar-10. In a directory, the .bin files
            are looked for in cifar-10-batches-bin/, then in the directory itself, then inside
            cifar-10-binary.tar.gz (read in place, never extracted).
        train: True for data_batch_1..5.bin, False for test_batch.bin.
        download: when the data is found nowhere, download cifar-10-binary.tar.gz (into root, or
            $MINICNN_DATA/cifar-10, or ~/.cache/minicnn/cifar-10), verified against CIFAR10_SHA256.
        progress: show a progress bar while downloading.
        as_dataset: return an ArrayDataset (with `classes`) instead of the two arrays.
    Returns:
        images: uint8 (N, 3, 32, 32), labels: int64 (N,) in 0..9 — fresh arrays, in file order.
    Raises:
        FileNotFoundError listing every directory looked in and how to get the data (download=True).
        DownloadError when every mirror fails; ValueError for a malformed batch file or an unsafe archive.
    """
    split = "train" if train else "test"
    names = CIFAR10_FILES[split]
    kind, path = find_or_download(
        "cifar-10", lambda directory: _find(directory, names), root=root, allow_download=download,
        files={CIFAR10_ARCHIVE: CIFAR10_SHA256}, mirrors=CIFAR10_MIRRORS, progress=progress,
        what=f"CIFAR-10 {split} data ({', '.join(names)} in {CIFAR10_DIR}/, or {CIFAR10_ARCHIVE})",
        how_to=HOW_TO_GET_THE_FILES)
    if kind == "archive":
        batches = read_cifar10_archive(path, names)
    else:
        batches = [read_cifar10_batch(file) for file in path]
    images = np.concatenate([images for images, _ in batches])
    labels = np.concatenate([labels for _, labels in batches])
    return ArrayDataset(images, labels, classes=CLASSES) if as_dataset else (images, labels)


def _find(directory, names):
    """("files", [paths]) or ("archive", path) for the first place in `directory` holding the split, or None."""
    for folder in (directory / CIFAR10_DIR, directory):
        paths = [folder / name for name in names]
        if all(path.is_file() for path in paths):
            return "files", paths
    archive = directory / CIFAR10_ARCHIVE
    return ("archive", archive) if archive.is_file() else None


def read_cifar10_batch(source, name=None):
    """Read one CIFAR-10 binary batch: records of 1 label byte + 3072 pixel bytes.

    Inputs:
        source: a path (str or os.PathLike) or the file's bytes.
        name: how to call the source in messages (defaults to the path).
    Returns:
        images: uint8 (N, 3, 32, 32), labels: int64 (N,) — fresh arrays that own their memory.
    Raises:
        ValueError naming the source when its size is not a whole number of 3073-byte records or a label is
        not in 0..9.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        name = name or "CIFAR-10 batch"
    else:
        name = name or str(source)
        with open(source, "rb") as f:
            data = f.read()
    if len(data) == 0 or len(data) % RECORD_SIZE:
        raise ValueError(f"{name}: expected CIFAR-10 binary records of {RECORD_SIZE} bytes (1 label + 3x32x32 "
                         f"pixels), found {len(data)} bytes, which is {len(data) / RECORD_SIZE:.3f} records "
                         f"(is this the python version, or a truncated file?)")
    records = np.frombuffer(data, dtype=np.uint8).reshape(-1, RECORD_SIZE)  # (N, 3073)
    labels = records[:, 0].astype(np.int64)
    images = records[:, 1:].reshape(-1, C, H, W).copy()  # (N, 3073) -> (N, 3, 32, 32): channel, row, column
    check_images_and_labels(images, labels, source=name, image_shape=(C, H, W), num_classes=len(CLASSES))
    return images, labels


def read_cifar10_archive(path, names):
    """Read the batches `names` (e.g. ("test_batch.bin",)) from the CIFAR-10 binary .tar.gz, in memory.

    Every member's name and type is checked as the archive is walked; nothing is written to disk.
    Returns:
        a list of (images, labels) pairs in the order of `names`.
    Raises:
        ValueError when a member is unsafe (absolute path, "..", link, device) or a batch is missing or
        malformed; tarfile.ReadError when the file is not a tar archive.
    """
    wanted = {f"{CIFAR10_DIR}/{name}": name for name in names}
    found = {}
    with tarfile.open(path, "r:*") as archive:
        for member in archive:
            member_name = _checked_member_name(path, member)
            if member_name in wanted:
                if not member.isfile():
                    raise ValueError(f"{path}: member {member.name!r} should be a regular file")
                data = archive.extractfile(member).read()
                found[wanted[member_name]] = read_cifar10_batch(data, name=f"{path}:{member.name}")
    missing = [name for name in names if name not in found]
    if missing:
        raise ValueError(f"{path}: expected {', '.join(f'{CIFAR10_DIR}/{name}' for name in missing)} in the "
                         f"archive, not found; is this {CIFAR10_ARCHIVE} (the binary version)?")
    return [found[name] for name in names]


def _checked_member_name(path, member):
    """The member's name without a leading "./"; ValueError if it could write outside its directory."""
    name = member.name
    while name.startswith("./"):
        name = name[2:]
    parts = name.split("/")
    if name.startswith("/") or "\\" in name or ".." in parts or (parts and ":" in parts[0]):
        raise ValueError(f"{path}: refusing the archive: member {member.name!r} has a path that leaves the "
                         f"archive's directory; this is not the official {CIFAR10_ARCHIVE}")
    if not (member.isfile() or member.isdir()):
        raise ValueError(f"{path}: refusing the archive: member {member.name!r} is a link or a special file; "
                         f"this is not the official {CIFAR10_ARCHIVE}")
    return name
