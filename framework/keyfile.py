"""Key files for the ``file`` key provider: created private (0600), checked before every use.

Invariants:
- :func:`add_key` creates a missing key file with ``O_CREAT | O_EXCL`` and mode 0600 (its folder 0700), so
  the key is never readable by anybody else, not even for an instant; an existing file is extended only
  when it is a private regular file owned by this user. The new key becomes the current one (the last line).
- Whole or not at all: the extended file is written beside the old one (mode 0600), flushed and renamed over
  it, under a lock (``<file>.lock``) so concurrent additions are all kept. A full disk or a size limit
  (``ulimit -f``) raises :class:`EncryptionError` naming the file and leaves it as it was; appending in place
  used to leave a torn last line (``k2:73EkKFg``) that broke every later use of the file, while the command
  reported success.
- :func:`key_file_problem` is the one check of "who can read the keys", used by the key provider (which
  refuses the file) and by ``groundwire trust-report`` (whose key-access row fails): a key file must be a
  regular file (not a link), owned by the current user, with no group or other permission bits.
- Key material is never printed or logged.
"""

from __future__ import annotations

import os
import stat
from datetime import UTC, datetime
from pathlib import Path

from filelock import FileLock

from .atomic import atomic_write, create_once
from .crypto import EncryptionError
from .errors import os_error_cause

__all__ = ["add_key", "key_file_problem", "new_key_id"]


def new_key_id() -> str:
    return datetime.now(UTC).strftime("k%Y%m%d%H%M%S")


def key_file_problem(path: Path) -> str | None:
    """Why ``path`` is not a safe key file (a sentence ending in what to do), or ``None`` when it is."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return f"the key file {path} does not exist (create one with 'groundwire keys generate --file {path}')"
    if stat.S_ISLNK(st.st_mode):
        return f"the key file {path} is a symbolic link; point [encryption.options] path at the file itself"
    if not stat.S_ISREG(st.st_mode):
        return f"the key file {path} is not a regular file"
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        return f"the key file {path} belongs to another user (uid {st.st_uid}); it must be owned by this user"
    if st.st_mode & 0o077:
        mode = stat.S_IMODE(st.st_mode)
        return (f"the key file {path} can be read or written by other users (mode {mode:04o}); "
                f"run 'chmod 600 {path}'")
    return None


def add_key(path: Path, key_id: str, key_b64: str) -> None:
    """Append ``key_id:key_b64`` to the key file at ``path`` (created 0600 if missing); it becomes current."""
    line = f"{key_id}:{key_b64}\n".encode()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    # a new file appears whole or not at all (a killed first write must not leave an empty key file that a
    # re-run would then keep); an existing one (or one a concurrent writer just created) gets the line appended
    if create_once(path, line, mode=0o600):
        return
    with FileLock(str(path.with_name(path.name + ".lock")), mode=0o600, thread_local=False):
        problem = key_file_problem(path)
        if problem:
            raise EncryptionError(problem)
        existing = path.read_bytes()
        if any(ln.split(b":", 1)[0].strip() == key_id.encode() for ln in existing.splitlines() if b":" in ln):
            raise EncryptionError(f"the key file {path} already has a key with id {key_id!r}; choose another --id")
        if existing and not existing.endswith(b"\n"):
            line = b"\n" + line
        try:
            atomic_write(path, existing + line, fsync=True, mode=0o600)
        except OSError as exc:
            raise EncryptionError(f"could not add key {key_id!r} to the key file {path}: {os_error_cause(exc)}; "
                                  "the file is unchanged (free space or raise the limit, then run the command again)"
                                  ) from None
