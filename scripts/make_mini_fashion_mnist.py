"""Build minicnn/data/fashion_mnist_mini.npz, the bundled Fashion-MNIST subset, from the four official IDX files.

The subset is stratified: 1000 images of each class from the 60,000 training images (10,000 in all) and 200 of
each class from the 10,000 test images (2,000). One generator, numpy.random.default_rng(0), draws the training
picks class by class (0..9, without replacement), then the test picks class by class. The chosen indices are
sorted, so the subset keeps the relative order of the original files, and are saved too:

    x_train uint8 (10000, 28, 28)   y_train uint8 (10000,)   train_index int32 (10000,)
    x_test  uint8 (2000, 28, 28)    y_test  uint8 (2000,)    test_index  int32 (2000,)

with x_train == full_train_images[train_index] (and the same for test), so the provenance of every image can
be checked. The .npz is written with fixed member timestamps, so the same inputs give the same bytes and the
printed SHA-256 identifies the file.

    python scripts/make_mini_fashion_mnist.py [--source DIR] [--out PATH]
"""
import argparse
import hashlib
import sys
import zipfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout without installing minicnn

from minicnn.data.fashion_mnist import DEBIAN_DIR, FASHION_MNIST_FILES, fashion_mnist  # noqa: E402

TRAIN_PER_CLASS = 1000
TEST_PER_CLASS = 200
NUM_CLASSES = 10
SEED = 0


def stratified_indices(labels, per_class, rng):
    """`per_class` indices of each class 0..NUM_CLASSES-1, drawn without replacement, returned sorted (int32)."""
    chosen = []
    for c in range(NUM_CLASSES):
        members = np.flatnonzero(labels == c)
        if len(members) < per_class:
            raise ValueError(f"class {c} has only {len(members)} images, {per_class} are needed")
        chosen.append(rng.choice(members, size=per_class, replace=False))
    return np.sort(np.concatenate(chosen)).astype(np.int32)


def save_npz_reproducibly(path, arrays):
    """What np.savez_compressed writes, with every member stamped 1980-01-01 instead of "now".

    np.savez_compressed puts the current time in each zip member's header, so two runs on the same data give
    different bytes and different checksums. np.load reads this file exactly like one from savez_compressed.
    """
    with zipfile.ZipFile(path, mode="w", compression=zipfile.ZIP_DEFLATED) as archive:
        for key, array in arrays.items():
            member = zipfile.ZipInfo(key + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            member.compress_type = zipfile.ZIP_DEFLATED
            with archive.open(member, mode="w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.asarray(array), allow_pickle=False)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, default=DEBIAN_DIR,
                        help=f"directory holding the four IDX files {sorted(sum(FASHION_MNIST_FILES.values(), ()))} "
                             f"(default: {DEBIAN_DIR}, where `apt-get install dataset-fashion-mnist` puts them)")
    parser.add_argument("--out", type=Path, default=REPO / "minicnn" / "data" / "fashion_mnist_mini.npz",
                        help="output .npz (default: %(default)s)")
    args = parser.parse_args(argv)

    x_train_full, y_train_full = fashion_mnist(root=args.source, train=True)
    x_test_full, y_test_full = fashion_mnist(root=args.source, train=False)

    rng = np.random.default_rng(SEED)
    train_index = stratified_indices(y_train_full, TRAIN_PER_CLASS, rng)
    test_index = stratified_indices(y_test_full, TEST_PER_CLASS, rng)

    save_npz_reproducibly(args.out, {
        "x_train": x_train_full[train_index],
        "y_train": y_train_full[train_index].astype(np.uint8),
        "x_test": x_test_full[test_index],
        "y_test": y_test_full[test_index].astype(np.uint8),
        "train_index": train_index,
        "test_index": test_index,
    })

    digest = hashlib.sha256(args.out.read_bytes()).hexdigest()
    print(f"wrote {args.out}: {len(train_index)} train + {len(test_index)} test images, "
          f"{args.out.stat().st_size} bytes")
    print(f"SHA-256 {digest}")


if __name__ == "__main__":
    main()
