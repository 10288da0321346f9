"""Specification of the data sets: MNIST (IDX), CIFAR-10 (binary version, directory or .tar.gz), ImageFolder,
ArrayDataset, and the order in which data sets are looked for.

MNIST and CIFAR-10 are not on these machines: the tests write small files in the real formats.
"""
import importlib
import io
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

from minicnn.data import (CIFAR10_CLASSES, MNIST_CLASSES, ArrayDataset, DataLoader, ImageFolder, cifar10,
                          fashion_mnist, fashion_mnist_mini, mnist, write_idx)
from minicnn.data.cifar import read_cifar10_archive, read_cifar10_batch
from minicnn.data.mnist import MNIST_FILES

# importlib, because the attributes minicnn.data.fashion_mnist and minicnn.data.download are the functions.
fashion_module = importlib.import_module("minicnn.data.fashion_mnist")
download_module = importlib.import_module("minicnn.data.download")


# ---------------------------------------------------------------------------------------------------------
# MNIST

def write_mnist(directory, n_train=9, n_test=4, compress=True, seed=0):
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    written = {}
    for split, n in (("train", n_train), ("test", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n).astype(np.uint8)
        for name, array in zip(MNIST_FILES[split], (images, labels)):
            write_idx(directory / (name if compress else name[:-3]), array)
        written[split] = (images, labels)
    return written


@pytest.mark.parametrize("compress", [True, False], ids=["gz", "raw"])
def test_mnist_reads_both_splits_from_idx_files(tmp_path, compress):
    written = write_mnist(tmp_path, compress=compress)
    for train, split in ((True, "train"), (False, "test")):
        images, labels = mnist(root=tmp_path, train=train)
        assert images.dtype == np.uint8 and images.shape == written[split][0].shape
        assert labels.dtype == np.int64
        np.testing.assert_array_equal(images, written[split][0])
        np.testing.assert_array_equal(labels, written[split][1])


def test_mnist_refuses_labels_outside_0_to_9(tmp_path):
    write_mnist(tmp_path)
    write_idx(tmp_path / MNIST_FILES["test"][1], np.array([0, 1, 2, 10], dtype=np.uint8))
    with pytest.raises(ValueError, match="0..9"):
        mnist(root=tmp_path, train=False)


def test_mnist_refuses_images_of_the_wrong_size(tmp_path):
    write_mnist(tmp_path)
    write_idx(tmp_path / MNIST_FILES["test"][0], np.zeros((4, 32, 32), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"\(N, 28, 28\)"):
        mnist(root=tmp_path, train=False)


def test_mnist_as_dataset_gives_an_array_dataset_with_class_names(tmp_path):
    written = write_mnist(tmp_path)
    dataset = mnist(root=tmp_path, train=False, as_dataset=True)
    assert isinstance(dataset, ArrayDataset) and len(dataset) == 4
    assert dataset.classes == MNIST_CLASSES == tuple("0123456789")
    image, label = dataset[2]
    np.testing.assert_array_equal(image, written["test"][0][2])
    assert label == written["test"][1][2]


# ---------------------------------------------------------------------------------------------------------
# CIFAR-10, binary version

def cifar_batch(n, seed):
    """(bytes in the official record layout, images (n, 3, 32, 32), labels (n,))."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 3, 32, 32), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n, dtype=np.uint8)
    # Built record by record, as the CIFAR page describes it: label byte, 1024 red, 1024 green, 1024 blue,
    # each channel row by row.
    data = b"".join(bytes([labels[i]]) + images[i, 0].tobytes() + images[i, 1].tobytes() + images[i, 2].tobytes()
                    for i in range(n))
    return data, images, labels


def write_cifar(directory, sizes=(2, 3, 1, 2, 2), n_test=3):
    """Batch files data_batch_1..5.bin and test_batch.bin in `directory`; returns the expected arrays."""
    directory.mkdir(parents=True, exist_ok=True)
    train_images, train_labels = [], []
    for i, n in enumerate(sizes, start=1):
        data, images, labels = cifar_batch(n, seed=i)
        (directory / f"data_batch_{i}.bin").write_bytes(data)
        train_images.append(images)
        train_labels.append(labels)
    data, test_images, test_labels = cifar_batch(n_test, seed=99)
    (directory / "test_batch.bin").write_bytes(data)
    (directory / "batches.meta.txt").write_text("\n".join(CIFAR10_CLASSES) + "\n")
    return {"train": (np.concatenate(train_images), np.concatenate(train_labels)),
            "test": (test_images, test_labels)}


def test_cifar_record_layout_is_label_then_red_green_blue_planes_row_by_row(tmp_path):
    record = bytearray(3073)
    record[0] = 7
    record[1 + 0 * 1024 + 5 * 32 + 9] = 200   # red, row 5, column 9
    record[1 + 1 * 1024 + 31 * 32 + 0] = 100  # green, row 31, column 0
    record[1 + 2 * 1024 + 0 * 32 + 31] = 50   # blue, row 0, column 31
    images, labels = read_cifar10_batch(bytes(record))
    assert images.shape == (1, 3, 32, 32) and images.dtype == np.uint8
    assert labels.tolist() == [7] and labels.dtype == np.int64
    assert images[0, 0, 5, 9] == 200 and images[0, 1, 31, 0] == 100 and images[0, 2, 0, 31] == 50
    assert images.sum() == 350
    assert images.flags.writeable and images.flags.owndata


@pytest.mark.parametrize("layout", ["batches-dir", "flat"])
def test_cifar10_reads_both_splits_from_a_directory(tmp_path, layout):
    directory = tmp_path / "cifar-10-batches-bin" if layout == "batches-dir" else tmp_path
    written = write_cifar(directory)
    for train, split in ((True, "train"), (False, "test")):
        images, labels = cifar10(root=tmp_path, train=train)
        assert images.dtype == np.uint8 and images.shape[1:] == (3, 32, 32)
        assert labels.dtype == np.int64
        np.testing.assert_array_equal(images, written[split][0])  # batches 1..5 in order
        np.testing.assert_array_equal(labels, written[split][1])


def make_tar(path, members):
    """A .tar.gz with `members`: (name, bytes) for regular files, (name, tarfile.TarInfo-type, target)."""
    with tarfile.open(path, "w:gz") as archive:
        for member in members:
            info = tarfile.TarInfo(member[0])
            if len(member) == 2:
                info.size = len(member[1])
                archive.addfile(info, io.BytesIO(member[1]))
            else:
                info.type, info.linkname = member[1], member[2]
                archive.addfile(info)


def official_members(directory):
    names = [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin", "batches.meta.txt"]
    return [(f"cifar-10-batches-bin/{name}", (directory / name).read_bytes()) for name in names]


def test_cifar10_reads_the_tar_gz_in_place_without_extracting(tmp_path):
    written = write_cifar(tmp_path / "src")
    root = tmp_path / "root"
    root.mkdir()
    make_tar(root / "cifar-10-binary.tar.gz", official_members(tmp_path / "src"))
    for train, split in ((True, "train"), (False, "test")):
        images, labels = cifar10(root=root, train=train)
        np.testing.assert_array_equal(images, written[split][0])
        np.testing.assert_array_equal(labels, written[split][1])
    assert sorted(path.name for path in root.iterdir()) == ["cifar-10-binary.tar.gz"]


@pytest.mark.parametrize("evil", ["../escape.bin", "/tmp/absolute.bin", "cifar-10-batches-bin/../../up.bin",
                                  "symlink", "hardlink"])
def test_an_archive_with_an_unsafe_member_is_refused_and_nothing_is_written(tmp_path, evil):
    write_cifar(tmp_path / "src")
    members = official_members(tmp_path / "src")
    if evil == "symlink":
        members.insert(0, ("cifar-10-batches-bin/link", tarfile.SYMTYPE, "/etc/passwd"))
    elif evil == "hardlink":
        members.insert(0, ("cifar-10-batches-bin/link", tarfile.LNKTYPE, "/etc/passwd"))
    else:
        members.insert(0, (evil, b"\x00" * 3073))
    root = tmp_path / "root" / "inner"
    root.mkdir(parents=True)
    make_tar(root / "cifar-10-binary.tar.gz", members)
    with pytest.raises(ValueError, match="refusing the archive"):
        cifar10(root=root, train=False)
    assert sorted(path.name for path in root.iterdir()) == ["cifar-10-binary.tar.gz"]
    assert sorted(path.name for path in (tmp_path / "root").iterdir()) == ["inner"]


def test_an_archive_without_the_wanted_batch_names_it(tmp_path):
    write_cifar(tmp_path / "src")
    members = [m for m in official_members(tmp_path / "src") if not m[0].endswith("test_batch.bin")]
    make_tar(tmp_path / "a.tar.gz", members)
    with pytest.raises(ValueError, match="test_batch.bin"):
        read_cifar10_archive(tmp_path / "a.tar.gz", ["test_batch.bin"])


def test_a_batch_that_is_not_whole_records_is_refused(tmp_path):
    path = tmp_path / "test_batch.bin"
    path.write_bytes(b"\x00" * 3073 * 2 + b"\x01")
    with pytest.raises(ValueError, match="3073") as info:
        read_cifar10_batch(path)
    assert str(path) in str(info.value)


def test_a_label_above_9_is_refused(tmp_path):
    data, _, _ = cifar_batch(2, seed=0)
    with pytest.raises(ValueError, match="0..9"):
        read_cifar10_batch(bytes([10]) + data[1:])


def test_cifar10_missing_says_where_it_looked_and_how_to_download(tmp_path, monkeypatch):
    monkeypatch.setenv("MINICNN_DATA", str(tmp_path / "data"))
    with pytest.raises(FileNotFoundError) as info:
        cifar10(train=True)
    message = str(info.value)
    assert str(tmp_path / "data" / "cifar-10") in message
    assert "download=True" in message and "cifar-10-binary.tar.gz" in message and "data_batch_1.bin" in message


def test_cifar10_as_dataset_has_the_ten_class_names(tmp_path):
    write_cifar(tmp_path)
    dataset = cifar10(root=tmp_path, train=False, as_dataset=True)
    assert dataset.classes == CIFAR10_CLASSES
    assert CIFAR10_CLASSES[0] == "airplane" and CIFAR10_CLASSES[9] == "truck"
    assert dataset[0][0].shape == (3, 32, 32)


# ---------------------------------------------------------------------------------------------------------
# ImageFolder

def write_image_folder(root):
    Image = pytest.importorskip("PIL.Image")
    rng = np.random.default_rng(3)
    written = {}
    for name in ("dog", "cat"):  # created out of order: labels must follow sorted names
        (root / name).mkdir(parents=True)
        for i in range(2 if name == "cat" else 3):
            pixels = rng.integers(0, 256, size=(5, 7, 3), dtype=np.uint8)  # (H, W, C)
            Image.fromarray(pixels).save(root / name / f"{i}.png")
            written[(name, i)] = pixels
    (root / "cat" / "notes.txt").write_text("not an image")
    (root / "cat" / ".hidden.png").write_bytes(b"")
    (root / ".cache").mkdir()
    return written


def test_image_folder_classes_are_sorted_subdirectories_and_images_come_out_chw(tmp_path):
    written = write_image_folder(tmp_path)
    folder = ImageFolder(tmp_path)
    assert folder.classes == ("cat", "dog") and folder.class_to_index == {"cat": 0, "dog": 1}
    assert len(folder) == 5
    assert folder.labels.tolist() == [0, 0, 1, 1, 1]
    image, label = folder[3]
    assert label == 1
    assert image.dtype == np.uint8 and image.shape == (3, 5, 7)
    np.testing.assert_array_equal(image, written[("dog", 1)].transpose(2, 0, 1))  # PNG is lossless


def test_image_folder_grey_mode_and_transform(tmp_path):
    write_image_folder(tmp_path)
    folder = ImageFolder(tmp_path, mode="L", transform=lambda image: image[:, :2, :2])
    image, label = folder[-1]
    assert image.shape == (1, 2, 2) and label == 1


def test_image_folder_arrays_and_array_dataset(tmp_path):
    written = write_image_folder(tmp_path)
    images, labels = ImageFolder(tmp_path).arrays()
    assert images.shape == (5, 3, 5, 7) and labels.tolist() == [0, 0, 1, 1, 1]
    np.testing.assert_array_equal(images[0], written[("cat", 0)].transpose(2, 0, 1))
    dataset = ImageFolder(tmp_path).to_array_dataset()
    assert isinstance(dataset, ArrayDataset) and dataset.classes == ("cat", "dog") and len(dataset) == 5


def test_image_folder_arrays_refuses_mixed_sizes_naming_the_file(tmp_path):
    write_image_folder(tmp_path)
    from PIL import Image
    Image.fromarray(np.zeros((6, 6, 3), dtype=np.uint8)).save(tmp_path / "dog" / "9.png")
    with pytest.raises(ValueError, match="9.png"):
        ImageFolder(tmp_path).arrays()


def test_image_folder_without_images_or_directory_is_a_clear_error(tmp_path):
    pytest.importorskip("PIL")
    with pytest.raises(FileNotFoundError, match="not a directory"):
        ImageFolder(tmp_path / "nowhere")
    (tmp_path / "empty-class").mkdir()
    with pytest.raises(FileNotFoundError, match="no images"):
        ImageFolder(tmp_path)


def test_importing_minicnn_data_does_not_import_pillow_or_tqdm():
    # Whatever `import minicnn` itself loads, importing minicnn.data on top of it must add neither.
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import minicnn; before = set(sys.modules); "
            "import minicnn.data; new = set(sys.modules) - before; "
            "bad = [m for m in new if m.split('.')[0] in ('PIL', 'tqdm')]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code, str(Path(__file__).resolve().parents[1])], check=True)


def test_image_folder_without_pillow_says_which_extra_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "PIL", None)  # makes `from PIL import Image` raise ImportError
    with pytest.raises(ImportError, match=r"minicnn\[images\]"):
        ImageFolder(tmp_path)


# ---------------------------------------------------------------------------------------------------------
# ArrayDataset

def test_array_dataset_indexes_images_and_labels_and_applies_the_transform():
    images = np.arange(4 * 2 * 3, dtype=np.uint8).reshape(4, 2, 3)
    labels = np.array([3, 1, 4, 1], dtype=np.int64)
    dataset = ArrayDataset(images, labels, transform=lambda image: image * 2)
    assert len(dataset) == 4
    image, label = dataset[np.int64(2)]
    np.testing.assert_array_equal(image, images[2] * 2)
    assert label == 4 and isinstance(label, np.integer)
    assert dataset[-1][1] == 1
    assert dataset.images is images and dataset.labels is labels  # no copy


def test_array_dataset_errors():
    with pytest.raises(ValueError, match=r"\(3,\)"):
        ArrayDataset(np.zeros((3, 2)), np.zeros(2))
    dataset = ArrayDataset(np.zeros((3, 2)), np.zeros(3, dtype=np.int64))
    with pytest.raises(IndexError, match="3 examples"):
        dataset[3]
    with pytest.raises(TypeError, match="integers"):
        dataset[0:2]
    with pytest.raises(TypeError, match="callable"):
        ArrayDataset(np.zeros((3, 2)), np.zeros(3), transform="flip")


def test_mini_set_as_datasets_share_the_read_only_arrays():
    train_set, test_set = fashion_mnist_mini(as_dataset=True)
    x_train, y_train, x_test, _ = fashion_mnist_mini()
    assert len(train_set) == 10000 and len(test_set) == 2000
    assert train_set.images is x_train and test_set.images is x_test
    assert train_set.classes[9] == "Ankle boot"
    image, label = train_set[5]
    assert image.shape == (28, 28) and label == y_train[5] and not image.flags.writeable


def test_array_dataset_and_image_folder_batch_through_the_data_loader(tmp_path):
    write_cifar(tmp_path / "cifar")
    for dataset in (cifar10(root=tmp_path / "cifar", as_dataset=True),  # the fast path: whole-array slices
                    ArrayDataset(*cifar10(root=tmp_path / "cifar"), transform=lambda image: image[:, ::-1])):
        batches = list(DataLoader(dataset, batch_size=4, num_workers=0))
        assert [len(labels) for _, labels in batches] == [4, 4, 2]
        assert batches[0][0].shape == (4, 3, 32, 32)
    write_image_folder(tmp_path / "folder")
    (images, labels), = DataLoader(ImageFolder(tmp_path / "folder"), batch_size=5, num_workers=0)
    assert images.shape == (5, 3, 5, 7) and labels.tolist() == [0, 0, 1, 1, 1]


# ---------------------------------------------------------------------------------------------------------
# Where data sets are looked for: root, then $MINICNN_DATA, then the cache, then Debian (Fashion-MNIST)

@pytest.fixture
def places(tmp_path, monkeypatch):
    """Four places, each holding a Fashion-MNIST test split of a different size, with the search order's
    locations pointed at them."""
    places = {"root": tmp_path / "root", "env": tmp_path / "env" / "fashion-mnist",
              "cache": tmp_path / "home" / ".cache" / "minicnn" / "fashion-mnist", "debian": tmp_path / "debian"}
    for size, directory in enumerate(places.values(), start=1):
        write_mnist(directory, n_train=1, n_test=size)
    monkeypatch.setenv("MINICNN_DATA", str(tmp_path / "env"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setattr(fashion_module, "DEBIAN_DIR", places["debian"])
    return places


def found_size(**kwargs):
    return len(fashion_mnist(train=False, **kwargs)[1])


def test_search_order_is_root_then_minicnn_data_then_cache_then_debian(places, monkeypatch):
    assert found_size(root=places["root"]) == 1
    assert found_size() == 2  # $MINICNN_DATA/fashion-mnist
    for name in MNIST_FILES["test"]:
        (places["env"] / name).unlink()
    assert found_size() == 3  # ~/.cache/minicnn/fashion-mnist
    monkeypatch.delenv("MINICNN_DATA")
    assert found_size() == 3
    for name in MNIST_FILES["test"]:
        (places["cache"] / name).unlink()
    assert found_size() == 4  # Debian's location


def test_an_explicit_root_is_never_replaced_by_other_data(places):
    for name in MNIST_FILES["test"]:
        (places["root"] / name).unlink()
    with pytest.raises(FileNotFoundError) as info:
        fashion_mnist(root=places["root"], train=False)
    assert str(places["root"]) in str(info.value) and str(places["cache"]) not in str(info.value)


def test_a_found_split_is_never_downloaded(places, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("download attempted although the files were found")

    monkeypatch.setattr(download_module, "download", no_network)
    assert found_size(download=True) == 2


def test_debian_location_is_searched_only_for_fashion_mnist(places, monkeypatch):
    monkeypatch.delenv("MINICNN_DATA")
    write_mnist(places["debian"].parent / "mnist-in-debian-style")
    with pytest.raises(FileNotFoundError) as info:
        mnist(train=False)
    assert str(places["debian"]) not in str(info.value)
