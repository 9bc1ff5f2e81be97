"""Atomic file writes: write to a temporary file beside the target, then rename.

A crash or a bad input half-way through a write never leaves a truncated file where the user
had a good one: either the old file stays or the new one is complete.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from facelab.errors import FacelabError, is_path_error


_UMASK_LOCK = threading.Lock()


def current_umask() -> int:
    """The process's umask, read without changing it where the kernel reports it (Linux
    /proc/self/status): setting and restoring it would briefly change the permissions of files
    other threads create at that instant (the GUI's training worker writes checkpoints)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _UMASK_LOCK:
        umask = os.umask(0o077)
        os.umask(umask)
    return umask


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; on success rename it onto ``target``.

    The temporary name ends with ``suffix`` (default: the target's own suffix), so writers that
    pick the format from the extension (trimesh, numpy) see the right one. On an exception the
    temporary file is removed and the target is left untouched; a path the system refuses (no such
    folder, no permission, a full disk: :func:`~facelab.errors.is_path_error`) while creating or
    writing the temporary file is raised as a one-sentence :class:`~facelab.errors.FacelabError`.
    """
    target = Path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(
            prefix=f".{target.name}.tmp-", suffix=target.suffix if suffix is None else suffix,
            dir=target.parent,
        )
    except OSError as error:
        if not is_path_error(error):
            raise
        raise cannot_write(target, error) from None
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp makes the file private (0600), and some writers recreate it; a written figure,
        # mesh or checkpoint gets the permissions any new file of the user gets.
        os.chmod(tmp_path, 0o666 & ~current_umask())
        os.replace(tmp_path, target)
    except OSError as error:
        _remove(tmp_path)
        # A full disk or a folder gone read-only is the user's to fix; an OSError about some other
        # file (one the writer reads) is not this write's and keeps its own message.
        if is_path_error(error) and error.filename in (None, tmp, str(tmp_path), str(target)):
            raise cannot_write(target, error) from None
        raise
    except BaseException:
        _remove(tmp_path)
        raise


def _remove(path: Path) -> None:
    # Where the temporary file cannot be removed (Windows, while a memory map of it is still
    # open), the error that got us here is the one to report, not this one.
    with contextlib.suppress(OSError):
        path.unlink(missing_ok=True)


def remove_partial_writes(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporary files :func:`atomic_path` leaves in ``folder`` when a process is killed
    mid-write (``.NAME.tmp-*``); returns what was removed."""
    removed = []
    for path in Path(folder).glob(".*.tmp-*"):
        if path.is_file():
            _remove(path)
            removed.append(path)
    return removed


def cannot_write(target: str | os.PathLike, error: OSError) -> FacelabError:
    """The one-sentence error for a file that could not be written (no such folder, no
    permission, no space left)."""
    blocking = next((parent for parent in Path(target).parents if parent.is_file()), None)
    if blocking is not None:  # mkdir says "File exists", which names neither the file nor the fix
        return FacelabError(f"cannot write {target}: {blocking} is a file, not a folder; expected a path inside a folder.")
    reason = error.strerror or str(error) or type(error).__name__
    return FacelabError(f"cannot write {target} ({reason}): expected a folder you can write to, with space left.")


def atomic_write_bytes(target: str | os.PathLike, data: bytes) -> None:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(target: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(target, text.encode("utf-8"))


def preallocated_memmap(path: str | os.PathLike, shape: tuple[int, ...], dtype=np.float32) -> np.memmap:
    """A new ``.npy`` file opened as a writable memory map (``np.lib.format.open_memmap``), its
    disk blocks reserved first. The map's file is sparse: on a full disk, writing one of its
    pages later kills the process with SIGBUS instead of raising; reserved up front, a full disk
    is an ``OSError`` here, which :func:`atomic_path` turns into one sentence."""
    array = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)
    try:
        reserve_rows(array, 0, len(array))
    except OSError:
        del array
        raise
    return array


# posix_fallocate's answers for a filesystem that cannot reserve: the file stays sparse.
_CANNOT_RESERVE = frozenset({errno.EOPNOTSUPP, getattr(errno, "ENOTSUP", errno.EOPNOTSUPP), errno.EINVAL,
                             errno.ENOSYS})


def reserve_rows(array: np.memmap, start: int, count: int) -> None:
    """Reserve the disk blocks of rows ``start .. start + count - 1`` of a memory-mapped ``.npy``
    (see :func:`preallocated_memmap`), for a map written row by row whose final size is unknown.
    Raises ``OSError`` (naming the file) when the disk is full; a no-op where the system or the
    filesystem cannot reserve (macOS, Windows, some network filesystems)."""
    if not hasattr(os, "posix_fallocate") or count <= 0:
        return
    row_bytes = array.itemsize * int(np.prod(array.shape[1:], dtype=np.int64))
    with open(array.filename, "r+b") as handle:
        try:
            os.posix_fallocate(handle.fileno(), array.offset + start * row_bytes, count * row_bytes)
        except OSError as error:
            if error.errno not in _CANNOT_RESERVE:
                raise OSError(error.errno, error.strerror, str(array.filename)) from None
