"""The array backend: NumPy on the CPU, CuPy on an NVIDIA GPU.

Every operation in minicnn asks its inputs which array module they live in
(``xp = get_array_module(x)``) and then runs the same code on either one. This
file is the only place that imports CuPy, and it does so lazily: minicnn imports
and runs without CuPy or a GPU.

    devices   "cpu" (NumPy) and "cuda" (CuPy)
    dtype     float32 by default; ``set_default_dtype(np.float64)`` for gradient checks
"""
from __future__ import annotations

import contextlib
import importlib

import numpy as np

__all__ = [
    "BackendMismatchError", "cupy", "gpu_available", "get_array_module", "device_of", "to_device",
    "as_numpy", "check_same_backend", "get_default_dtype", "set_default_dtype", "default_dtype",
]

_cupy = None          # the cupy module once imported, False if it cannot be
_default_dtype = np.dtype(np.float32)


class BackendMismatchError(TypeError):
    """Raised when NumPy (cpu) and CuPy (cuda) arrays meet in one operation."""


def cupy():
    """Return the ``cupy`` module, or None when CuPy is not installed or cannot load."""
    global _cupy
    if _cupy is None:
        try:
            _cupy = importlib.import_module("cupy")
        except Exception:  # ImportError, or a CUDA library that fails to load
            _cupy = False
    return _cupy or None


def gpu_available():
    """True when CuPy is installed and sees at least one CUDA device."""
    cp = cupy()
    if cp is None:
        return False
    try:
        return cp.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


def _is_cupy_array(a):
    # Test the type's module name so that no CuPy import is needed to answer for NumPy arrays.
    return type(a).__module__.startswith("cupy")


def _raw(a):
    # A minicnn Tensor is looked through to its array. (Not `getattr(a, "data")`: a CuPy
    # array's `.data` is its memory pointer.) backend imports nothing from minicnn, so duck-type.
    return a.data if getattr(type(a), "_is_minicnn_tensor", False) else a


def get_array_module(*arrays):
    """Return ``cupy`` if any argument is a CuPy array, else ``numpy`` (like ``cupy.get_array_module``).

    Tensors are looked through to their ``.data``; scalars and None are ignored.
    """
    for a in arrays:
        if _is_cupy_array(_raw(a)):
            return cupy()
    return np


def device_of(a):
    """``"cuda"`` for a CuPy array (or a Tensor holding one), ``"cpu"`` otherwise."""
    return "cuda" if _is_cupy_array(_raw(a)) else "cpu"


def check_same_backend(op_name, *arrays):
    """Raise BackendMismatchError naming ``op_name`` if NumPy and CuPy arrays are mixed."""
    arrays = [_raw(a) for a in arrays if a is not None and hasattr(a, "shape")]
    if len({device_of(a) for a in arrays}) > 1:
        where = ", ".join(f"{device_of(a)} {type(a).__name__}{tuple(a.shape)}" for a in arrays)
        raise BackendMismatchError(
            f"{op_name}: inputs live on different devices (cpu/NumPy and cuda/CuPy): {where}. "
            f"Move them to one device first, e.g. tensor.to('cuda') or module.to('cuda').")


def _normalize_device(device):
    device = str(device).lower()
    if device.startswith("cuda") or device == "gpu":
        return "cuda"
    if device == "cpu":
        return "cpu"
    raise ValueError(f"to_device: unknown device {device!r}; expected 'cpu' or 'cuda'")


def to_device(array, device):
    """Return ``array`` on ``device`` ("cpu" or "cuda"); no copy if it is already there."""
    device = _normalize_device(device)
    if device == "cpu":
        return as_numpy(array)
    cp = cupy()
    if cp is None:
        raise RuntimeError("to_device: device 'cuda' needs CuPy. Install it with "
                           "`pip install minicnn[gpu]` (or the cupy-cudaXXx wheel matching your CUDA).")
    if not gpu_available():
        raise RuntimeError("to_device: CuPy is installed but no CUDA device is visible.")
    return cp.asarray(array)


def as_numpy(array):
    """Return a NumPy array for a NumPy or CuPy array (copying from the GPU if needed)."""
    if _is_cupy_array(array):
        return array.get()
    return np.asarray(array)


def get_default_dtype():
    """The floating dtype new tensors and parameters get (float32 unless changed)."""
    return _default_dtype


def set_default_dtype(dtype):
    """Set the default floating dtype (float16, float32 or float64)."""
    global _default_dtype
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise TypeError(f"set_default_dtype: expected a floating dtype, got {dtype}")
    _default_dtype = dtype


@contextlib.contextmanager
def default_dtype(dtype):
    """Context manager: ``with default_dtype(np.float64): ...`` (used by gradient checks)."""
    previous = get_default_dtype()
    set_default_dtype(dtype)
    try:
        yield
    finally:
        set_default_dtype(previous)
