"""Checkpoints: ``save(obj, path)`` and ``load(path)``, like ``torch.save`` / ``torch.load`` for state dicts.

What can be saved: a tree of dicts, lists and tuples whose leaves are

    arrays         NumPy or CuPy (any dtype but ``object``); saved as NumPy, loaded as NumPy
    Tensors        saved as their array; loaded as a ``minicnn.Tensor`` with the same ``requires_grad``
    scalars        Python ``bool``, ``int``, ``float``, ``str``, ``None``, and NumPy scalars (``np.float32(1)``)

Dict keys are strings or integers (an optimizer's state dict numbers its parameters 0, 1, 2 …).
That covers model, optimizer and scheduler state dicts, RNG states and a training checkpoint that
nests them all.

The file is an ordinary ``.npz`` archive (a zip of ``.npy`` files) that ``np.load`` can open:

    minicnn.json              the structure and the scalars, plus a format marker and version
    model/conv1.weight.npy    one ``.npy`` entry per array leaf, named by its key path

There is no pickle anywhere. Unpickling a file runs whatever code its author put in it, so a
checkpoint downloaded from somewhere must never be unpickled: ``load`` reads arrays with
``np.load(allow_pickle=False)`` and refuses a file that holds pickled (object) arrays.

``save`` is atomic: it writes a temporary file next to ``path``, flushes and fsyncs it, then renames
it over ``path`` with ``os.replace``. A crash or a full disk half-way leaves the previous checkpoint
at ``path`` intact, never a truncated one.
"""
from __future__ import annotations

import json
import os
import secrets
import zipfile

import numpy as np

from . import backend
from .autograd import Tensor

__all__ = ["save", "load"]

FORMAT = "minicnn.checkpoint"
VERSION = 1
HEADER_ENTRY = "minicnn.json"


# ---- save ---------------------------------------------------------------------------------------

def save(obj, path):
    """Write ``obj`` (a nested dict of arrays, Tensors and scalars; see the module docstring) to ``path``.

    The file is written exactly at ``path`` (no suffix is added) and replaces any file there atomically.
    Raises TypeError naming the key path of an unsupported leaf or dict key.
    """
    path = _check_path("save", path)
    arrays = {}                                 # zip entry name -> NumPy array
    tree = _encode(obj, "obj", (), arrays)
    header = json.dumps({"format": FORMAT, "version": VERSION, "object": tree}, indent=1)
    _atomic_write(path, lambda f: _write_npz(f, header, arrays))


def _encode(value, where, keys, arrays):
    """Return the JSON form of ``value``; arrays go into ``arrays`` under a name made of ``keys``.

    where  the key path in Python syntax for error messages, e.g. ``obj['state'][0]``
    keys   the same path as a tuple, used to name the array's zip entry
    """
    # NumPy scalars first: np.float64 is a subclass of float, and would come back as a plain float.
    if isinstance(value, np.generic):
        return {"scalar": _add_array(np.asarray(value), where, keys, arrays)}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, dict):
        items = []
        for key, item in value.items():
            if isinstance(key, bool) or not isinstance(key, (str, int)):
                raise TypeError(f"save: dict key {key!r} of type {type(key).__name__} at {where}; "
                                f"expected str or int keys")
            items.append([key, _encode(item, f"{where}[{key!r}]", keys + (key,), arrays)])
        return {"dict": items}
    if isinstance(value, (list, tuple)):
        kind = "list" if isinstance(value, list) else "tuple"
        return {kind: [_encode(item, f"{where}[{i}]", keys + (i,), arrays) for i, item in enumerate(value)]}
    if isinstance(value, Tensor):
        return {"tensor": _add_array(value.data, where, keys, arrays), "requires_grad": value.requires_grad}
    if isinstance(value, np.ndarray) or backend.device_of(value) == "cuda":
        return {"array": _add_array(value, where, keys, arrays)}
    raise TypeError(f"save: unsupported value of type {type(value).__module__}.{type(value).__qualname__} "
                    f"at {where}; expected a dict, list, tuple, array, Tensor, bool, int, float, str or None")


def _add_array(array, where, keys, arrays):
    array = backend.as_numpy(array)
    if array.dtype.hasobject:
        raise TypeError(f"save: array of dtype {array.dtype} at {where}; object arrays need pickle, "
                        f"which minicnn checkpoints never use")
    # The entry name is a label (the header maps the structure to it): a NUL, which zip readers take
    # for the end of the name, is written as the four characters \x00.
    base = "/".join(str(k) for k in keys).replace("\x00", "\\x00") or "obj"
    name, n = f"{base}.npy", 1
    # np.load names an entry without its ".npy"; keep those names unique (keys may contain "/").
    while name in arrays or name == f"{HEADER_ENTRY}.npy":
        name, n = f"{base}~{n}.npy", n + 1
    arrays[name] = array
    return name


def _write_npz(file, header, arrays):
    """Write the zip: the JSON header first, then one ``.npy`` entry per array (uncompressed, like np.savez)."""
    with zipfile.ZipFile(file, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
        archive.writestr(HEADER_ENTRY, header)
        for name, array in arrays.items():
            with archive.open(name, "w", force_zip64=True) as entry:
                np.lib.format.write_array(entry, array, allow_pickle=False)


def _atomic_write(path, write):
    """Call ``write(file)`` on a temporary file beside ``path``, make it durable, then rename it to ``path``."""
    directory = os.path.dirname(os.path.abspath(path))
    temporary = os.path.join(directory, f".{os.path.basename(path)}.{secrets.token_hex(6)}.tmp")
    # os.open with mode 0o666 lets the umask decide permissions, as a plain open() would.
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())     # the bytes are on disk before the name points at them
        os.replace(temporary, path)
    except BaseException:               # also KeyboardInterrupt: never leave the temporary file behind
        if os.path.exists(temporary):
            os.remove(temporary)
        raise
    _fsync_directory(directory)


def _fsync_directory(directory):
    # Makes the rename itself durable on POSIX; Windows cannot open a directory, and needs no such step.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# ---- load ---------------------------------------------------------------------------------------

def load(path, map_location=None):
    """Read a checkpoint written by ``save``; return the saved object.

    map_location  None or "cpu": arrays come back as NumPy; "cuda": as CuPy arrays on the GPU
                  (Tensors are moved the same way)

    A plain ``.npz`` of arrays (written by ``np.savez``) loads as a flat dict ``{name: array}``, a
    ``.npy`` file as its array. Pickled content is refused, and none of its code runs.
    Raises FileNotFoundError if there is no file at ``path`` and ValueError if it is not a readable checkpoint.
    """
    path = _check_path("load", path)
    device = _check_map_location(map_location)
    if not os.path.exists(path):
        raise FileNotFoundError(f"load: no such file: {path!r}")
    try:
        with _open_npz(path) as archive:
            if isinstance(archive, np.ndarray):                     # a .npy file
                return backend.to_device(archive, device)
            entries = {name: archive[name] for name in archive.files}
    except _Refused as error:
        raise ValueError(f"load: refusing {path!r}: {error}. Unpickling runs arbitrary code, so minicnn never "
                         f"does it; re-save the data as plain arrays") from None
    except (PermissionError, IsADirectoryError, MemoryError):
        raise
    except Exception as error:      # zipfile, zlib, struct and np.lib.format each have their own errors
        raise ValueError(f"load: {path!r} is not a readable minicnn checkpoint or .npz file "
                         f"(corrupt or truncated?): {error}") from error
    header = entries.pop(HEADER_ENTRY, None)
    if header is None:                                              # a plain .npz from np.savez
        for name, value in entries.items():
            if not isinstance(value, np.ndarray):
                raise ValueError(f"load: {path!r} has an entry {name!r} that is not a .npy array")
        return {name: backend.to_device(value, device) for name, value in entries.items()}
    try:
        header = json.loads(header.decode("utf-8"))
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            raise ValueError(f"its {HEADER_ENTRY} has no {FORMAT!r} format marker")
        if not isinstance(header.get("version"), int) or header["version"] > VERSION:
            raise ValueError(f"it has format version {header.get('version')!r}, this minicnn reads versions "
                             f"up to {VERSION}; upgrade minicnn")
        return _decode(header["object"], entries, device)
    except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError) as error:
        raise ValueError(f"load: {path!r} is not a valid minicnn checkpoint: {error}") from error


class _Refused(Exception):
    """The file holds pickled data, which np.load(allow_pickle=False) would not read."""


class _open_npz:
    """``np.load(path, allow_pickle=False)`` as a context manager that tells pickles apart from corruption."""

    def __init__(self, path):
        self.path = path

    def __enter__(self):
        try:
            self.loaded = np.load(self.path, allow_pickle=False)
        except ValueError as error:
            if "pickle" in str(error):      # a pickle file, or a .npy holding an object array
                raise _Refused("it contains pickled Python objects") from None
            raise
        if isinstance(self.loaded, np.ndarray):
            return self.loaded
        return _RefusingArchive(self.loaded)

    def __exit__(self, *exc):
        if not isinstance(self.loaded, np.ndarray):
            self.loaded.close()
        return False


class _RefusingArchive:
    """An NpzFile whose entries raise ``_Refused`` (not a bare ValueError) when they hold object arrays."""

    def __init__(self, npz):
        self.npz, self.files = npz, npz.files

    def __getitem__(self, name):
        try:
            return self.npz[name]
        except ValueError as error:
            if "allow_pickle" in str(error):
                raise _Refused(f"its entry {name!r} is an object array, stored with pickle") from None
            raise


def _decode(node, entries, device):
    if node is None or isinstance(node, (bool, int, float, str)):
        return node
    if isinstance(node, dict) and len(node) in (1, 2):
        kind = next(iter(node))
        if kind == "dict":
            return {key: _decode(item, entries, device) for key, item in node["dict"]}
        if kind == "list":
            return [_decode(item, entries, device) for item in node["list"]]
        if kind == "tuple":
            return tuple(_decode(item, entries, device) for item in node["tuple"])
        if kind == "array":
            return backend.to_device(_entry(entries, node["array"]), device)
        if kind == "tensor":
            return Tensor(backend.to_device(_entry(entries, node["tensor"]), device),
                          requires_grad=node["requires_grad"])
        if kind == "scalar":
            return _entry(entries, node["scalar"])[()]
    raise ValueError(f"unknown node in the structure: {json.dumps(node)[:80]}")


def _entry(entries, name):
    array = entries.get(name[:-len(".npy")])
    if not isinstance(array, np.ndarray):
        raise ValueError(f"the structure refers to a missing array entry {name!r}")
    return array


# ---- argument checks ----------------------------------------------------------------------------

def _check_path(function, path):
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{function}: expected a file path (str or os.PathLike), got {type(path).__name__}")
    return os.fspath(path)


def _check_map_location(map_location):
    if map_location is None:
        return "cpu"
    if isinstance(map_location, str) and map_location.lower().split(":")[0] in ("cpu", "cuda"):
        return map_location.lower().split(":")[0]
    raise ValueError(f"load: map_location must be None, 'cpu' or 'cuda', got {map_location!r}")
