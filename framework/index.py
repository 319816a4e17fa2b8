"""The Chroma-backed index: one collection per tenant, chunk payloads behind a codec.

Invariants:
- Tenant isolation: :meth:`Index.tenant` returns a :class:`TenantIndex` bound to exactly one collection
  (``gw-<tenant>``); no method takes a tenant argument, so no query can cross tenants.
- Security trimming in the query: :meth:`TenantIndex.query` always pre-filters by the caller's principals,
  the deny list and the configured connectors. There is no unfiltered query method.
- Sensitive text (chunk text, title, URI, location) is stored only in the ``documents`` payload, passed
  through a :class:`Codec` (the identity by default, AES-GCM with the ``crypto`` extra; see issue 7).
  Metadata holds ids, ACL tokens, connector name, position, versions and hashes only; with a tenant data
  key (:mod:`groundwire.datakeys`) the content hash is keyed (:meth:`TenantIndex.keyed_hash`, HMAC), so it
  cannot confirm a guessed document.
- Chroma telemetry is off.
- Cross-process freshness: every write (upsert, delete, ACL-only update, dropping a tenant) replaces
  ``<state dir>/gw-<tenant>.generation`` atomically (temp file + rename) *after* the write, with a
  counter and a random suffix (unique even after a crash). The state dir is the embedded client's
  persist directory (or the one given to :class:`Index`, e.g. for the HTTP backend). Every read first
  compares the persisted generation with the last one this process saw; when another process changed
  it, the embedded client is reopened (its in-memory HNSW segments are stale and would fail with
  ``Error finding id``) before the read. A read that still fails is retried once on a fresh client,
  then raises :class:`~groundwire.errors.IndexError_`; raw chromadb errors never escape a read.
- Writers must be serialized (``groundwire sync`` holds the sync lock); readers may be any number of
  processes sharing the data dir.
- Authoritative ACLs (embedded store): every write also maintains :class:`groundwire.acl_store.AclStore`
  (narrowed or deleted *before* the Chroma write, set *after* it, under a cross-process lock), and every read
  that returns chunks (:meth:`TenantIndex.get_chunks`, :meth:`TenantIndex.query`) keeps a chunk only if that
  store's row grants the principals too, with the meet of both ACLs on the returned chunk. A reader whose
  Chroma state lags cannot serve a revoked or deleted chunk; on a disagreement it reopens its client and reads
  once more.
- Rebuild without loss (live pointer): the collection ``gw-<tenant>`` is the tenant's anchor. When its
  metadata holds ``gw_live``, the tenant's chunks live in that collection (``gw-<tenant>.r<n>``, made by
  :meth:`Index.begin_rebuild` and switched to by :meth:`Index.commit_rebuild`, one metadata update and a
  generation bump); otherwise in the anchor itself. The live collection must name the same tenant in
  its own metadata. A handle re-reads the pointer at most every ``pointer_seconds`` (and on every
  reopen); the previous generation is kept until the next rebuild, so a reader that opened it finishes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np

from .acl_store import Acl, AclStore, meet, permits
from .datakeys import tenant_codec
from .embedding import Vectors
from .errors import IndexError_
from .freshness import GenerationFile, embedded_for, persist_dir, reopen_embedded
from .models import AccessControl, Chunk, validate_tenant

__all__ = [
    "NOBODY", "Codec", "DocState", "GenerationFile", "IdentityCodec", "Index", "TenantIndex", "doc_key", "make_client",
]

log = logging.getLogger("groundwire.index")

os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

NOBODY = "nobody:"  # sentinel for an empty ACL list: no user can hold it (normalize_principal rejects it)
_PAGE = 5000
_WRITE_ROWS = 4000  # rows per upsert (under chromadb's max batch size of 5461)
_T = TypeVar("_T")


class Codec(Protocol):
    """Encodes chunk payloads for storage (e.g. encryption at rest)."""

    name: str

    def encode(self, plaintext: str, chunk_id: str) -> str: ...

    def decode(self, stored: str, chunk_id: str) -> str: ...


class IdentityCodec:
    name = "identity"

    def encode(self, plaintext: str, chunk_id: str) -> str:
        return plaintext

    def decode(self, stored: str, chunk_id: str) -> str:
        return stored


def doc_key(connector: str, doc_id: str) -> str:
    """A short stable key for a document, used in chunk ids and metadata."""
    return hashlib.sha256(f"{connector}\x00{doc_id}".encode()).hexdigest()[:24]


@dataclass(frozen=True, slots=True)
class DocState:
    version: str
    content_hash: str
    acl_fingerprint: str
    chunks: int


def make_client(
    backend: str, path: Path | None = None, host: str = "127.0.0.1", port: int = 8000, ssl: bool = False
) -> Any:
    """Create a Chroma client with telemetry off: embedded ``PersistentClient`` or ``HttpClient``."""
    import chromadb
    from chromadb.config import Settings

    settings = Settings(anonymized_telemetry=False, allow_reset=False)
    if backend == "embedded":
        assert path is not None
        path.mkdir(parents=True, exist_ok=True)
        return chromadb.PersistentClient(path=str(path), settings=settings)
    if backend == "http":
        return chromadb.HttpClient(host=host, port=port, ssl=ssl, settings=settings)
    raise IndexError_(f"unknown index backend {backend!r}: use 'embedded' or 'http'")


class _Unavailable:
    """Stands in for a collection that could not be reopened: every use raises IndexError_ (fail closed);
    the next operation tries to reopen it again."""

    def __init__(self, name: str, exc: BaseException) -> None:
        self._message = (f"the collection {name} could not be opened ({type(exc).__name__}: {exc}); another "
                         "process may be rebuilding the index: retry when it has finished")

    def __getattr__(self, attr: str) -> Any:
        raise IndexError_(self._message)


class Index:
    """Entry point to the store; hands out one :class:`TenantIndex` per tenant.

    ``state_dir`` holds the per-tenant generation files (default: the embedded client's persist
    directory; give one for the HTTP backend so processes sharing a data dir see each other's writes).
    """

    def __init__(
        self, client: Any, model_id: str, dimension: int, codec: Codec | None = None,
        state_dir: Path | None = None, pointer_seconds: float = 2.0,
    ) -> None:
        self.client = client
        self.model_id = model_id
        self.dimension = dimension
        self.codec: Codec = codec or IdentityCodec()
        embedded_dir = persist_dir(client)
        self._embedded = embedded_for(embedded_dir, client) if embedded_dir is not None else None
        if self._embedded is not None and self._embedded.epoch:  # reopened before: the given one is stopped
            self.client = self._embedded.client
        self._epoch = self._embedded.epoch if self._embedded is not None else 0
        self.state_dir = state_dir or embedded_dir
        self._tenants: dict[str, TenantIndex] = {}
        self._lock = threading.Lock()
        self._open_lock = threading.RLock()  # get_or_create_collection from several threads at once races
        self.pointer_seconds = pointer_seconds
        self._checked: dict[str, float] = {}
        self._acl: dict[str, AclStore] = {}
        self.reopens = 0

    def acl_store(self, tenant: str) -> AclStore | None:
        """The authoritative ACL store of ``tenant`` (embedded stores only: a Chroma server is one process,
        and writers on other hosts would not update a store in this data dir)."""
        if self._embedded is None or self.state_dir is None:
            return None
        with self._lock:
            store = self._acl.get(tenant)
            if store is None:
                store = self._acl[tenant] = AclStore(self.state_dir / "acl" / f"gw-{tenant}.sqlite")
            return store

    def generation_file(self, tenant: str) -> GenerationFile | None:
        return None if self.state_dir is None else GenerationFile(self.state_dir / f"gw-{tenant}.generation")

    @property
    def epoch(self) -> int:
        return self._embedded.epoch if self._embedded is not None else self._epoch

    def current(self) -> None:
        """Adopt the directory's current client if another Index of this process reopened it (cheap)."""
        shared = self._embedded
        if shared is not None and self._epoch != shared.epoch:
            with self._lock:
                if self._epoch != shared.epoch:
                    self.client, epoch = shared.client, shared.epoch
                    self._rebind()
                    self._epoch = epoch

    def reopen(self, seen_epoch: int) -> None:
        """Reopen the embedded client (another process wrote, or a read failed) unless someone in this
        process already did since ``seen_epoch``; then rebind every tenant's collection."""
        shared = self._embedded
        if shared is None:
            with self._lock:
                self._rebind()
                self._epoch += 1
            return
        with shared.lock:
            if shared.epoch == seen_epoch:
                shared.client, old = reopen_embedded(shared.client)
                shared.epoch += 1
                self.reopens += 1
                if old is not None:
                    with contextlib.suppress(Exception):  # in-flight reads on it fail and are retried
                        old.stop()
        self.current()

    def _rebind(self) -> None:
        for t in self._tenants.values():
            try:
                t.collection = self._live_collection(t.tenant)
            except Exception as exc:  # noqa: BLE001 - e.g. dropped by another process's rebuild
                t.collection = _Unavailable(f"gw-{t.tenant}", exc)
            self._checked[t.tenant] = time.monotonic()

    def _metadata(self, tenant: str) -> dict[str, Any]:
        return {"hnsw:space": "cosine", "gw_tenant": tenant, "gw_model": self.model_id, "gw_codec": self.codec.name}

    def _anchor(self, tenant: str) -> Any:
        return self.client.get_or_create_collection(
            f"gw-{tenant}", metadata=self._metadata(tenant), embedding_function=None
        )

    def live_name(self, tenant: str) -> str:
        """The name of the collection holding ``tenant``'s chunks now (see the module docstring)."""
        validate_tenant(tenant)
        live = (self._anchor(tenant).metadata or {}).get("gw_live")
        if not live:
            return f"gw-{tenant}"
        if not str(live).startswith(f"gw-{tenant}.r"):
            raise IndexError_(f"the live pointer of tenant {tenant!r} names {live!r}; refusing to use it")
        return str(live)

    def _live_collection(self, tenant: str) -> Any:
        name = self.live_name(tenant)
        if name == f"gw-{tenant}":
            return self._anchor(tenant)
        return self.client.get_collection(name, embedding_function=None)

    def _check(self, tenant: str, col: Any) -> None:
        meta = col.metadata or {}
        if meta.get("gw_tenant") != tenant:
            raise IndexError_(f"collection {col.name} does not belong to tenant {tenant!r}; refusing to use it")
        if meta.get("gw_model") != self.model_id:
            raise IndexError_(
                f"the index for tenant {tenant!r} was built with embedder {meta.get('gw_model')!r}, "
                f"not {self.model_id!r}; run 'groundwire sync --rebuild' to re-index"
            )
        if meta.get("gw_codec", "identity") != self.codec.name:
            raise IndexError_(
                f"the index for tenant {tenant!r} is stored with codec {meta.get('gw_codec')!r} but "
                f"{self.codec.name!r} is configured; configure the same key provider"
            )

    def tenant(self, tenant: str) -> TenantIndex:
        validate_tenant(tenant)
        self.current()
        found = self._tenants.get(tenant)
        if found is not None and time.monotonic() - self._checked.get(tenant, 0.0) < self.pointer_seconds:
            return found
        with self._open_lock:
            found = self._tenants.get(tenant)
            if found is not None and time.monotonic() - self._checked.get(tenant, 0.0) < self.pointer_seconds:
                return found
            col = self._live_collection(tenant)
            self._checked[tenant] = time.monotonic()
            if found is not None and found.collection.name == col.name:
                return found
            self._check(tenant, col)
            self._tenants[tenant] = TenantIndex(tenant, col, tenant_codec(self.codec, tenant),
                                                self.generation_file(tenant), self, acl=self.acl_store(tenant))
            return self._tenants[tenant]

    def live_model(self, tenant: str) -> str | None:
        """The embedder model id the tenant's live collection was built with (None: no chunks yet)."""
        col = self._live_collection(tenant)
        if col.count() == 0:
            return None
        model = (col.metadata or {}).get("gw_model")
        return str(model) if model is not None else None

    # --- rebuild without loss --------------------------------------------------------------------------

    def begin_rebuild(self, tenant: str) -> TenantIndex:
        """A new, empty collection beside the live one; fill it, then :meth:`commit_rebuild` or
        :meth:`abort_rebuild`. Readers keep using the live collection meanwhile."""
        validate_tenant(tenant)
        with self._open_lock:
            col = self.client.create_collection(
                f"gw-{tenant}.r{time.time_ns()}", metadata=self._metadata(tenant), embedding_function=None
            )
            return TenantIndex(tenant, col, tenant_codec(self.codec, tenant))

    def commit_rebuild(self, staged: TenantIndex) -> None:
        """Make ``staged`` the live collection (one metadata update of the anchor, then a generation bump
        so other processes reopen), then delete the generations older than the one it replaces."""
        tenant = staged.tenant
        with self._open_lock:
            anchor = self._anchor(tenant)
            previous = self.live_name(tenant)
            meta = {k: v for k, v in (anchor.metadata or {}).items() if k != "hnsw:space"}
            meta.update(gw_live=staged.collection.name, gw_model=self.model_id, gw_codec=self.codec.name)
            store = self.acl_store(tenant)
            with store.writing() if store is not None else contextlib.nullcontext():
                rows = _acl_rows(staged.collection) if store is not None else []
                if store is not None:  # before the switch: rows the staged collection lacks go, others narrow
                    store.fill_narrowed(rows)
                anchor.modify(metadata=meta)
                live = TenantIndex(tenant, staged.collection, tenant_codec(self.codec, tenant),
                                   self.generation_file(tenant), self, acl=store)
                self._tenants[tenant] = live
                self._checked[tenant] = time.monotonic()
                live._wrote()
                if store is not None:
                    store.fill(rows)
            keep = {staged.collection.name, previous, f"gw-{tenant}"}
            for col in self.client.list_collections():
                name = col if isinstance(col, str) else col.name
                if name.startswith(f"gw-{tenant}.r") and name not in keep:
                    self.client.delete_collection(name)
            if previous != f"gw-{tenant}" and anchor.get(include=[], limit=1)["ids"]:
                anchor.delete(where={"connector": {"$ne": ""}})  # pre-pointer chunks, two generations old

    def abort_rebuild(self, staged: TenantIndex) -> None:
        """Delete a staged collection that will not be used (the live one is untouched)."""
        try:
            self.client.delete_collection(staged.collection.name)
        except Exception:  # noqa: BLE001 - best effort: an orphan is deleted by the next rebuild
            log.warning("could not delete the staged collection %s", staged.collection.name)

    def drop_tenant(self, tenant: str) -> None:
        """Delete every collection of ``tenant`` (tenant purge, tests; ``sync --rebuild`` never calls it).

        The records are deleted first, through the API: Chroma's ``delete_collection`` leaves list-valued
        metadata (the ACL lists) behind in ``embedding_metadata_array`` (chroma-core/chroma#7594), where
        records written later with a reused row id would inherit them."""
        validate_tenant(tenant)
        with self._open_lock:
            self._tenants.pop(tenant, None)
            self._checked.pop(tenant, None)
            store = self.acl_store(tenant)
            if store is not None:
                with store.writing():
                    store.delete(everything=True)
            for col in self.client.list_collections():
                name = col if isinstance(col, str) else col.name
                if name == f"gw-{tenant}" or name.startswith(f"gw-{tenant}.r"):
                    with contextlib.suppress(Exception):  # already gone
                        c = self.client.get_collection(name, embedding_function=None)
                        while ids := c.get(include=[], limit=500)["ids"]:
                            c.delete(ids=ids)
                        self.client.delete_collection(name)
        gen = self.generation_file(tenant)
        if gen is not None:
            gen.bump()


def _meta_acl(meta: Any) -> Acl | None:
    """(allow, deny) of a Chroma row's metadata without the sentinel; None if missing or malformed."""
    if not isinstance(meta, dict):
        return None
    allow, deny = meta.get("acl_allow"), meta.get("acl_deny")
    if not isinstance(allow, list) or not isinstance(deny, list):
        return None
    return frozenset(map(str, allow)) - {NOBODY}, frozenset(map(str, deny)) - {NOBODY}


def _acl_rows(collection: Any) -> list[tuple[str, str, str, Acl]]:
    """(id, doc key, connector, ACL) of every row of ``collection`` (rows with broken ACL metadata left out)."""
    out: list[tuple[str, str, str, Acl]] = []
    offset = 0
    while True:
        got = collection.get(include=["metadatas"], limit=_PAGE, offset=offset)
        for cid, m in zip(got["ids"], got["metadatas"] or [], strict=True):
            acl = _meta_acl(m)
            if acl is not None:
                out.append((cid, str(m.get("doc_key", "")), str(m.get("connector", "")), acl))
        if len(got["ids"]) < _PAGE:
            return out
        offset += _PAGE


def _acl_meta(acl: AccessControl) -> dict[str, list[str]]:
    return {"acl_allow": sorted(acl.allow) or [NOBODY], "acl_deny": sorted(acl.deny) or [NOBODY]}


def principal_filter(principals: Iterable[str], connectors: Sequence[str]) -> dict[str, Any]:
    """The Chroma ``where`` clause that admits only chunks the principals may read from the connectors."""
    ps = sorted(set(principals) - {NOBODY})
    if not ps or not connectors:
        raise ValueError("a query needs at least one principal and one connector")
    allow: dict[str, Any] = (
        {"acl_allow": {"$contains": ps[0]}}
        if len(ps) == 1
        else {"$or": [{"acl_allow": {"$contains": p}} for p in ps]}
    )
    clauses: list[dict[str, Any]] = [{"connector": {"$in": list(connectors)}}, allow]
    clauses += [{"acl_deny": {"$not_contains": p}} for p in ps]
    return {"$and": clauses}


def _readable(meta: Any, principals: set[str], connectors: set[str]) -> bool:
    """The principal_filter() rule on one row's metadata; fail closed on a row whose ACL keys are missing
    or malformed (seen while another process rewrites the row: its metadata can be read half-merged)."""
    if not isinstance(meta, dict):
        return False
    allow, deny = meta.get("acl_allow"), meta.get("acl_deny")
    if not isinstance(allow, list) or not isinstance(deny, list) or not deny:
        return False
    return meta.get("connector") in connectors and bool(principals.intersection(allow)) \
        and not principals.intersection(deny)


def _is_chroma_error(exc: BaseException) -> bool:
    return type(exc).__module__.startswith("chromadb")


class TenantIndex:
    """The chunks of one tenant. Every read is filtered by principals and connectors.

    :attr:`generation` is an opaque value that changes after every write to this tenant, by this process
    or (with a state dir) by any other; in-memory caches (groundwire.retrieval) compare it.
    """

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
        with store.writing():
            if not store.complete():
                if self._owner is not None:
                    self._owner.reopen(self._owner.epoch)
                    self._seen = self.gen_file.read() if self.gen_file is not None else self._seen
                store.fill(self._read(lambda: _acl_rows(self.collection)))
        return store

    def _acl_write(self) -> contextlib.AbstractContextManager[Any]:
        store = self._acl_ready()
        return store.writing() if store is not None else contextlib.nullcontext()

    # --- writes ------------------------------------------------------------------------------------

    def add_document_chunks(
        self,
        chunks: Sequence[Chunk],
        vectors: Vectors,
        version: str,
        content_hash: str,
    ) -> None:
        """Store the chunks of one or more documents (replace them first with :meth:`delete_documents`)."""
        self.add_documents([(chunks, vectors, version, content_hash)])

    def add_documents(self, docs: Sequence[tuple[Sequence[Chunk], Vectors, str, str]]) -> None:
        """Store several documents' ``(chunks, vectors, version, content_hash)`` in as few upserts as the
        store allows (one per ``_WRITE_ROWS`` rows)."""
        ids: list[str] = []
        payloads: list[str] = []
        metas: list[dict[str, Any]] = []
        embs: list[Any] = []
        acls: list[tuple[Any, Any]] = []
        for chunks, vectors, version, content_hash in docs:
            if not chunks:
                continue
            for c in chunks:
                ids.append(c.id)
                acls.append((c.acl.allow, c.acl.deny))
                body: dict[str, Any] = {"text": c.text, "title": c.title, "uri": c.uri, "location": c.location}
                if c.annotations:
                    body["annotations"] = dict(c.annotations)
                payloads.append(self.codec.encode(json.dumps(body, ensure_ascii=False), c.id))
                metas.append(
                    {
                        "doc_id": c.doc_id,
                        "doc_key": doc_key(c.connector, c.doc_id),
                        "connector": c.connector,
                        "position": c.position,
                        "version": version,
                        "content_hash": self.keyed_hash(content_hash),
                        "acl_fp": c.acl.fingerprint(),
                        **_acl_meta(c.acl),
                    }
                )
            embs.append(np.asarray(vectors, dtype=np.float32).reshape(len(chunks), -1))
        if not ids:
            return
        emb = np.concatenate(embs)
        rows = [(cid, m["doc_key"], m["connector"], acl) for cid, m, acl in zip(ids, metas, acls, strict=True)]

        def op() -> None:
            for i in range(0, len(ids), _WRITE_ROWS):
                j = i + _WRITE_ROWS
                self.collection.upsert(ids=ids[i:j], embeddings=emb[i:j], documents=payloads[i:j],
                                       metadatas=metas[i:j])

        with self._acl_write():
            if self.acl is not None:
                self.acl.narrow({cid: acl for cid, _, _, acl in rows})
            # the generation moves after the write: a cache loaded during it sees the old value and reloads
            self._write(op)
            if self.acl is not None:
                self.acl.put(rows)

    def keyed_hash(self, content_hash: str) -> str:
        """``content_hash`` as stored in metadata: HMAC under the tenant's metadata key when the codec has one
        (``h1:<hex>``; an older unkeyed hash then compares unequal once and the document is re-indexed)."""
        mac = getattr(self.codec, "mac", None)
        return str(mac(content_hash)) if callable(mac) else content_hash

    def chunk_ids(self, connector: str, doc_ids: Iterable[str]) -> set[str]:
        """The ids of every stored chunk of these documents."""
        keys = [doc_key(connector, d) for d in doc_ids]
        out: set[str] = set()
        for i in range(0, len(keys), 500):
            part = keys[i : i + 500]
            out.update(self._read(lambda p=part: self.collection.get(  # type: ignore[misc]
                where={"doc_key": {"$in": p}}, include=[]))["ids"])
        return out

    def stored_chunks(self, connector: str, doc_ids: Iterable[str]) -> dict[str, tuple[str, Any]]:
        """chunk id -> (stored payload as written, i.e. encoded; its vector) for every stored chunk of these
        documents (ingestion reuses the vectors of chunks an edit did not change)."""
        keys = [doc_key(connector, d) for d in doc_ids]
        out: dict[str, tuple[str, Any]] = {}
        for i in range(0, len(keys), 500):
            part = keys[i : i + 500]
            got = self._read(lambda p=part: self.collection.get(  # type: ignore[misc]
                where={"doc_key": {"$in": p}}, include=["documents", "embeddings"]))
            embs = got["embeddings"] if got["embeddings"] is not None else [None] * len(got["ids"])
            for cid, doc, emb in zip(got["ids"], got["documents"] or [], embs, strict=True):
                out[cid] = (doc, emb)
        return out

    def delete_ids(self, ids: Sequence[str]) -> None:
        def op() -> None:
            for i in range(0, len(ids), 500):
                self.collection.delete(ids=list(ids[i : i + 500]))

        with self._acl_write():
            if self.acl is not None:
                self.acl.delete(ids=ids)
            self._write(op)

    def upsert_raw(self, ids: list[str], embeddings: Any, documents: list[str], metadatas: list[Any]) -> None:
        """Upsert rows copied from another collection of this tenant (a connector rebuild's merge)."""
        rows = [(cid, str(m.get("doc_key", "")), str(m.get("connector", "")), acl)
                for cid, m in zip(ids, metadatas, strict=True) for acl in [_meta_acl(m)] if acl is not None]
        with self._acl_write():
            if self.acl is not None:
                self.acl.narrow({cid: acl for cid, _, _, acl in rows})
            self._write(lambda: self.collection.upsert(
                ids=ids, embeddings=embeddings, documents=documents, metadatas=metadatas))
            if self.acl is not None:
                self.acl.put(rows)

    def delete_documents(self, connector: str, doc_ids: Iterable[str]) -> None:
        keys = [doc_key(connector, d) for d in doc_ids]

        def op() -> None:
            for i in range(0, len(keys), 500):
                self.collection.delete(where={"doc_key": {"$in": keys[i : i + 500]}})

        with self._acl_write():
            if self.acl is not None:
                self.acl.delete(doc_keys=keys)
            self._write(op)

    def update_acl(self, connector: str, doc_id: str, acl: AccessControl, version: str) -> int:
        """Replace the ACL of every chunk of a document (no re-embedding). Returns the chunk count."""
        key = doc_key(connector, doc_id)
        done: list[str] = []

        def op() -> int:
            ids = self.collection.get(where={"doc_key": key}, include=[])["ids"]
            if ids:
                meta = {**_acl_meta(acl), "acl_fp": acl.fingerprint(), "version": version}
                self.collection.update(ids=ids, metadatas=[meta] * len(ids))
            done[:] = ids
            return len(ids)

        with self._acl_write():
            if self.acl is not None:
                self.acl.narrow_docs(key, (acl.allow, acl.deny))
            n = self._write(op)
            if self.acl is not None:
                self.acl.put([(cid, key, connector, (acl.allow, acl.deny)) for cid in done])
            return n

    def delete_connector(self, connector: str) -> None:
        with self._acl_write():
            if self.acl is not None:
                self.acl.delete(connector=connector)
            self._write(lambda: self.collection.delete(where={"connector": connector}))

    # --- reads -------------------------------------------------------------------------------------

    def documents(self, connector: str) -> dict[str, DocState]:
        """doc id -> state of every document of ``connector`` (read from chunk 0 of each)."""
        out: dict[str, DocState] = {}
        counts: dict[str, int] = {}
        offset = 0
        while True:
            got = self._read(lambda at=offset: self.collection.get(  # type: ignore[misc]
                where={"connector": connector}, include=["metadatas"], limit=_PAGE, offset=at
            ))
            metas = got["metadatas"] or []
            for m in metas:
                d = str(m["doc_id"])
                counts[d] = counts.get(d, 0) + 1
                if m.get("position") == 0:
                    out[d] = DocState(str(m["version"]), str(m["content_hash"]), str(m["acl_fp"]), 0)
            if len(metas) < _PAGE:
                break
            offset += _PAGE
        return {d: DocState(s.version, s.content_hash, s.acl_fingerprint, counts[d]) for d, s in out.items()}

    def count(self) -> int:
        return int(self._read(lambda: self.collection.count()))

    def page(self, include: list[str], offset: int, limit: int = _PAGE) -> dict[str, Any]:
        """One page of the whole collection (for in-memory snapshots; no principal filter: ids, vectors and
        ACL metadata only unless ``documents`` is asked for, and callers re-check via :meth:`get_chunks`)."""
        return dict(self._read(lambda: self.collection.get(include=include, limit=limit, offset=offset)))

    def nearest(self, vector: Vectors, n: int) -> tuple[list[str], list[float]]:
        """Ids and cosine distances of the ``n`` approximate nearest chunks, unfiltered and without payloads
        (the in-memory permission filter of groundwire.retrieval applies to them)."""
        q = np.asarray(vector, dtype=np.float32).reshape(1, -1)
        res = self._read(lambda: self.collection.query(query_embeddings=q, n_results=n, include=["distances"]))
        return list(res["ids"][0]), [float(d) for d in res["distances"][0]]

    def _to_chunks(
        self, ids: list[str], docs: list[str], metas: list[dict[str, Any]], scores: list[float]
    ) -> list[Chunk]:
        out = []
        for cid, stored, m, score in zip(ids, docs, metas, scores, strict=True):
            payload = json.loads(self.codec.decode(stored, cid))
            allow = [p for p in m["acl_allow"] if p != NOBODY]
            deny = [p for p in m["acl_deny"] if p != NOBODY]
            out.append(
                Chunk(
                    id=cid,
                    doc_id=str(m["doc_id"]),
                    connector=str(m["connector"]),
                    tenant=self.tenant,
                    text=payload["text"],
                    title=payload["title"],
                    uri=payload["uri"],
                    location=payload["location"],
                    acl=AccessControl.of(allow, deny),
                    position=int(m["position"]),
                    score=score,
                    annotations=payload.get("annotations") or {},
                )
            )
        return out

    def query(
        self, vector: Vectors, principals: Iterable[str], connectors: Sequence[str], k: int
    ) -> list[Chunk]:
        """The ``k`` nearest chunks the principals may read, from the given connectors only."""
        if k <= 0 or not connectors:
            return []
        if self.count() == 0:
            return []
        where = principal_filter(principals, connectors)
        res = self._read(lambda: self.collection.query(
            query_embeddings=np.asarray(vector, dtype=np.float32).reshape(1, -1),
            n_results=k,
            where=where,
            include=["documents", "metadatas", "distances"],
        ))
        ids = res["ids"][0]
        chunks = self._to_chunks(
            ids, res["documents"][0], res["metadatas"][0], [1.0 - float(d) for d in res["distances"][0]]
        )
        return self._authoritative(chunks, set(principals) - {NOBODY})[0]

    def _authoritative(self, chunks: list[Chunk], principals: set[str]) -> tuple[list[Chunk], bool]:
        """``chunks`` the ACL store also grants to ``principals``, each with the meet of both ACLs; and whether
        the store and Chroma disagreed about one of them (Chroma's view lags, or a write is under way)."""
        store = self._acl_ready()
        if store is None or not chunks:
            return chunks, False
        stored = store.get([c.id for c in chunks])
        out, disagree = [], False
        for c in chunks:
            row = stored.get(c.id)
            mine = (c.acl.allow, c.acl.deny)
            disagree = disagree or row != mine
            if row is None or not permits(row, principals):
                continue
            allow, deny = meet(mine, row)
            out.append(c if row == mine else replace(c, acl=AccessControl(allow, deny)))
        return out, disagree

    def get_chunks(self, ids: Sequence[str], principals: Iterable[str], connectors: Sequence[str]) -> list[Chunk]:
        """Fetch chunks by id, still filtered by principals and connectors; order follows ``ids``."""
        if not ids or not connectors:
            return []
        # Chroma evaluates a ``where`` clause over the whole collection even when ids are given (60-190 ms
        # at 10k chunks), so fetch by id and apply the same filter as principal_filter() to the metadata.
        ps = set(principals) - {NOBODY}
        if not ps:
            raise ValueError("a query needs at least one principal and one connector")
        wanted = set(connectors)
        for attempt in range(2):
            res = self._read(lambda: self.collection.get(ids=list(ids), include=["documents", "metadatas"]))
            keep = [j for j, m in enumerate(res["metadatas"]) if _readable(m, ps, wanted)]
            chunks = self._to_chunks(
                [res["ids"][j] for j in keep], [res["documents"][j] for j in keep],
                [res["metadatas"][j] for j in keep], [0.0] * len(keep),
            )
            chunks, disagree = self._authoritative(chunks, ps)
            if not disagree or self._owner is None or attempt:
                break
            self._owner.reopen(self._owner.epoch)  # our Chroma view may lag: read once more on a fresh client
        by_id = {c.id: c for c in chunks}
        return [by_id[i] for i in ids if i in by_id]
