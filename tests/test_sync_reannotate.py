"""A plain ``groundwire sync`` annotates again the stored chunks whose annotations are stale (issue 14: after an
upgrade changed the extractive generator's version they were re-scored on every request until ``--rebuild``),
re-embedding only those; and a failing index write in the writer thread fails the sync with a named error and
loses nothing. Real files, real Chroma, the real extractive plugin (its version constant bumped, as an upgrade
does), an embedder registered through the plugin API that pools spans and records every call."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from groundwire.errors import GroundwireError
from groundwire.index import TenantIndex
from groundwire.ingest import index_text
from groundwire.plugins import extractive
from groundwire.plugins.extractive import stored_sentences

from .conftest import kb, write
from .test_sync_one_pass import PARAS, SpanPooling, _grounder


def _docs(root: Path, n: int = 5) -> None:
    for i in range(n):
        write(root / f"d{i}.md", f"# Doc {i}\n\n" + "\n\n".join(PARAS[i:] + PARAS[:i]) + "\n")


def _chunks(g: Any) -> list[Any]:
    tindex = g.index.tenant("acme")
    return tindex.get_chunks(tindex.collection.get(include=[])["ids"], {"everyone"}, ["kb"])


def _embedded() -> list[str]:
    """The index texts run through the model since the last clear (every call is ``embed_with_spans``)."""
    assert all(kind == "spans" for kind, _ in SpanPooling.calls), SpanPooling.calls
    return [t for _, texts in SpanPooling.calls for t in texts]


def _edit(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))


def test_a_plain_sync_reannotates_stale_chunks_only(make_grounder, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "kb"
    _docs(root)
    g = _grounder(make_grounder, root)
    first = g.sync()[0]
    assert first.ok and first.chunks > 5
    model = g.embedder.model_id
    assert all(stored_sentences(c, model) is not None for c in _chunks(g))

    # an upgrade changes the generator's annotation version; one document is also edited
    monkeypatch.setattr(extractive, "_VERSION", extractive._VERSION + 1)
    assert all(stored_sentences(c, model) is None for c in _chunks(g))  # stale: re-scored per request
    _edit(root / "d0.md", "# Doc 0\n\n" + "\n\n".join(p.replace("weekdays", "weekends") for p in PARAS) + "\n")
    SpanPooling.calls.clear()
    second = g.sync()[0]
    assert second.ok, second.error
    chunks = _chunks(g)
    assert chunks and all(stored_sentences(c, model) is not None for c in chunks)  # the new version, stored
    assert all(c.annotations["extractive"]["v"] == extractive._VERSION for c in chunks)
    texts = _embedded()
    assert sorted(texts) == sorted({index_text(c) for c in chunks})  # each chunk embedded once, no more
    edited = [c for c in chunks if c.doc_id == "d0.md"]
    assert second.updated == 1 and second.reannotated == len(chunks) - len(edited)
    assert second.chunks == len(chunks) and second.embedded == len(texts)

    # current chunks are never embedded again
    SpanPooling.calls.clear()
    third = g.sync()[0]
    assert third.ok and third.reannotated == 0 and SpanPooling.calls == []


def test_an_interrupted_reannotation_is_finished_by_the_next_sync(make_grounder, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "kb"
    _docs(root, 6)
    g = _grounder(make_grounder, root)
    g.config.embedder.batch_size = 1  # re-annotation batches of 4 chunks
    assert g.sync()[0].ok
    monkeypatch.setattr(extractive, "_VERSION", extractive._VERSION + 1)
    real = TenantIndex.update_payloads
    calls: list[int] = []

    def dies_on_the_second_batch(self, ids, *a, **kw):  # type: ignore[no-untyped-def]
        calls.append(len(ids))
        if len(calls) == 2:
            raise RuntimeError("the sync dies here")  # one batch rewritten, the rest not
        return real(self, ids, *a, **kw)

    monkeypatch.setattr(TenantIndex, "update_payloads", dies_on_the_second_batch)
    SpanPooling.calls.clear()
    broken = g.sync()[0]
    assert not broken.ok and "the sync dies here" in broken.error
    first_batch = SpanPooling.calls[0][1]  # the batch rewritten before the sync died
    monkeypatch.setattr(TenantIndex, "update_payloads", real)
    SpanPooling.calls.clear()
    repaired = g.sync()[0]
    assert repaired.ok, repaired.error
    chunks = _chunks(g)
    assert all(stored_sentences(c, g.embedder.model_id) is not None for c in chunks)
    assert len(first_batch) == calls[0] and not set(first_batch) & set(_embedded())  # not redone
    assert repaired.reannotated == len(chunks) - calls[0]


def test_chunks_with_current_annotations_but_another_fingerprint_are_not_embedded(
    make_grounder, tmp_path: Path
) -> None:
    """Chunks written before the fingerprint existed (or under another set of plugins) whose stored annotations
    are current get the fingerprint recorded, without a model run."""
    root = tmp_path / "kb"
    _docs(root, 3)
    g = _grounder(make_grounder, root)
    assert g.sync()[0].ok
    col = g.index.tenant("acme").collection
    ids = col.get(include=[])["ids"]
    col.update(ids=ids, metadatas=[{"ann_fp": "written-by-an-older-release"}] * len(ids))
    SpanPooling.calls.clear()
    r = g.sync()[0]
    assert r.ok and r.reannotated == 0 and SpanPooling.calls == []
    assert r.items >= len(ids)  # counted by the progress
    fps = {m["ann_fp"] for m in col.get(include=["metadatas"])["metadatas"]}
    assert len(fps) == 1 and "written-by-an-older-release" not in fps


def test_a_writer_thread_failure_fails_the_sync_with_its_cause_and_loses_nothing(
    make_grounder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "kb"
    _docs(root, 6)
    g = _grounder(make_grounder, root)  # batches of 2 documents: three writes
    real = TenantIndex.add_documents
    calls: list[int] = []

    def fails_second(self, docs, *a, **kw):  # type: ignore[no-untyped-def]
        calls.append(len(docs))
        if len(calls) == 2:
            raise RuntimeError("the disk controller went away")
        return real(self, docs, *a, **kw)

    monkeypatch.setattr(TenantIndex, "add_documents", fails_second)
    broken = g.sync()[0]
    assert not broken.ok
    assert "the disk controller went away" in broken.error and "RuntimeError" in broken.error
    assert "writing a batch" in broken.error
    monkeypatch.setattr(TenantIndex, "add_documents", real)
    again = g.sync()[0]
    assert again.ok, again.error
    chunks = _chunks(g)
    assert sorted(c.doc_id for c in chunks if c.position == 0) == [f"d{i}.md" for i in range(6)]
    clean = make_grounder({"kb": kb(root, default_allow=["everyone"])}, data_dir=str(tmp_path / "clean"),
                          **_grounder_kwargs())
    assert clean.sync()[0].ok
    assert sorted(index_text(c) for c in chunks) == sorted(index_text(c) for c in _chunks(clean))


def _grounder_kwargs() -> dict[str, Any]:
    from .test_sync_one_pass import _Plugin

    return {"extra_plugins": (_Plugin(),), "embedder": {"name": "span-pooling", "batch_size": 2},
            "plugins": {"load_entrypoints": False, "settings": {"prompt_shield": {"precompute": False}}}}


def test_writer_errors_are_groundwire_errors() -> None:
    from groundwire.ingest_write import WriteBehind

    w = WriteBehind("kb", Path("/nonexistent"))
    try:
        w.submit(lambda: 1 / 0, lambda r: None, ["d"], "writing a batch of 1 document(s)")
        with pytest.raises(GroundwireError, match=r"ZeroDivisionError.*run groundwire sync again"):
            w.settle()
    finally:
        w.close()
