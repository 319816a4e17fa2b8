"""What an edited document's stored chunks let ingestion reuse: vectors and annotations of unchanged chunks.

Invariants:
- A stored vector is reused only for a new chunk whose index text (:func:`groundwire.ingest.index_text`: title
  and text) is exactly the stored chunk's, so the vector is the one the embedder would compute again; the
  chunk's id and position may differ (text inserted before it).
- Stored annotations are reused only when text, title, URI and location are all the stored ones (what the
  ``annotate_chunks`` hook is given about a chunk besides its ACL and id), like an unchanged document keeps
  its annotations, and only when they are current (the ``annotation_versions`` hook).
- Nothing is trusted that cannot be read back: a payload the codec cannot decode or that is malformed is
  ignored (that chunk is embedded and annotated again). The per-chunk comparison key lives only in memory;
  nothing new is stored in the (unencrypted) metadata.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .index import TenantIndex
from .models import Chunk

__all__ = ["Reuse", "chunk_key", "is_current", "load_reuse"]

log = logging.getLogger("groundwire.ingest")


def is_current(annotations: Mapping[str, Any] | None, versions: Mapping[str, Mapping[str, Any]]) -> bool:
    """Whether every annotation named in ``versions`` (the ``annotation_versions`` answer) is stored with every
    named field equal."""
    notes = annotations or {}
    for key, fields in versions.items():
        note = notes.get(key)
        if not isinstance(note, Mapping) or any(note.get(f) != v for f, v in fields.items()):
            return False
    return True


def chunk_key(text: str, title: str, uri: str, location: str) -> tuple[str, str, str, str]:
    return (text, title, uri, location)


@dataclass(slots=True)
class Reuse:
    """The stored state of the batch's replaced documents."""

    old_ids: set[str] = field(default_factory=set)  # every stored chunk id of those documents
    vectors: dict[str, Any] = field(default_factory=dict)  # index text -> stored vector
    notes: dict[tuple[str, str, str, str], dict[str, Any]] = field(default_factory=dict)  # chunk key -> annotations

    def vector(self, index_text: str) -> Any | None:
        return self.vectors.get(index_text)

    def annotations(self, c: Chunk) -> dict[str, Any] | None:
        return self.notes.get(chunk_key(c.text, c.title, c.uri, c.location))


def load_reuse(tindex: TenantIndex, connector: str, doc_ids: Iterable[str], dimension: int,
               versions: Mapping[str, Mapping[str, Any]] | None = None) -> Reuse:
    """The stored chunks of ``doc_ids`` (one read per 500 documents) as a :class:`Reuse`; with ``versions``
    (the ``annotation_versions`` in force) stored annotations that are not current are not reused."""
    ids = list(doc_ids)
    out = Reuse()
    if not ids:
        return out
    for cid, (stored, emb) in tindex.stored_chunks(connector, ids).items():
        out.old_ids.add(cid)
        try:
            payload = json.loads(tindex.codec.decode(stored, cid))
            text, title = str(payload["text"]), str(payload["title"])
            uri, location = str(payload["uri"]), str(payload["location"])
            vec = np.asarray(emb, dtype=np.float32)
        except Exception as exc:  # noqa: BLE001 - unreadable (another key, damaged): embed that chunk again
            log.debug("not reusing chunk %s: %s", cid, exc)
            continue
        if vec.shape != (dimension,) or not np.all(np.isfinite(vec)):
            continue
        out.vectors.setdefault(f"{title}\n{text}" if title else text, vec)
        notes = payload.get("annotations")
        notes = dict(notes) if isinstance(notes, dict) else {}
        if versions is not None and not is_current(notes, versions):
            continue  # stale (e.g. an upgraded plugin): annotated again like a new chunk
        out.notes.setdefault(chunk_key(text, title, uri, location), notes)
    return out
