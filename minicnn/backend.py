"""The array backend: NumPy on the CPU, CuPy on an NVIDIA GPU.

Every operation in minicnn asks its inputs which array module they live in
(``xp = get_array_module(x)``) and then runs the same code on either one. This
file is the only place that imports CuPy, and it does so lazily: minicnn imports
and runs without CuPy or a GPU.

    devices   "cpu" (NumPy) and "cuda" (CuPy)
    dtype     float32 by default; ``set_default_dtype(np.float64)`` for gradient checks
    TF32      float32 matrix products in full float32 by default; ``set_float32_matmul_precision("high")``
              lets the GPU's tensor cores round their inputs to TensorFloat-32
"""
from __future__ import annotations

import contextlib
import importlib

import numpy as np

__all__ = [
    "BackendMismatchError", "cupy", "gpu_available", "get_array_module", "device_of", "to_device",
    "as_numpy", "check_same_backend", "get_default_dtype", "set_default_dtype", "default_dtype",
    "get_float32_matmul_precision", "set_float32_matmul_precision",
]

_cupy = None          # the cupy module once imported, False if it cannot be
_default_dtype = np.dtype(np.float32)
_matmul_precision = "highest"


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


def get_float32_matmul_precision():
    """"highest" (the default), "high" or "medium": see ``set_float32_matmul_precision``."""
    return _matmul_precision


def set_float32_matmul_precision(precision):
    """How float32 matrix products may round on the GPU, as ``torch.set_float32_matmul_precision``:

        "highest"  full float32 (cuBLAS computes in float32: no tensor cores for float32 inputs)
        "high"     TensorFloat-32: cuBLAS may round each input to a 10-bit mantissa (float32's has 23)
                   and multiply on the tensor cores, accumulating in float32 (GPUs of compute
                   capability 8.0 or newer: A100, H100; older ones keep float32)
        "medium"   as "high" here: PyTorch would allow bfloat16 products, which CuPy's matmul does
                   not offer for float32 arrays, and PyTorch itself falls back to "high" without them

    Every GEMM goes through ``cupy.matmul``, so in minicnn one switch covers the linear layers AND the
    convolutions (im2col + GEMM); PyTorch has two: ``torch.backends.cuda.matmul.allow_tf32`` (default
    False) and ``torch.backends.cudnn.allow_tf32`` for cuDNN's convolutions (default True). NumPy on
    the CPU always multiplies in float32, whatever this says. float16 products (mixed precision) use
    the tensor cores in any case.

    It sets CuPy's compute type for float32 (``cupy._core._routines_linalg.set_compute_type``, the
    2-D products) and the math mode of the calling thread's cuBLAS handle on the current device (the
    batched products). So call it after choosing the device (``cupy.cuda.Device(rank).use()``), in
    the thread and process that trains; without CuPy or a GPU it only records the setting.
    """
    global _matmul_precision
    if precision not in ("highest", "high", "medium"):
        raise ValueError(f"set_float32_matmul_precision: expected 'highest', 'high' or 'medium', "
                         f"got {precision!r}")
    if gpu_available():
        _apply_matmul_precision(cupy(), tf32=precision != "highest")
    _matmul_precision = precision


def _apply_matmul_precision(cp, tf32):
    """Tell CuPy and cuBLAS whether float32 GEMMs may use TF32 (on compute capability ≥ 8.0 only)."""
    try:
        from cupy._core import _routines_linalg as linalg          # CuPy's (private) GEMM dispatch
        from cupy_backends.cuda.libs import cublas
        linalg.set_compute_type, linalg.COMPUTE_TYPE_TF32, cublas.setMathMode, cublas.CUBLAS_TF32_TENSOR_OP_MATH
    except (ImportError, AttributeError) as error:
        raise RuntimeError(f"set_float32_matmul_precision: this CuPy ({getattr(cp, '__version__', '?')}) lacks the "
                           f"compute-type and cuBLAS math-mode calls it needs ({error})") from None
    tf32 = tf32 and int(cp.cuda.Device().compute_capability) >= 80
    linalg.set_compute_type(np.float32, linalg.COMPUTE_TYPE_TF32 if tf32 else linalg.COMPUTE_TYPE_DEFAULT)
    cublas.setMathMode(cp.cuda.device.get_cublas_handle(),
                       cublas.CUBLAS_TF32_TENSOR_OP_MATH if tf32 else cublas.CUBLAS_DEFAULT_MATH)
