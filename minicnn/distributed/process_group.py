"""The processes of one job and the messages between them: MPI (mpi4py) on the CPU, NCCL on GPUs.

    mpiexec -n 4 python train.py         four copies of one program, ranks 0, 1, 2, 3

    group = init_process_group()         MPI.COMM_WORLD: rank, world_size, local_rank (rank on this machine)
    all_reduce(array)                    array ← Σ over ranks of array, in place (every rank gets the sum)
    broadcast(array, src=0)              array ← rank src's array, in place
    broadcast_object(obj, src=0)         any picklable Python object, from src to every rank
    barrier()                            wait until every rank has arrived

Every rank must call the same collectives in the same order with arrays of the same shape and dtype;
a rank that skips one makes the others wait for ever. That is why an exception in one rank must stop
them all: ``abort_on_error()`` (and the exception hook ``init_process_group`` installs) prints
"rank R of W: <exception>" and calls MPI_Abort, which makes mpiexec kill every rank and exit non-zero.

Without ``init_process_group`` (a plain ``python train.py``) there is one process: rank 0 of 1, and
every collective returns its input unchanged, so the same code runs with and without MPI. mpi4py is
imported only by ``init_process_group``: ``import minicnn`` never needs it.

Arrays on a GPU (CuPy) travel GPU to GPU, in order of preference:
    "nccl"   NVIDIA's collective library through ``cupy.cuda.nccl``: rank 0 makes a unique id, MPI
             broadcasts it, every rank joins one NcclCommunicator; the collectives run on the current
             CUDA stream, so no synchronisation is needed
    "mpi"    a CUDA-aware MPI takes the device pointer (mpi4py reads ``__cuda_array_interface__``); MPI does
             not know CUDA streams, so the stream is synchronised first. Whether an MPI build is CUDA-aware
             cannot be asked portably: say so with ``gpu_transport="mpi"`` or MINICNN_CUDA_AWARE_MPI=1
    "host"   copy to the CPU, MPI, copy back: correct but slow; used only when neither exists (with a warning)
"""
from __future__ import annotations

import contextlib
import importlib
import os
import sys
import traceback
import warnings

import numpy as np

from .. import backend

__all__ = ["ProcessGroup", "init_process_group", "is_initialized", "get_default_group", "destroy_process_group",
           "get_rank", "get_local_rank", "get_world_size", "is_main_process", "all_reduce", "broadcast", "broadcast_object",
           "all_gather_object", "barrier", "abort_on_error", "abort"]

_OPS = ("sum", "max", "min")
_GPU_TRANSPORTS = ("auto", "nccl", "mpi", "host")
_default_group = None


def _mpi():
    try:
        return importlib.import_module("mpi4py.MPI")
    except ImportError as error:
        raise ImportError("minicnn.distributed needs mpi4py and an MPI library: pip install \"minicnn[distributed]\" "
                          "(the mpi4py and mpich wheels), then start the job with mpiexec -n 2 ...") from error


class ProcessGroup:
    """An MPI communicator with the collectives minicnn needs (PyTorch's ``ProcessGroup``).

    comm           an mpi4py communicator (MPI.COMM_WORLD by default)
    gpu_transport  how CuPy arrays travel: "auto" (NCCL, else CUDA-aware MPI if declared, else host
                   copies), "nccl", "mpi" or "host"; see the module docstring
    """

    def __init__(self, comm=None, gpu_transport="auto"):
        if gpu_transport not in _GPU_TRANSPORTS:
            raise ValueError(f"ProcessGroup: gpu_transport must be one of {_GPU_TRANSPORTS}, got {gpu_transport!r}")
        MPI = _mpi()
        self.MPI = MPI
        self.comm = comm if comm is not None else MPI.COMM_WORLD
        self.rank, self.world_size = self.comm.Get_rank(), self.comm.Get_size()
        # Ranks that share a machine (and its GPUs): the local rank picks this process's GPU.
        self.local_rank = self.comm.Split_type(MPI.COMM_TYPE_SHARED).Get_rank()
        self.gpu_transport = gpu_transport
        self._nccl = None               # the NcclCommunicator, made at the first GPU collective
        self._warned_host_copy = False

    def __repr__(self):
        return f"ProcessGroup(rank {self.rank} of {self.world_size}, local rank {self.local_rank})"

    # ---- collectives on arrays ---------------------------------------------------------------------
    def all_reduce(self, array, op="sum"):
        """array ← op over every rank's array (sum, max or min), in place; returns array."""
        if op not in _OPS:
            raise ValueError(f"all_reduce: op must be one of {_OPS}, got {op!r}")
        _check_contiguous("all_reduce", array)
        if self.world_size == 1:
            return array
        if backend.device_of(array) == "cpu":
            self.comm.Allreduce(self.MPI.IN_PLACE, array, op=self._mpi_op(op))
            return array
        transport = self._transport()
        if transport == "nccl":
            nccl, stream = self._nccl_communicator()
            self._nccl.allReduce(array.data.ptr, array.data.ptr, array.size, _nccl_dtype(nccl, array.dtype),
                                 getattr(nccl, f"NCCL_{op.upper()}"), stream)
        elif transport == "mpi":
            backend.cupy().cuda.get_current_stream().synchronize()     # MPI reads memory, not streams
            self.comm.Allreduce(self.MPI.IN_PLACE, array, op=self._mpi_op(op))
        else:
            host = backend.as_numpy(array)
            self.comm.Allreduce(self.MPI.IN_PLACE, host, op=self._mpi_op(op))
            array[...] = backend.cupy().asarray(host)
        return array

    def broadcast(self, array, src=0):
        """array ← rank ``src``'s array, in place; returns array."""
        _check_contiguous("broadcast", array)
        if self.world_size == 1:
            return array
        if backend.device_of(array) == "cpu":
            self.comm.Bcast(array, root=src)
            return array
        transport = self._transport()
        if transport == "nccl":
            nccl, stream = self._nccl_communicator()
            self._nccl.bcast(array.data.ptr, array.size, _nccl_dtype(nccl, array.dtype), src, stream)
        elif transport == "mpi":
            backend.cupy().cuda.get_current_stream().synchronize()
            self.comm.Bcast(array, root=src)
        else:
            host = backend.as_numpy(array)
            self.comm.Bcast(host, root=src)
            array[...] = backend.cupy().asarray(host)
        return array

    # ---- collectives on Python objects (pickled by mpi4py: small things, rarely) ---------------------
    def broadcast_object(self, obj, src=0):
        return obj if self.world_size == 1 else self.comm.bcast(obj, root=src)

    def all_gather_object(self, obj):
        return [obj] if self.world_size == 1 else self.comm.allgather(obj)

    def barrier(self):
        if self.world_size > 1:
            self.comm.Barrier()

    def abort(self, exit_code=1):
        """Stop every rank of the job: MPI_Abort makes mpiexec kill them all and exit with ``exit_code``."""
        sys.stdout.flush()
        sys.stderr.flush()
        self.comm.Abort(exit_code)
        os._exit(exit_code)              # MPICH's MPI_Abort can return before mpiexec kills this process

    # ---- helpers -----------------------------------------------------------------------------------
    def _mpi_op(self, op):
        return {"sum": self.MPI.SUM, "max": self.MPI.MAX, "min": self.MPI.MIN}[op]

    def _transport(self):
        if self.gpu_transport != "auto":
            return self.gpu_transport
        if _nccl_module() is not None:
            self.gpu_transport = "nccl"
        elif os.environ.get("MINICNN_CUDA_AWARE_MPI") == "1":
            self.gpu_transport = "mpi"
        else:
            self.gpu_transport = "host"
            warnings.warn("minicnn.distributed: neither NCCL (cupy.cuda.nccl) nor a CUDA-aware MPI "
                          "(MINICNN_CUDA_AWARE_MPI=1) is available; GPU arrays are copied through the host",
                          stacklevel=3)
        return self.gpu_transport

    def _nccl_communicator(self):
        """(the nccl module, the current stream's pointer); joins the NCCL communicator the first time
        (a collective: every rank gets here at its first GPU all_reduce or broadcast)."""
        nccl = _nccl_module()
        if nccl is None:
            raise RuntimeError("minicnn.distributed: gpu_transport='nccl' but cupy.cuda.nccl is not available "
                               "(install NCCL, e.g. pip install nvidia-nccl-cu12)")
        if self._nccl is None:
            unique_id = nccl.get_unique_id() if self.rank == 0 else None
            unique_id = self.comm.bcast(unique_id, root=0)
            self._nccl = nccl.NcclCommunicator(self.world_size, unique_id, self.rank)
        return nccl, backend.cupy().cuda.get_current_stream().ptr


def _check_contiguous(where, array):
    if not hasattr(array, "flags") or not array.flags.c_contiguous:
        raise ValueError(f"{where}: expected a C-contiguous NumPy or CuPy array (it is sent as one buffer), "
                         f"got {type(array).__name__}")


def _nccl_module():
    """cupy.cuda.nccl when CuPy was built with NCCL and it loads, else None. (CuPy itself comes from
    minicnn.backend; its NCCL wrapper is a submodule that CuPy does not import by itself.)"""
    if backend.cupy() is None:
        return None
    try:
        nccl = importlib.import_module("cupy.cuda.nccl")
    except ImportError:
        return None
    return nccl if getattr(nccl, "available", False) else None


def _nccl_dtype(nccl, dtype):
    names = {"float16": "NCCL_FLOAT16", "float32": "NCCL_FLOAT32", "float64": "NCCL_FLOAT64",
             "int32": "NCCL_INT32", "int64": "NCCL_INT64", "uint8": "NCCL_UINT8", "bool": "NCCL_UINT8"}
    if np.dtype(dtype).name not in names:
        raise TypeError(f"minicnn.distributed: NCCL cannot send arrays of dtype {dtype}")
    return getattr(nccl, names[np.dtype(dtype).name])


# ---- the default group and the functions that use it ---------------------------------------------------

def init_process_group(gpu_transport="auto", device="cpu", abort_on_exception=True):
    """Join the job mpiexec started (MPI.COMM_WORLD) and make it the default group; returns it.

    gpu_transport       see ProcessGroup
    device              "cuda": use GPU local_rank % (GPUs on this machine), so the ranks of one machine
                        take different GPUs
    abort_on_exception  install an exception hook: an uncaught exception in any rank prints
                        "rank R of W: ..." with its traceback and aborts the whole job (instead of leaving
                        the other ranks waiting in a collective for ever)
    Calling it again returns the same group.
    """
    global _default_group
    if _default_group is None:
        _default_group = ProcessGroup(gpu_transport=gpu_transport)
        if abort_on_exception and _default_group.world_size > 1:
            _install_exception_hook(_default_group)
    if device == "cuda":
        cp = backend.cupy()
        if cp is None or not backend.gpu_available():
            raise RuntimeError("init_process_group: device='cuda' needs CuPy and a CUDA GPU")
        cp.cuda.Device(_default_group.local_rank % cp.cuda.runtime.getDeviceCount()).use()
    return _default_group


def destroy_process_group():
    """Forget the default group: back to one process (rank 0 of 1). MPI itself stays initialised."""
    global _default_group
    _default_group = None


def is_initialized():
    return _default_group is not None


def get_default_group():
    """The group of ``init_process_group``, or None in a single process."""
    return _default_group


def get_rank(group=None):
    """This process's rank, 0 … world_size − 1 (0 without MPI)."""
    group = group or _default_group
    return 0 if group is None else group.rank


def get_local_rank(group=None):
    """This process's rank among the ranks on its machine (0 without MPI): picks its GPU, and who downloads."""
    group = group or _default_group
    return 0 if group is None else group.local_rank


def get_world_size(group=None):
    """The number of processes (1 without MPI)."""
    group = group or _default_group
    return 1 if group is None else group.world_size


def is_main_process(group=None):
    """True on rank 0: the rank that prints and writes files."""
    return get_rank(group) == 0


def all_reduce(array, op="sum", group=None):
    """``array`` ← op over the ranks (in place; unchanged in a single process). Returns ``array``."""
    group = group or _default_group
    return array if group is None else group.all_reduce(array, op)


def broadcast(array, src=0, group=None):
    """``array`` ← rank ``src``'s array (in place). Returns ``array``."""
    group = group or _default_group
    return array if group is None else group.broadcast(array, src)


def broadcast_object(obj, src=0, group=None):
    """Rank ``src``'s ``obj`` on every rank (pickled by mpi4py)."""
    group = group or _default_group
    return obj if group is None else group.broadcast_object(obj, src)


def all_gather_object(obj, group=None):
    """[rank 0's obj, rank 1's obj, …] on every rank."""
    group = group or _default_group
    return [obj] if group is None else group.all_gather_object(obj)


def barrier(group=None):
    group = group or _default_group
    if group is not None:
        group.barrier()


# ---- one failing rank stops them all ----------------------------------------------------------------

def abort(message, exit_code=1, group=None):
    """Print ``message`` prefixed with this rank and stop the whole job with ``exit_code``. In a single
    process: raise SystemExit(exit_code) after printing."""
    group = group or _default_group
    if group is None or group.world_size == 1:
        print(message, file=sys.stderr)
        raise SystemExit(exit_code)
    print(f"rank {group.rank} of {group.world_size}: {message}", file=sys.stderr)
    group.abort(exit_code)


@contextlib.contextmanager
def abort_on_error(group=None, exit_code=1):
    """``with abort_on_error(): main()``: any exception stops every rank with a message and a traceback
    (SystemExit(0) passes; Ctrl-C exits with 130). A no-op in a single process."""
    try:
        yield
    except SystemExit as stop:
        if stop.code in (None, 0):
            raise
        _abort_with_traceback(stop, group, stop.code if isinstance(stop.code, int) else exit_code)
    except KeyboardInterrupt as error:
        _abort_with_traceback(error, group, 130)
    except BaseException as error:
        _abort_with_traceback(error, group, exit_code)


def _abort_with_traceback(error, group, exit_code):
    group = group or _default_group
    if group is None or group.world_size == 1:
        raise error
    text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    print(f"rank {group.rank} of {group.world_size} failed:\n{text}", file=sys.stderr, end="")
    group.abort(exit_code)


def _install_exception_hook(group):
    previous = sys.excepthook

    def hook(kind, error, tb):
        if issubclass(kind, SystemExit):
            return previous(kind, error, tb)
        text = "".join(traceback.format_exception(kind, error, tb))
        print(f"rank {group.rank} of {group.world_size} failed:\n{text}", file=sys.stderr, end="")
        group.abort(130 if issubclass(kind, KeyboardInterrupt) else 1)

    sys.excepthook = hook
