"""Reads of one tenant's collection, every one filtered by principals and connectors.

Invariants: :meth:`TenantIndex.query` always pre-filters in Chroma (:func:`principal_filter`); every read that
returns chunks keeps a chunk only if the authoritative ACL store grants it too, with the meet of both ACLs.
Every read of payloads goes through :func:`~groundwire.index.rows.take_payloads` (either row layout).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from ..acl_store import meet, permits
from ..embedding import Vectors
from ..models import AccessControl, Chunk
from .rows import _PAGE, NOBODY, DocState, _readable, doc_key, principal_filter, read_include, take_payloads
from .writes import _TenantWrites

__all__ = ["TenantIndex"]


class TenantIndex(_TenantWrites):
    """The chunks of one tenant. Every read is filtered by principals and connectors.

    :attr:`generation` is an opaque value that changes after every write to this tenant, by this process
    or (with a state dir) by any other; in-memory caches (groundwire.retrieval) compare it.
    """

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
            got = take_payloads(self._read(lambda p=part: self.collection.get(  # type: ignore[misc]
                where={"doc_key": {"$in": p}}, include=["documents", "embeddings", "metadatas"])))
            embs = got["embeddings"] if got["embeddings"] is not None else [None] * len(got["ids"])
            for cid, doc, emb in zip(got["ids"], got["documents"] or [], embs, strict=True):
                out[cid] = (doc, emb)
        return out

    def documents(self, connector: str) -> dict[str, DocState]:
        """doc id -> state of every document of ``connector`` (read from chunk 0 of each)."""
        return self.scan(connector)[0]

    def scan(self, connector: str, annotation_fp: str | None = None) -> tuple[dict[str, DocState], set[str]]:
        """:meth:`documents`, and (with ``annotation_fp``) the ids of the connector's chunks whose metadata
        records another annotation fingerprint, or none (``ann_fp``; see :mod:`groundwire.ingest_annotate`).

        The metadata (with its payload) is read for chunk 0 of each document only; the chunk counts come from
        the ids (``<doc key>:<position>``, :func:`groundwire.chunking.chunk_document`) and the stale chunks
        from the ids whose ``ann_fp`` is current, both read without metadata: a sync of an unchanged index
        does not read every payload. Ids of another form: every row's metadata is read, as before."""
        out: dict[str, DocState] = {}
        key_of: dict[str, str] = {}
        for cid, m in self._pages({"$and": [{"connector": connector}, {"position": 0}]}, ["metadatas"]):
            d, key = str(m["doc_id"]), str(m.get("doc_key", ""))
            if cid != f"{key}:0":
                return self._scan_rows(connector, annotation_fp)
            out[d] = DocState(str(m["version"]), str(m["content_hash"]), str(m["acl_fp"]), 0)
            key_of[key] = d
        counts: dict[str, int] = {}
        ids = [cid for cid, _ in self._pages({"connector": connector}, [])]
        for cid in ids:
            owner = key_of.get(cid.rpartition(":")[0])
            if owner is not None:
                counts[owner] = counts.get(owner, 0) + 1
        other: set[str] = set()
        if annotation_fp is not None:
            current = {cid for cid, _ in self._pages(
                {"$and": [{"connector": connector}, {"ann_fp": annotation_fp}]}, [])}
            other = set(ids) - current
        docs = {d: DocState(s.version, s.content_hash, s.acl_fingerprint, counts.get(d, 0)) for d, s in out.items()}
        return docs, other

    def _pages(self, where: dict[str, Any], include: list[str]) -> list[tuple[str, Any]]:
        """(id, metadata or None) of every row matching ``where``, paged."""
        rows: list[tuple[str, Any]] = []
        offset = 0
        while True:
            got = self._read(lambda at=offset: self.collection.get(  # type: ignore[misc]
                where=where, include=include, limit=_PAGE, offset=at))
            metas = got.get("metadatas") or [None] * len(got["ids"])
            rows.extend(zip(got["ids"], metas, strict=True))
            if len(got["ids"]) < _PAGE:
                return rows
            offset += _PAGE

    def _scan_rows(self, connector: str, annotation_fp: str | None) -> tuple[dict[str, DocState], set[str]]:
        """:meth:`scan` from every row's metadata (chunk ids not of the form ``<doc key>:<position>``)."""
        out: dict[str, DocState] = {}
        counts: dict[str, int] = {}
        other: set[str] = set()
        for cid, m in self._pages({"connector": connector}, ["metadatas"]):
            d = str(m["doc_id"])
            counts[d] = counts.get(d, 0) + 1
            if m.get("position") == 0:
                out[d] = DocState(str(m["version"]), str(m["content_hash"]), str(m["acl_fp"]), 0)
            if annotation_fp is not None and m.get("ann_fp") != annotation_fp:
                other.add(cid)
        docs = {d: DocState(s.version, s.content_hash, s.acl_fingerprint, counts[d]) for d, s in out.items()}
        return docs, other

    def stored_rows(self, ids: Sequence[str]) -> dict[str, tuple[str, Any, dict[str, Any]]]:
        """chunk id -> (stored payload as written, its vector, its metadata) of these chunks (ids that are
        gone are left out). No principal filter: ingestion re-annotates with it, nothing is returned to a user."""
        out: dict[str, tuple[str, Any, dict[str, Any]]] = {}
        for i in range(0, len(ids), 500):
            part = list(ids[i : i + 500])
            got = take_payloads(self._read(lambda p=part: self.collection.get(  # type: ignore[misc]
                ids=p, include=["documents", "embeddings", "metadatas"])))
            embs = got["embeddings"] if got["embeddings"] is not None else [None] * len(got["ids"])
            for cid, doc, emb, m in zip(got["ids"], got["documents"] or [], embs, got["metadatas"] or [],
                                        strict=True):
                out[cid] = (doc, emb, dict(m or {}))
        return out

    def count(self) -> int:
        return int(self._read(lambda: self.collection.count()))

    def page(self, include: list[str], offset: int, limit: int = _PAGE) -> dict[str, Any]:
        """One page of the whole collection (for in-memory snapshots; no principal filter: ids, vectors and
        ACL metadata only unless ``documents`` (the stored payloads, either row layout) is asked for, and callers
        re-check via :meth:`get_chunks`)."""
        ask = read_include(include)
        return take_payloads(dict(self._read(lambda: self.collection.get(include=ask, limit=limit, offset=offset))),
                             include)

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
        res = take_payloads(dict(self._read(lambda: self.collection.query(
            query_embeddings=np.asarray(vector, dtype=np.float32).reshape(1, -1),
            n_results=k,
            where=where,
            include=["documents", "metadatas", "distances"],
        ))))
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
            res = take_payloads(dict(self._read(
                lambda: self.collection.get(ids=list(ids), include=["documents", "metadatas"]))))
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
