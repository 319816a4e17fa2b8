"""The freshness and retry machinery of one tenant's collection handle (the base of
:class:`~groundwire.index.TenantIndex`).

Invariants: every operation runs through :meth:`_TenantHandle._run`, which first reopens the embedded
client when another process changed the persisted generation, retries stale-state chromadb errors on a
fresh client, and never lets a raw chromadb error escape (it becomes :class:`~groundwire.errors.IndexError_`).
Every write bumps the generation *after* it ran (also a failed one: it may have written part).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from ..acl_store import AclStore
from ..errors import CorruptStore, IndexError_, StorageError, explain
from ..freshness import GenerationFile
from .rows import Codec, _acl_rows, _is_chroma_error

if TYPE_CHECKING:
    from .client import Index

__all__: list[str] = []

_T = TypeVar("_T")


class _Unavailable:
    """Stands in for a collection that could not be reopened: every use raises IndexError_ (fail closed);
    the next operation tries to reopen it again."""

    def __init__(self, name: str, exc: BaseException) -> None:
        self._message = (f"the collection {name} could not be opened ({type(exc).__name__}: {exc}); another "
                         "process may be rebuilding the index: retry when it has finished")

    def __getattr__(self, attr: str) -> Any:
        raise IndexError_(self._message)


class _TenantHandle:
    """One tenant's collection with its codec, generation file and ACL store; see
    :class:`~groundwire.index.TenantIndex`."""

    def __init__(
        self, tenant: str, collection: Any, codec: Codec, gen_file: GenerationFile | None = None,
        owner: Index | None = None, acl: AclStore | None = None,
    ) -> None:
        self.tenant = tenant
        self.acl = acl  # the authoritative ACL store (groundwire.acl_store); None: Chroma's metadata only
        self.collection = collection
        self.codec = codec
        self.gen_file = gen_file
        self._owner = owner
        self._local = 0  # writes through this object (the generation without a state dir)
        self._seen = gen_file.read() if gen_file is not None else "0"  # what our client reflects

    # --- generation and freshness --------------------------------------------------------------------

    @property
    def sees_all_writes(self) -> bool:
        """True when :attr:`generation` covers every writer: an embedded store lives in the data dir that
        holds the generation file. With the HTTP backend a writer on another host may use another data
        dir, so caches also compare counts (groundwire.retrieval)."""
        return self.gen_file is not None and self._owner is not None and self._owner._embedded is not None

    @property
    def snapshot_dir(self) -> Path | None:
        """Where groundwire.retrieval keeps this tenant's memory-mapped snapshot; None unless the generation
        covers every writer (:attr:`sees_all_writes`), since a file is trusted for exactly one generation."""
        if not self.sees_all_writes or self._owner is None or self._owner.state_dir is None:
            return None
        return self._owner.state_dir / "snapshots" / f"gw-{self.tenant}"

    @property
    def generation(self) -> str:
        if self.gen_file is None:
            return str(self._local)
        return self.gen_file.read()

    def _fresh(self) -> int:
        """Reopen the client when another process wrote since this process last looked; returns the
        client epoch the next operation runs on."""
        owner = self._owner
        if owner is None:
            return 0
        owner.current()
        current = self.gen_file.read() if self.gen_file is not None else self._seen
        if current != self._seen or isinstance(self.collection, _Unavailable):
            owner.reopen(owner.epoch)
            self._seen = current
        return owner.epoch

    def _retryable(self, exc: BaseException, epoch: int) -> bool:
        # stale-state errors of chromadb (InternalError 'Error finding id', a collection recreated by another
        # process), or anything raised by a client another thread stopped meanwhile
        if self._owner is None:
            return False
        stale = _is_chroma_error(exc) and type(exc).__name__ in ("InternalError", "NotFoundError")
        return stale or self._owner.epoch != epoch

    def _wrote(self) -> None:
        self._local += 1
        if self.gen_file is not None:
            before, after = self.gen_file.bump()
            # someone else wrote between our last look and our bump: reopen before the next operation
            self._seen = after if before == self._seen else f"stale-{before}"

    def _run(self, op: Callable[[], _T], what: str) -> _T:
        """Run an operation on a fresh client; on a stale-state chromadb error reopen and retry (twice, after
        50 and 250 ms: while another process is in the middle of a write, a freshly opened embedded client can
        still miss ids that process has not persisted yet), then raise IndexError_. Every operation
        here is idempotent (reads, upserts, deletes by key), so a retry cannot double a write."""
        epoch = self._fresh()
        errors: list[BaseException] = []
        for pause in (0.05, 0.25, None):
            try:
                return op()
            except Exception as exc:  # noqa: BLE001 - only chromadb's own errors are retried
                storage = self._storage_error(exc)
                if storage is not None:  # a full disk, a size limit, a read-only store: retrying cannot help
                    raise storage from exc
                if not self._retryable(exc, epoch):
                    if _is_chroma_error(exc):  # a deterministic chromadb error: no retry, but never raw
                        raise IndexError_(f"could not {what} the index of tenant {self.tenant!r}: "
                                          f"{type(exc).__name__}: {exc}") from exc
                    raise
                errors.append(exc)
            if pause is None:
                break
            time.sleep(pause)
            assert self._owner is not None
            # the generation is read BEFORE reopening: read after, a write finishing in between would be
            # taken as already seen by a client opened before it, which then stayed stale
            seen = self.gen_file.read() if self.gen_file is not None else self._seen
            self._owner.reopen(epoch)
            self._seen = seen
            epoch = self._owner.epoch
        first, last = errors[0], errors[-1]
        raise IndexError_(
            f"could not {what} the index of tenant {self.tenant!r} ({type(first).__name__}: {first}; still "
            f"after reopening it {len(errors) - 1} times: {last}); if another process is writing to it, "
            "retry when that process has finished"
        ) from last

    def _storage_error(self, exc: BaseException) -> StorageError | None:
        """The :class:`StorageError` naming the disk when ``exc`` (from Chroma) is a storage failure."""
        if not _is_chroma_error(exc):
            return None
        where = self._owner.state_dir if self._owner is not None and self._owner.state_dir else "the index store"
        found = explain(exc, None)
        if isinstance(found, StorageError) and not isinstance(found, CorruptStore):
            return StorageError(f"the index of tenant {self.tenant!r}", where, OSError(found.errno, "write failed"))
        return None

    def _read(self, op: Callable[[], _T]) -> _T:
        return self._run(op, "read")

    def _write(self, op: Callable[[], _T]) -> _T:
        try:
            return self._run(op, "write")
        finally:
            self._wrote()  # after the write (also a failed one: it may have written part)

    def _acl_ready(self) -> AclStore | None:
        """The ACL store, filled from Chroma first if it is new (under its lock, on a fresh client)."""
        store = self.acl
        if store is None or store.complete():
            return store
        with store.writing():  # no writer runs meanwhile (writes hold this lock once the store exists)
            if not store.complete():
                store.fill(self._read(lambda: _acl_rows(self.collection)))
        return store

    def _acl_write(self) -> contextlib.AbstractContextManager[Any]:
        store = self._acl_ready()
        return self._repairing(store) if store is not None else contextlib.nullcontext()

    @contextlib.contextmanager
    def _repairing(self, store: AclStore) -> Iterator[None]:
        """The store's write lock; first, if a writer died between narrowing rows and setting them, the
        store is copied from Chroma again (:meth:`AclStore.interrupted`)."""
        with store.writing():
            if store.interrupted():
                store.fill(self._read(lambda: _acl_rows(self.collection)))
            yield
            store.settled()  # not reached when the write raised: the next writer repairs

    def keyed_hash(self, content_hash: str) -> str:
        """``content_hash`` as stored in metadata: HMAC under the tenant's metadata key when the codec has one
        (``h1:<hex>``; an older unkeyed hash then compares unequal once and the document is re-indexed)."""
        mac = getattr(self.codec, "mac", None)
        return str(mac(content_hash)) if callable(mac) else content_hash

