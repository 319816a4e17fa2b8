"""Ingestion (``groundwire sync``): connector changes -> chunks -> embeddings -> index.

Invariants:
- Incremental: a document whose content hash and ACL are unchanged is not re-embedded (a new version
  is recorded, so the connector's cheap change detection works next time); an ACL-only change updates
  metadata in place; a changed document's old chunks are replaced (new chunks upserted first, then the
  old ones it no longer has deleted, so a concurrent reader never finds the document missing).
- One sync per data dir at a time (:mod:`groundwire.synclock`, taken by :meth:`Grounder.sync`).
- ``--rebuild`` writes beside the live data and swaps only on success (:meth:`Ingester.rebuild`).
- Deletions and revocations take effect in this sync.
- Nothing lost, nothing duplicated: connector state is saved only at a :class:`Checkpoint`, after every
  change before it is in the index. A sync that dies resumes from the last checkpoint; replayed changes
  are idempotent (chunk ids are stable, documents are replaced whole).
- One failing connector does not stop the others; its error is reported and audited.
- Pipelined: a connector's changes are produced in a bounded thread (at least a batch ahead) while the previous
  batch embeds (:mod:`groundwire.ingest_pipeline`), in the same order, so all of the above holds unchanged; that
  thread also splits the sentences of each document's chunks ahead (cached per text, used by the embedding
  step's sentence spans).
- Only what changed is embedded: an edited document's chunks whose index text is unchanged reuse their
  stored vector (and annotations, when text, title, URI and location are unchanged; see
  :mod:`groundwire.ingest_reuse`); a batch is written with one upsert, annotated and written in a writer
  thread one batch behind the embedding (:mod:`groundwire.ingest_write`; settled before every other index
  access and every checkpoint, so all of the above holds unchanged); ``annotate_chunks`` runs after
  embedding with the chunk vectors, a memo embedder (each distinct text embedded once per batch) and each
  chunk's sentences with their vectors from the same embedder call as the chunk vectors
  (:meth:`~groundwire.embedding.Embedder.embed_with_spans`: one model pass per batch with an embedder that
  pools spans, the ONNX MiniLM; sentences are :func:`groundwire.split_sentences` of the chunk text).
- Stale annotations are redone by a plain sync: stored chunks whose annotations an upgraded plugin no longer
  accepts (the ``annotation_versions`` hook) are embedded and annotated again after the connector's changes,
  and only those (:mod:`groundwire.ingest_annotate`).
- One bad item does not stop its connector: a document whose id, title, URI or text cannot be stored (not
  valid UTF-8, e.g. a file name with undecodable bytes), or whose chunking, embedding or write fails with a
  data error, is skipped with its reason and its old version is removed (fail closed); every other change of
  the sync (edits, ACL changes, deletions) is still applied. Skipped item names are always printable.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .chunking import chunk_document
from .config import GroundwireConfig
from .connector import Checkpoint, Connector, ConnectorContext, Delete, Skipped, Unchanged, Upsert
from .embedding import Embedder, Vectors
from .errors import ConfigError, ConnectorError, GroundwireError
from .index import DocState, Index, TenantIndex
from .ingest_annotate import Versions, fingerprint, reannotate
from .ingest_embed import Embedded, embed_chunks, index_text, index_text_spans, split_ahead
from .ingest_pipeline import Prefetch
from .ingest_reuse import Reuse, load_reuse
from .ingest_state import StateStore
from .ingest_write import ITEM_ERRORS, BatchWrite, WriteBehind, annotate_batch, write_batch
from .keycheck import check_index
from .models import Chunk, Document
from .sources import printable_name
from .stores.fs import disk_full_error

__all__ = ["AnnotateFn", "Ingester", "SentenceVectors", "StateStore", "SyncReport", "index_text",
           "index_text_spans"]

log = logging.getLogger("groundwire.ingest")

_PAGE = 5000


@dataclass(slots=True)
class SyncReport:
    connector: str
    tenant: str
    added: int = 0
    updated: int = 0
    acl_updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    chunks: int = 0
    embedded: int = 0  # index texts run through the embedder (the others reused a stored vector)
    reannotated: int = 0  # stored chunks annotated again because their annotations were stale (in ``chunks``)
    items: int = 0  # changes processed so far (files, pages, skips, deletions; not checkpoints)
    total: int | None = None  # items the connector expects to go through (None: unknown), for progress
    error: str = ""
    annotate_seconds: float = 0.0
    embed_seconds: float = 0.0
    write_seconds: float = 0.0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.error

    def to_dict(self) -> dict[str, Any]:
        return {
            "connector": self.connector,
            "tenant": self.tenant,
            "added": self.added,
            "updated": self.updated,
            "acl_updated": self.acl_updated,
            "unchanged": self.unchanged,
            "deleted": self.deleted,
            "skipped": len(self.skipped),
            "chunks": self.chunks,
            "embedded": self.embedded,
            "reannotated": self.reannotated,
            "items": self.items,
            "error": self.error,
            "seconds": round(self.seconds, 3),
            "annotate_seconds": round(self.annotate_seconds, 3),
            "embed_seconds": round(self.embed_seconds, 3),
            "write_seconds": round(self.write_seconds, 3),
        }


ProgressFn = Callable[[str, SyncReport], None]
#: chunk id -> (the chunk text's sentences, their vectors ``(len(sentences), dimension)``)
SentenceVectors = Mapping[str, tuple[list[str], Vectors]]
#: ``annotate(chunks, vectors, embedder, sentence_vectors)``: the ``annotate_chunks`` hook's results (see its spec)
AnnotateFn = Callable[[Sequence[Chunk], Mapping[str, Any], Embedder, SentenceVectors],
                      Iterable[Mapping[str, Mapping[str, Any]] | None]]


#: errors that come from one item's data (bad text, bad id), not from the store or the machine
_ITEM_ERRORS = ITEM_ERRORS


def _unstorable(doc: Document) -> str:
    """Why ``doc`` cannot be stored, or ``""``: every stored string must be valid UTF-8."""
    fields = [("id", doc.id), ("title", doc.title), ("uri", doc.uri)]
    fields += [("text", s.text) for s in doc.sections] + [("location", s.location) for s in doc.sections]
    for what, value in fields:
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return f"document {what} is not valid UTF-8 (undecodable bytes): not indexed; fix the source"
    return ""


class _Batch:
    """Documents waiting to be chunked, embedded and written together (keeps the last of repeats)."""

    def __init__(self) -> None:
        self.docs: dict[str, tuple[Document, bool]] = {}  # doc id -> (document, replaces existing)

    def __len__(self) -> int:
        return len(self.docs)


class Ingester:
    def __init__(
        self,
        config: GroundwireConfig,
        index: Index,
        embedder: Embedder,
        connectors: Mapping[str, type[Connector]],
        on_event: Callable[[str, dict[str, Any]], None] | None = None,
        annotate: AnnotateFn | None = None,
        prefetch: int = 32,
        write_behind: bool = True,
        versions: Callable[[str], Versions] | None = None,
    ) -> None:
        self.config = config
        self.write_behind = write_behind  # annotate and write each batch in a thread while the next one embeds
        self._writer: WriteBehind | None = None
        self.versions = versions  # tenant -> the annotation versions in force (the annotation_versions hook)
        self._versions: Versions | None = None  # during sync_one: the versions in force, and their fingerprint
        self._fp: str | None = None
        self.annotate = annotate
        self.prefetch = prefetch  # changes produced ahead of embedding (0: no producer thread)
        self.index = index
        self.embedder = embedder
        self.connector_types = connectors
        self.state = StateStore(config.data_path / "state")
        self.on_event = on_event or (lambda kind, data: None)

    def validate(self, name: str) -> tuple[type[Connector], Any]:
        """The connector class and validated settings of ``name``; :class:`ConfigError` if either is wrong."""
        cc = self.config.connectors.get(name)
        if cc is None:
            raise self.config.error(f"connectors.{name}", "no such connector is configured")
        cls = self.connector_types.get(cc.type)
        if cls is None:
            known = ", ".join(sorted(self.connector_types)) or "(none)"
            raise self.config.error(
                f"connectors.{name}.type",
                f"unknown connector type {cc.type!r}",
                f"installed types: {known}; a connector from a plugin needs its package installed",
            )
        try:
            settings = cls.Settings.model_validate(cc.connector_settings())
        except Exception as exc:  # pydantic ValidationError
            errs: list[Any] = getattr(exc, "errors", lambda: [])()
            if errs:
                e = errs[0]
                key = ".".join(str(p) for p in e["loc"])
                msg = "unknown key" if e["type"] == "extra_forbidden" else e["msg"]
                raise ConfigError(self.config.source, f"connectors.{name}.{key}", msg) from None
            raise
        return cls, settings

    def build_connector(self, name: str, indexed: Mapping[str, str]) -> Connector:
        cls, settings = self.validate(name)
        cc = self.config.connectors[name]
        ctx = ConnectorContext(
            indexed=indexed,
            data_dir=self.config.data_path / "cache" / cc.tenant / name,
            config_dir=self.config.base_dir,
        )
        return cls(name, cc.tenant, settings, ctx)

    def _names(self, names: list[str] | None) -> list[str]:
        enabled = [n for n, c in self.config.connectors.items() if c.enabled]
        if names:
            unknown = [n for n in names if n not in self.config.connectors]
            if unknown:
                raise self.config.error(
                    "connectors", f"not configured: {', '.join(unknown)}", f"configured: {', '.join(enabled)}"
                )
        return list(names or enabled)

    def sync(
        self, names: list[str] | None = None, full: bool = False, progress: ProgressFn | None = None
    ) -> list[SyncReport]:
        """Sync the named (default: all enabled) connectors; returns one report per connector."""
        return [self.sync_one(name, full=full, progress=progress) for name in self._names(names)]

    def rebuild(self, names: list[str] | None = None, progress: ProgressFn | None = None) -> list[SyncReport]:
        """Re-embed the named (default: all enabled) connectors without losing the live data on failure.

        Every named connector's settings are validated first (a :class:`ConfigError` before anything is
        written). Per tenant: when every enabled connector of the tenant is named, they are synced in full
        into a new collection beside the live one, which becomes live only if all of them succeed (so a
        changed embedder works). Otherwise (``--connector``) the named connectors are synced into a
        scratch collection, and only on success are their chunks upserted into the live collection and
        their stale chunks deleted (readers see each chunk old or new; the live embedder must not have
        changed). Connector state goes to a scratch folder and replaces the saved state only on success;
        a failed rebuild leaves the live collection and the saved state as they were.
        """
        targets = self._names(names)
        for name in targets:
            self.validate(name)
        by_tenant: dict[str, list[str]] = {}
        for name in targets:
            by_tenant.setdefault(self.config.connectors[name].tenant, []).append(name)
        reports: list[SyncReport] = []
        for tenant, tnames in by_tenant.items():
            reports.extend(self._rebuild_tenant(tenant, tnames, progress))
        return reports

    def _rebuild_tenant(self, tenant: str, names: list[str], progress: ProgressFn | None) -> list[SyncReport]:
        whole = set(self.config.connectors_for(tenant)) <= set(names)
        if not whole:
            model = self.index.live_model(tenant)
            if model is not None and model != self.index.model_id:
                problem = (
                    f"the index of tenant {tenant!r} was built with embedder {model!r}, not "
                    f"{self.index.model_id!r}: rebuild all of the tenant's connectors together "
                    "(sync --rebuild without --connector)"
                )
                return [SyncReport(connector=n, tenant=tenant, error=problem) for n in names]
        scratch = self.config.data_path / "state-rebuild" / f"{os.getpid()}-{time.time_ns()}"
        staged_state = StateStore(scratch)
        staged: TenantIndex | None = self.index.begin_rebuild(tenant)
        assert staged is not None
        try:
            reports = [
                self.sync_one(n, full=True, progress=progress, tindex=staged, state=staged_state) for n in names
            ]
            if all(r.ok for r in reports):
                assert staged is not None
                if whole:
                    self.index.commit_rebuild(staged)
                else:
                    self._merge_into_live(staged, names)
                live = staged if whole else self.index.tenant(tenant)
                for n in names:
                    data = staged_state.load(tenant, n)
                    if data:  # re-recorded against the live collection (see StateStore.load_for)
                        self.state.save(tenant, n, data, str(getattr(live.collection, "id", "")),
                                        len(live.documents(n)))
                    else:
                        self.state.clear(tenant, n)
                staged = None if whole else staged
            else:
                for r in reports:
                    if r.ok:
                        r.error = "not applied: another connector of the rebuild failed; the live index is unchanged"
            return reports
        finally:
            if staged is not None:
                self.index.abort_rebuild(staged)
            shutil.rmtree(scratch, ignore_errors=True)

    def _merge_into_live(self, staged: TenantIndex, names: list[str]) -> None:
        """Upsert ``staged``'s chunks into the live collection, then delete the named connectors' live
        chunks that the rebuild did not produce (upsert first: a reader never sees a document missing)."""
        live = self.index.tenant(staged.tenant)
        fresh: set[str] = set()
        offset = 0
        while True:
            got = staged.page(["embeddings", "documents", "metadatas"], offset)
            ids = got["ids"]
            if ids:
                live.upsert_raw(ids, got["embeddings"], got["documents"], got["metadatas"])
                fresh.update(ids)
            if len(ids) < _PAGE:
                break
            offset += _PAGE
        for name in names:
            old = set(live.collection.get(where={"connector": name}, include=[])["ids"])
            stale = sorted(old - fresh)
            if stale:
                live.delete_ids(stale)

    def sync_one(
        self,
        name: str,
        full: bool = False,
        progress: ProgressFn | None = None,
        tindex: TenantIndex | None = None,
        state: StateStore | None = None,
    ) -> SyncReport:
        """Sync one connector into ``tindex`` (default: the live index of its tenant), saving connector
        state in ``state`` (default: the data dir's state store)."""
        cc = self.config.connectors[name]
        report = SyncReport(connector=name, tenant=cc.tenant)
        store = state or self.state
        t0 = time.perf_counter()
        try:
            tindex = tindex or self.index.tenant(cc.tenant)
            versions = self.versions(cc.tenant) if self.versions is not None else None
            self._versions, self._fp = versions, fingerprint(versions) if versions is not None else None
            fp = self._fp
            existing, candidates = tindex.scan(name, fp)
            connector = self.build_connector(name, {d: s.version for d, s in existing.items()})
        except GroundwireError as exc:
            report.error = str(exc)
            return report
        collection = str(getattr(tindex.collection, "id", ""))
        try:
            check_index([tindex], tindex.codec)  # a keyring that cannot read this index writes nothing
        except GroundwireError as exc:
            connector.close()
            report.error = str(exc)
            return report
        if full:
            store.clear(cc.tenant, name)
        saved = store.load_for(cc.tenant, name, collection, len(existing))
        batch = _Batch()

        rs = self.config.retrieval

        def changes() -> Iterator[Any]:  # in the producer thread: the total first, then the changes
            report.total = connector.expected_items(saved)
            for change in connector.changes(saved):
                if isinstance(change, Upsert) and self.annotate is not None:
                    split_ahead(change.document, name, cc.tenant, rs.chunk_size, rs.chunk_overlap)
                yield change

        # extraction runs ahead of embedding in a thread (bounded); same changes in the same order
        # at least one batch ahead, so a whole batch is extracted and split while the previous one embeds
        ahead = max(self.prefetch, self.config.embedder.batch_size) if self.prefetch > 0 else 0
        feed: Prefetch[Any] = Prefetch(changes, ahead, name=f"groundwire-sync-{name}")
        # annotation and index writes run one batch behind, in a thread, while the next batch embeds
        writer = self._writer = WriteBehind(name, self.config.data_path,
                                            enabled=self.write_behind and self.config.embedder.write_behind)
        try:
            for change in feed:
                report.items += not isinstance(change, Checkpoint)
                try:
                    self._apply(change, tindex, name, batch, existing, report)
                except _ITEM_ERRORS as exc:  # one bad item: skip it, fail closed, keep going
                    item = change.document.id if isinstance(change, Upsert) else getattr(change, "doc_id", "?")
                    self._drop(tindex, name, item, existing, report, f"{type(exc).__name__}: {exc}")
                if isinstance(change, Checkpoint):
                    self._flush(tindex, name, batch, existing, report)
                    self._settle()  # every change before the checkpoint is in the index
                    store.save(cc.tenant, name, change.state, collection, len(existing))
                if progress:
                    progress(name, report)
            self._flush(tindex, name, batch, existing, report)
            self._settle()
            if candidates and versions is not None and fp is not None:
                self._reannotate(tindex, sorted(candidates), versions, fp, report,
                                 (lambda: progress(name, report)) if progress else (lambda: None))
        except GroundwireError as exc:
            report.error = str(exc)
        except Exception as exc:  # noqa: BLE001 - a connector bug must not stop the other connectors
            full_disk = disk_full_error(exc, self.config.data_path, "the index")
            if full_disk is not None:
                report.error = str(full_disk)
            else:
                # one line by default (the CLI's rule: never a traceback); ``--debug`` adds the traceback
                log.error("connector %s failed: %s: %s", printable_name(name), type(exc).__name__,
                          printable_name(str(exc)))
                log.debug("connector %s failed", name, exc_info=True)
                report.error = str(ConnectorError(name, f"{type(exc).__name__}: {exc}"))
        finally:
            feed.close()
            connector.close()
            self._writer = None
            writer.close()  # nothing is written after the sync returns
        report.seconds = time.perf_counter() - t0
        if progress:
            progress(name, report)
        self.on_event("sync", report.to_dict())
        return report

    def _reannotate(self, tindex: TenantIndex, candidates: list[str], versions: Versions, fp: str,
                    report: SyncReport, tick: Callable[[], None]) -> None:
        """Annotate again the connector's stored chunks whose annotations are stale (see
        :mod:`groundwire.ingest_annotate`); they count as items and chunks of the progress."""
        if report.total is not None:
            report.total += len(candidates)

        def on_batch(redone: int, checked: int, embed_s: float, write_s: float) -> None:
            report.reannotated += redone
            report.embedded += redone
            report.chunks += redone
            report.items += checked
            report.embed_seconds += embed_s
            report.write_seconds += write_s
            tick()

        batch = max(1, self.config.embedder.batch_size) * 4
        reannotate(tindex, candidates, versions, fp, self.embedder, self.annotate, batch, on_batch)

    def _drop(
        self, tindex: TenantIndex, name: str, doc_id: str, existing: dict[str, DocState], report: SyncReport,
        reason: str,
    ) -> None:
        """Skip one item with ``reason`` and make its old version (if any) invisible: fail closed."""
        report.skipped.append((printable_name(doc_id), printable_name(f"not indexed: {reason}")))
        log.warning("%s: skipped %s: %s", name, printable_name(doc_id), printable_name(reason))
        if doc_id in existing:
            self._settle()
            tindex.delete_documents(name, [doc_id])
            existing.pop(doc_id)
            report.deleted += 1

    def _apply(
        self, change: Any, tindex: TenantIndex, name: str, batch: _Batch, existing: dict[str, DocState],
        report: SyncReport,
    ) -> None:
        """Apply one change (a :class:`Checkpoint` is handled by the caller)."""
        doc_id = change.document.id if isinstance(change, Upsert) else getattr(change, "doc_id", None)
        if self._writer is not None and isinstance(doc_id, str) and self._writer.pending(doc_id):
            self._settle()  # its state in ``existing`` is the one the writer is about to replace
        if isinstance(change, Upsert):
            doc = change.document
            problem = _unstorable(doc)
            if problem:
                batch.docs.pop(doc.id, None)
                self._drop(tindex, name, doc.id, existing, report, problem)
                return
            old = existing.get(doc.id)
            if old is not None and old.content_hash == tindex.keyed_hash(doc.content_hash()):
                if old.acl_fingerprint == doc.acl.fingerprint():
                    if old.version != doc.version:  # e.g. a touched file: same text, new mtime
                        self._settle()
                        tindex.update_acl(name, doc.id, doc.acl, doc.version)
                    report.unchanged += 1
                else:
                    self._settle()
                    tindex.update_acl(name, doc.id, doc.acl, doc.version)
                    report.acl_updated += 1
                existing[doc.id] = DocState(
                    doc.version, old.content_hash, doc.acl.fingerprint(), old.chunks
                )
                batch.docs.pop(doc.id, None)
            else:
                batch.docs[doc.id] = (doc, old is not None)
                if len(batch) >= self.config.embedder.batch_size:
                    self._flush(tindex, name, batch, existing, report)
        elif isinstance(change, Delete):
            batch.docs.pop(change.doc_id, None)
            if change.doc_id in existing:
                self._settle()
                tindex.delete_documents(name, [change.doc_id])
                existing.pop(change.doc_id)
                report.deleted += 1
        elif isinstance(change, Unchanged):
            report.unchanged += 1
        elif isinstance(change, Skipped):
            item = printable_name(change.item)
            report.skipped.append((item, printable_name(change.reason)))
            log.info("%s: skipped %s: %s", name, item, change.reason)

    def _flush(
        self, tindex: TenantIndex, name: str, batch: _Batch, existing: dict[str, DocState], report: SyncReport
    ) -> None:
        """Chunk and embed (only chunks an edit changed) the batch here, then annotate (with the chunk vectors)
        and write it in the writer thread while the next batch embeds (:mod:`groundwire.ingest_write`).
        A data error of one document skips only that document (its old version removed); the store's own
        failures still end the sync with an error."""
        if not batch.docs:
            return
        rs = self.config.retrieval
        per_doc: list[tuple[Document, list[Chunk], bool]] = []
        for doc, replaces in batch.docs.values():
            try:
                per_doc.append((doc, chunk_document(doc, name, tindex.tenant, rs.chunk_size, rs.chunk_overlap),
                                replaces))
            except _ITEM_ERRORS as exc:
                self._drop(tindex, name, doc.id, existing, report, f"chunking failed: {type(exc).__name__}: {exc}")
        batch.docs.clear()
        t0 = time.perf_counter()
        # the replaced documents' stored chunks: their ids (deleted after the write unless rewritten) and the
        # vectors and annotations of chunks the edit left as they were (read after every earlier write)
        replaced = [doc.id for doc, _, replaces in per_doc if replaces]
        if replaced:
            self._settle()
        reuse = load_reuse(tindex, name, replaced, self.embedder.dimension, self._versions)
        vectors, sentences = self._embed(per_doc, reuse, tindex, name, existing, report)
        report.embed_seconds += time.perf_counter() - t0
        out = BatchWrite()
        fp = self._fp

        def work() -> BatchWrite:  # in the writer thread: annotations and index writes only
            t1 = time.perf_counter()
            annotated = annotate_batch(self.annotate, self.embedder, per_doc, vectors, reuse, sentences)
            t2 = time.perf_counter()
            out.annotate_seconds = t2 - t1
            write_batch(tindex, name, annotated, vectors, reuse.old_ids, out, fp)
            out.write_seconds = time.perf_counter() - t2
            return out

        def finish(done: BatchWrite) -> None:  # back in the sync's thread
            self._book(tindex, name, done, existing, report)

        writer = self._writer or WriteBehind(name, self.config.data_path, enabled=False)
        writer.submit(work, finish, [doc.id for doc, _, _ in per_doc],
                      f"annotating and writing a batch of {len(per_doc)} document(s)")

    def _book(self, tindex: TenantIndex, name: str, done: BatchWrite, existing: dict[str, DocState],
              report: SyncReport) -> None:
        """Record what the writer did with a batch: counts, the documents' states, the skipped ones."""
        report.annotate_seconds += done.annotate_seconds
        report.write_seconds += done.write_seconds
        for doc, _ in done.empty:
            report.skipped.append((printable_name(doc.id), "no extractable text"))
            existing.pop(doc.id, None)
        for doc, exc in done.failed:
            existing.pop(doc.id, None)  # its chunks were deleted by the writer
            self._drop(tindex, name, doc.id, existing, report, f"write failed: {type(exc).__name__}: {exc}")
        for doc, cs, replaces in done.done:
            report.chunks += len(cs)
            if replaces:
                report.updated += 1
            else:
                report.added += 1
            existing[doc.id] = DocState(doc.version, tindex.keyed_hash(doc.content_hash()), doc.acl.fingerprint(),
                                        len(cs))

    def _settle(self) -> None:
        """Wait for the batch the writer thread has in flight (see :mod:`groundwire.ingest_write`)."""
        if self._writer is not None:
            self._writer.settle()

    def _embed(
        self, per_doc: list[tuple[Document, list[Chunk], bool]], reuse: Reuse, tindex: TenantIndex, name: str,
        existing: dict[str, DocState], report: SyncReport,
    ) -> tuple[list[Any], Embedded]:
        """Vectors per document (``None`` where that document's embedding failed: it is dropped) and the
        sentences with their vectors per ``(title, text)`` of every chunk that will be annotated. Only texts
        with no stored vector (or to be annotated again) are embedded, each distinct text once, all in one
        :meth:`~groundwire.embedding.Embedder.embed_with_spans` call when it succeeds (so the sentence vectors
        come from the chunk's own model run with an embedder that pools spans)."""
        texts = [[index_text(c) for c in cs] for _, cs, _ in per_doc]
        dim = self.embedder.dimension
        sentences: Embedded = {}

        def assemble(ts: list[str], fresh: dict[str, Any]) -> Any:
            out = np.empty((len(ts), dim), dtype=np.float32)
            for i, t in enumerate(ts):
                v = reuse.vector(t)
                out[i] = v if v is not None else fresh[t]
            return out

        def embed(cs: list[Chunk]) -> dict[str, Any]:
            fresh, n = embed_chunks(self.embedder, cs, reuse, self.annotate is not None, sentences)
            report.embedded += n
            return fresh

        try:
            fresh = embed([c for _, cs, _ in per_doc for c in cs])
            return [assemble(ts, fresh) for ts in texts], sentences
        except _ITEM_ERRORS as batch_exc:
            first: Exception = batch_exc
        out: list[Any] = []
        failed = []
        for (doc, cs, _), ts in zip(per_doc, texts, strict=True):  # find the bad one(s), keep the rest
            try:
                out.append(assemble(ts, embed(cs)))
            except _ITEM_ERRORS as exc:
                out.append(None)
                failed.append((doc, exc))
        if len(failed) == len(per_doc) > 1:
            raise first  # not one bad item: the embedder itself fails; end the sync with its error
        for doc, err in failed:
            self._drop(tindex, name, doc.id, existing, report, f"embedding failed: {type(err).__name__}: {err}")
        return out, sentences
