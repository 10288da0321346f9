"""What every kernel module shares: when the kernels apply, one compiled module per GPU, launch geometry.

* ``kernels_apply(x)``: the one test the functional ops make before taking a kernel path: x is a
  CuPy array (``backend.device_of(x) == "cuda"``) of float32 or float64 (the two instantiations of
  every kernel template). Anything else (NumPy arrays, float16) takes the ops' array-module path.
* ``kernel(source, kernels, name, dtype)``: the compiled ``name<float>`` or ``name<double>``. Each
  source is compiled once per CuPy module and GPU (CuPy also caches the binary on disk); the cache
  is keyed by the CuPy module object, so the tests' CPU emulator (tests/cuda_emulator.py, a stand-in
  for ``cupy``) never shares an entry with real CuPy.
* ``launch(function, threads, args)``: one thread per work item (``threads`` of them), THREADS per
  block, at most MAX_BLOCKS blocks; every kernel has a grid-stride loop, so a bounded grid covers any
  size. Nothing is launched for zero work items.
Every integer argument is passed as ``np.int64`` (the kernels take ``long long``) and every floating
one in the kernel's own dtype, since CuPy packs a NumPy scalar by its dtype.
"""
from __future__ import annotations

import functools

import numpy as np

from .. import backend

__all__ = ["CTYPES", "THREADS", "MAX_BLOCKS", "kernels_apply", "kernel", "launch", "int64s"]

CTYPES = {np.dtype(np.float32): "float", np.dtype(np.float64): "double"}
THREADS = 256
MAX_BLOCKS = 65535 * 32          # enough to fill any current GPU; the grid-stride loop does the rest


def kernels_apply(x):
    """True when ``x`` is a float32/float64 CuPy array: the functional ops then run the CUDA kernels."""
    return backend.device_of(x) == "cuda" and x.dtype in CTYPES


@functools.lru_cache(maxsize=None)
def _compiled(cp, device_id, source, names):
    return cp.RawModule(code=source, name_expressions=list(names))


def kernel(source, kernels, name, dtype):
    """The compiled instantiation ``name<float>`` / ``name<double>`` (by ``dtype``) of ``source``,
    whose templates ``kernels`` are all instantiated for both types in one module."""
    cp = backend.cupy()
    names = tuple(f"{k}<{ctype}>" for k in kernels for ctype in CTYPES.values())
    module = _compiled(cp, cp.cuda.Device().id, source, names)
    return module.get_function(f"{name}<{CTYPES[np.dtype(dtype)]}>")


def launch(function, threads, args):
    """Run ``function`` with ``threads`` threads (rounded up to whole blocks, at most MAX_BLOCKS blocks)."""
    if threads == 0:
        return
    blocks = min((threads + THREADS - 1) // THREADS, MAX_BLOCKS)
    function((blocks,), (THREADS,), tuple(args))


def int64s(*values):
    """The values as NumPy int64 scalars, matching the kernels' ``long long`` parameters."""
    return tuple(np.int64(v) for v in values)
