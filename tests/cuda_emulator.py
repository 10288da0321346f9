"""Run minicnn's CUDA kernels on the CPU: the very same CUDA source, compiled with g++, launched thread by thread.

Test infrastructure (not part of the package). A kernel module's ``CUDA_SOURCE`` is compiled as C++17
behind ``SHIM`` (which defines ``__global__``, ``blockIdx``/``threadIdx``/``blockDim``/``gridDim`` as
globals the launcher sets, and takes the math functions from <math.h>), followed by one extern "C"
launcher per instantiation named in ``name_expressions``. A launcher runs the kernel once for every
(block, thread) of the grid, one after the other. That serial execution is exact because minicnn's
kernels have no shared memory, no __syncthreads and no atomics: each thread computes its own outputs
from inputs no thread writes, so the order of the threads cannot matter.

``EmulatedCupy(build_dir)`` is a stand-in for the ``cupy`` module, with just what the kernel launch
code uses: ``empty``, ``zeros``, ``ascontiguousarray`` … (NumPy's), ``cuda.Device().id`` and
``RawModule(code=..., name_expressions=[...])``, whose ``get_function(name)`` returns a callable
``(grid, block, args)``, as CuPy's. Arguments are checked against the kernel's C++ signature (read
from the compiled code, not parsed from the source): a NumPy array must match the pointee type
(float32 ↔ float*, float64 ↔ double*, int32 ↔ int*, int64 ↔ long long*) and be C-contiguous — a
kernel sees only the address of the first element, so a strided view would be read wrongly on a
GPU — and a scalar must be a NumPy scalar of the parameter's exact type (np.int64 ↔ long long,
np.float32 ↔ float, np.float64 ↔ double). A mismatch raises TypeError instead of silently reading
garbage. Every launch is recorded in ``launches`` (kernel name, grid, block), so a test can check
that an op really took its kernel path. Compiled libraries are cached per source in ``build_dir``.

``emulated_gpu(fake)``: a context manager under which ``backend.cupy()`` returns ``fake`` and
``backend.device_of`` answers "cuda" for every array, so the functional ops take their GPU branches
on NumPy arrays: the whole Python wrapper path (dispatch, argument checks, launch configuration,
argument packing, output allocation) runs, with NumPy standing in for CuPy's array functions.
"""
from __future__ import annotations

import contextlib
import ctypes
import hashlib
import shutil
import subprocess
import types
from pathlib import Path

import numpy as np

from minicnn import backend

__all__ = ["SHIM", "EmulatedCupy", "emulated_gpu", "compiler"]

SHIM = r"""
#include <math.h>
#include <cstddef>
#include <type_traits>
#include <utility>

// CUDA's built-in index variables: the launcher sets them before running each thread.
struct emu_uint3 { unsigned int x, y, z; };
static emu_uint3 blockIdx, threadIdx, blockDim, gridDim;

#define __global__
#define __device__
#define __forceinline__ inline
// __restrict__ is understood by g++ itself. isnan/exp/expf/log/logf/pow/powf come from <math.h>.
"""

LAUNCHERS = r"""
namespace emu {
// One character per parameter type: the Python side checks every argument against it.
template <typename P> constexpr char code() {
    using Q = std::remove_cv_t<P>;
    if constexpr (std::is_pointer_v<Q>) {
        using E = std::remove_cv_t<std::remove_pointer_t<Q>>;
        return std::is_same_v<E, float> ? 'F' : std::is_same_v<E, double> ? 'D'
             : std::is_same_v<E, int> ? 'I' : std::is_same_v<E, long long> ? 'Q' : '?';
    } else {
        return std::is_same_v<Q, float> ? 'f' : std::is_same_v<Q, double> ? 'd'
             : std::is_same_v<Q, int> ? 'i' : std::is_same_v<Q, long long> ? 'q' : '?';
    }
}

template <typename... P> const char* signature(void (*)(P...)) {
    static const char text[] = {code<P>()..., '\0'};
    return text;
}

// args[i] points at the value of parameter i (a pointer, an integer or a float), as in cuLaunchKernel.
template <typename... P, std::size_t... I>
void call(void (*kernel)(P...), void** args, std::index_sequence<I...>) {
    kernel(*static_cast<std::remove_cv_t<P>*>(args[I])...);
}

template <typename... P>
void launch(void (*kernel)(P...), void** args, const long long* grid, const long long* block) {
    gridDim = {(unsigned)grid[0], (unsigned)grid[1], (unsigned)grid[2]};
    blockDim = {(unsigned)block[0], (unsigned)block[1], (unsigned)block[2]};
    for (unsigned bz = 0; bz < gridDim.z; ++bz)
    for (unsigned by = 0; by < gridDim.y; ++by)
    for (unsigned bx = 0; bx < gridDim.x; ++bx)
    for (unsigned tz = 0; tz < blockDim.z; ++tz)
    for (unsigned ty = 0; ty < blockDim.y; ++ty)
    for (unsigned tx = 0; tx < blockDim.x; ++tx) {
        blockIdx = {bx, by, bz};
        threadIdx = {tx, ty, tz};
        call(kernel, args, std::index_sequence_for<P...>{});
    }
}
}  // namespace emu
"""

_POINTEES = {"F": np.dtype(np.float32), "D": np.dtype(np.float64), "I": np.dtype(np.int32),
             "Q": np.dtype(np.int64)}
_SCALARS = {"f": (np.float32, ctypes.c_float), "d": (np.float64, ctypes.c_double),
            "i": (np.int32, ctypes.c_int), "q": (np.int64, ctypes.c_longlong)}
_MAX_THREADS_PER_BLOCK = 1024
_MAX_GRID = (2 ** 31 - 1, 65535, 65535)


def compiler():
    """The path of g++, or None."""
    return shutil.which("g++")


def _launcher_source(name_expressions):
    lines = [LAUNCHERS]
    for i, expression in enumerate(name_expressions):
        lines.append(f'extern "C" void emu_launch_{i}(void** args, const long long* grid, const long long* block) '
                     f'{{ emu::launch(&{expression}, args, grid, block); }}\n'
                     f'extern "C" const char* emu_signature_{i}() {{ return emu::signature(&{expression}); }}\n')
    return "".join(lines)


class EmulatedKernel:
    """One compiled instantiation, called like a ``cupy.RawKernel``: ``kernel(grid, block, args)``."""

    def __init__(self, owner, name, launcher, signature):
        self.owner, self.name, self._launcher, self.signature = owner, name, launcher, signature

    def __call__(self, grid, block, args):
        grid, block = _dim3("grid", grid), _dim3("block", block)
        if any(g > limit for g, limit in zip(grid, _MAX_GRID)) or min(grid) < 1:
            raise ValueError(f"{self.name}: grid {grid} outside CUDA's limits (1 … {_MAX_GRID})")
        if block[0] * block[1] * block[2] > _MAX_THREADS_PER_BLOCK or min(block) < 1:
            raise ValueError(f"{self.name}: block {block} outside CUDA's limits (1 … 1024 threads)")
        args = tuple(args)
        if len(args) != len(self.signature):
            raise TypeError(f"{self.name}: the kernel takes {len(self.signature)} arguments, got {len(args)}")
        values = [self._pack(i, code, arg) for i, (code, arg) in enumerate(zip(self.signature, args))]
        pointers = (ctypes.c_void_p * max(1, len(values)))(*(ctypes.addressof(v) for v in values))
        self.owner.launches.append((self.name, grid, block))
        self._launcher(pointers, (ctypes.c_longlong * 3)(*grid), (ctypes.c_longlong * 3)(*block))

    def _pack(self, i, code, arg):
        where = f"{self.name}: argument {i}"
        if code in _POINTEES:
            if not isinstance(arg, np.ndarray):
                raise TypeError(f"{where} is a {_POINTEES[code]} pointer, got {type(arg).__name__}")
            if arg.dtype != _POINTEES[code]:
                raise TypeError(f"{where} is a {_POINTEES[code]} pointer, got an array of dtype {arg.dtype}")
            if not arg.flags.c_contiguous:
                raise TypeError(f"{where}: the kernel reads a C-contiguous array, got strides {arg.strides}")
            return ctypes.c_void_p(arg.ctypes.data)
        if code in _SCALARS:
            numpy_type, c_type = _SCALARS[code]
            if type(arg) is not numpy_type:
                raise TypeError(f"{where} is a {numpy_type.__name__} scalar, got {type(arg).__name__} {arg!r}")
            return c_type(arg)
        raise TypeError(f"{where}: the emulator does not know the kernel's parameter type (code {code!r})")


def _dim3(what, value):
    value = tuple(int(v) for v in (value if isinstance(value, tuple) else (value,)))
    if not 1 <= len(value) <= 3:
        raise ValueError(f"{what} must have 1 to 3 dimensions, got {value}")
    return value + (1,) * (3 - len(value))


class EmulatedModule:
    """``cupy.RawModule(code=..., name_expressions=[...])`` compiled with g++ for the CPU."""

    def __init__(self, owner, code, name_expressions):
        self.owner, self.names = owner, list(name_expressions)
        self._library = owner.compile(code, self.names)

    def get_function(self, name):
        if name not in self.names:
            raise KeyError(f"{name!r} is not among the module's name_expressions {self.names}")
        i = self.names.index(name)
        launcher = getattr(self._library, f"emu_launch_{i}")
        launcher.restype, launcher.argtypes = None, [ctypes.c_void_p] * 3
        signature = getattr(self._library, f"emu_signature_{i}")
        signature.restype = ctypes.c_char_p
        return EmulatedKernel(self.owner, name, launcher, signature().decode())


class EmulatedCupy(types.ModuleType):
    """A stand-in for the ``cupy`` module: NumPy's array functions and an emulated RawModule."""

    def __init__(self, build_dir):
        super().__init__("emulated_cupy")
        self.build_dir, self.launches, self._libraries = Path(build_dir), [], {}
        for name in ("empty", "empty_like", "zeros", "zeros_like", "ascontiguousarray", "asarray",
                     "broadcast_to"):
            setattr(self, name, getattr(np, name))
        self.cuda = types.SimpleNamespace(Device=lambda: types.SimpleNamespace(id=0))

    def RawModule(self, code, name_expressions):  # noqa: N802 (CuPy's name)
        return EmulatedModule(self, code, name_expressions)

    def compile(self, code, names):
        """The loaded library for this source and these instantiations (compiled once, then cached)."""
        source = SHIM + code + _launcher_source(names)
        key = hashlib.sha256(source.encode()).hexdigest()[:16]
        if key not in self._libraries:
            cpp, library = self.build_dir / f"kernels_{key}.cpp", self.build_dir / f"kernels_{key}.so"
            if not library.exists():
                cpp.write_text(source)
                # -ffp-contract=off: each operation rounded as written, as NumPy does (no fused a·b + c).
                result = subprocess.run([compiler(), "-std=c++17", "-O1", "-ffp-contract=off", "-shared", "-fPIC",
                                         "-o", str(library), str(cpp)], capture_output=True, text=True)
                if result.returncode != 0:
                    raise RuntimeError(f"g++ could not compile the CUDA source ({cpp}):\n{result.stderr}")
            self._libraries[key] = ctypes.CDLL(str(library))
        return self._libraries[key]

    def take_launches(self):
        """The launches so far, in order, as (kernel name, grid, block) (and forget them)."""
        launches = list(self.launches)
        self.launches.clear()
        return launches


@contextlib.contextmanager
def emulated_gpu(fake):
    """Within the block, every array counts as a GPU array and ``backend.cupy()`` is ``fake``."""
    saved = backend.cupy, backend.device_of
    backend.cupy, backend.device_of = (lambda: fake), (lambda a: "cuda")
    try:
        yield fake
    finally:
        backend.cupy, backend.device_of = saved
