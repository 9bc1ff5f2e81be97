"""Keep freed tensor memory in the process instead of handing it back to the OS after every op (glibc).

A training step at 5,023 vertices allocates and frees dozens of (n, B * F) float32 tensors of
5-30 MB. glibc serves an allocation of that size with a fresh ``mmap`` and unmaps it when freed,
so every such tensor is page-faulted in anew and zeroed by the kernel: ~130,000 minor page
faults (~500 MB of pages) per step, about a quarter of the step's CPU time, and much of a batch-1
inference's time in its small copies. Raising glibc's mmap threshold keeps these blocks in the
heap, where freed ones are reused by the next allocation; raising the trim threshold stops the
heap's free top from being returned after each step. The cost is that up to
``TRIM_THRESHOLD`` of freed memory stays resident between steps (~0.25 GB more peak at 5,023
vertices, see ``docs/results/benchmarks.md``).

It changes the whole process's allocator, so the entry points decide: the ``facelab`` command, the
app and ``python -m benchmarks`` call :func:`keep_freed_memory` at start; a script that trains or
neutralises many meshes from Python may call it too. ``FACELAB_KEEP_FREED_MEMORY=0`` turns it
off. A no-op where the C library is not glibc.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import sys
from collections.abc import Iterator

MMAP_THRESHOLD = 256 * 2**20  # allocations below this come from the heap, and are reused there
OWN_PAGES_THRESHOLD = 32 * 2**20  # glibc's own default ceiling: see large_arrays_in_own_pages
TRIM_THRESHOLD = 512 * 2**20  # free memory at the heap's top kept rather than returned
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameter numbers
_applied: bool | None = None


def _mallopt():
    """glibc's ``mallopt``, ready to call; None where the C library has none (musl)."""
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):
        return None
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return mallopt


def keep_freed_memory() -> bool:
    """Tune glibc's allocator as described above (once); True when it is in effect."""
    global _applied
    if _applied is not None:
        return _applied
    _applied = False
    if os.environ.get("FACELAB_KEEP_FREED_MEMORY", "1") == "0" or not sys.platform.startswith("linux"):
        return _applied
    mallopt = _mallopt()
    if mallopt is None:
        return _applied
    _applied = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return _applied


@contextlib.contextmanager
def large_arrays_in_own_pages() -> Iterator[None]:
    """Within the block, allocations from 32 MB up get pages of their own, returned when freed.

    For a stretch whose large arrays come in sizes the training steps never reuse: the
    recogniser's warm-up encodes 64 faces at a time, and its activations of tens of MB, served
    from the heap under :func:`keep_freed_memory`, fragmented it by GBs on the 2,700-identity
    cache (the ``training_memory`` row's peak, in that stage). A no-op where the tuning is not in
    effect.
    """
    if not _applied:
        yield
        return
    mallopt = _mallopt()
    mallopt(_M_MMAP_THRESHOLD, OWN_PAGES_THRESHOLD)
    try:
        yield
    finally:
        mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)


def release_freed_memory() -> bool:
    """Hand the heap's free pages back to the OS now (glibc's ``malloc_trim``); True if any were.

    With :func:`keep_freed_memory` in effect, the large arrays of a run's preparation (the linear
    start's and the subspaces' fits, hundreds of MB each) are served from the heap, and their freed
    pages would stay resident through the whole run. Called once, when preparation ends. A no-op
    (False) where the C library is not glibc.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        malloc_trim = libc.malloc_trim
    except (OSError, AttributeError):
        return False
    malloc_trim.argtypes, malloc_trim.restype = [ctypes.c_size_t], ctypes.c_int
    return bool(malloc_trim(0))
