"""``sync --rebuild`` without loss (issue 12): a rebuild builds beside the live data and swaps only on
success; ``--connector`` limits it; settings are validated before anything is written; a rebuild that
fails half-way leaves the old data and the saved connector state intact and queryable.

Real embedded Chroma; a small connector registered by the test fails after ``fail_after`` documents.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from groundwire import AccessControl, ConfigError, Connector, Document, hookimpl
from groundwire.connector import Checkpoint, ConnectorSettings, Upsert
from groundwire.models import Section

from .conftest import kb


class FlakySettings(ConnectorSettings):
    docs: int = 6
    fail_after: int | None = None
    word: str = "harbour"


class Flaky(Connector):
    """``docs`` documents, a checkpoint after each; raises after ``fail_after`` of them."""

    type = "flaky"
    Settings = FlakySettings

    def changes(self, state: Mapping[str, Any]) -> Iterator[Any]:
        s: Any = self.settings
        for i in range(s.docs):
            if s.fail_after is not None and i >= s.fail_after:
                raise RuntimeError("the source went away")
            text = f"The {s.word} report number {i}."
            yield Upsert(Document(id=f"doc{i}", title=f"Doc {i}", uri=f"flaky://{i}", version="1",
                                  acl=AccessControl.of(["everyone"]), sections=(Section(text),)))
            yield Checkpoint({"seen": i + 1})


class FlakyPlugin:
    @hookimpl
    def register_connectors(self, register: Any) -> None:
        register(Flaky)


def _grounder(make_grounder: Any, corpus: Path, **flaky: Any) -> Any:
    return make_grounder({"kb": kb(corpus), "flaky": {"type": "flaky", "tenant": "acme", **flaky}},
                         extra_plugins=(FlakyPlugin(),))


def _ids(g: Any) -> set[str]:
    return set(g.index.tenant("acme").collection.get(include=[])["ids"])


def _state(tmp_path: Path) -> dict[str, bytes]:
    root = tmp_path / "data" / "state"
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.json"))}


def _answers(g: Any) -> bool:
    draft = g.ground("harbour report", "alice")
    return bool(draft.citations)


@pytest.fixture
def synced(make_grounder: Any, corpus: Path, tmp_path: Path) -> tuple[set[str], dict[str, bytes]]:
    g = _grounder(make_grounder, corpus)
    assert all(r.ok for r in g.sync())
    return _ids(g), _state(tmp_path)


def test_rebuild_failing_half_way_keeps_the_live_data(make_grounder, corpus, tmp_path, synced) -> None:
    ids, state = synced
    g = _grounder(make_grounder, corpus, fail_after=3, word="lighthouse")
    reports = {r.connector: r for r in g.sync(rebuild=True)}
    assert "the source went away" in reports["flaky"].error
    assert "not applied" in reports["kb"].error  # kb itself succeeded, but the tenant swaps as a whole
    assert _ids(g) == ids and _state(tmp_path) == state
    assert _answers(g)  # still queryable, old text
    fresh = _grounder(make_grounder, corpus)  # another handle (e.g. another process) sees the same
    assert _ids(fresh) == ids and _answers(fresh)
    # no staged collection is left behind
    names = {c if isinstance(c, str) else c.name for c in g.index.client.list_collections()}
    assert names == {"gw-acme"}


def test_rebuild_succeeds_and_swaps(make_grounder, corpus, tmp_path, synced) -> None:
    ids, _ = synced
    g = _grounder(make_grounder, corpus, word="lighthouse")
    assert all(r.ok for r in g.sync(rebuild=True))
    assert _ids(g) == ids  # stable chunk ids: the same documents
    assert "lighthouse" in g.ground("lighthouse report", "alice").text
    other = _grounder(make_grounder, corpus)
    assert "lighthouse" in other.ground("lighthouse report", "alice").text


def test_connector_rebuild_touches_only_that_connector(make_grounder, corpus, tmp_path, synced) -> None:
    ids, state = synced
    g = _grounder(make_grounder, corpus, fail_after=2)
    (report,) = g.sync(["flaky"], rebuild=True)
    assert "the source went away" in report.error
    assert _ids(g) == ids and _state(tmp_path) == state
    # success with fewer documents: the connector's stale chunks go, kb's stay
    g = _grounder(make_grounder, corpus, docs=4)
    kb_before = set(g.index.tenant("acme").collection.get(where={"connector": "kb"}, include=[])["ids"])
    (report,) = g.sync(["flaky"], rebuild=True)
    assert report.ok and report.added == 4
    col = g.index.tenant("acme").collection
    assert set(col.get(where={"connector": "kb"}, include=[])["ids"]) == kb_before
    assert len(col.get(where={"connector": "flaky"}, include=[])["ids"]) == 4


def test_settings_are_validated_before_anything_is_written(make_grounder, corpus, tmp_path, synced) -> None:
    ids, state = synced
    g = _grounder(make_grounder, corpus, fail_afer=1)  # misspelt key
    with pytest.raises(ConfigError, match="connectors.flaky.fail_afer"):
        g.sync(rebuild=True)
    assert _ids(g) == ids and _state(tmp_path) == state


def test_embedder_change_needs_a_whole_tenant_rebuild(make_grounder, corpus, tmp_path, synced) -> None:
    ids, state = synced
    g = make_grounder({"kb": kb(corpus), "flaky": {"type": "flaky", "tenant": "acme"}},
                      extra_plugins=(FlakyPlugin(),), embedder={"name": "hashing", "options": {"dimension": 128}})
    (report,) = g.sync(["flaky"], rebuild=True)
    assert "rebuild all of the tenant's connectors together" in report.error
    assert all(r.ok for r in g.sync(rebuild=True))
    assert _ids(g) == ids and _answers(g)
