"""The keyed checkpoint ("head") of an audit log, kept apart from the log, so removing lines is detected.

A hash chain alone cannot tell a log whose last lines were deleted from a shorter log. So after every
append, under the log's lock, the writer stores ``{"seq", "hash", "kid", "mac"}`` of the last line in
``<audit dir>/.checkpoints/<log name>.json`` (or ``[audit] checkpoint_dir``), where
``mac = HMAC-SHA256(k, "<log name>:<seq>:<hash>")``. The MAC key ``k`` is derived (HKDF-SHA256) from the
current key of the encryption keyring when ``[encryption]`` is enabled (``kid`` = that key id), else from a
random local secret ``<checkpoint dir>/key`` (``kid`` = ``local``, file mode 0600).

Invariants:
- The checkpoint is written atomically (temp file + fsync + rename + directory fsync).
- A checkpoint can only be forged with its MAC key: with the keyring, whoever can edit the data dir but does
  not hold the key cannot hide a truncation; with the local secret, the checkpoint protects against
  accidents and against tampering by anyone who cannot read that file.
- ``groundwire keys rotate`` re-signs the checkpoint with the new current key.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .atomic import atomic_write, create_once

__all__ = ["Head", "HeadKeyError", "checkpoint_dir", "head_path", "read_head", "sign_head", "write_head"]

LOCAL = "local"
_INFO = b"groundwire audit checkpoint v1"


class HeadKeyError(Exception):
    """The key that signed a checkpoint is not available (internal; reported as a chain problem)."""


@dataclass(frozen=True, slots=True)
class Head:
    seq: int
    hash: str
    kid: str
    mac: str


def checkpoint_dir(log_path: Path, configured: Path | None = None) -> Path:
    return configured if configured is not None else log_path.parent / ".checkpoints"


def head_path(log_path: Path, configured: Path | None = None) -> Path:
    return checkpoint_dir(log_path, configured) / f"{log_path.stem}.json"


@functools.lru_cache(maxsize=32)
def _derive(material: bytes) -> bytes:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(material)


def _local_secret(folder: Path, create: bool) -> bytes:
    p = folder / "key"
    try:
        return bytes.fromhex(p.read_text(encoding="ascii").strip())
    except FileNotFoundError:
        if not create:
            raise HeadKeyError(f"the local checkpoint key {p} is missing") from None
    create_once(p, secrets.token_hex(32))  # first writer wins; a concurrent creator reads the winner's secret
    return bytes.fromhex(p.read_text(encoding="ascii").strip())


def _key(kid: str, codec: Any, folder: Path, create: bool) -> bytes:
    if kid == LOCAL:
        return _derive(_local_secret(folder, create))
    keyring = getattr(codec, "keyring", None)
    if keyring is None or kid not in keyring.keys:
        raise HeadKeyError(f"the checkpoint is signed with key id {kid!r}, which the configured keyring lacks")
    return _derive(bytes(keyring.keys[kid]))


def _mac(key: bytes, log: str, seq: int, digest: str) -> str:
    return hmac.new(key, f"{log}:{seq}:{digest}".encode(), hashlib.sha256).hexdigest()


def sign_head(log: str, seq: int, digest: str, codec: Any, folder: Path) -> Head:
    """A checkpoint of line ``seq`` (hash ``digest``) signed with the current key (or the local secret)."""
    kid = str(codec.current) if getattr(codec, "keyring", None) is not None else LOCAL
    return Head(seq, digest, kid, _mac(_key(kid, codec, folder, create=True), log, seq, digest))


def read_head(log_path: Path, codec: Any, configured: Path | None = None) -> Head | None:
    """The stored checkpoint of ``log_path`` after checking its MAC; None when there is none.

    :raises HeadKeyError: the signing key is unavailable
    :raises ValueError: the checkpoint is malformed or its MAC does not match (forged or damaged)
    """
    p = head_path(log_path, configured)
    try:
        raw = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"the checkpoint {p.name} is unreadable ({exc})") from None
    try:
        head = Head(int(raw["seq"]), str(raw["hash"]), str(raw["kid"]), str(raw["mac"]))
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"the checkpoint {p.name} is malformed") from None
    key = _key(head.kid, codec, p.parent, create=False)
    if not hmac.compare_digest(_mac(key, log_path.stem, head.seq, head.hash), head.mac):
        raise ValueError("the checkpoint's MAC does not match (forged, or signed with another key)")
    return head


def write_head(log_path: Path, head: Head, configured: Path | None = None, fsync: bool = True) -> None:
    """Replace the checkpoint atomically. Raises :class:`OSError` (e.g. ENOSPC) on failure."""
    body = json.dumps({"seq": head.seq, "hash": head.hash, "kid": head.kid, "mac": head.mac})
    atomic_write(head_path(log_path, configured), body, fsync=fsync)
