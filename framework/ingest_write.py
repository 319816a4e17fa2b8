"""Annotation and index writes of ingestion, one batch behind the embedding (:class:`WriteBehind`).

Invariants:
- At most one batch is in flight: :meth:`WriteBehind.submit` first settles the previous batch (waits for its
  thread work, then runs its bookkeeping in the caller's thread), so the index sees the batches' writes in
  the order the batches were made, each batch's upsert before its stale-chunk delete.
- The thread only computes annotations and writes to the index; everything ingestion keeps in memory (the
  documents' states, the report, skipped items) is updated by the bookkeeping, in the caller's thread.
- Ingestion settles before any other index access of its own (a read of stored chunks, a deletion, an ACL
  update, a checkpoint, the end of the connector's sync), so it never races its own writes.
- An error of the thread work fails the sync: :meth:`WriteBehind.settle` raises it as a
  :class:`~groundwire.errors.GroundwireError` naming the phase and the cause (a full disk as
  :class:`~groundwire.errors.StorageError`); the batch's documents are then not recorded as indexed and no
  checkpoint after them is saved, so the next sync does them again. :meth:`WriteBehind.close` always waits
  for the thread: nothing is written after the sync returned (and released its lock).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .embedding import Embedder, MemoEmbedder, Vectors
from .errors import GroundwireError, IndexError_
from .ingest_embed import Embedded, index_text
from .ingest_reuse import Reuse
from .models import Chunk, Document
from .stores.fs import disk_full_error

__all__ = ["BatchWrite", "WriteBehind", "annotate_batch", "annotate_new", "merge_annotations", "write_batch"]

log = logging.getLogger("groundwire.ingest")

#: errors that come from one item's data (bad text, bad id), not from the store or the machine
ITEM_ERRORS = (UnicodeError, ValueError, TypeError, KeyError)

PerDoc = list[tuple[Document, list[Chunk], bool]]  # (document, its chunks, replaces a stored version)


def merge_annotations(results: Iterable[Mapping[str, Mapping[str, Any]] | None],
                      ids: set[str]) -> dict[str, dict[str, Any]]:
    """The ``annotate_chunks`` results merged per chunk id (a key two plugins both set is an error)."""
    out: dict[str, dict[str, Any]] = {}
    for result in results:
        for cid, values in (result or {}).items():
            if cid not in ids:
                continue
            mine = out.setdefault(cid, {})
            clash = set(mine) & set(values)
            if clash:
                raise GroundwireError(f"two annotate_chunks plugins set the same key(s): {sorted(clash)}")
            mine.update(values)
    return out


AnnotateCall = Callable[[Sequence[Chunk], Mapping[str, Any], Embedder, Mapping[str, tuple[list[str], Vectors]]],
                        Iterable[Mapping[str, Mapping[str, Any]] | None]]


def annotate_new(annotate: AnnotateCall | None, embedder: Embedder, todo: Sequence[Chunk],
                 by_id: Mapping[str, Any], sentences: Embedded, seed: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``annotate_chunks``' merged annotations of ``todo`` (chunks without current ones), given their vectors
    (``by_id``), their sentence vectors from ``sentences`` and a memo embedder seeded with ``seed`` (the
    chunk vectors; the sentence vectors too when the embedder embedded each sentence alone: then they are
    exactly what it would return for the sentence's text). Shared by ingestion and re-annotation."""
    if not todo or annotate is None:
        return {}
    alone = not embedder.pools_spans
    sent_by_id: dict[str, tuple[list[str], Vectors]] = {}
    for c in todo:
        got = sentences.get((c.title, c.text))
        if got is not None:
            sent_by_id[c.id] = got
            if alone:
                for st, sv in zip(got[0], got[1], strict=True):
                    seed.setdefault(st, sv)
    return merge_annotations(annotate(todo, by_id, MemoEmbedder(embedder, seed), sent_by_id),
                             {c.id for c in todo})


def annotate_batch(annotate: AnnotateCall | None, embedder: Embedder, per_doc: PerDoc, vectors: list[Any],
                   reuse: Reuse, sentences: Embedded) -> PerDoc:
    """The chunks with their annotations: stored ones for unchanged chunks, else :func:`annotate_new`'s
    (its memo embedder seeded with every chunk vector of the batch)."""
    by_id: dict[str, Any] = {}
    seed: dict[str, Any] = {}
    kept: dict[str, dict[str, Any]] = {}
    todo: list[Chunk] = []
    for (_, cs, _), vecs in zip(per_doc, vectors, strict=True):
        if vecs is None:
            continue
        for c, v in zip(cs, vecs, strict=True):
            seed.setdefault(index_text(c), v)
            old = reuse.annotations(c)
            if old is not None:
                kept[c.id] = old
            else:
                by_id[c.id] = v
                todo.append(c)
    notes = annotate_new(annotate, embedder, todo, by_id, sentences, seed)
    notes.update({cid: n for cid, n in kept.items() if n})
    if not notes:
        return per_doc
    return [(doc, [replace(c, annotations=notes[c.id]) if c.id in notes else c for c in cs], r)
            for doc, cs, r in per_doc]


@dataclass(slots=True)
class BatchWrite:
    """What the thread did with one batch (read by the bookkeeping)."""

    done: list[tuple[Document, list[Chunk], bool]] = field(default_factory=list)  # written
    empty: list[tuple[Document, bool]] = field(default_factory=list)  # no chunks (removed if it replaced one)
    failed: list[tuple[Document, Exception]] = field(default_factory=list)  # write failed: removed
    annotate_seconds: float = 0.0
    write_seconds: float = 0.0


def write_batch(tindex: Any, name: str, per_doc: PerDoc, vectors: list[Any], old_ids: set[str],
                out: BatchWrite, annotation_fp: str | None = None) -> BatchWrite:
    """One upsert for the whole batch (document by document only if it fails with a data error), then one
    delete of the replaced documents' chunks the new versions no longer have: a concurrent reader sees
    each document old or new, never a gap. Index writes only; ``out`` records what happened."""
    ready: list[tuple[Document, list[Chunk], bool, Any]] = []
    for (doc, cs, replaces), vecs in zip(per_doc, vectors, strict=True):
        if vecs is None:  # embedding failed for this document; already reported (and its old version gone)
            continue
        if not cs:
            if replaces:
                tindex.delete_documents(name, [doc.id])
            out.empty.append((doc, replaces))
            continue
        ready.append((doc, cs, replaces, vecs))
    rows = [(cs, vecs, doc.version, doc.content_hash()) for doc, cs, _, vecs in ready]
    done = [(doc, cs, r) for doc, cs, r, _ in ready]
    try:
        tindex.add_documents(rows, annotation_fp=annotation_fp)
    except ITEM_ERRORS:
        done = []
        for item, row in zip(ready, rows, strict=True):  # find the bad one(s), keep the rest
            try:
                tindex.add_documents([row], annotation_fp=annotation_fp)
                done.append(item[:3])
            except ITEM_ERRORS as exc:
                tindex.delete_documents(name, [item[0].id])  # nothing half-written stays
                out.failed.append((item[0], exc))
    written = {c.id for _, cs, _ in done for c in cs}
    stale = sorted(old_ids - written)
    if stale:
        tindex.delete_ids(stale)
    out.done = done
    return out


class WriteBehind:
    """Runs each submitted batch's thread work (``work()``) in one worker thread while the caller goes on
    (embedding the next batch), and its ``finish(result)`` bookkeeping in the caller's thread when it settles
    (see the module docstring). With ``enabled = False`` both run at once in the caller's thread."""

    def __init__(self, connector: str, data_path: Path, enabled: bool = True) -> None:
        self.connector = connector
        self.data_path = data_path
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"groundwire-write-{connector}") \
            if enabled else None
        self._future: Future[Any] | None = None
        self._finish: Callable[[Any], None] | None = None
        self._ids: set[str] = set()
        self._what = ""
        self.waited = 0.0  # seconds the caller waited for the thread (the part not hidden behind embedding)

    def pending(self, doc_id: str) -> bool:
        """Whether ``doc_id`` belongs to the batch in flight."""
        return self._future is not None and doc_id in self._ids

    def submit(self, work: Callable[[], Any], finish: Callable[[Any], None], doc_ids: Iterable[str],
               what: str) -> None:
        """Settle the batch in flight, then start ``work`` (``what`` names it in an error message)."""
        self.settle()
        if self._pool is None:
            finish(self._result(lambda: work(), what))
            return
        self._ids, self._what, self._finish = set(doc_ids), what, finish
        self._future = self._pool.submit(work)

    def settle(self) -> None:
        """Wait for the batch in flight (if any) and run its bookkeeping; raises its error (see the module
        docstring)."""
        fut, finish = self._future, self._finish
        if fut is None or finish is None:
            return
        self._future, self._finish, self._ids = None, None, set()
        t0 = time.perf_counter()
        result = self._result(fut.result, self._what)
        self.waited += time.perf_counter() - t0
        finish(result)

    def _result(self, get: Callable[[], Any], what: str) -> Any:
        try:
            return get()
        except GroundwireError:
            raise
        except Exception as exc:  # noqa: BLE001 - named and turned into the sync's error
            full = disk_full_error(exc, self.data_path, "the index")
            if full is not None:
                raise full from exc
            # one line (the CLI's rule: never a traceback); ``--debug`` adds the traceback
            log.error("connector %s: %s failed: %s: %s", self.connector, what, type(exc).__name__, exc)
            log.debug("connector %s: %s failed", self.connector, what, exc_info=True)
            raise IndexError_(
                f"connector {self.connector!r}: {what} failed ({type(exc).__name__}: {exc}); the batch was not "
                "recorded as indexed and no later checkpoint was saved: run groundwire sync again"
            ) from exc

    def close(self) -> None:
        """Wait for the thread work in flight (its error, if any, is logged: the sync has already failed when
        a batch is still in flight here) and stop the thread."""
        fut = self._future
        self._future, self._finish = None, None
        if fut is not None:
            try:
                fut.result()
            except Exception:  # noqa: BLE001 - the sync is ending with another error already
                log.warning("connector %s: %s failed while the sync was ending", self.connector, self._what)
                log.debug("connector %s: %s failed", self.connector, self._what, exc_info=True)
        if self._pool is not None:
            self._pool.shutdown(wait=True)
