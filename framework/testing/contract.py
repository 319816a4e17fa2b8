"""The shared connector contract tests.

Every connector runs the general cases (ACLs, checkpoints, stable ids, edits, deletions, ACL changes). A
connector that reads local files also runs the hostile-source cases: links out of its root (to
``/etc/passwd``, to another tenant's folder), links inside it, link loops, hard links (to a file outside the
root), FIFOs, links to devices and names that are not valid UTF-8 must be skipped with a reason while the
rest of the sync completes; each of those syncs runs under a timeout so a regression fails instead of hanging
the suite. A subclass declares
``reads_local_files = True`` (its source is then a :class:`FileSourceController`) or ``False`` (the cases
are reported as not applicable); leaving it undeclared fails them.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol, cast

import pytest

from ..connector import Checkpoint, Connector, Delete, Skipped, Unchanged, Upsert
from ..models import AccessControl, Document

__all__ = ["ConnectorContract", "FileSourceController", "Outcome", "SourceController", "run_changes"]


class SourceController(Protocol):
    """Drives the source behind a connector under test. ``key`` is the test's own name for an item."""

    supports_item_acl: bool

    def add(self, key: str, text: str, allow: list[str]) -> None: ...

    def edit(self, key: str, text: str) -> None: ...

    def delete(self, key: str) -> None: ...

    def set_acl(self, key: str, allow: list[str]) -> None: ...

    def doc_id(self, key: str) -> str: ...


class FileSourceController(SourceController, Protocol):
    """A source over a local folder. ``path_for(key)`` is the file ``add(key, ...)`` wrote; the contract
    replaces it with a link, a FIFO or a renamed file, which must keep the ACL ``add`` gave it (for example
    a per-item folder ACL), so a refusal is the confinement's and not a missing ACL's."""

    root: Path

    def path_for(self, key: str) -> Path: ...


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
    #: True: the connector reads local files (its source is a FileSourceController); False: the hostile-file
    #: cases do not apply (web, SharePoint). Undeclared (None) fails those cases: decide explicitly.
    reads_local_files: ClassVar[bool | None] = None
    #: seconds a sync over a hostile folder may take before the contract calls it hung
    HANG_TIMEOUT: ClassVar[float] = 30.0

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

    # --- hostile local sources (reads_local_files = True) ----------------------------------------------

    def file_source(self, source: SourceController) -> FileSourceController:
        if self.reads_local_files is None:
            pytest.fail(f"{type(self).__name__}: declare reads_local_files = True or False")
        if not self.reads_local_files:
            pytest.skip("not applicable: this connector reads no local files (reads_local_files = False)")
        return cast(FileSourceController, source)

    def guarded_sync(
        self, source: SourceController, indexed: dict[str, str], state: Mapping[str, Any] | None,
        fifos: tuple[Path, ...] = (),
    ) -> Outcome:
        """:meth:`sync` in a worker thread; fails (and unblocks the FIFOs) after ``HANG_TIMEOUT`` seconds."""
        box: dict[str, Any] = {}

        def run() -> None:
            try:
                box["out"] = self.sync(source, indexed, state)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the test thread
                box["exc"] = exc

        t = threading.Thread(target=run, daemon=True, name="contract-sync")
        t.start()
        t.join(self.HANG_TIMEOUT)
        if t.is_alive():
            for f in fifos:  # a reader blocked in open() gets EOF once a writer comes and goes
                try:
                    os.close(os.open(f, os.O_WRONLY | os.O_NONBLOCK))
                except OSError:
                    pass
            pytest.fail(f"sync did not finish within {self.HANG_TIMEOUT}s: a FIFO, device or link loop was read")
        if "exc" in box:
            raise box["exc"]
        return cast(Outcome, box["out"])

    @staticmethod
    def _replace(path: Path, make: Callable[[Path], None]) -> None:
        path.unlink()
        make(path)

    def _assert_clean(self, out: Outcome, forbidden: list[str]) -> None:
        for doc in out.upserts.values():
            seen = " ".join([doc.id, doc.title, doc.uri, doc.text])
            for f in forbidden:
                assert f not in seen, f"{doc.id}: contains {f!r} from outside the root"

    def _skipped_names(self, out: Outcome) -> str:
        return " ".join(f"{item} {reason}" for item, reason in out.skipped)

    def test_links_out_of_the_root_are_never_read(
        self, source: SourceController, tmp_path_factory: pytest.TempPathFactory
    ) -> None:
        src = self.file_source(source)
        other = tmp_path_factory.mktemp("other-tenant-kb")
        assert not str(other.resolve()).startswith(str(src.root.resolve()) + os.sep)
        secret = other / "salaries.md"
        secret.write_text("# Salaries\n\nThe other tenant's zqsecretpay figure is confidential.\n")
        (other / "hr").mkdir()
        (other / "hr" / "plan.md").write_text("# Plan\n\nThe zqsecretplan of the other tenant.\n")
        source.add("a", "Alpha document. It talks about the annual budget.", ["everyone"])
        source.add("x", "placeholder for a link to another tenant's file", ["everyone"])
        source.add("y", "placeholder for a link to the password file", ["everyone"])
        self._replace(src.path_for("x"), lambda p: p.symlink_to(secret))
        if Path("/etc/passwd").exists():
            self._replace(src.path_for("y"), lambda p: p.symlink_to("/etc/passwd"))
        (src.path_for("a").parent / "linked").symlink_to(other, target_is_directory=True)
        out = self.guarded_sync(source, {}, None)
        self._assert_clean(out, ["zqsecret", str(other), "/etc/passwd", "root:x:0:0", "other-tenant"])
        assert source.doc_id("x") not in out.upserts and source.doc_id("y") not in out.upserts
        assert source.doc_id("a") in out.upserts, "one refused link must not stop the rest of the sync"
        names = self._skipped_names(out)
        assert src.path_for("x").name in names, "a refused link must be reported with its reason"

    def test_links_inside_the_root_are_not_followed_by_default(self, source: SourceController) -> None:
        src = self.file_source(source)
        source.add("a", "Alpha document. It talks about the annual budget.", ["everyone"])
        source.add("l", "placeholder for a link", ["everyone"])
        self._replace(src.path_for("l"), lambda p: p.symlink_to(src.path_for("a")))
        out = self.guarded_sync(source, {}, None)
        assert source.doc_id("l") not in out.upserts
        assert src.path_for("l").name in self._skipped_names(out)

    def test_hard_links_are_not_read_by_default(
        self, source: SourceController, tmp_path_factory: pytest.TempPathFactory
    ) -> None:
        src = self.file_source(source)
        other = tmp_path_factory.mktemp("other-tenant-hard")
        secret = other / "salaries.md"
        secret.write_text("# Salaries\n\nThe other tenant's zqhardsecret figure is confidential.\n")
        source.add("a", "Alpha document. It talks about the annual budget.", ["everyone"])
        source.add("h", "placeholder for a hard link to another tenant's file", ["everyone"])
        try:
            self._replace(src.path_for("h"), lambda p: os.link(secret, p))
        except OSError as exc:  # another file system (EXDEV) or no hard links at all
            pytest.skip(f"cannot make a hard link here: {exc}")
        out = self.guarded_sync(source, {}, None)
        self._assert_clean(out, ["zqhardsecret"])
        assert source.doc_id("h") not in out.upserts
        assert source.doc_id("a") in out.upserts, "one refused hard link must not stop the rest of the sync"
        assert src.path_for("h").name in self._skipped_names(out), "a refused hard link must be reported"
        assert "hard link" in self._skipped_names(out)

    def test_fifos_and_device_links_are_never_opened(self, source: SourceController) -> None:
        src = self.file_source(source)
        source.add("a", "Alpha document. It talks about the annual budget.", ["everyone"])
        source.add("f", "placeholder for a FIFO", ["everyone"])
        source.add("z", "placeholder for a link to /dev/zero", ["everyone"])
        fifo = src.path_for("f")
        self._replace(fifo, lambda p: os.mkfifo(p))
        if Path("/dev/zero").exists():
            self._replace(src.path_for("z"), lambda p: p.symlink_to("/dev/zero"))
        out = self.guarded_sync(source, {}, None, fifos=(fifo,))
        assert source.doc_id("f") not in out.upserts and source.doc_id("z") not in out.upserts
        assert source.doc_id("a") in out.upserts
        names = self._skipped_names(out)
        assert fifo.name in names and src.path_for("z").name in names

    def test_directory_link_loops_terminate(self, source: SourceController) -> None:
        src = self.file_source(source)
        source.add("a", "Alpha document. It talks about the annual budget.", ["everyone"])
        (src.root / "loop").symlink_to(".", target_is_directory=True)
        (src.path_for("a").parent / "up").symlink_to("..", target_is_directory=True)
        out = self.guarded_sync(source, {}, None)
        assert source.doc_id("a") in out.upserts
        assert not [d for d in out.upserts if "loop" in d or "up/" in d]

    def test_non_utf8_name_is_skipped_and_the_rest_of_the_sync_completes(self, source: SourceController) -> None:
        src = self.file_source(source)
        self.seed(source)
        indexed: dict[str, str] = {}
        first = self.sync(source, indexed, None)
        old = src.path_for("c")
        raw = os.fsencode(old)
        os.rename(raw, raw[: -len(old.suffix)] + b"\xff" + os.fsencode(old.suffix))
        source.edit("a", "Alpha document, revised. The budget was cut by ten percent.")
        if source.supports_item_acl:
            source.set_acl("b", [self.ALICE])
        second = self.guarded_sync(source, indexed, first.state)
        doc = second.upserts.get(source.doc_id("a"))
        assert doc is not None and "revised" in doc.text, "an edit in the same sync must be delivered"
        if source.supports_item_acl:
            b = second.upserts.get(source.doc_id("b"))
            assert b is not None and not b.acl.grants(frozenset({self.HR})), "a revocation must be delivered"
        assert source.doc_id("c") in second.deletes
        for d in second.upserts.values():
            for value in (d.id, d.title, d.uri, d.text):
                value.encode("utf-8")  # raises on a surrogate escape
        assert "\\xff" in self._skipped_names(second), "the undecodable name must be reported, printable"
