"""The shared connector contract tests."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import pytest

from ..connector import Checkpoint, Connector, Delete, Skipped, Unchanged, Upsert
from ..models import AccessControl, Document

__all__ = ["ConnectorContract", "Outcome", "SourceController", "run_changes"]


class SourceController(Protocol):
    """Drives the source behind a connector under test. ``key`` is the test's own name for an item."""

    supports_item_acl: bool

    def add(self, key: str, text: str, allow: list[str]) -> None: ...

    def edit(self, key: str, text: str) -> None: ...

    def delete(self, key: str) -> None: ...

    def set_acl(self, key: str, allow: list[str]) -> None: ...

    def doc_id(self, key: str) -> str: ...


@dataclass
class Outcome:
    upserts: dict[str, Document] = field(default_factory=dict)
    deletes: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    checkpoints: list[Mapping[str, Any]] = field(default_factory=list)
    order: list[str] = field(default_factory=list)

    @property
    def state(self) -> Mapping[str, Any]:
        return self.checkpoints[-1] if self.checkpoints else {}


def run_changes(connector: Connector, state: Mapping[str, Any] | None = None) -> Outcome:
    """Drain ``connector.changes(state)`` into an :class:`Outcome` (the last upsert of a document wins)."""
    out = Outcome()
    try:
        for ch in connector.changes(state or {}):
            if isinstance(ch, Upsert):
                out.upserts[ch.document.id] = ch.document
                out.order.append("upsert")
            elif isinstance(ch, Delete):
                out.deletes.append(ch.doc_id)
                out.upserts.pop(ch.doc_id, None)
                out.order.append("delete")
            elif isinstance(ch, Unchanged):
                out.unchanged.append(ch.doc_id)
            elif isinstance(ch, Skipped):
                out.skipped.append((ch.item, ch.reason))
            elif isinstance(ch, Checkpoint):
                out.checkpoints.append(ch.state)
                out.order.append("checkpoint")
            else:  # pragma: no cover - a contract violation
                raise AssertionError(f"unknown change type {type(ch).__name__}")
    finally:
        connector.close()
    return out


class ConnectorContract:
    """Subclass in your tests; provide ``source`` (fixture) and ``make_connector``."""

    #: principals used by the contract's documents
    ALICE = "user:alice@example.com"
    HR = "group:hr"

    @pytest.fixture
    def source(self) -> Iterator[SourceController]:  # pragma: no cover - subclasses override
        raise NotImplementedError("provide a 'source' fixture returning a SourceController")
        yield

    def make_connector(self, source: SourceController, indexed: Mapping[str, str]) -> Connector:
        raise NotImplementedError  # pragma: no cover

    # --- helpers -------------------------------------------------------------------------------------

    def sync(self, source: SourceController, indexed: dict[str, str], state: Mapping[str, Any] | None) -> Outcome:
        out = run_changes(self.make_connector(source, dict(indexed)), state)
        for doc in out.upserts.values():
            indexed[doc.id] = doc.version
        for d in out.deletes:
            indexed.pop(d, None)
        return out

    def seed(self, source: SourceController) -> None:
        source.add("a", "Alpha document. It talks about the annual budget.", ["everyone"])
        source.add("b", "Bravo document. It is about hiring plans for the HR team.", [self.HR])
        source.add("c", "Charlie document. Alice's personal goals for the year.", [self.ALICE])

    # --- the contract --------------------------------------------------------------------------------

    def test_full_sync_delivers_every_document_with_its_acl(self, source: SourceController) -> None:
        self.seed(source)
        out = self.sync(source, {}, None)
        ids = {source.doc_id(k) for k in "abc"}
        assert ids <= set(out.upserts), f"missing documents: {ids - set(out.upserts)}"
        for doc in out.upserts.values():
            assert doc.title.strip(), f"{doc.id}: empty title"
            assert doc.uri.strip(), f"{doc.id}: empty uri"
            assert doc.text.strip(), f"{doc.id}: no text"
            assert isinstance(doc.acl, AccessControl) and doc.acl.allow, f"{doc.id}: no ACL"
        if source.supports_item_acl:
            assert out.upserts[source.doc_id("b")].acl.grants(frozenset({self.HR}))
            assert not out.upserts[source.doc_id("b")].acl.grants(frozenset({"everyone", self.ALICE}))
            assert out.upserts[source.doc_id("c")].acl.grants(frozenset({self.ALICE}))

    def test_checkpoint_state_is_json_and_comes_last(self, source: SourceController) -> None:
        self.seed(source)
        out = self.sync(source, {}, None)
        assert out.checkpoints, "a sync must end with a Checkpoint"
        assert out.order[-1] == "checkpoint", "changes after the last checkpoint would be lost on resume"
        for st in out.checkpoints:
            json.dumps(st)

    def test_ids_are_stable_across_full_syncs(self, source: SourceController) -> None:
        self.seed(source)
        first = self.sync(source, {}, None)
        second = self.sync(source, {}, None)
        assert set(first.upserts) == set(second.upserts)

    def test_incremental_sync_without_changes_upserts_nothing(self, source: SourceController) -> None:
        self.seed(source)
        indexed: dict[str, str] = {}
        first = self.sync(source, indexed, None)
        second = self.sync(source, indexed, first.state)
        assert not second.upserts, f"unchanged documents re-sent: {sorted(second.upserts)}"
        assert not second.deletes

    def test_edit_is_delivered(self, source: SourceController) -> None:
        self.seed(source)
        indexed: dict[str, str] = {}
        first = self.sync(source, indexed, None)
        source.edit("a", "Alpha document, revised. The budget was cut by ten percent.")
        second = self.sync(source, indexed, first.state)
        doc = second.upserts.get(source.doc_id("a"))
        assert doc is not None and "revised" in doc.text

    def test_delete_is_delivered(self, source: SourceController) -> None:
        self.seed(source)
        indexed: dict[str, str] = {}
        first = self.sync(source, indexed, None)
        source.delete("c")
        second = self.sync(source, indexed, first.state)
        assert source.doc_id("c") in second.deletes
        assert source.doc_id("c") not in indexed

    def test_acl_change_is_delivered(self, source: SourceController) -> None:
        if not source.supports_item_acl:
            pytest.skip("this source sets ACLs per site, not per item")
        self.seed(source)
        indexed: dict[str, str] = {}
        first = self.sync(source, indexed, None)
        source.set_acl("b", [self.ALICE])
        second = self.sync(source, indexed, first.state)
        doc = second.upserts.get(source.doc_id("b"))
        assert doc is not None, "a permission change must be re-delivered"
        assert doc.acl.grants(frozenset({self.ALICE}))
        assert not doc.acl.grants(frozenset({self.HR})), "revoked access must disappear"
