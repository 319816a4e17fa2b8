"""Incremental ingestion with the knowledge-base connector on real files and a real embedded Chroma."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from groundwire import (
    AccessControl,
    Checkpoint,
    Connector,
    ConnectorSettings,
    Document,
    Section,
    Upsert,
    hookimpl,
)

from .conftest import kb, write


def _docs(g, tenant="acme", connector="kb"):
    return g.index.tenant(tenant).documents(connector)


def _touch(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))


def test_first_sync_indexes_every_file_with_an_acl(make_grounder, corpus) -> None:
    g = make_grounder({"kb": kb(corpus)})
    r = g.sync()[0]
    assert r.ok, r.error
    assert (r.added, r.updated, r.deleted) == (3, 0, 0)
    assert set(_docs(g)) == {"handbook/leave.md", "hr/salaries.md", "people/dana.md"}


def test_incremental_sync_changed_unchanged_deleted(make_grounder, corpus) -> None:
    g = make_grounder({"kb": kb(corpus)})
    g.sync()
    before = _docs(g)
    again = g.sync()[0]
    assert (again.added, again.updated, again.deleted, again.unchanged, again.chunks) == (0, 0, 0, 3, 0)

    _touch(corpus / "handbook" / "leave.md", "# Leave policy\n\nEvery employee receives 30 days of leave now.\n")
    (corpus / "people" / "dana.md").unlink()
    write(corpus / "handbook" / "new.md", "# New\n\nThe canteen opens at eight.\n")
    r = g.sync()[0]
    assert (r.added, r.updated, r.deleted, r.unchanged) == (1, 1, 1, 1)
    after = _docs(g)
    assert set(after) == {"handbook/leave.md", "hr/salaries.md", "handbook/new.md"}
    assert after["handbook/leave.md"].content_hash != before["handbook/leave.md"].content_hash
    assert after["hr/salaries.md"] == before["hr/salaries.md"]
    draft = g.ground("how many days of leave", "sam@example.com")
    assert "30 days" in draft.text and "25 days" not in draft.text
    # the deleted file's chunks are gone from the store itself, not only hidden
    assert g.index.tenant("acme").collection.get(where={"doc_id": "people/dana.md"})["ids"] == []


def test_acl_change_updates_without_reembedding_and_revokes(make_grounder, corpus) -> None:
    g = make_grounder({"kb": kb(corpus)})
    g.sync()
    assert any(c.doc_id == "people/dana.md" for c in g.ground("Dana bonus euros", "dana@example.com").citations)
    write(corpus / "people" / "dana.md.acl.toml", 'allow = ["group:hr"]\n')
    r = g.sync()[0]
    assert r.acl_updated == 1 and r.chunks == 0  # metadata only, no new embeddings
    assert not any(c.doc_id == "people/dana.md" for c in g.ground("Dana bonus euros", "dana@example.com").citations)
    assert any(c.doc_id == "people/dana.md" for c in
               g.ground("Dana bonus euros", "hana@example.com", groups=["hr"]).citations)


def test_removing_an_acl_removes_the_document(make_grounder, corpus) -> None:
    g = make_grounder({"kb": kb(corpus)})
    g.sync()
    (corpus / "people" / "dana.md.acl.toml").unlink()
    (corpus / ".groundwire-acl.toml").unlink()
    r = g.sync()[0]
    assert "people/dana.md" not in _docs(g) and "handbook/leave.md" not in _docs(g)
    reasons = dict(r.skipped)
    assert "no ACL" in reasons["people/dana.md"]


def test_config_acl_patterns_most_specific_wins(make_grounder, tmp_path) -> None:
    root = tmp_path / "c"
    write(root / "a" / "x.md", "# X\n\nSome text about the x project plan.\n")
    write(root / "a" / "secret" / "y.md", "# Y\n\nSome text about the y project budget.\n")
    g = make_grounder({"kb": kb(root, acl={"*": ["everyone"], "a/secret/*": {"allow": ["group:board"]}})})
    g.sync()
    assert "a/secret/y.md" not in {c.doc_id for c in g.ground("y project budget", "sam@example.com").citations}
    assert "a/secret/y.md" in {c.doc_id for c in
                               g.ground("y project budget", "b@example.com", groups=["board"]).citations}


def test_invalid_acl_fails_closed(make_grounder, corpus) -> None:
    write(corpus / "handbook" / "leave.md.acl.toml", 'allow = ["admins"]\n')  # not a valid principal
    g = make_grounder({"kb": kb(corpus)})
    r = g.sync()[0]
    assert "handbook/leave.md" not in _docs(g)
    assert "invalid ACL" in dict(r.skipped)["handbook/leave.md"]


def test_bad_files_are_skipped_with_a_reason_and_the_rest_indexed(make_grounder, corpus) -> None:
    (corpus / "handbook" / "broken.pdf").write_bytes(b"%PDF-1.4 this is not really a pdf")
    (corpus / "handbook" / "image.png").write_bytes(b"\x89PNG\r\n")
    (corpus / "handbook" / "latin1.txt").write_bytes("Caf\xe9 opening hours are from eight.".encode("latin-1"))
    g = make_grounder({"kb": kb(corpus)})
    r = g.sync()[0]
    reasons = dict(r.skipped)
    assert "pdf" in reasons["handbook/broken.pdf"].lower()
    assert "unsupported" in reasons["handbook/image.png"]
    assert {"handbook/leave.md", "handbook/latin1.txt"} <= set(_docs(g))


class _Flaky(Connector):
    """Yields documents with a checkpoint after each; dies after `die_after` documents once."""

    type = "flaky"
    runs: list[dict] = []
    die_after: int | None = 3

    class Settings(ConnectorSettings):
        n: int = 6

    def changes(self, state):
        _Flaky.runs.append(dict(state))
        start = int(state.get("next", 0))
        for i in range(start, self.settings.n):
            if _Flaky.die_after is not None and i == _Flaky.die_after:
                _Flaky.die_after = None
                raise ConnectionError("network went away")
            yield Upsert(Document(id=f"d{i}", title=f"Doc {i}", uri=f"https://x/{i}",
                                  acl=AccessControl.of(["everyone"]),
                                  sections=(Section(f"Document number {i} talks about topic {i}."),)))
            yield Checkpoint({"next": i + 1})


class _FlakyPlugin:
    @hookimpl
    def register_connectors(self, register):
        register(_Flaky)


def test_sync_killed_half_way_resumes_from_checkpoint_without_duplicates(make_grounder) -> None:
    _Flaky.runs, _Flaky.die_after = [], 3
    g = make_grounder({"f": {"type": "flaky", "tenant": "acme"}}, extra_plugins=(_FlakyPlugin(),))
    r1 = g.sync()[0]
    assert not r1.ok and "network went away" in r1.error and r1.added == 3
    r2 = g.sync()[0]
    assert r2.ok and r2.added == 3
    assert _Flaky.runs == [{}, {"next": 3}]  # resumed from the saved checkpoint
    docs = g.index.tenant("acme").documents("f")
    assert set(docs) == {f"d{i}" for i in range(6)}
    assert g.index.tenant("acme").count() == 6  # one chunk each, nothing duplicated


def test_one_failing_connector_does_not_stop_the_others(make_grounder, corpus, tmp_path) -> None:
    g = make_grounder({"bad": kb(tmp_path / "missing"), "kb": kb(corpus)})
    bad, good = g.sync()
    assert not bad.ok and good.ok and good.added == 3


def test_unconfigured_connector_data_is_never_searched(make_grounder, corpus, tmp_path) -> None:
    """Trust invariant 1: removing a connector from the configuration removes it from retrieval."""
    g = make_grounder({"kb": kb(corpus)})
    g.sync()
    assert g.ground("annual leave days", "sam@example.com").citations
    g2 = make_grounder({"other": kb(tmp_path / "empty-but-present")})
    (tmp_path / "empty-but-present").mkdir()
    g2._index = g.index  # same store, which still holds the 'kb' chunks
    assert g2.ground("annual leave days", "sam@example.com").citations == []


def test_sync_progress_callback_and_timing(make_grounder, corpus) -> None:
    seen = []
    g = make_grounder({"kb": kb(corpus)})
    g.sync(progress=lambda name, rep: seen.append((name, rep.added)))
    assert seen and seen[-1] == ("kb", 3)
    assert g.sync()[0].seconds >= 0


def test_full_resync_is_idempotent(make_grounder, corpus) -> None:
    g = make_grounder({"kb": kb(corpus)})
    g.sync()
    count = g.index.tenant("acme").count()
    r = g.sync(full=True)[0]
    assert g.index.tenant("acme").count() == count and r.added == 0


def test_changing_the_embedder_requires_a_rebuild_and_rebuild_works(make_grounder, corpus, tmp_path) -> None:
    from groundwire.errors import IndexError_

    g = make_grounder({"kb": kb(corpus)})
    g.sync()
    g2 = make_grounder({"kb": kb(corpus)}, embedder={"name": "hashing", "options": {"dimension": 128}})
    r = g2.sync()[0]
    assert not r.ok and "sync --rebuild" in r.error
    with pytest.raises(IndexError_, match="--rebuild"):
        g2.ground("annual leave", "sam@example.com")
    reports = g2.sync(rebuild=True)
    assert reports[0].ok and reports[0].added == 3
    assert g2.ground("days of paid annual leave per year", "sam@example.com").citations
