"""The Chroma-backed index: one collection per tenant, chunk payloads behind a codec.

Invariants:
- Tenant isolation: :meth:`Index.tenant` returns a :class:`TenantIndex` bound to exactly one collection
  (``gw-<tenant>``); no method takes a tenant argument, so no query can cross tenants.
- Security trimming in the query: :meth:`TenantIndex.query` always pre-filters by the caller's principals,
  the deny list and the configured connectors. There is no unfiltered query method.
- Sensitive text (chunk text, title, URI, location) is stored only in the ``documents`` payload, passed
  through a :class:`Codec` (the identity by default, AES-GCM with the ``crypto`` extra; see issue 7).
  Metadata holds ids, ACL tokens, connector name, position, versions and hashes only.
- Chroma telemetry is off.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from .embedding import Vectors
from .errors import IndexError_
from .models import AccessControl, Chunk, validate_tenant

__all__ = ["NOBODY", "Codec", "DocState", "IdentityCodec", "Index", "TenantIndex", "doc_key", "make_client"]

log = logging.getLogger("groundwire.index")

os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

NOBODY = "nobody:"  # sentinel for an empty ACL list: no user can hold it (normalize_principal rejects it)
_PAGE = 5000


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


_TRANSIENT = ("Error finding id", "database is locked", "database table is locked")


def _transient(exc: BaseException) -> bool:
    """A read that raced a write of another process (Chroma reads its metadata and vector segments
    separately, so an id deleted in between is "not found"); the same read a moment later succeeds."""
    return any(t in str(exc) for t in _TRANSIENT)


class RetryingCollection:
    """A Chroma collection whose reads are retried while they race a concurrent write.

    Why: ``groundwire ask`` in one process while ``groundwire sync`` writes in another made Chroma raise
    ``InternalError: Error finding id`` in 4 of 5 asks (issue 12). Reads (``get``, ``query``, ``count``,
    ``peek``) are retried up to ``attempts`` times with a growing pause; if the race persists the caller
    gets :class:`~groundwire.errors.IndexError_` with a message, never the raw Chroma error. Writes are
    passed through unchanged (the sync lock keeps them to one process). Any other attribute is the
    collection's own.
    """

    _READS = frozenset({"get", "query", "count", "peek"})

    def __init__(self, collection: Any, attempts: int = 8, pause: float = 0.02) -> None:
        self._collection = collection
        self._attempts = attempts
        self._pause = pause

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._collection, name)
        if name not in self._READS:
            return attr

        def read(*args: Any, **kwargs: Any) -> Any:
            for attempt in range(self._attempts):
                try:
                    return attr(*args, **kwargs)
                except Exception as exc:  # noqa: BLE001 - chromadb raises several types for the same race
                    if not _transient(exc):
                        raise
                    if attempt == self._attempts - 1:
                        raise IndexError_(
                            f"the index of collection {self._collection.name} kept changing under a read "
                            f"({exc}); a sync is writing it: try again in a moment"
                        ) from exc
                    time.sleep(self._pause * (2**attempt))
            raise AssertionError("unreachable")

        return read


class Index:
    """Entry point to the store; hands out one :class:`TenantIndex` per tenant.

    Live pointer (rebuild without loss): the collection ``gw-<tenant>`` is the tenant's anchor. When its
    metadata holds ``gw_live``, the tenant's chunks live in that collection (``gw-<tenant>.r<n>``, made
    by :meth:`begin_rebuild` and switched to by :meth:`commit_rebuild`, one metadata update); otherwise
    they live in the anchor itself. The live collection must name the same tenant in its own metadata.
    A handle re-reads the pointer at most every ``pointer_seconds``, so another process's rebuild is
    picked up; the previous generation is kept until the next rebuild, so a reader that opened it
    finishes on the old state instead of failing.
    """

    def __init__(
        self, client: Any, model_id: str, dimension: int, codec: Codec | None = None, pointer_seconds: float = 2.0
    ) -> None:
        self.client = client
        self.model_id = model_id
        self.dimension = dimension
        self.codec: Codec = codec or IdentityCodec()
        self.pointer_seconds = pointer_seconds
        self._tenants: dict[str, TenantIndex] = {}
        self._checked: dict[str, float] = {}
        self._lock = threading.RLock()  # get_or_create_collection from several threads at once races

    def _metadata(self, tenant: str) -> dict[str, Any]:
        return {
            "hnsw:space": "cosine",
            "gw_tenant": tenant,
            "gw_model": self.model_id,
            "gw_codec": self.codec.name,
        }

    def _anchor(self, tenant: str) -> Any:
        return self.client.get_or_create_collection(
            f"gw-{tenant}", metadata=self._metadata(tenant), embedding_function=None
        )

    def live_name(self, tenant: str) -> str:
        """The name of the collection holding ``tenant``'s chunks now (see the class docstring)."""
        validate_tenant(tenant)
        meta = self._anchor(tenant).metadata or {}
        live = meta.get("gw_live")
        if not live:
            return f"gw-{tenant}"
        if not str(live).startswith(f"gw-{tenant}.r"):
            raise IndexError_(f"the live pointer of tenant {tenant!r} names {live!r}; refusing to use it")
        return str(live)

    def tenant(self, tenant: str) -> TenantIndex:
        validate_tenant(tenant)
        found = self._tenants.get(tenant)
        if found is not None and time.monotonic() - self._checked.get(tenant, 0.0) < self.pointer_seconds:
            return found
        with self._lock:
            return self._open_tenant(tenant)

    def _open_tenant(self, tenant: str) -> TenantIndex:
        found = self._tenants.get(tenant)
        if found is not None and time.monotonic() - self._checked.get(tenant, 0.0) < self.pointer_seconds:
            return found
        name = self.live_name(tenant)
        self._checked[tenant] = time.monotonic()
        if found is not None and found.collection.name == name:
            return found
        col = self._anchor(tenant) if name == f"gw-{tenant}" else self.client.get_collection(
            name, embedding_function=None
        )
        self._check(tenant, col)
        self._tenants[tenant] = TenantIndex(tenant, col, self.codec)
        return self._tenants[tenant]

    def _check(self, tenant: str, col: Any, check_model: bool = True) -> None:
        meta = col.metadata or {}
        if meta.get("gw_tenant") != tenant:
            raise IndexError_(f"collection {col.name} does not belong to tenant {tenant!r}; refusing to use it")
        if check_model and meta.get("gw_model") != self.model_id:
            raise IndexError_(
                f"the index for tenant {tenant!r} was built with embedder {meta.get('gw_model')!r}, "
                f"not {self.model_id!r}; run 'groundwire sync --rebuild' to re-index"
            )
        if meta.get("gw_codec", "identity") != self.codec.name:
            raise IndexError_(
                f"the index for tenant {tenant!r} is stored with codec {meta.get('gw_codec')!r} but "
                f"{self.codec.name!r} is configured; configure the same key provider"
            )

    def live_model(self, tenant: str) -> str | None:
        """The embedder model id the tenant's live collection was built with (None: no chunks yet)."""
        name = self.live_name(tenant)
        col = self._anchor(tenant) if name == f"gw-{tenant}" else self.client.get_collection(
            name, embedding_function=None
        )
        if col.count() == 0:
            return None
        model = (col.metadata or {}).get("gw_model")
        return str(model) if model is not None else None

    # --- rebuild without loss --------------------------------------------------------------------------

    def begin_rebuild(self, tenant: str) -> TenantIndex:
        """A new, empty collection beside the live one; fill it, then :meth:`commit_rebuild` or
        :meth:`abort_rebuild`. Readers keep using the live collection meanwhile."""
        validate_tenant(tenant)
        with self._lock:
            name = f"gw-{tenant}.r{time.time_ns()}"
            col = self.client.create_collection(name, metadata=self._metadata(tenant), embedding_function=None)
            return TenantIndex(tenant, col, self.codec)

    def commit_rebuild(self, staged: TenantIndex) -> None:
        """Make ``staged`` the live collection (one metadata update of the anchor), then delete the
        generations older than the one it replaces."""
        tenant = staged.tenant
        with self._lock:
            anchor = self._anchor(tenant)
            previous = self.live_name(tenant)
            meta = {k: v for k, v in (anchor.metadata or {}).items() if k != "hnsw:space"}
            meta.update(gw_live=staged.collection.name, gw_model=self.model_id, gw_codec=self.codec.name)
            anchor.modify(metadata=meta)
            self._tenants[tenant] = staged
            self._checked[tenant] = time.monotonic()
            keep = {staged.collection.name, previous, f"gw-{tenant}"}
            for col in self.client.list_collections():
                name = col if isinstance(col, str) else col.name
                if name.startswith(f"gw-{tenant}.r") and name not in keep:
                    self.client.delete_collection(name)
            if previous != f"gw-{tenant}":
                # the anchor's own pre-pointer chunks are two generations old now
                got = anchor.get(include=[], limit=1)
                if got["ids"]:
                    anchor.delete(where={"connector": {"$ne": ""}})

    def abort_rebuild(self, staged: TenantIndex) -> None:
        """Delete a staged collection that will not be used (the live one is untouched)."""
        try:
            self.client.delete_collection(staged.collection.name)
        except Exception:  # noqa: BLE001 - best effort: an orphan is deleted by the next rebuild
            log.warning("could not delete the staged collection %s", staged.collection.name)

    def drop_tenant(self, tenant: str) -> None:
        """Delete every collection of ``tenant`` (tests and tools; ``sync --rebuild`` never calls it)."""
        validate_tenant(tenant)
        with self._lock:
            self._tenants.pop(tenant, None)
            self._checked.pop(tenant, None)
            for col in self.client.list_collections():
                name = col if isinstance(col, str) else col.name
                if name == f"gw-{tenant}" or name.startswith(f"gw-{tenant}.r"):
                    try:
                        self.client.delete_collection(name)
                    except Exception:  # noqa: BLE001 - already gone
                        pass


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


class TenantIndex:
    """The chunks of one tenant. Every read is filtered by principals and connectors."""

    def __init__(self, tenant: str, collection: Any, codec: Codec) -> None:
        self.tenant = tenant
        self.collection: Any = collection if isinstance(collection, RetryingCollection) else RetryingCollection(
            collection
        )
        self.codec = codec
        # bumped by every write through this object; in-memory caches (groundwire.retrieval) compare it
        self.generation = 0

    # --- writes ------------------------------------------------------------------------------------

    def add_document_chunks(
        self,
        chunks: Sequence[Chunk],
        vectors: Vectors,
        version: str,
        content_hash: str,
    ) -> None:
        """Store the chunks of one or more documents (replace them first with :meth:`delete_documents`)."""
        if not chunks:
            return
        ids, docs, metas = [], [], []
        for c in chunks:
            ids.append(c.id)
            body: dict[str, Any] = {"text": c.text, "title": c.title, "uri": c.uri, "location": c.location}
            if c.annotations:
                body["annotations"] = dict(c.annotations)
            payload = json.dumps(body, ensure_ascii=False)
            docs.append(self.codec.encode(payload, c.id))
            metas.append(
                {
                    "doc_id": c.doc_id,
                    "doc_key": doc_key(c.connector, c.doc_id),
                    "connector": c.connector,
                    "position": c.position,
                    "version": version,
                    "content_hash": content_hash,
                    "acl_fp": c.acl.fingerprint(),
                    **_acl_meta(c.acl),
                }
            )
        self.collection.upsert(
            ids=ids, embeddings=np.asarray(vectors, dtype=np.float32), documents=docs, metadatas=metas
        )
        self.generation += 1  # after the write: a cache loaded during it sees the old number and reloads

    def chunk_ids(self, connector: str, doc_ids: Iterable[str]) -> set[str]:
        """The ids of every stored chunk of these documents."""
        keys = [doc_key(connector, d) for d in doc_ids]
        out: set[str] = set()
        for i in range(0, len(keys), 500):
            out.update(self.collection.get(where={"doc_key": {"$in": keys[i : i + 500]}}, include=[])["ids"])
        return out

    def delete_ids(self, ids: Sequence[str]) -> None:
        for i in range(0, len(ids), 500):
            self.collection.delete(ids=list(ids[i : i + 500]))
        self.generation += 1

    def delete_documents(self, connector: str, doc_ids: Iterable[str]) -> None:
        keys = [doc_key(connector, d) for d in doc_ids]
        for i in range(0, len(keys), 500):
            self.collection.delete(where={"doc_key": {"$in": keys[i : i + 500]}})
        self.generation += 1

    def update_acl(self, connector: str, doc_id: str, acl: AccessControl, version: str) -> int:
        """Replace the ACL of every chunk of a document (no re-embedding). Returns the chunk count."""
        got = self.collection.get(where={"doc_key": doc_key(connector, doc_id)}, include=[])
        ids = got["ids"]
        if ids:
            meta = {**_acl_meta(acl), "acl_fp": acl.fingerprint(), "version": version}
            self.collection.update(ids=ids, metadatas=[meta] * len(ids))
        self.generation += 1
        return len(ids)

    def delete_connector(self, connector: str) -> None:
        self.collection.delete(where={"connector": connector})
        self.generation += 1

    # --- reads -------------------------------------------------------------------------------------

    def documents(self, connector: str) -> dict[str, DocState]:
        """doc id -> state of every document of ``connector`` (read from chunk 0 of each)."""
        out: dict[str, DocState] = {}
        counts: dict[str, int] = {}
        offset = 0
        while True:
            got = self.collection.get(
                where={"connector": connector}, include=["metadatas"], limit=_PAGE, offset=offset
            )
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
        return int(self.collection.count())

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
        if self.collection.count() == 0:
            return []
        res = self.collection.query(
            query_embeddings=np.asarray(vector, dtype=np.float32).reshape(1, -1),
            n_results=k,
            where=principal_filter(principals, connectors),
            include=["documents", "metadatas", "distances"],
        )
        ids = res["ids"][0]
        return self._to_chunks(
            ids, res["documents"][0], res["metadatas"][0], [1.0 - float(d) for d in res["distances"][0]]
        )

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
        res = self.collection.get(ids=list(ids), include=["documents", "metadatas"])
        keep = [
            j for j, m in enumerate(res["metadatas"])
            if m["connector"] in wanted and ps.intersection(m["acl_allow"]) and not ps.intersection(m["acl_deny"])
        ]
        chunks = self._to_chunks(
            [res["ids"][j] for j in keep], [res["documents"][j] for j in keep],
            [res["metadatas"][j] for j in keep], [0.0] * len(keep),
        )
        by_id = {c.id: c for c in chunks}
        return [by_id[i] for i in ids if i in by_id]
