"""minicnn — the classic convolutional networks, built from scratch in NumPy/CuPy to be read.

    import minicnn
    import minicnn.functional as F
    from minicnn import nn, optim

Submodules load on first use, so ``import minicnn`` stays fast and never imports matplotlib
or CuPy.
"""
import importlib

from .autograd import Function, Tensor, as_tensor, enable_grad, is_grad_enabled, no_grad, tensor
from .random import manual_seed
from .backend import (default_dtype, get_array_module, get_default_dtype, get_float32_matmul_precision,
                      gpu_available, set_default_dtype, set_float32_matmul_precision)

__version__ = "0.1.0"

_SUBMODULES = ("functional", "nn", "optim", "data", "models", "training", "gradcheck", "viz", "parallel",
               "backend", "autograd", "serialization", "cli", "cpu", "cuda", "random", "distributed", "memory")


def __getattr__(name):
    # Lazy submodules: `minicnn.nn` works without importing every part up front.
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    if name in ("get_num_threads", "set_num_threads"):
        return getattr(importlib.import_module(".parallel", __name__), name)
    if name == "keep_freed_memory":
        return importlib.import_module(".memory", __name__).keep_freed_memory
    if name in ("save", "load"):
        return getattr(importlib.import_module(".serialization", __name__), name)
    raise AttributeError(f"module 'minicnn' has no attribute {name!r}")
