"""CPU threads: minicnn runs the chunks of a convolution on several Python threads at once.

    minicnn.set_num_threads(2)        # like torch.set_num_threads; default: MINICNN_NUM_THREADS,
                                      # else OMP_NUM_THREADS, else the cores this process may use
    minicnn.get_num_threads()

Why threads work in Python here: NumPy releases the GIL inside its copies, arithmetic and BLAS calls,
which is where a convolution spends its time, so two threads each building im2col columns and
multiplying them keep two cores busy. Why not just let BLAS use the cores: only the GEMMs would be
parallel (the im2col copies around them would not), and BLAS splits a GEMM whose inner dimension is
huge and whose output is small (gW = gy·colᵀ) poorly. So while minicnn's workers run, the BLAS library
is held at ONE thread (threadpoolctl), each worker multiplies its own chunk, and the previous BLAS thread
count comes back afterwards. Outside these parallel regions minicnn leaves the user's BLAS settings
alone. On the GPU nothing here is used: a CUDA stream already runs each kernel on the whole device.

``run(work, shares)`` is the one primitive: ``work(share)`` for every share, on the workers, results in
order; ``split(n, …)`` makes the shares, one slice of range(n) per thread. A call made from inside a
worker (a nested region) runs inline on that worker. ``workspace()`` gives each thread scratch buffers
that live from call to call (a conv's column chunks), ``blas_held()`` one BLAS thread around small GEMMs.
``keep_cores_awake()`` (opt-in) keeps the cores from idling between regions, as OpenMP's spin-wait does.
"""
from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import contextmanager

import numpy as np

__all__ = ["get_num_threads", "set_num_threads", "run", "split", "blas_held", "workspace", "Workspace",
           "keep_cores_awake"]

_num_threads = None          # None: the default, decided on first use
_pool = None                 # ThreadPoolExecutor with _num_threads workers, made on first use
_lock = threading.Lock()
_local = threading.local()   # .in_worker: True on minicnn's worker threads
_blas = None                 # threadpoolctl controller of the BLAS libraries (False: none usable)
_active = 0                  # parallel regions running now (BLAS is held at 1 thread while > 0)
_saved_blas_limits = None


def _default_num_threads():
    for variable in ("MINICNN_NUM_THREADS", "OMP_NUM_THREADS"):     # PyTorch also obeys OMP_NUM_THREADS
        value = os.environ.get(variable, "").strip()
        if value:
            try:
                return _checked(int(value), variable)
            except ValueError:
                raise ValueError(f"{variable}: the number of threads must be a positive int, "
                                 f"got {value!r}") from None
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:    # not on Linux
        return os.cpu_count() or 1


def _checked(n, what):
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"{what}: the number of threads must be a positive int, got {n!r}")
    return n


def get_num_threads():
    """The number of threads minicnn's CPU operations use. Default: the environment variable
    ``MINICNN_NUM_THREADS``, else ``OMP_NUM_THREADS`` (as PyTorch), else the cores this process may
    run on."""
    global _num_threads
    if _num_threads is None:
        _num_threads = _default_num_threads()
    return _num_threads


def set_num_threads(n):
    """Use n threads for minicnn's CPU operations from now on (1: everything on the calling thread)."""
    global _num_threads, _pool
    n = _checked(n, "minicnn.set_num_threads")
    with _lock:
        if _pool is not None and n != _num_threads:
            _pool.shutdown(wait=True)
            _pool = None
        _num_threads = n


def _worker_init():
    _local.in_worker = True


def _blas_controller():
    global _blas
    if _blas is None:
        try:
            from threadpoolctl import ThreadpoolController
            _blas = ThreadpoolController().select(user_api="blas")
        except Exception:   # threadpoolctl missing or unable to inspect this process
            _blas = False
    return _blas


def _enter():
    """First region in: hold BLAS at one thread (remembering its setting)."""
    global _active, _saved_blas_limits
    with _lock:
        _active += 1
        if _active == 1 and _blas_controller():
            _saved_blas_limits = [lib.num_threads for lib in _blas.lib_controllers]
            for lib in _blas.lib_controllers:
                lib.set_num_threads(1)


def _leave():
    global _active
    with _lock:
        _active -= 1
        if _active == 0 and _blas_controller() and _saved_blas_limits is not None:
            for lib, n in zip(_blas.lib_controllers, _saved_blas_limits):
                lib.set_num_threads(n)


@contextmanager
def blas_held():
    """Inside: BLAS at one thread, as in ``run``'s regions, when minicnn uses several threads. For an
    operation that makes small BLAS calls between its parallel regions: at two threads, such a call
    leaves OpenBLAS's second thread spinning, waiting for more work, on the core the next region's
    worker needs (measured: two threads each running 4 stacked GEMMs took 13–15 ms right after a
    two-thread 256² GEMM, 7–8 ms without it; the spinning outlasts a switch to one BLAS thread)."""
    if get_num_threads() == 1 or getattr(_local, "in_worker", False):
        yield
        return
    _enter()
    try:
        yield
    finally:
        _leave()


def split(n, weight=1, minimum=1, device="cpu"):
    """slice(0, n) cut into contiguous slices of (almost) equal length, one per thread, but fewer so that
    each slice weighs at least ``minimum`` (an item weighs ``weight``): the shares to give ``run``. On
    the GPU (device "cuda"), one slice."""
    threads = get_num_threads() if device == "cpu" else 1
    T = max(1, min(threads, n, n * weight // minimum))
    bounds = [n * t // T for t in range(T + 1)]
    return [slice(bounds[t], bounds[t + 1]) for t in range(T)]


def run(work, shares):
    """[work(share) for share in shares]: the first share on the calling thread, the others on
    minicnn's worker threads at the same time (inline when there is one share, one thread, or this is
    already a worker). Every share finishes before the first exception any of them raised is re-raised."""
    global _pool
    shares = list(shares)
    if len(shares) <= 1 or get_num_threads() == 1 or getattr(_local, "in_worker", False):
        return [work(share) for share in shares]
    with _lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(_num_threads - 1, thread_name_prefix="minicnn",
                                       initializer=_worker_init)
        pool = _pool
    _enter()
    _local.in_worker = True
    try:
        futures = [pool.submit(work, share) for share in shares[1:]]
        try:
            first = work(shares[0])
        finally:
            wait(futures)
        return [first] + [future.result() for future in futures]
    finally:
        _local.in_worker = False
        _leave()


class Workspace:
    """One thread's scratch buffers, kept from call to call and grown to the largest size asked for
    (the role of cuDNN's workspace). Why: on this kind of machine a fresh array of a few MiB costs a
    page fault per 4 KiB page the first time it is written (~2.5 µs each, ~1/4 of a Winograd conv's
    time when measured), because the allocator hands big blocks back to the kernel when they are
    freed. Rule for users of it: what ``get`` returns is valid until the same thread asks for the same
    name again, so nothing that outlives the call (an output, a tensor saved for backward) may live
    here."""

    def __init__(self):
        self.buffers = {}

    def get(self, name, shape, dtype):
        """An uninitialised NumPy array of this shape and dtype: a view of this thread's buffer ``name``."""
        shape = tuple(int(n) for n in shape)
        size = int(np.prod(shape)) * np.dtype(dtype).itemsize
        buffer = self.buffers.get(name)
        if buffer is None or buffer.size < size:
            buffer = self.buffers[name] = np.empty(size, dtype=np.uint8)
        return buffer[:size].view(dtype).reshape(shape)


def workspace():
    """The calling thread's ``Workspace`` (made on first use)."""
    if not hasattr(_local, "workspace"):
        _local.workspace = Workspace()
    return _local.workspace


# ------------------------------------------------------------------ keeping the cores awake ------

_SPIN = """
import os, sys
parent, cpu = int(sys.argv[1]), int(sys.argv[2])
os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))   # runs only when nothing else wants this core
os.sched_setaffinity(0, {cpu})
while os.getppid() == parent:       # until the parent is gone (or the process is stopped)
    for _ in range(200000):
        pass
"""
_spinners = []               # the running busy processes (keep_cores_awake)
_stopped_at_exit = False


def keep_cores_awake(enabled=True):
    """Opt in (or out, enabled=False) to keeping the cores minicnn's threads use from going idle, which is
    what OpenMP's spin-waiting does for PyTorch's threads (``OMP_WAIT_POLICY``). Returns True when it
    is on. One busy process per core, at Linux's lowest priority (SCHED_IDLE: it runs only while nothing
    else wants the core, and yields it at once), ended by ``keep_cores_awake(False)``, at exit, or when
    this process dies. The cores then stay at 100 % busy (power, heat) while it is on.

    Why: minicnn's worker threads are Python threads; between parallel regions, and while one waits
    for the GIL, a thread sleeps, and so its core goes idle. On a virtual machine an idle vCPU is halted
    by the hypervisor, and waking it takes tens of µs, more right after a long idle (measured on the
    2-core KVM machine of benchmarks/README.md: the two steps after a 0.2 s pause took 1.4–1.6× the
    steady time; with the cores kept awake, none did). PyTorch's OpenMP threads spin instead of
    sleeping between regions, so their cores never go idle mid-step. Linux only (elsewhere: False)."""
    if not enabled:
        while _spinners:
            process = _spinners.pop()
            process.kill()
            process.wait()
        return False
    if _spinners:
        return True
    if not hasattr(os, "SCHED_IDLE") or not hasattr(os, "sched_getaffinity"):
        return False
    import atexit
    import subprocess
    import sys
    global _stopped_at_exit
    cpus = sorted(os.sched_getaffinity(0))[:get_num_threads()]
    _spinners.extend(subprocess.Popen([sys.executable, "-c", _SPIN, str(os.getpid()), str(cpu)],
                                      stdin=subprocess.DEVNULL) for cpu in cpus)
    if not _stopped_at_exit:
        atexit.register(keep_cores_awake, False)
        _stopped_at_exit = True
    return True
