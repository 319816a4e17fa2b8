"""Cross-process freshness of the index: the persisted per-tenant generation and embedded-client reopening.

Invariants:
- :class:`GenerationFile` values change after every write to a tenant (any process on the data dir) and
  are only compared for equality; replacement is atomic (temp file + ``os.replace``) and serialized by
  ``flock`` so counters never repeat; the random suffix keeps values unique even after a crash.
- One :class:`EmbeddedClient` per persist directory per process: every :class:`~groundwire.index.Index`
  on that directory adopts the newest client (chromadb shares one ``System`` per path anyway), and a
  reopened directory's old ``System`` is stopped (not leaked).
"""

from __future__ import annotations

import contextlib
import hashlib
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .atomic import atomic_write
from .errors import IndexError_

__all__ = [
    "EmbeddedClient", "GenerationFile", "cached_system", "embedded_for", "flock", "persist_dir", "reopen_embedded",
]


class GenerationFile:
    """The persisted write generation of one tenant: ``"<counter>-<random>"`` in one small file.

    :meth:`bump` replaces the file atomically (temp file + ``os.replace``) under an ``flock`` so two
    writers never reuse a counter; the random suffix keeps the value unique even if a crash lost the
    last replacement. Readers only compare values for equality; a missing file reads as ``"0"``.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> str:
        """The current value; damaged content reads as a stable value derived from the bytes (so caches
        reload once, not on every call); an unreadable file raises IndexError_ naming it."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return "0"
        except OSError as exc:
            raise IndexError_(
                f"cannot read the index generation file {self.path} ({exc}); every process using this data "
                "dir must be able to read and replace it: check its permissions"
            ) from exc
        try:
            return raw.decode("ascii").strip() or "0"
        except UnicodeDecodeError:
            return "damaged-" + hashlib.sha256(raw).hexdigest()[:16]

    def bump(self) -> tuple[str, str]:
        """Advance the generation; returns (value before, value after)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with flock(self.path.with_name(self.path.name + ".lock")):
            before = self.read()
            try:
                counter = int(before.split("-", 1)[0]) + 1
            except ValueError:
                counter = 1
            after = f"{counter}-{secrets.token_hex(6)}"
            atomic_write(self.path, after, fsync=False, mode=0o666)  # every process of the data dir reads it
        return before, after


@contextlib.contextmanager
def flock(path: Path) -> Iterator[None]:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: the random suffix still keeps values unique
        yield
        return
    with open(path, "a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def persist_dir(client: Any) -> Path | None:
    try:
        settings = client.get_settings()
    except Exception:  # noqa: BLE001 - a client without settings (test double): no persisted state
        return None
    if getattr(settings, "is_persistent", False) and getattr(settings, "persist_directory", None):
        return Path(settings.persist_directory)
    return None


def reopen_embedded(client: Any) -> tuple[Any, Any]:
    """A fresh embedded client for the same directory. chromadb caches one ``System`` per path
    (``SharedSystemClient``) whose segments do not see other processes' writes, so drop it from that
    cache first. Returns the new client and the old system, which the caller stops (else its memory
    stays: ~2 MB per reopen at 5k rows). ``client._system`` looks the cache up, so it is taken here."""
    import chromadb
    from chromadb.api.shared_system_client import SharedSystemClient

    settings = client.get_settings()
    ident = SharedSystemClient._get_identifier_from_settings(settings)
    with SharedSystemClient._refcount_lock:
        old = SharedSystemClient._identifier_to_system.pop(ident, None)
        SharedSystemClient._identifier_to_refcount.pop(ident, None)
    return chromadb.PersistentClient(path=settings.persist_directory, settings=settings), old


@dataclass
class EmbeddedClient:
    """The current embedded client of one directory in this process, shared by every :class:`Index` on it
    (they share chromadb's ``System`` anyway); ``epoch`` counts reopenings."""

    client: Any
    epoch: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    system: Any = None  # chromadb's System behind ``client`` when registered or reopened


_EMBEDDED: dict[str, EmbeddedClient] = {}
_EMBEDDED_LOCK = threading.Lock()


def cached_system(client: Any) -> Any:
    """The ``System`` chromadb's process cache holds for ``client``'s directory now (``None``: none)."""
    from chromadb.api.shared_system_client import SharedSystemClient

    try:
        ident = SharedSystemClient._get_identifier_from_settings(client.get_settings())
    except Exception:  # noqa: BLE001 - not an embedded chromadb client
        return None
    return SharedSystemClient._identifier_to_system.get(ident)


def embedded_for(path: Path, client: Any) -> EmbeddedClient:
    """The registry entry of ``path``. If chromadb's cache now holds another ``System`` for it than the one
    registered (the cache was cleared and a new client made, e.g. after the folder was deleted and
    recreated), the given client is adopted and the epoch moves, so every Index of the directory rebinds
    instead of reading the old, in-memory state of a folder that no longer exists."""
    system = cached_system(client)
    with _EMBEDDED_LOCK:
        entry = _EMBEDDED.get(str(path.resolve()))
        if entry is None:
            entry = _EMBEDDED[str(path.resolve())] = EmbeddedClient(client, system=system)
        elif system is not None and entry.system is not None and system is not entry.system:
            with entry.lock:
                entry.client, entry.system = client, system
                entry.epoch += 1
        return entry
