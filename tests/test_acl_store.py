"""The authoritative chunk ACL store (groundwire.acl_store) on real embedded Chroma: whatever a reader's Chroma
state says, a chunk the store does not grant is never returned (get_chunks, query, every public path through the
Grounder), writes narrow the store before Chroma and widen it after, and an existing index is filled once."""

from __future__ import annotations

import numpy as np
import pytest
from groundwire import AccessControl
from groundwire.acl_store import meet
from groundwire.index import Index, _acl_meta, make_client
from groundwire.models import Chunk
from groundwire.retrieval import FastRetriever

DIM = 8


def chunk(cid: str, allow, deny=(), text: str = "") -> Chunk:
    return Chunk(id=cid, doc_id=cid, connector="kb", tenant="acme", text=text or f"text of {cid}", title="",
                 uri=f"file:///{cid}", location="", acl=AccessControl.of(allow, deny), position=0)


def tenant(path):
    index = Index(make_client("embedded", path), "test-model", DIM)
    t = index.tenant("acme")
    rng = np.random.default_rng(1)
    t.add_document_chunks([chunk(f"d{i}", ["group:hr"]) for i in range(6)],
                          rng.normal(size=(6, DIM)).astype(np.float32), "v1", "h")
    return index, t


def lagging_chroma(t, cid: str, allow, deny=()) -> None:
    """Make Chroma's row say what a lagging reader's view said (the store is not told): the old, wide ACL."""
    meta = {**_acl_meta(AccessControl.of(allow, deny))}
    t.collection.update(ids=[cid], metadatas=[meta])


def test_a_chunk_the_store_revoked_is_never_served_whatever_chroma_says(tmp_path):
    index, t = tenant(tmp_path / "chroma")
    t.update_acl("kb", "d2", AccessControl.of(["group:hr"], ["user:ann"]), "v2")
    t.update_acl("kb", "d3", AccessControl.of(["group:board"]), "v2")
    t.delete_documents("kb", ["d4"])
    lagging_chroma(t, "d2", ["group:hr"])  # Chroma still shows the old ACL: ann is not denied
    lagging_chroma(t, "d3", ["group:hr"])
    ann = {"user:ann", "group:hr"}
    got = {c.id for c in t.get_chunks(["d1", "d2", "d3"], ann, ["kb"])}
    assert got == {"d1"}
    assert {c.id for c in t.query(np.ones(DIM), ann, ["kb"], 10)} == {"d0", "d1", "d5"}
    fast = FastRetriever(t, exact_max_rows=10_000)
    assert {c.id for c in fast.retrieve(np.ones(DIM), ann, ["kb"], 10)} == {"d0", "d1", "d5"}
    # a row the store has no entry for (deleted, or written to Chroma only) is not readable either
    t.collection.upsert(ids=["ghost"], embeddings=np.ones((1, DIM), dtype=np.float32), documents=[
        '{"text": "zqghost", "title": "", "uri": "", "location": ""}'], metadatas=[{
            "doc_id": "ghost", "doc_key": "k", "connector": "kb", "position": 0, "version": "v", "content_hash": "h",
            "acl_fp": "x", **_acl_meta(AccessControl.of(["everyone"]))}])
    assert t.get_chunks(["ghost"], {"everyone"}, ["kb"]) == []


def test_served_chunks_carry_the_meet_of_both_acls(tmp_path):
    _, t = tenant(tmp_path / "chroma")
    t.update_acl("kb", "d1", AccessControl.of(["group:hr", "user:bob"], ["user:eve"]), "v2")
    lagging_chroma(t, "d1", ["group:hr", "user:ann"])
    [c] = t.get_chunks(["d1"], {"group:hr"}, ["kb"])
    assert c.acl == AccessControl.of(["group:hr"], ["user:eve"])
    assert meet((frozenset({"a", "b"}), frozenset()), (frozenset({"b"}), frozenset({"c"}))) == (
        frozenset({"b"}), frozenset({"c"}))


@pytest.mark.parametrize("change", ["narrow", "widen", "delete", "new"])
def test_the_store_is_narrowed_before_and_widened_after_the_chroma_write(tmp_path, change):
    _, t = tenant(tmp_path / "chroma")
    seen: list[object] = []
    col = t.collection

    class Spy:
        def __getattr__(self, name):
            attr = getattr(col, name)
            if name not in ("update", "upsert", "delete"):
                return attr

            def call(*a, **kw):
                seen.append(t.acl.get(["d1", "n1"]))  # the store while Chroma is being written
                return attr(*a, **kw)
            return call

    t.collection = Spy()
    if change == "narrow":
        t.update_acl("kb", "d1", AccessControl.of(["user:ann"]), "v2")
        during = (frozenset(), frozenset())  # hr ∩ ann: nobody while the write runs
        after = (frozenset({"user:ann"}), frozenset())
    elif change == "widen":
        t.update_acl("kb", "d1", AccessControl.of(["group:hr", "user:ann"]), "v2")
        during = (frozenset({"group:hr"}), frozenset())  # still the old ACL: ann only after the write
        after = (frozenset({"group:hr", "user:ann"}), frozenset())
    elif change == "delete":
        t.delete_documents("kb", ["d1"])
        during = after = None
    else:
        t.add_document_chunks([chunk("n1", ["everyone"])], np.ones((1, DIM), dtype=np.float32), "v1", "h")
        assert all("n1" not in s for s in seen) and t.acl.get(["n1"])["n1"] == (frozenset({"everyone"}), frozenset())
        return
    assert seen and all(s.get("d1") == during for s in seen)
    assert t.acl.get(["d1"]).get("d1") == after


def test_an_index_made_before_the_store_is_filled_once_from_chroma(tmp_path):
    path = tmp_path / "chroma"
    _, t = tenant(path)
    store = t.acl
    assert store is not None
    store.path.unlink()  # an index from a release without the store
    for suffix in ("-wal", "-shm"):
        store.path.with_name(store.path.name + suffix).unlink(missing_ok=True)
    fresh = Index(make_client("embedded", path), "test-model", DIM)
    fresh._acl.clear()
    t2 = fresh.tenant("acme")
    assert {c.id for c in t2.get_chunks([f"d{i}" for i in range(6)], {"group:hr"}, ["kb"])} == {
        f"d{i}" for i in range(6)}
    assert t2.acl is not None and t2.acl.complete()
