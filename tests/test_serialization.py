"""Specification of minicnn.serialization: pickle-free, atomic checkpoints (save / load)."""
import json
import os
import pickle
import random
import zipfile

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minicnn
from minicnn import backend
from minicnn.serialization import load, save


def assert_same(actual, expected, where="obj"):
    """Equal structure, equal leaf types and dtypes, equal values (NaN equal to NaN)."""
    assert type(actual) is type(expected) or (isinstance(expected, dict) and type(actual) is dict), \
        f"{where}: {type(actual).__name__} != {type(expected).__name__}"
    if isinstance(expected, dict):
        assert list(actual) == list(expected), f"{where}: keys {list(actual)} != {list(expected)}"
        for key in expected:
            assert type(next(k for k in actual if k == key)) is type(key)
            assert_same(actual[key], expected[key], f"{where}[{key!r}]")
    elif isinstance(expected, (list, tuple)):
        assert len(actual) == len(expected), where
        for i, (a, e) in enumerate(zip(actual, expected)):
            assert_same(a, e, f"{where}[{i}]")
    elif isinstance(expected, minicnn.Tensor):
        assert actual.requires_grad == expected.requires_grad, where
        assert_same(actual.data, backend.as_numpy(expected.data), f"{where}.data")
    elif isinstance(expected, (np.ndarray, np.generic)):
        assert actual.dtype == expected.dtype and actual.shape == expected.shape, where
        np.testing.assert_array_equal(actual, expected, err_msg=where)
    elif isinstance(expected, float) and expected != expected:
        assert actual != actual, where
    else:
        assert actual == expected, where


def checkpoint():
    rng = np.random.default_rng(0)
    return {
        "model": {
            "conv1.weight": rng.standard_normal((4, 3, 3, 3)).astype(np.float32),
            "conv1.bias": np.zeros(4, dtype=np.float32),
            "fc.weight": rng.standard_normal((2, 5)),                       # float64
            "bn.num_batches_tracked": np.array(7, dtype=np.int64),          # a 0-d array
            "mask": np.array([True, False]),
            "empty": np.zeros((0, 3), dtype=np.float16),
        },
        "optimizer": {
            "state": {0: {"momentum_buffer": rng.standard_normal(3).astype(np.float32)}, 2: {"step": 10}},
            "param_groups": [{"lr": 0.1, "momentum": 0.9, "nesterov": True, "params": [0, 1]},
                             {"lr": 0.1, "weight_decay": 0, "betas": (0.9, 0.999), "params": [2]}],
        },
        "tensors": [minicnn.Tensor(np.arange(3.0), requires_grad=True), minicnn.Tensor(np.arange(4, dtype=np.int32))],
        "epoch": 12, "best_top1": 0.9125, "big": 2**80, "negative": -3, "name": "resnet18 — α", "note": None,
        "flags": (True, False), "inf": float("inf"), "nan": float("nan"), "empty_dict": {}, "empty_list": [],
        "numpy_scalars": [np.float32(0.5), np.float64(0.25), np.int64(-2), np.bool_(True)],
        0: "an int key", "0": "a str key",
    }


# ---------------------------------------------------------------------------------------------------------
# Round trips

def test_nested_checkpoint_round_trips_with_types_dtypes_and_key_order(tmp_path):
    obj = checkpoint()
    save(obj, tmp_path / "ckpt.npz")
    assert_same(load(tmp_path / "ckpt.npz"), obj)


def test_loaded_arrays_are_writable_numpy_arrays_and_tensors_hold_numpy(tmp_path):
    save(checkpoint(), tmp_path / "ckpt.npz")
    back = load(str(tmp_path / "ckpt.npz"), map_location="cpu")
    weight = back["model"]["conv1.weight"]
    assert type(weight) is np.ndarray and weight.flags.writeable
    assert isinstance(back["tensors"][0], minicnn.Tensor) and type(back["tensors"][0].data) is np.ndarray


def test_file_is_written_exactly_at_the_path_without_adding_a_suffix(tmp_path):
    save({"x": np.ones(2)}, tmp_path / "model.ckpt")
    assert sorted(os.listdir(tmp_path)) == ["model.ckpt"]


def test_file_is_an_npz_with_a_json_header_and_arrays_named_by_key_path(tmp_path):
    save(checkpoint(), tmp_path / "ckpt.npz")
    with zipfile.ZipFile(tmp_path / "ckpt.npz") as archive:
        names = archive.namelist()
        header = json.loads(archive.read("minicnn.json"))
    assert header["format"] == "minicnn.checkpoint" and header["version"] == 1
    assert "model/conv1.weight.npy" in names and "optimizer/state/0/momentum_buffer.npy" in names
    with np.load(tmp_path / "ckpt.npz", allow_pickle=False) as plain:        # readable without minicnn
        np.testing.assert_array_equal(plain["model/conv1.weight"], checkpoint()["model"]["conv1.weight"])


def test_keys_containing_slashes_do_not_collide_with_nested_keys(tmp_path):
    obj = {"a/b": np.array([1]), "a": {"b": np.array([2])}, "minicnn.json": np.array([3])}
    save(obj, tmp_path / "c.npz")
    assert_same(load(tmp_path / "c.npz"), obj)


def test_random_number_generator_states_round_trip_and_resume_the_same_stream(tmp_path):
    random.seed(5)
    np_random = np.random.RandomState(5)
    generator = np.random.default_rng(5)
    save({"python": random.getstate(), "numpy_legacy": np_random.get_state(),
          "numpy": generator.bit_generator.state}, tmp_path / "rng.npz")
    expected = (random.random(), np_random.rand(), generator.random())
    back = load(tmp_path / "rng.npz")
    random.setstate(back["python"])
    np_random.set_state(back["numpy_legacy"])
    generator.bit_generator.state = back["numpy"]
    assert (random.random(), np_random.rand(), generator.random()) == expected


def test_overwriting_replaces_the_previous_checkpoint(tmp_path):
    save({"epoch": 1}, tmp_path / "c.npz")
    save({"epoch": 2}, tmp_path / "c.npz")
    assert load(tmp_path / "c.npz") == {"epoch": 2}
    assert os.listdir(tmp_path) == ["c.npz"]


def test_save_and_load_are_reachable_as_minicnn_save_and_minicnn_load(tmp_path):
    minicnn.save({"w": np.ones(3)}, tmp_path / "c.npz")
    np.testing.assert_array_equal(minicnn.load(tmp_path / "c.npz")["w"], np.ones(3))


_scalars = (st.none() | st.booleans() | st.integers() | st.text()
            | st.floats(allow_nan=True, allow_infinity=True))
_arrays = st.builds(lambda values, dtype: np.array(values, dtype=dtype),
                    st.lists(st.integers(0, 100), max_size=5),
                    st.sampled_from([np.float32, np.float64, np.int32, np.int64, np.uint8]))
_trees = st.recursive(
    _scalars | _arrays,
    lambda children: (st.lists(children, max_size=3) | st.lists(children, max_size=3).map(tuple)
                      | st.dictionaries(st.text(max_size=5) | st.integers(), children, max_size=3)),
    max_leaves=12)


@settings(max_examples=60, deadline=None)
@given(tree=_trees)
def test_any_supported_tree_round_trips(tmp_path_factory, tree):
    path = tmp_path_factory.mktemp("tree") / "tree.npz"
    save(tree, path)
    assert_same(load(path), tree)


def test_keys_with_a_nul_character_round_trips(tmp_path):
    # Found by the test above: zip readers end an entry's name at a NUL, so the array of key "\x00"
    # was written as "\x00.npy" and read back as ".npy". Also: a key spelling the escape itself.
    tree = {"\x00": np.arange(3.0), "a\x00b": np.ones(2, np.float32), "\\x00": np.zeros(1), "": np.arange(2)}
    save(tree, tmp_path / "t.npz")
    assert_same(load(tmp_path / "t.npz"), tree)


# ---------------------------------------------------------------------------------------------------------
# Other files np.load understands

def test_a_plain_npz_of_arrays_loads_as_a_flat_dict(tmp_path):
    a, b = np.arange(6, dtype=np.int16).reshape(2, 3), np.linspace(0, 1, 4)
    np.savez(tmp_path / "plain.npz", a=a, b=b)
    np.savez_compressed(tmp_path / "compressed.npz", a=a, b=b)
    for name in ("plain.npz", "compressed.npz"):
        assert_same(load(tmp_path / name), {"a": a, "b": b})


def test_a_npy_file_loads_as_its_array(tmp_path):
    np.save(tmp_path / "a.npy", np.arange(5.0))
    assert_same(load(tmp_path / "a.npy"), np.arange(5.0))


# ---------------------------------------------------------------------------------------------------------
# Atomic writes

def _old_checkpoint(tmp_path):
    path = tmp_path / "ckpt.npz"
    save({"epoch": 1, "w": np.arange(4.0)}, path)
    return path, path.read_bytes()


def test_a_crash_half_way_through_writing_leaves_the_old_checkpoint_and_no_temporary_file(tmp_path, monkeypatch):
    path, old_bytes = _old_checkpoint(tmp_path)
    real_write_array = np.lib.format.write_array
    written = []

    def write_one_array_then_crash(file, array, *args, **kwargs):
        if written:
            raise OSError("No space left on device")
        written.append(array)
        real_write_array(file, array, *args, **kwargs)

    monkeypatch.setattr(np.lib.format, "write_array", write_one_array_then_crash)
    with pytest.raises(OSError, match="No space left"):
        save({"epoch": 2, "w": np.zeros(1000), "v": np.zeros(1000)}, path)
    assert len(written) == 1                           # it did crash half-way, after writing bytes
    assert path.read_bytes() == old_bytes
    assert os.listdir(tmp_path) == ["ckpt.npz"]
    assert load(path)["epoch"] == 1


def test_an_interrupt_before_the_rename_leaves_the_old_checkpoint_and_no_temporary_file(tmp_path, monkeypatch):
    path, old_bytes = _old_checkpoint(tmp_path)

    def interrupted(source, destination):
        assert os.path.getsize(source) > 0            # the new file was complete when the crash came
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save({"epoch": 2}, path)
    assert path.read_bytes() == old_bytes
    assert os.listdir(tmp_path) == ["ckpt.npz"]


def test_the_temporary_file_is_fsynced_in_the_same_directory_before_the_rename(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", os.path.realpath(f"/proc/self/fd/{fd}") if os.path.exists("/proc/self/fd") else fd))
        real_fsync(fd)

    def replace(source, destination):
        events.append(("replace", os.fspath(source), os.fspath(destination)))
        real_replace(source, destination)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    save({"w": np.ones(2)}, tmp_path / "c.npz")
    replaces = [e for e in events if e[0] == "replace"]
    assert len(replaces) == 1
    _, temporary, destination = replaces[0]
    assert os.path.dirname(temporary) == str(tmp_path) and destination == str(tmp_path / "c.npz")
    fsync_before = events[:events.index(replaces[0])]
    assert fsync_before, "the temporary file must be fsynced before it is renamed"
    if os.path.exists("/proc/self/fd"):
        assert ("fsync", os.path.realpath(temporary)) in fsync_before


def test_an_unsupported_value_is_reported_before_anything_is_written(tmp_path):
    path, old_bytes = _old_checkpoint(tmp_path)
    with pytest.raises(TypeError):
        save({"epoch": 2, "bad": {1, 2}}, path)
    assert path.read_bytes() == old_bytes and os.listdir(tmp_path) == ["ckpt.npz"]


# ---------------------------------------------------------------------------------------------------------
# No pickle: loading a file must never run code from it

MARKER_NAME = "code_ran.txt"


def _write_marker(path):
    with open(path, "w") as file:
        file.write("unpickling ran code from the file")


class _Payload:
    """An object whose unpickling calls _write_marker(path): a stand-in for a malicious checkpoint."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return _write_marker, (self.marker,)


def _object_array(marker):
    array = np.empty(1, dtype=object)
    array[0] = _Payload(str(marker))
    return array


def test_an_npz_holding_a_pickled_object_array_is_refused_and_runs_no_code(tmp_path):
    marker = tmp_path / MARKER_NAME
    np.savez(tmp_path / "evil.npz", weights=np.ones(3), payload=_object_array(marker))
    assert not marker.exists()
    with pytest.raises(ValueError, match=r"load: refusing .*evil\.npz.*pickle"):
        load(tmp_path / "evil.npz")
    assert not marker.exists()
    # The control: unpickling the same file would have run the payload.
    with np.load(tmp_path / "evil.npz", allow_pickle=True) as unsafe:
        unsafe["payload"]
    assert marker.exists()


def test_a_checkpoint_whose_array_entry_was_swapped_for_a_pickle_is_refused(tmp_path):
    marker = tmp_path / MARKER_NAME
    save({"w": np.ones(3)}, tmp_path / "c.npz")
    with zipfile.ZipFile(tmp_path / "c.npz") as original:
        header = original.read("minicnn.json")
    with zipfile.ZipFile(tmp_path / "c.npz", "w") as archive:
        archive.writestr("minicnn.json", header)
        with archive.open("w.npy", "w") as entry:
            np.lib.format.write_array(entry, _object_array(marker), allow_pickle=True)
    with pytest.raises(ValueError, match="pickle"):
        load(tmp_path / "c.npz")
    assert not marker.exists()


@pytest.mark.parametrize("kind", ["pickle", "npy"])
def test_a_pickle_file_or_an_object_npy_is_refused_and_runs_no_code(tmp_path, kind):
    marker = tmp_path / MARKER_NAME
    path = tmp_path / "evil.bin"
    if kind == "pickle":
        path.write_bytes(pickle.dumps({"w": _Payload(str(marker))}))
    else:
        with open(path, "wb") as file:
            np.save(file, _object_array(marker), allow_pickle=True)
    with pytest.raises(ValueError, match="pickle"):
        load(path)
    assert not marker.exists()


# ---------------------------------------------------------------------------------------------------------
# Bad input

@pytest.mark.parametrize("obj, where, what", [
    ({"model": {"layers": [np.ones(1), {1, 2}]}}, r"obj\['model'\]\['layers'\]\[1\]", "set"),
    ({"a": np.array([None, 1], dtype=object)}, r"obj\['a'\]", "object"),
    ({"a": b"bytes"}, r"obj\['a'\]", "bytes"),
    ({"a": (1, object())}, r"obj\['a'\]\[1\]", "object"),
    ({"a": {1.5: 0}}, r"obj\['a'\]", "float"),
    ({("x", 1): 0}, r"obj", "tuple"),
    ({True: 0}, r"obj", "bool"),
    ({np.int64(0): 0}, r"obj", "int64"),
], ids=["set", "object-array", "bytes", "object", "float-key", "tuple-key", "bool-key", "numpy-int-key"])
def test_unsupported_leaves_and_keys_raise_type_error_naming_the_key_path(tmp_path, obj, where, what):
    with pytest.raises(TypeError, match=rf"save: .*{what}.* at {where}"):
        save(obj, tmp_path / "c.npz")
    assert not (tmp_path / "c.npz").exists()


def test_a_missing_file_raises_file_not_found_naming_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.npz"):
        load(tmp_path / "nowhere.npz")


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all", b"PK\x03\x04 truncated zip",
                                     b"\x93NUMPY garbage"], ids=["empty", "text", "zip-magic", "npy-magic"])
def test_a_corrupt_file_raises_value_error_naming_the_path(tmp_path, content):
    (tmp_path / "bad.npz").write_bytes(content)
    with pytest.raises(ValueError, match=r"load: .*bad\.npz"):
        load(tmp_path / "bad.npz")


def test_every_truncation_of_a_checkpoint_raises_value_error(tmp_path):
    save({"w": np.arange(10.0), "epoch": 3}, tmp_path / "c.npz")
    data = (tmp_path / "c.npz").read_bytes()
    for length in range(len(data)):
        (tmp_path / "cut.npz").write_bytes(data[:length])
        with pytest.raises(ValueError, match="cut.npz"):
            load(tmp_path / "cut.npz")


def test_a_flipped_byte_anywhere_gives_a_value_error_or_the_original_data(tmp_path):
    obj = {"w": np.arange(6.0).reshape(2, 3), "epoch": 3, "name": "x"}
    save(obj, tmp_path / "c.npz")
    data = (tmp_path / "c.npz").read_bytes()
    for i in range(len(data)):
        (tmp_path / "flip.npz").write_bytes(data[:i] + bytes([data[i] ^ 0x10]) + data[i + 1:])
        try:
            back = load(tmp_path / "flip.npz")
        except ValueError as error:
            assert "flip.npz" in str(error)
        else:                          # only bytes no reader checks (timestamps, attributes) may change silently
            assert_same(back, obj)


@pytest.mark.parametrize("header, message", [
    ({"format": "something else", "version": 1, "object": None}, "format marker"),
    ({"format": "minicnn.checkpoint", "version": 99, "object": None}, "version 99"),
    ({"format": "minicnn.checkpoint", "version": 1, "object": {"array": "missing.npy"}}, "missing"),
    ({"format": "minicnn.checkpoint", "version": 1, "object": {"what": 1}}, "unknown node"),
])
def test_a_checkpoint_with_a_bad_header_raises_value_error(tmp_path, header, message):
    with zipfile.ZipFile(tmp_path / "c.npz", "w") as archive:
        archive.writestr("minicnn.json", json.dumps(header))
    with pytest.raises(ValueError, match=message):
        load(tmp_path / "c.npz")


def test_bad_paths_and_map_locations_are_rejected(tmp_path):
    with pytest.raises(TypeError, match="save: expected a file path"):
        save({}, 3)
    save({"w": np.ones(1)}, tmp_path / "c.npz")
    with pytest.raises(ValueError, match="load: map_location must be None, 'cpu' or 'cuda', got 'tpu'"):
        load(tmp_path / "c.npz", map_location="tpu")


# ---------------------------------------------------------------------------------------------------------
# GPU

@pytest.mark.gpu
def test_cupy_arrays_are_saved_as_numpy_and_map_location_cuda_puts_them_back_on_the_gpu(tmp_path):
    if not backend.gpu_available():
        pytest.skip("CuPy with a CUDA GPU is not available")
    cp = backend.cupy()
    obj = {"w": cp.arange(6, dtype=cp.float32), "t": minicnn.Tensor(cp.ones(2), requires_grad=True), "n": 1}
    save(obj, tmp_path / "c.npz")
    on_cpu = load(tmp_path / "c.npz")
    assert type(on_cpu["w"]) is np.ndarray and type(on_cpu["t"].data) is np.ndarray
    assert_same(on_cpu, obj)
    on_gpu = load(tmp_path / "c.npz", map_location="cuda")
    assert backend.device_of(on_gpu["w"]) == "cuda" and on_gpu["t"].device == "cuda"
    np.testing.assert_array_equal(on_gpu["w"].get(), np.arange(6, dtype=np.float32))
