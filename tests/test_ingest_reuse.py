"""Ingestion's embedding work: annotate_chunks gets the chunk vectors and a per-batch memo embedder; an edited
document re-embeds only its changed chunks. Real files, real Chroma, an embedder registered through the plugin API
that counts every text it embeds."""

from __future__ import annotations

import logging
import os
import threading
from collections import Counter
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
from groundwire import AccessControl, Checkpoint, Connector, ConnectorSettings, Document, Section, Upsert, hookimpl
from groundwire.index import take_payloads
from groundwire.ingest import index_text
from groundwire.plugins.embedders import HashingEmbedder

from .conftest import kb, write


class Counting(HashingEmbedder):
    """The hashing embedder, counting each text that reaches it (class-level: the pipeline builds the instance)."""

    name = "counting"
    seen: ClassVar[Counter[str]] = Counter()

    def embed_documents(self, texts):  # type: ignore[no-untyped-def]
        Counting.seen.update(texts)
        return super().embed_documents(texts)


class CountingPlugin:
    @hookimpl
    def register_embedders(self, register: Any) -> None:
        register(Counting)


def _grounder(make_grounder: Any, root: Path, *plugins: object, **overrides: Any) -> Any:
    Counting.seen.clear()
    return make_grounder({"kb": kb(root, default_allow=["everyone"])}, extra_plugins=(CountingPlugin(), *plugins),
                         embedder={"name": "counting"}, **overrides)


def _touch(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))


PARAS = [" ".join([f"Paragraph {i} says that rule number {i} applies to team {i * 7} on weekdays only."] * 3)
         for i in range(8)]


def test_annotate_chunks_gets_chunk_vectors_and_a_memo_embedder(make_grounder, tmp_path: Path) -> None:
    got: dict[str, Any] = {}

    class Annotator:
        @hookimpl
        def annotate_chunks(self, chunks, vectors, embedder):
            texts = [c.text for c in chunks]
            first = embedder.embed_documents(texts)
            again = embedder.embed_documents(list(reversed(texts)))  # the same texts: served by the memo
            got.update(chunks={c.id: c for c in chunks}, vectors=dict(vectors), model=embedder.model_id,
                       same=bool(np.array_equal(first, again[::-1])))
            return {c.id: {"t.len": len(c.text)} for c in chunks}

    class Old:  # an implementation written before `vectors` existed still works (pluggy passes what it names)
        @hookimpl
        def annotate_chunks(self, chunks):
            return {c.id: {"old.n": 1} for c in chunks}

    root = tmp_path / "kb"
    write(root / "a.md", "# A\n\n" + "\n\n".join(PARAS) + "\n")
    g = _grounder(make_grounder, root, Annotator(), Old())
    report = g.sync()[0]
    assert report.ok, report.error
    chunks = got["chunks"]
    assert len(chunks) == report.chunks > 1 and set(got["vectors"]) == set(chunks)
    plain = HashingEmbedder()
    for cid, c in chunks.items():  # each vector is the chunk's index vector (title + text)
        assert np.allclose(np.asarray(got["vectors"][cid]), plain.embed_documents([index_text(c)])[0])
    assert got["same"] and got["model"] == Counting(384).model_id
    # every text reached the real embedder once (index texts, the annotator's texts despite two calls, and the
    # extractive generator's sentences, repeated by chunk overlap)
    assert max(Counting.seen.values()) == 1
    assert set(Counting.seen) >= {index_text(c) for c in chunks.values()} | {c.text for c in chunks.values()}
    stored = g.index.tenant("acme").get_chunks(list(chunks), {"everyone"}, ["kb"])
    assert stored and all(c.annotations["t.len"] == len(c.text) and c.annotations["old.n"] == 1 for c in stored)


@pytest.mark.parametrize("encrypted", [False, True])
def test_edit_re_embeds_only_changed_chunks(make_grounder, tmp_path: Path, encrypted: bool) -> None:
    root = tmp_path / "kb"
    write(root / "a.md", "# A\n\n" + "\n\n".join(PARAS) + "\n")
    write(root / "b.md", "# B\n\nAnother document that is never edited, about the canteen menu on Fridays.\n")
    crypto = {"encryption": {"enabled": True, "provider": "file",
                             "options": {"path": str(tmp_path / "gw.keys"), "create": True}}} if encrypted else {}
    g = _grounder(make_grounder, root, **crypto)
    first = g.sync()[0]
    assert first.ok and first.chunks > 3
    tindex = g.index.tenant("acme")
    before = take_payloads(tindex.collection.get(where={"doc_id": "a.md"},
                                               include=["embeddings", "documents", "metadatas"]))
    old = dict(zip(before["ids"], before["embeddings"], strict=True))
    Counting.seen.clear()
    edited = [p.replace("rule number 3 applies", "rule number 3 expires") for p in PARAS]  # same length
    _touch(root / "a.md", "# A\n\n" + "\n\n".join(edited) + "\n")
    r = g.sync()[0]
    assert r.ok and (r.updated, r.unchanged) == (1, 1)
    chunks = tindex.get_chunks(sorted(old), {"everyone"}, ["kb"])
    changed = [c for c in chunks if "expires" in c.text]
    assert changed and len(changed) < len(chunks) == len(old)
    # the embedder saw the changed chunks' index texts and their new sentences, nothing of the unchanged chunks
    assert {index_text(c) for c in changed} <= set(Counting.seen)
    assert r.embedded == len(changed) and r.chunks == len(chunks)
    assert all(any(t == index_text(c) or t in c.text for c in changed) for t in Counting.seen), Counting.seen
    after = tindex.collection.get(ids=sorted(old), include=["embeddings"])
    plain = HashingEmbedder()
    by_id = {c.id: c for c in chunks}
    for cid, vec in zip(after["ids"], after["embeddings"], strict=True):  # every stored vector is the right one
        assert np.allclose(vec, plain.embed_documents([index_text(by_id[cid])])[0], atol=1e-6)
        if "expires" not in by_id[cid].text:
            assert np.array_equal(vec, old[cid])
    # the unchanged chunks kept their sentence vectors; the changed ones got new ones
    assert all(c.annotations.get("extractive") for c in chunks)
    draft = g.ground("Which rule expires?", "sam@example.com")
    assert "expires" in draft.text


class Poisoned(HashingEmbedder):
    """Refuses (a data error) any batch holding the word POISON, like a model refusing one bad input."""

    name = "poisoned"

    def embed_documents(self, texts):  # type: ignore[no-untyped-def]
        if any("POISON" in t for t in texts):
            raise ValueError("cannot embed this text")
        return super().embed_documents(texts)


class _Scripted(Connector):
    """Yields the class's script and records which thread ran it (pipelined: the producer thread)."""

    type = "scripted-slow"
    script: ClassVar[list[Any]] = []
    threads: ClassVar[set[str]] = set()

    class Settings(ConnectorSettings):
        pass

    def changes(self, state):  # type: ignore[no-untyped-def]
        for change in _Scripted.script:
            _Scripted.threads.add(threading.current_thread().name)
            yield change
        yield Checkpoint({"done": True})


class _ScriptedPlugin:
    @hookimpl
    def register_connectors(self, register: Any) -> None:
        register(_Scripted)

    @hookimpl
    def register_embedders(self, register: Any) -> None:
        register(Poisoned)


def _doc(i: int, text: str, title: str = "") -> Document:
    return Document(id=f"d{i}", title=title or f"Doc {i}", uri=f"https://kb.example/d{i}",
                    acl=AccessControl.of(["everyone"]), sections=(Section(text),), version=text)


def _rows(g: Any) -> list[tuple[Any, ...]]:
    got = g.index.tenant("acme").collection.get(include=["embeddings", "metadatas"])
    return sorted((i, tuple(np.round(e, 6)), tuple(sorted(m.items())))
                  for i, e, m in zip(got["ids"], got["embeddings"], got["metadatas"], strict=True))


def test_pipelined_sync_same_index_and_one_bad_document_skips_only_itself(make_grounder, tmp_path: Path) -> None:
    script = [Upsert(_doc(i, " ".join(PARAS[: 1 + i % 5]))) for i in range(12)]
    script[4] = Upsert(_doc(4, "This document says POISON and cannot be embedded."))
    script[7] = Upsert(_doc(7, "A title that cannot be stored.", title="bad \udcff title"))
    _Scripted.script = script
    reports, rows = [], []
    for prefetch in (0, 4):
        _Scripted.threads.clear()
        g = make_grounder({"s": {"type": "scripted-slow", "tenant": "acme"}}, extra_plugins=(_ScriptedPlugin(),),
                          embedder={"name": "poisoned", "batch_size": 3}, data_dir=str(tmp_path / f"data{prefetch}"))
        ing = g.ingester()
        ing.prefetch = prefetch
        (r,) = ing.sync()
        reports.append(r)
        rows.append(_rows(g))
        on_main = _Scripted.threads == {threading.current_thread().name}
        assert on_main == (prefetch == 0), _Scripted.threads  # pipelined: the connector ran in the producer
    for r in reports:
        assert r.ok, r.error
        assert (r.added, r.items) == (10, 12) and sorted(d for d, _ in r.skipped) == ["d4", "d7"]
        assert any("embedding failed" in why for d, why in r.skipped if d == "d4")
    assert rows[0] == rows[1] and len(rows[0]) == reports[0].chunks  # the same index, row for row


class _Boom(_Scripted):
    """A connector whose source fails after its first document (a connector bug, not a GroundwireError)."""

    type = "boom"

    def changes(self, state):  # type: ignore[no-untyped-def]
        yield Upsert(_doc(1, "The first document is fine."))
        raise RuntimeError("source went away")


class _BoomPlugin:
    @hookimpl
    def register_connectors(self, register: Any) -> None:
        register(_Boom)


def _boom_grounder(make_grounder: Any) -> Any:
    return make_grounder({"b": {"type": "boom", "tenant": "acme"}}, extra_plugins=(_BoomPlugin(),))


def test_a_connector_error_midway_ends_the_sync_like_before(make_grounder, tmp_path: Path) -> None:
    g = _boom_grounder(make_grounder)
    (r,) = g.sync()
    assert not r.ok and "source went away" in r.error and r.items == 1
    assert not [t for t in threading.enumerate() if t.name.startswith("groundwire-sync-")]  # producer gone


def test_a_connector_bug_is_logged_in_one_line_and_the_traceback_only_at_debug(
        make_grounder, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    g = _boom_grounder(make_grounder)
    with caplog.at_level(logging.DEBUG, logger="groundwire"):
        (r,) = g.sync()
    assert not r.ok
    loud = [rec for rec in caplog.records if rec.levelno >= logging.WARNING and "failed" in rec.getMessage()]
    assert len(loud) == 1 and "RuntimeError: source went away" in loud[0].getMessage(), loud
    assert all(rec.exc_info is None for rec in caplog.records if rec.levelno >= logging.WARNING)
    assert any(rec.exc_info is not None and rec.levelno == logging.DEBUG for rec in caplog.records)
