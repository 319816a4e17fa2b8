"""Cheap detection of a changed configuration file, for every request of a long-lived :class:`~groundwire.Grounder`.

Invariants:
- :meth:`ConfigWatch.current` is True only if the file's bytes hash to the SHA-256 recorded at load time.
- The file is hashed only when its ``stat`` identity (device, inode, size, mtime and ctime in ns) differs from
  the last one whose bytes matched; otherwise the cost is one ``os.stat``. A stat identity is trusted only if
  its mtime was at least :data:`RACY_SECONDS` older than the moment it was recorded (as git does with "racily
  clean" files): an edit in the same timestamp tick and of the same size is still hashed, never missed.
- A missing or unreadable file is "changed" (fail closed).
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from pathlib import Path

__all__ = ["RACY_SECONDS", "ConfigWatch"]

RACY_SECONDS = 2.0


class ConfigWatch:
    def __init__(self, path: Path, expected_sha256: str) -> None:
        self.path = path
        self.expected = expected_sha256
        self._trusted: tuple[int, ...] | None = None
        self._lock = threading.Lock()
        self.hashes = 0  # how many times the file was read and hashed (tests, diagnostics)

    def current(self) -> bool:
        try:
            st = os.stat(self.path)
        except OSError:
            return False
        ident = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        if ident == self._trusted:
            return True
        with self._lock:
            try:
                data = self.path.read_bytes()
            except OSError:
                return False
            self.hashes += 1
            if hashlib.sha256(data).hexdigest() != self.expected:
                return False
            racy = time.time_ns() - max(st.st_mtime_ns, st.st_ctime_ns) < RACY_SECONDS * 1e9
            self._trusted = None if racy else ident
            return True
