"""What the C allocator does with freed memory: give it back to the kernel, or keep it for the next step.

A training step allocates and frees the same arrays every time (activations, gradients, each a few
MiB). By default glibc's malloc hands such blocks back to the kernel when they are freed (blocks above
its mmap threshold are unmapped; the top of the heap is trimmed), so the next step's arrays are fresh
pages again, and the kernel maps each 4 KiB page on its first write: a minor page fault, ~2.5 µs on
the VM this was measured on, ~15,000 of them per resnet8 step (benchmarks/README.md, "The allocator").
``keep_freed_memory()`` asks malloc to keep freed memory for reuse instead — what PyTorch's CPU
performance guide gets by preloading jemalloc or tcmalloc. The price: the process keeps its peak
memory until it exits. ``minicnn train`` and ``minicnn evaluate`` call it (``--no-keep-freed-memory``
to opt out), and so do the lessons; a library import never does: it changes the whole process, so a
script asks for it.

    import minicnn
    minicnn.keep_freed_memory()     # once, before training: True where it took effect
"""
import ctypes
import sys

__all__ = ["keep_freed_memory"]

# mallopt(3) parameters (malloc.h) and glibc's largest mmap threshold on 64-bit (DEFAULT_MMAP_THRESHOLD_MAX).
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD_MAX = 32 * 2 ** 20
TRIM_THRESHOLD = 2 ** 31 - 1                  # an int: never trim the heap in practice


def _libc():
    """The C library this process runs on, or None where it cannot be loaded."""
    try:
        return ctypes.CDLL(None)
    except OSError:
        return None


def keep_freed_memory():
    """Make glibc's malloc keep freed memory for reuse: blocks up to 32 MiB come from the heap (not from
    mmap), and the heap is not trimmed. For the whole process, from now on. Returns True where both
    settings took effect, False where the C library is not glibc (macOS, Windows, musl) or refused."""
    if not sys.platform.startswith("linux"):
        return False
    libc = _libc()
    mallopt = getattr(libc, "mallopt", None)
    if mallopt is None:
        return False
    applied = [mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX), mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)]
    return all(applied)
