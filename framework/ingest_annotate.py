"""Stale annotations are redone at ``groundwire sync`` (no ``--rebuild``): the ``annotation_versions`` hook.

Invariants:
- ``versions`` is the merged ``annotation_versions`` answer for a tenant (annotation key -> the fields a
  current value has); :func:`fingerprint` of it is recorded as ``ann_fp`` in the metadata of every chunk
  ingestion writes (nothing else about the annotations is stored outside the encrypted payload).
- A stored chunk of the connector whose ``ann_fp`` differs (or is missing: written before this existed) is a
  candidate. A candidate whose stored annotations are already current (:func:`is_current`) only gets the
  fingerprint recorded, with no model run; the others are embedded again (one ``embed_with_spans`` call
  per batch, so the annotations get the span vectors of one run), annotated like new chunks, and their
  payloads rewritten with the fingerprint in one update per batch; their vectors and ACLs are not touched.
  A chunk that is current and carries the current fingerprint is never read or embedded.
- Resumable: a sync killed during this pass leaves the chunks not yet rewritten stale, and the next sync
  redoes exactly those. A payload that cannot be decoded is left as it is (logged), like ingestion's reuse.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from .embedding import Embedder
from .errors import GroundwireError
from .ingest_embed import Embedded, embed_chunks, index_text
from .ingest_reuse import Reuse, is_current
from .ingest_write import AnnotateCall, annotate_new
from .models import Chunk

__all__ = ["Versions", "fingerprint", "is_current", "merge_versions", "reannotate"]

log = logging.getLogger("groundwire.ingest")

#: annotation key -> {field: the value a current annotation has}
Versions = dict[str, dict[str, Any]]


def merge_versions(results: Iterable[Mapping[str, Mapping[str, Any]] | None]) -> Versions:
    """The ``annotation_versions`` results merged (a key two plugins both name is an error)."""
    out: Versions = {}
    for result in results:
        for key, fields in (result or {}).items():
            if key in out:
                raise GroundwireError(f"two annotation_versions plugins name the same annotation key {key!r}")
            out[str(key)] = dict(fields)
    return out


def fingerprint(versions: Mapping[str, Mapping[str, Any]]) -> str:
    """A short stable digest of ``versions`` (what ``ann_fp`` records)."""
    blob = json.dumps(versions, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.blake2b(blob.encode(), digest_size=8).hexdigest()


def reannotate(
    tindex: Any, candidates: Sequence[str], versions: Versions, fp: str, embedder: Embedder,
    annotate: AnnotateCall | None, batch: int, on_batch: Callable[[int, int, float, float], None],
) -> None:
    """Annotate the stale ones of ``candidates`` (chunk ids) again (see the module docstring).
    ``on_batch(reannotated, checked, embed_seconds, write_seconds)`` is called after each batch is written
    (``checked``: the candidates of the batch, whatever became of them)."""
    for start in range(0, len(candidates), batch):
        t0 = time.perf_counter()
        part = candidates[start : start + batch]
        rows = tindex.stored_rows(part)
        stale: list[Chunk] = []
        current: list[str] = []
        stored_vec: dict[str, Any] = {}
        for cid, (stored, vec, meta) in rows.items():
            if meta.get("ann_fp") == fp:
                continue  # rewritten meanwhile (its document changed in this sync)
            try:
                [chunk] = tindex._to_chunks([cid], [stored], [meta], [0.0])
            except Exception as exc:  # noqa: BLE001 - unreadable (another key, damaged): left as it is
                log.warning("not re-annotating chunk %s: %s", cid, exc)
                continue
            if is_current(chunk.annotations, versions):
                current.append(cid)
            elif vec is not None:
                stale.append(chunk)
                stored_vec[cid] = vec
        sentences: Embedded = {}
        fresh, _ = embed_chunks(embedder, stale, Reuse(), True, sentences) if stale else ({}, 0)
        by_id = {c.id: fresh[index_text(c)] for c in stale}
        notes = annotate_new(annotate, embedder, stale, by_id, sentences,
                             {index_text(c): by_id[c.id] for c in stale})
        t1 = time.perf_counter()
        ids = [c.id for c in stale] + current
        payloads: list[str | None] = [
            tindex.encode_payload(replace(c, annotations=notes.get(c.id, {}), score=0.0)) for c in stale
        ]
        payloads += [None] * len(current)
        tindex.update_payloads(ids, payloads, [stored_vec.get(cid) for cid in ids], fp)
        on_batch(len(stale), len(part), t1 - t0, time.perf_counter() - t1)
