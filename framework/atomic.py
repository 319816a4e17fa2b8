"""Replace a file atomically: write a temporary file beside it, then rename it over the target.

Invariants:
- A reader sees the old content or the whole new content, never part of it: the new bytes go to a new file
  in the target's own folder (same file system), created with ``O_EXCL | O_NOFOLLOW`` (never a file or link
  planted there) and renamed onto the target only when the block succeeded; on any failure (also
  ``KeyboardInterrupt``) the temporary file is removed and the target is untouched.
- Permissions: the temporary file is created with ``mode`` (default 0600) filtered by the umask, exactly as
  ``os.open`` does, and keeps it across the rename. 0600 suits files that name documents or hold keys;
  pass 0o666 for the mode an ordinary ``open(path, "w")`` would give.
- Durability is the caller's choice: ``fsync=True`` flushes the file before the rename and then the folder's
  entry after it (a crash right after the call keeps the new content); ``fsync=False`` is atomic but may
  lose the update in a power cut (e.g. caches and generation counters written on every change).
- :func:`create_once` is the no-replace variant: the complete temporary file is hard-linked to the target,
  so the first of several concurrent creators wins and the others read the winner's file.
- Temporary names are ``.<target name>.<random>.tmp`` unless another ``suffix`` is given, so data-dir
  inventories classify a leftover of a crash (``*.tmp``) without opening it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

__all__ = ["atomic_output", "atomic_write", "create_once", "fsync_dir"]

_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


def fsync_dir(folder: Path) -> None:
    """Flush ``folder``'s entries (a rename or unlink in it survives a crash). Raises :class:`OSError`."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_output(dest: Path, *, fsync: bool = True, mode: int = 0o600, suffix: str = ".tmp") -> Iterator[IO[bytes]]:
    """A new binary file beside ``dest`` (creating ``dest``'s folder), renamed onto ``dest`` if the block
    succeeds, else removed. Errors (e.g. ENOSPC) propagate as :class:`OSError` after the clean-up."""
    with _staged(dest, fsync, mode, suffix, os.replace) as out:
        yield out


def atomic_write(dest: Path, data: bytes | str, *, fsync: bool = True, mode: int = 0o600) -> None:
    """Replace ``dest`` with ``data`` (``str`` is written as UTF-8) as :func:`atomic_output` does."""
    with atomic_output(dest, fsync=fsync, mode=mode) as out:
        out.write(_bytes(data))


def create_once(dest: Path, data: bytes | str, *, mode: int = 0o600) -> bool:
    """Create ``dest`` holding ``data`` unless it exists: the first of several concurrent creators wins and
    the others keep the winner's file (a hard link of a complete, flushed temporary file, so a reader never
    sees a partial one). Returns True when this call created it. Durable (file and folder flushed)."""
    try:
        with _staged(dest, True, mode, ".tmp", _link) as out:
            out.write(_bytes(data))
    except FileExistsError:
        return False
    return True


@contextlib.contextmanager
def _staged(
    dest: Path, fsync: bool, mode: int, suffix: str, publish: Callable[[str, Path], None]
) -> Iterator[IO[bytes]]:
    """The temporary file beside ``dest``; ``publish(tmp, dest)`` once the block and the flush succeeded."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = str(dest.with_name(f".{dest.name}.{secrets.token_hex(6)}{suffix}"))
    fd = os.open(tmp, _FLAGS, mode)
    try:
        with os.fdopen(fd, "wb") as out:
            yield out
            if fsync:
                out.flush()
                os.fsync(out.fileno())
        publish(tmp, dest)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if fsync:
        fsync_dir(dest.parent)


def _link(tmp: str, dest: Path) -> None:
    try:
        os.link(tmp, dest)  # FileExistsError when another creator was first
    finally:
        os.unlink(tmp)


def _bytes(data: bytes | str) -> bytes:
    return data.encode("utf-8") if isinstance(data, str) else data
