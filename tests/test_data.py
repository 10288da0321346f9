"""Specification of minicnn.data: IDX reading/writing, the bundled mini Fashion-MNIST, the full-data loader."""
import ast
import gzip
import importlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from minicnn.data import (CLASSES, FASHION_MNIST_CLASSES, fashion_mnist, fashion_mnist_mini, read_idx,
                          write_idx)
from minicnn.data.fashion_mnist import DEBIAN_DIR, FASHION_MNIST_FILES

REPO = Path(__file__).resolve().parents[1]
DEBIAN_FILES_PRESENT = all((DEBIAN_DIR / name).is_file() for pair in FASHION_MNIST_FILES.values() for name in pair)
needs_debian_files = pytest.mark.skipif(not DEBIAN_FILES_PRESENT,
                                        reason=f"full Fashion-MNIST not installed in {DEBIAN_DIR} "
                                               f"(apt-get install dataset-fashion-mnist)")


# ---------------------------------------------------------------------------------------------------------
# IDX

@pytest.mark.parametrize("suffix", [".gz", ""])
@pytest.mark.parametrize("array", [
    np.random.default_rng(0).integers(0, 256, size=(5, 4, 3), dtype=np.uint8),
    np.array([-2**31, -1, 0, 7, 2**31 - 1], dtype=np.int32),
    np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3),
    np.arange(-4, 4, dtype=np.int8),
    np.arange(6, dtype=np.int16).reshape(1, 6),
    np.array([np.pi, -np.e], dtype=np.float64),
], ids=["uint8-3d", "int32-1d", "float32-2d", "int8-1d", "int16-2d", "float64-1d"])
def test_idx_round_trip_keeps_values_dtype_and_shape(tmp_path, array, suffix):
    path = tmp_path / f"array.idx{suffix}"
    write_idx(path, array)
    back = read_idx(path)
    assert back.dtype == array.dtype
    assert back.shape == array.shape
    np.testing.assert_array_equal(back, array)
    assert back.flags.writeable


def test_idx_header_is_the_documented_big_endian_layout(tmp_path):
    path = tmp_path / "labels-idx1-ubyte"
    write_idx(path, np.array([1, 2, 3], dtype=np.int32))
    raw = path.read_bytes()
    assert raw[:4] == bytes([0, 0, 0x0C, 1])
    assert raw[4:8] == (3).to_bytes(4, "big")
    assert raw[8:] == b"\x00\x00\x00\x01\x00\x00\x00\x02\x00\x00\x00\x03"


def test_idx_gz_path_is_gzip_and_raw_path_is_not(tmp_path):
    array = np.zeros((2, 2), dtype=np.uint8)
    write_idx(tmp_path / "a.gz", array)
    write_idx(tmp_path / "a", array)
    assert (tmp_path / "a.gz").read_bytes()[:2] == b"\x1f\x8b"
    assert (tmp_path / "a").read_bytes()[:4] == bytes([0, 0, 0x08, 2])


def test_read_idx_detects_gzip_by_magic_bytes_not_by_name(tmp_path):
    array = np.arange(12, dtype=np.uint8).reshape(3, 4)
    write_idx(tmp_path / "a.gz", array)
    renamed = tmp_path / "no-extension"
    renamed.write_bytes((tmp_path / "a.gz").read_bytes())
    np.testing.assert_array_equal(read_idx(renamed), array)


def test_write_idx_is_deterministic(tmp_path):
    array = np.arange(100, dtype=np.uint8)
    write_idx(tmp_path / "first.gz", array)
    write_idx(tmp_path / "second.gz", array)
    assert (tmp_path / "first.gz").read_bytes() == (tmp_path / "second.gz").read_bytes()


def test_write_idx_refuses_dtypes_idx_cannot_hold(tmp_path):
    with pytest.raises(ValueError, match="int64"):
        write_idx(tmp_path / "a.idx", np.arange(3, dtype=np.int64))


def test_write_idx_refuses_zero_dimensional_arrays(tmp_path):
    with pytest.raises(ValueError, match="dimensions"):
        write_idx(tmp_path / "a.idx", np.uint8(3))


def _assert_value_error_naming(path, *fragments):
    with pytest.raises(ValueError) as info:
        read_idx(path)
    message = str(info.value)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message
    return message


def test_bad_magic_raises_value_error_naming_the_file(tmp_path):
    path = tmp_path / "bad-magic-idx3-ubyte"
    path.write_bytes(bytes([0x12, 0x34, 0x08, 1, 0, 0, 0, 1, 7]))
    _assert_value_error_naming(path, "0x00 0x00", "0x12 0x34")


def test_unknown_type_code_raises_value_error_naming_the_file(tmp_path):
    path = tmp_path / "bad-type"
    path.write_bytes(bytes([0, 0, 0x07, 1, 0, 0, 0, 1, 7]))
    _assert_value_error_naming(path, "0x07")


def test_zero_dimensions_raises_value_error(tmp_path):
    path = tmp_path / "no-dims"
    path.write_bytes(bytes([0, 0, 0x08, 0]))
    _assert_value_error_naming(path, "dimension")


@pytest.mark.parametrize("suffix", [".gz", ""])
def test_truncated_payload_raises_value_error_with_expected_and_found_sizes(tmp_path, suffix):
    full = tmp_path / "full"
    write_idx(full, np.zeros((4, 28, 28), dtype=np.uint8))
    path = tmp_path / f"truncated{suffix}"
    data = full.read_bytes()[:-100]
    path.write_bytes(gzip.compress(data) if suffix else data)
    _assert_value_error_naming(path, str(4 * 28 * 28), str(4 * 28 * 28 - 100))


def test_trailing_bytes_raise_value_error(tmp_path):
    path = tmp_path / "too-long"
    write_idx(path, np.zeros(5, dtype=np.uint8))
    path.write_bytes(path.read_bytes() + b"\x00")
    _assert_value_error_naming(path, "5 bytes", "6 bytes")


def test_truncated_header_raises_value_error(tmp_path):
    path = tmp_path / "short-header"
    path.write_bytes(bytes([0, 0, 0x08, 3, 0, 0, 0, 1]))
    _assert_value_error_naming(path, "16 bytes")


def test_truncated_gzip_stream_raises_value_error(tmp_path):
    path = tmp_path / "cut.gz"
    write_idx(path, np.random.default_rng(1).integers(0, 256, size=(10, 28, 28), dtype=np.uint8))
    path.write_bytes(path.read_bytes()[:200])
    _assert_value_error_naming(path, "gzip")


# ---------------------------------------------------------------------------------------------------------
# The bundled mini set

def test_classes_are_the_ten_fashion_mnist_names_in_label_order():
    assert CLASSES == ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                       "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
    assert FASHION_MNIST_CLASSES is CLASSES


def test_mini_set_shapes_and_dtypes():
    x_train, y_train, x_test, y_test = fashion_mnist_mini()
    assert x_train.shape == (10000, 28, 28) and x_train.dtype == np.uint8
    assert x_test.shape == (2000, 28, 28) and x_test.dtype == np.uint8
    assert y_train.shape == (10000,) and y_train.dtype == np.int64
    assert y_test.shape == (2000,) and y_test.dtype == np.int64


def test_mini_set_has_1000_per_class_train_and_200_per_class_test():
    _, y_train, _, y_test = fashion_mnist_mini()
    assert y_train.min() >= 0 and y_train.max() <= 9
    assert y_test.min() >= 0 and y_test.max() <= 9
    np.testing.assert_array_equal(np.bincount(y_train, minlength=10), [1000] * 10)
    np.testing.assert_array_equal(np.bincount(y_test, minlength=10), [200] * 10)


def test_mini_set_pixels_look_like_fashion_mnist():
    x_train, _, x_test, _ = fashion_mnist_mini()
    for images in (x_train, x_test):
        assert 50 < images.mean() < 100  # Fashion-MNIST's mean pixel is about 73
        assert images.min() == 0 and images.max() == 255
        assert len(np.unique(images[:100].reshape(100, -1), axis=0)) == 100  # no duplicated images


def test_mini_set_keeps_the_original_order_classes_interleaved():
    _, y_train, _, _ = fashion_mnist_mini()
    assert len(set(y_train[:50].tolist())) > 5


def _mini_npz():
    from minicnn.data.fashion_mnist import MINI_PATH
    with np.load(MINI_PATH, allow_pickle=False) as npz:
        return {key: npz[key] for key in npz.files}


def test_mini_file_holds_the_documented_arrays_and_no_pickle():
    npz = _mini_npz()
    assert set(npz) == {"x_train", "y_train", "x_test", "y_test", "train_index", "test_index"}
    assert npz["y_train"].dtype == np.uint8 and npz["y_test"].dtype == np.uint8
    assert npz["train_index"].dtype == np.int32 and npz["test_index"].dtype == np.int32
    assert all(array.dtype != object for array in npz.values())


def test_mini_provenance_indices_are_unique_sorted_and_in_range():
    npz = _mini_npz()
    for key, size, total in (("train_index", 10000, 60000), ("test_index", 2000, 10000)):
        index = npz[key]
        assert index.shape == (size,)
        assert np.all(np.diff(index) > 0), f"{key} must be strictly increasing (sorted and unique)"
        assert index[0] >= 0 and index[-1] < total


@needs_debian_files
def test_mini_images_are_the_full_files_at_the_saved_indices():
    npz = _mini_npz()
    x_train, y_train, x_test, y_test = fashion_mnist_mini()
    full_x_train, full_y_train = fashion_mnist(root=DEBIAN_DIR, train=True)
    full_x_test, full_y_test = fashion_mnist(root=DEBIAN_DIR, train=False)
    np.testing.assert_array_equal(x_train, full_x_train[npz["train_index"]])
    np.testing.assert_array_equal(y_train, full_y_train[npz["train_index"]])
    np.testing.assert_array_equal(x_test, full_x_test[npz["test_index"]])
    np.testing.assert_array_equal(y_test, full_y_test[npz["test_index"]])


@needs_debian_files
def test_make_script_rebuilds_the_bundled_arrays(tmp_path):
    # Arrays, not bytes: another zlib may compress the same arrays to different bytes.
    script = REPO / "scripts" / "make_mini_fashion_mnist.py"
    out = tmp_path / "mini.npz"
    result = subprocess.run([sys.executable, str(script), "--source", str(DEBIAN_DIR), "--out", str(out)],
                            capture_output=True, text=True, check=True)
    assert "SHA-256" in result.stdout
    bundled = _mini_npz()
    with np.load(out, allow_pickle=False) as rebuilt:
        assert set(rebuilt.files) == set(bundled)
        for key, array in bundled.items():
            assert rebuilt[key].dtype == array.dtype
            np.testing.assert_array_equal(rebuilt[key], array)


def test_mini_arrays_are_cached_and_read_only():
    first = fashion_mnist_mini()
    second = fashion_mnist_mini()
    for a, b in zip(first, second):
        assert a is b
        assert not a.flags.writeable
    x_train, y_train, _, _ = first
    with pytest.raises(ValueError):
        x_train[0, 0, 0] = 1
    with pytest.raises(ValueError):
        y_train[0] = 3
    with pytest.raises(ValueError):
        x_train += 1
    copy = x_train.copy()
    copy[0, 0, 0] = 1  # a copy is the caller's to modify


# ---------------------------------------------------------------------------------------------------------
# The full data set

def _write_small_fashion_mnist(directory, n_train=12, n_test=5, compress=True):
    rng = np.random.default_rng(2)
    data = {}
    for split, n in (("train", n_train), ("test", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        images_name, labels_name = FASHION_MNIST_FILES[split]
        if not compress:
            images_name, labels_name = images_name[:-3], labels_name[:-3]
        write_idx(directory / images_name, images)
        write_idx(directory / labels_name, labels)
        data[split] = (images, labels)
    return data


@pytest.mark.parametrize("compress", [True, False], ids=["gz", "raw"])
def test_fashion_mnist_reads_both_splits_from_root(tmp_path, compress):
    written = _write_small_fashion_mnist(tmp_path, compress=compress)
    for train, split in ((True, "train"), (False, "test")):
        images, labels = fashion_mnist(root=tmp_path, train=train)
        assert images.dtype == np.uint8 and labels.dtype == np.int64
        np.testing.assert_array_equal(images, written[split][0])
        np.testing.assert_array_equal(labels, written[split][1])


def test_fashion_mnist_finds_files_through_minicnn_data(tmp_path, monkeypatch):
    (tmp_path / "fashion-mnist").mkdir()
    written = _write_small_fashion_mnist(tmp_path / "fashion-mnist")
    monkeypatch.setenv("MINICNN_DATA", str(tmp_path))
    images, _ = fashion_mnist(train=False)
    np.testing.assert_array_equal(images, written["test"][0])


def test_missing_directory_raises_file_not_found_listing_where_it_looked(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError) as info:
        fashion_mnist(root=missing)
    message = str(info.value)
    assert str(missing) in message
    assert "apt-get install dataset-fashion-mnist" in message
    assert "root=" in message


def test_search_without_root_lists_every_place_it_looked(tmp_path, monkeypatch):
    # importlib, because the attribute minicnn.data.fashion_mnist is the function, not the module.
    module = importlib.import_module("minicnn.data.fashion_mnist")
    monkeypatch.setenv("MINICNN_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setattr(module, "DEBIAN_DIR", tmp_path / "debian")
    with pytest.raises(FileNotFoundError) as info:
        fashion_mnist(train=True)
    message = str(info.value)
    for place in (tmp_path / "data" / "fashion-mnist", tmp_path / "data",
                  tmp_path / "home" / ".cache" / "minicnn" / "fashion-mnist", tmp_path / "debian"):
        assert str(place) in message


def test_directory_with_only_one_split_is_not_enough_for_the_other(tmp_path):
    _write_small_fashion_mnist(tmp_path)
    for name in FASHION_MNIST_FILES["test"]:
        (tmp_path / name).unlink()
    fashion_mnist(root=tmp_path, train=True)
    with pytest.raises(FileNotFoundError, match="t10k-images-idx3-ubyte.gz"):
        fashion_mnist(root=tmp_path, train=False)


def test_images_and_labels_of_different_lengths_are_refused(tmp_path):
    _write_small_fashion_mnist(tmp_path)
    write_idx(tmp_path / FASHION_MNIST_FILES["train"][1], np.zeros(3, dtype=np.uint8))
    with pytest.raises(ValueError, match="labels"):
        fashion_mnist(root=tmp_path, train=True)


def test_data_package_source_imports_neither_autograd_nor_matplotlib():
    for path in sorted((REPO / "minicnn" / "data").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""] + [f"{node.module}.{alias.name}" for alias in node.names]
            else:
                continue
            for name in names:
                assert not name.startswith(("minicnn.autograd", "matplotlib")), f"{path.name} imports {name}"
                assert not name.startswith("pickle"), f"{path.name} imports {name}"


def test_importing_the_data_package_loads_neither_autograd_nor_matplotlib():
    # Whatever `import minicnn` itself loads, importing minicnn.data on top of it must add neither.
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import minicnn; before = set(sys.modules); "
            "import minicnn.data; new = set(sys.modules) - before; "
            "bad = [m for m in new if m == 'minicnn.autograd' or m.split('.')[0] == 'matplotlib']; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code, str(REPO)], check=True)


@needs_debian_files
def test_full_debian_files_have_the_official_sizes_and_balance():
    images, labels = fashion_mnist(root=DEBIAN_DIR, train=False)
    assert images.shape == (10000, 28, 28)
    np.testing.assert_array_equal(np.bincount(labels), [1000] * 10)
