"""A document edited by a sync is never missing for a reader meanwhile: the new chunks are written before the
old version's leftover chunks are deleted (issue 12: readers see the old or the new state, never a gap)."""

from __future__ import annotations

from groundwire import UserContext
from groundwire.index import TenantIndex

from .trust_helpers import grounder


def test_an_edited_document_is_readable_at_every_write_of_its_sync(tmp_path, monkeypatch) -> None:
    g = grounder(tmp_path)
    g.sync()
    page = tmp_path / "corpus" / "acme" / "payday.md"
    user = UserContext.of("sam", "acme")
    seen: list[tuple[str, int]] = []

    def visible() -> int:
        return len([c for c in g.retrieve("When is Acme payday?", user) if c.doc_id == "payday.md"])

    real_add, real_delete = TenantIndex.add_documents, TenantIndex.delete_ids

    def add(self, *a, **kw):  # a reader right before each write of the sync
        seen.append(("before add", visible()))
        real_add(self, *a, **kw)
        seen.append(("after add", visible()))

    def delete_ids(self, ids):
        real_delete(self, ids)
        seen.append(("after stale delete", visible()))

    monkeypatch.setattr(TenantIndex, "add_documents", add)  # every chunk write of ingestion
    monkeypatch.setattr(TenantIndex, "delete_ids", delete_ids)
    for i, paragraphs in enumerate([3, 1, 0, 2]):  # chunks added, rewritten and left over
        extra = "".join(f"\n\nAcme payday note {j} of edit {i}: transfers leave at nine." for j in range(paragraphs))
        page.write_text(f"# Payday\n\nAcme payday is the 25th of every month, edit {i}.{extra}\n")
        [rep] = [r for r in g.sync() if r.connector == "acme-docs"]
        assert rep.ok and rep.updated == 1, rep
    assert seen and all(n > 0 for _, n in seen), seen
    monkeypatch.undo()
    texts = [c.text for c in g.retrieve("When is Acme payday?", user) if c.doc_id == "payday.md"]
    assert texts and all("edit 3" in t for t in texts)  # no chunk of an older version is left
