"""CPU kernels compiled by numba (optional): the passes that NumPy cannot fuse, for speed on the CPU.

    pip install "minicnn[cpu]"            # numba; without it these kernels are simply not used
    minicnn.cpu.is_available()            # True when numba can be imported
    minicnn.cpu.enabled = False           # use the NumPy path (like torch.backends.mkldnn.enabled)
    with minicnn.cpu.flags(enabled=False): ...   # the same, for a block (like torch.backends.mkldnn.flags)
    MINICNN_CPU_KERNELS=0 python ...      # the same, for a whole run

Why: a NumPy call is one pass over memory, so an operation of k steps is k passes. Where each output
needs little arithmetic (a depthwise conv does 9 multiply-adds per output, batch norm 2), those passes
are the whole cost: the depthwise 3×3 took ~17 of them, batch norm ~6 forward and ~8 backward, and on
a 2-core machine two threads copying memory go no faster than one. A kernel written as loops and
compiled to machine code makes ONE pass over its data for the whole chain, as PyTorch's C++ kernels do.

The kernels are plain Python loops over arrays, readable as the math they compute (each module's
docstring gives it), next to the NumPy version in ``minicnn/functional`` that stays the reference:
the tests check the two against each other and run every gradient check on both. Each kernel is
compiled on its first call (``nopython``, ``nogil``, cached on disk by numba), one version per dtype
(float32, float64), and works on one share of the data: ``minicnn.parallel.run`` gives each of
minicnn's threads its share, as for the NumPy path, so ``minicnn.set_num_threads`` governs both.
Floating-point: reassociation and fused multiply-add are allowed (so sums run in SIMD lanes; the
results differ from NumPy's in the last bits), while NaN and infinity keep their IEEE meaning.

    depthwise_kernels   depthwise conv forward, backward (any stride, padding, dilation)  used by functional/depthwise.py
    norm_kernels        batch norm (+ fused ReLU) forward, backward                      used by functional/norm.py
    im2col_kernels      im2col, col2im (one call per chunk instead of 8–12 NumPy calls)   used by functional/im2col.py

numba is imported here only, when an op first asks ``kernels_apply`` (then it imports the kernel
modules), so ``import minicnn`` stays fast and never needs it. On the GPU the CUDA kernels of
``minicnn.cuda`` play this role.
"""
from __future__ import annotations

import functools
import importlib
import os
from contextlib import contextmanager

import numpy as np

from .. import backend

__all__ = ["enabled", "is_available", "flags", "kernels_apply", "jit", "DTYPES", "FASTMATH"]

DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
# LLVM's fast-math flags minus "nnan", "ninf" (a NaN in must stay a NaN out) and "arcp", "afn" (no
# approximate division or functions): "reassoc" lets a sum run in SIMD lanes, "contract" makes a·b + c one FMA.
FASTMATH = frozenset({"reassoc", "contract", "nsz"})

enabled = os.environ.get("MINICNN_CPU_KERNELS", "1").strip() not in ("0", "false", "False", "no")
_numba = None            # the numba module once imported, False when it cannot be


def _import_numba():
    global _numba
    if _numba is None:
        try:
            _numba = importlib.import_module("numba")
        except Exception:    # not installed, or installed but unable to load (e.g. a NumPy it does not support)
            _numba = False
    return _numba or None


def is_available():
    """True when numba can be imported, so that the kernels can be compiled."""
    return _import_numba() is not None


@contextmanager
def flags(enabled):
    """Inside the block the kernels are used (enabled=True, where available) or not (False)."""
    global_state = globals()
    saved, global_state["enabled"] = global_state["enabled"], bool(enabled)
    try:
        yield
    finally:
        global_state["enabled"] = saved


def kernels_apply(*arrays):
    """True when every array is a float32/float64 NumPy array (one dtype), the kernels are enabled and
    numba is available: the functional ops then run these kernels."""
    if not enabled or not arrays or any(backend.device_of(a) != "cpu" for a in arrays):
        return False
    dtypes = {np.dtype(a.dtype) for a in arrays}
    return len(dtypes) == 1 and dtypes.pop() in DTYPES and is_available()


def jit(function):
    """``function`` for numba to compile on its first call (nopython, nogil, cached on disk, FASTMATH);
    kernels may call each other. The plain Python function stays reachable as ``.py_func``: the same
    loops, runnable without compiling. Only the kernel modules use this, and the ops import those only
    once ``kernels_apply`` said yes, so numba is imported then, not with minicnn."""
    numba = _import_numba()
    if numba is not None:
        return numba.njit(nogil=True, cache=True, fastmath=set(FASTMATH))(function)

    @functools.wraps(function)
    def unavailable(*args):
        raise RuntimeError(f"minicnn.cpu: {function.__name__} needs numba, which cannot be imported; "
                           f"pip install 'minicnn[cpu]', or set minicnn.cpu.enabled = False")
    unavailable.py_func = function
    return unavailable
