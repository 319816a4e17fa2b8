"""The sync lock: one ``groundwire sync`` (or rebuild) per data dir at a time, across processes.

An OS file lock (:mod:`filelock`: ``flock`` on POSIX) on ``<data_dir>/sync.lock``; the kernel drops it
when the holder exits, even on SIGKILL, so a crashed sync never leaves a stale lock. The holder writes
its pid and start time to ``<data_dir>/sync.lock.owner`` (informational only, for the message a second
sync prints). Readers (``ask``) never take this lock: they read the index while a sync writes it.

Behaviour of a second sync: without ``wait`` it raises :class:`SyncBusy` at once (CLI: exit 1 with the
holder's pid); with ``wait`` it prints one "waiting" line and blocks until the lock is free or
``timeout`` seconds passed (``None``: no limit), then raises :class:`SyncBusy`.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from .errors import SyncBusy

__all__ = ["SyncBusy", "sync_lock"]


def _owner(path: Path) -> str:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        since = time.strftime("%H:%M:%S", time.localtime(float(data["since"])))
        return f"pid {int(data['pid'])}, since {since}"
    except (OSError, ValueError, KeyError, TypeError):
        return "pid unknown"


@contextmanager
def sync_lock(
    data_dir: Path,
    *,
    wait: bool = False,
    timeout: float | None = None,
    on_wait: Callable[[str], None] | None = None,
) -> Iterator[None]:
    """Hold the sync lock of ``data_dir`` for the body of the ``with`` block."""
    data_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(data_dir / "sync.lock"), thread_local=False)
    owner_file = data_dir / "sync.lock.owner"
    try:
        lock.acquire(timeout=0)
    except Timeout:
        holder = _owner(owner_file)
        if not wait:
            raise SyncBusy(
                f"another sync is running on {data_dir} ({holder}); "
                "wait for it to finish or pass --wait to queue behind it"
            ) from None
        if on_wait is not None:
            on_wait(f"another sync is running on {data_dir} ({holder}); waiting for it to finish")
        try:
            lock.acquire(timeout=-1 if timeout is None else timeout)
        except Timeout:
            raise SyncBusy(
                f"another sync is still running on {data_dir} ({_owner(owner_file)}) after {timeout:g} s; "
                "try again later or raise --timeout"
            ) from None
    try:
        try:
            owner_file.write_text(json.dumps({"pid": os.getpid(), "since": time.time()}), encoding="utf-8")
        except OSError:
            pass  # informational only
        yield
    finally:
        lock.release()
