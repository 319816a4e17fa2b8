"""One bad item never aborts a sync (framework/ingest.py), for any connector.

A scripted connector delivers, in one sync, an ACL-only restriction, a document whose id is not valid UTF-8
(a file name with undecodable bytes), a previously indexed document whose title became undecodable, a new
document and a deletion. Before the fix the undecodable id raised out of the sync: the restriction, the new
document and the deletion were never applied, and the report could not even be printed.
"""

from __future__ import annotations

import json

from groundwire import (
    AccessControl,
    Checkpoint,
    Connector,
    ConnectorSettings,
    Delete,
    Document,
    Section,
    Upsert,
    hookimpl,
)


def _doc(doc_id: str, text: str, allow: list[str], title: str = "") -> Document:
    return Document(id=doc_id, title=title or f"Doc {doc_id}", uri=f"https://kb.example/{doc_id}",
                    acl=AccessControl.of(allow), sections=(Section(text),), version=text)


class _Scripted(Connector):
    type = "scripted"
    script: list = []

    class Settings(ConnectorSettings):
        pass

    def changes(self, state):
        yield from _Scripted.script
        yield Checkpoint({"done": True})


class _Plugin:
    @hookimpl
    def register_connectors(self, register):
        register(_Scripted)


FIRST = [
    Upsert(_doc("d1", "The zqone canteen opens at eight every morning.", ["everyone"])),
    Upsert(_doc("d2", "The zqtwo parking garage closes at ten.", ["everyone"])),
    Upsert(_doc("d3", "The zqthree library lends books for two weeks.", ["everyone"])),
]


def test_bad_items_are_skipped_and_every_other_change_of_the_sync_applies(make_grounder) -> None:
    g = make_grounder({"s": {"type": "scripted", "tenant": "acme"}}, extra_plugins=(_Plugin(),))
    _Scripted.script = FIRST
    assert g.sync()[0].added == 3
    _Scripted.script = [
        Upsert(_doc("d1", "The zqone canteen opens at eight every morning.", ["group:hr"])),  # restrict
        Upsert(_doc("notes\udcff.md", "The zqbad notes.", ["everyone"])),  # undecodable id
        Upsert(_doc("d2", "The zqtwo parking garage closes at ten.", ["everyone"], title="Park\udcffing")),
        Upsert(_doc("d4", "The zqfour gym opens at six.", ["everyone"])),
        Delete("d3"),
    ]
    r = g.sync()[0]
    assert r.ok, r.error
    docs = g.index.tenant("acme").documents("s")
    assert set(docs) == {"d1", "d4"}, "d2's old version must be gone (fail closed), d3 deleted, d4 added"
    assert r.acl_updated == 1 and r.added == 1
    skipped = dict(r.skipped)
    assert "not valid UTF-8" in skipped["notes\\xff.md"] and "title" in skipped["d2"]
    json.dumps(r.to_dict() | {"skipped_items": r.skipped}).encode("utf-8")  # printable, as `sync --json` does
    sam = g.ground("When does the canteen open every morning", "sam@example.com")
    assert "zqone" not in sam.text and not sam.citations
    assert "zqtwo" not in g.ground("When does the parking garage close", "sam@example.com").text


def test_an_embedding_failure_drops_only_the_document_that_caused_it(make_grounder, monkeypatch) -> None:
    g = make_grounder({"s": {"type": "scripted", "tenant": "acme"}}, extra_plugins=(_Plugin(),))
    real = g.embedder.embed_documents

    def picky(texts):
        if any("zqpoison" in t for t in texts):
            raise ValueError("input the model cannot take")
        return real(texts)

    monkeypatch.setattr(g.embedder, "embed_documents", picky)
    _Scripted.script = [*FIRST[:2], Upsert(_doc("p", "The zqpoison text.", ["everyone"])), FIRST[2]]
    r = g.sync()[0]
    assert r.ok, r.error
    assert set(g.index.tenant("acme").documents("s")) == {"d1", "d2", "d3"}
    assert "embedding failed" in dict(r.skipped)["p"]
