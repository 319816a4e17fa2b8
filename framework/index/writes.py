"""Writes to one tenant's collection: upserts of new chunks, deletions, ACL-only updates.

Invariants: every write holds the ACL store's cross-process lock; the store is narrowed (or its rows
deleted) *before* the Chroma write and set *after* it, so a reader never sees a wider ACL than either holds;
the generation moves after the Chroma write (:meth:`_TenantHandle._write`). Upserts go in batches of
``_WRITE_ROWS`` rows (under chromadb's maximum batch size). Every write of a payload stores it in the
metadata key :data:`~groundwire.index.rows.PAYLOAD_KEY` with ``documents`` blanked (layout 2, see
:mod:`groundwire.index.rows`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from ..embedding import Vectors
from ..models import AccessControl, Chunk
from .handle import _TenantHandle
from .rows import _WRITE_ROWS, PAYLOAD_KEY, _acl_meta, _meta_acl, doc_key, with_payloads

__all__: list[str] = []


class _TenantWrites(_TenantHandle):
    """The write methods of :class:`~groundwire.index.TenantIndex`."""

    def add_document_chunks(
        self,
        chunks: Sequence[Chunk],
        vectors: Vectors,
        version: str,
        content_hash: str,
    ) -> None:
        """Store the chunks of one or more documents (replace them first with :meth:`delete_documents`)."""
        self.add_documents([(chunks, vectors, version, content_hash)])

    def encode_payload(self, c: Chunk) -> str:
        """The stored (encoded) payload of a chunk: its text, title, URI, location and annotations."""
        body: dict[str, Any] = {"text": c.text, "title": c.title, "uri": c.uri, "location": c.location}
        if c.annotations:
            body["annotations"] = dict(c.annotations)
        return self.codec.encode(json.dumps(body, ensure_ascii=False), c.id)

    def add_documents(self, docs: Sequence[tuple[Sequence[Chunk], Vectors, str, str]],
                      annotation_fp: str | None = None) -> None:
        """Store several documents' ``(chunks, vectors, version, content_hash)`` in as few upserts as the
        store allows (one per ``_WRITE_ROWS`` rows). ``annotation_fp`` (ingestion's fingerprint of the
        annotation versions in force, :mod:`groundwire.ingest_annotate`) is recorded in each row's metadata
        as ``ann_fp``."""
        ids: list[str] = []
        metas: list[dict[str, Any]] = []
        embs: list[Any] = []
        acls: list[tuple[Any, Any]] = []
        extra = {"ann_fp": annotation_fp} if annotation_fp is not None else {}
        for chunks, vectors, version, content_hash in docs:
            if not chunks:
                continue
            keyed = self.keyed_hash(content_hash)
            fps: dict[int, str] = {}  # one fingerprint per ACL object (a document's chunks share theirs)
            for c in chunks:
                fp = fps.get(id(c.acl))
                if fp is None:
                    fp = fps[id(c.acl)] = c.acl.fingerprint()
                ids.append(c.id)
                acls.append((c.acl.allow, c.acl.deny))
                metas.append(
                    {
                        "doc_id": c.doc_id,
                        "doc_key": doc_key(c.connector, c.doc_id),
                        "connector": c.connector,
                        "position": c.position,
                        "version": version,
                        "content_hash": keyed,
                        "acl_fp": fp,
                        **_acl_meta(c.acl),
                        **extra,
                        PAYLOAD_KEY: self.encode_payload(c),
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
                part = metas[i:j]
                self.collection.upsert(ids=ids[i:j], embeddings=emb[i:j], documents=[""] * len(part),
                                       metadatas=part)

        with self._acl_write():
            if self.acl is not None:
                self.acl.narrow({cid: acl for cid, _, _, acl in rows})
            # the generation moves after the write: a cache loaded during it sees the old value and reloads
            self._write(op)
            if self.acl is not None:
                self.acl.put(rows)


    def update_payloads(self, ids: Sequence[str], payloads: Sequence[str | None], vectors: Sequence[Any],
                        annotation_fp: str) -> None:
        """Replace the stored payloads (already encoded) of existing chunks and record ``annotation_fp`` in
        their metadata (re-annotation at sync); ``vectors`` are their stored vectors, written back as they are
        (Chroma embeds a document given without one), and their ACLs are left as they are. A ``None`` payload
        keeps the chunk's payload (only its fingerprint is recorded)."""
        if not ids:
            return
        rows = list(zip(ids, payloads, vectors, strict=True))
        with_doc = [r for r in rows if r[1] is not None]
        bare = [r[0] for r in rows if r[1] is None]

        def op() -> None:
            for i in range(0, len(with_doc), _WRITE_ROWS):
                part = with_doc[i : i + _WRITE_ROWS]
                self.collection.update(ids=[c for c, _, _ in part], documents=[""] * len(part),
                                       embeddings=np.asarray([v for _, _, v in part], dtype=np.float32),
                                       metadatas=[{"ann_fp": annotation_fp, PAYLOAD_KEY: p} for _, p, _ in part])
            for i in range(0, len(bare), _WRITE_ROWS):
                part_ids = bare[i : i + _WRITE_ROWS]
                self.collection.update(ids=part_ids, metadatas=[{"ann_fp": annotation_fp}] * len(part_ids))

        with self._acl_write():  # the ACL store does not change; held like every write of the collection
            self._write(op)

    def delete_ids(self, ids: Sequence[str]) -> None:
        def op() -> None:
            for i in range(0, len(ids), 500):
                self.collection.delete(ids=list(ids[i : i + 500]))

        with self._acl_write():
            if self.acl is not None:
                self.acl.delete(ids=ids)
            self._write(op)

    def upsert_raw(self, ids: list[str], embeddings: Any, documents: list[str], metadatas: list[Any]) -> None:
        """Upsert rows copied from another collection of this tenant (a connector rebuild's merge, a key
        rotation): ``documents`` are the stored payloads and ``metadatas`` the rest, as :meth:`page` reads
        them; written in layout 2."""
        rows = [(cid, str(m.get("doc_key", "")), str(m.get("connector", "")), acl)
                for cid, m in zip(ids, metadatas, strict=True) for acl in [_meta_acl(m)] if acl is not None]
        with self._acl_write():
            if self.acl is not None:
                self.acl.narrow({cid: acl for cid, _, _, acl in rows})
            self._write(lambda: self.collection.upsert(
                ids=ids, embeddings=embeddings, documents=[""] * len(ids),
                metadatas=with_payloads(metadatas, documents)))
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
