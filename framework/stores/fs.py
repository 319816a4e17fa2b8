"""Recognising a full disk behind errors of libraries that do not say so (Chroma's "Error in compaction",
SQLite's "database or disk is full" and "disk I/O error" (a file size limit, ``ulimit -f``), an ``OSError`` with
ENOSPC, EDQUOT, EFBIG or EIO anywhere in the exception chain)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

from ..errors import StorageError, storage_error

__all__ = ["disk_full_error", "free_bytes"]

_LOW = 1024 * 1024
_FULL_WORDS = ("no space left", "disk is full", "disk full", "enospc", "quota exceeded")
_IO_WORDS = ("disk i/o error", "file too large")


def free_bytes(path: Path) -> int | None:
    """Bytes available to this process on the file system holding ``path`` (None if unknown)."""
    p = path
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        st = os.statvfs(p)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


def disk_full_error(exc: BaseException, path: Path, what: str) -> StorageError | None:
    """A :class:`StorageError` naming disk space if ``exc`` was caused by a full disk under ``path``, else
    None. Checks the exception chain for ENOSPC/EDQUOT and full-disk wording, then (for errors from native
    code that lose the errno) whether the file system is nearly full (< 1 MiB free)."""
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, StorageError):
            return e
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO):
            return storage_error(what, path, e)
        if any(w in str(e).lower() for w in _FULL_WORDS):
            return storage_error(what, path, OSError(errno.ENOSPC, "No space left on device"))
        if any(w in str(e).lower() for w in _IO_WORDS):  # SQLite's SQLITE_IOERR: errno lost in native code
            return storage_error(what, path, OSError(errno.EIO, "disk I/O error"))
        e = e.__cause__ or e.__context__
    free = free_bytes(path)
    if free is not None and free < _LOW:
        return storage_error(what, path, OSError(errno.ENOSPC, "No space left on device"))
    return None
