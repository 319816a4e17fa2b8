"""Red team, round 4: knowledge-base sidecars a fault or a careless operator leaves behind, and names that
collide after Unicode normalisation (real files, real Chroma, the hashing embedder).

An ACL sidecar cut to nothing (a full disk while an editor saved it, ``> hr.md.acl.toml``) or holding only
comments parsed as "no statement", so its file silently fell back to the folder's audience: the HR file
below became readable by everyone. Such a sidecar now fails its files closed like any malformed one.
"""

from __future__ import annotations

import unicodedata
from pathlib import Path
from typing import Any

import pytest
from groundwire import GroundingRequest, UserContext

from .conftest import write

SAM = UserContext.of("sam", "acme")
HAL = UserContext.of("hal", "acme", groups=["hr"])


def _docs(g: Any, user: UserContext, prompt: str) -> set[str]:
    return {c.doc_id for c in g.retrieve(GroundingRequest(user=user, prompt=prompt, top_k=50))}


@pytest.mark.parametrize("cut", ["", "# allow = [\"group:hr\"]\n", "\n\n"], ids=["empty", "comments-only", "blank"])
def test_a_file_sidecar_cut_to_nothing_fails_its_file_closed(make_grounder: Any, tmp_path: Path, cut: str) -> None:
    root = tmp_path / "kb"
    write(root / ".groundwire-acl.toml", 'allow = ["everyone"]\n')
    write(root / "pay.md", "# Pay\n\nThe zqcut payday is the 25th.\n")
    write(root / "raises.md", "# Raises\n\nThe zqcut raise budget is secret.\n")
    write(root / "raises.md.acl.toml", 'allow = ["group:hr"]\n')
    g = make_grounder({"kb": {"type": "knowledge_base", "tenant": "acme", "path": str(root)}})
    assert g.sync()[0].ok
    assert _docs(g, SAM, "zqcut budget payday") == {"pay.md"}
    assert "raises.md" in _docs(g, HAL, "zqcut budget payday")

    (root / "raises.md.acl.toml").write_text(cut)  # what a write cut short, or `> file`, leaves
    [rep] = g.sync()
    assert rep.ok, rep.error
    assert "raises.md" not in _docs(g, SAM, "zqcut budget payday"), "the HR file fell back to the folder's everyone"
    assert any(item == "raises.md" and "raises.md.acl.toml" in why and "neither allow nor deny" in why
               for item, why in rep.skipped), rep.skipped
    assert "raises.md" not in _docs(g, HAL, "zqcut budget payday")  # withdrawn until the sidecar is fixed
    assert _docs(g, SAM, "zqcut budget payday") == {"pay.md"}  # the rest of the sync went on

    (root / "raises.md.acl.toml").write_text('allow = ["group:hr"]\n')
    assert g.sync()[0].ok
    assert "raises.md" in _docs(g, HAL, "zqcut budget payday")
    assert "raises.md" not in _docs(g, SAM, "zqcut budget payday")


def test_an_empty_folder_sidecar_fails_its_subtree_closed(make_grounder: Any, tmp_path: Path) -> None:
    root = tmp_path / "kb"
    write(root / ".groundwire-acl.toml", 'allow = ["everyone"]\n')
    write(root / "pay.md", "# Pay\n\nThe zqcut payday is the 25th.\n")
    write(root / "hr" / ".groundwire-acl.toml", "")
    write(root / "hr" / "raises.md", "# Raises\n\nThe zqcut raise budget is secret.\n")
    g = make_grounder({"kb": {"type": "knowledge_base", "tenant": "acme", "path": str(root)}})
    [rep] = g.sync()
    assert rep.ok, rep.error
    assert _docs(g, SAM, "zqcut budget payday") == {"pay.md"}
    assert any(item == "hr/raises.md" and "neither allow nor deny" in why for item, why in rep.skipped), rep.skipped


def test_nfc_and_nfd_twins_each_keep_their_own_sidecar(make_grounder: Any, tmp_path: Path) -> None:
    """Two files whose names differ only in normalisation (a Mac's NFD copy beside the NFC original), each
    with its own sidecar: neither inherits the other's ACL, and a sidecar differing only in case governs
    nothing on a case-sensitive file system (the folder's ACL applies, not the look-alike's)."""
    root = tmp_path / "kb"
    nfc, nfd = unicodedata.normalize("NFC", "Über"), unicodedata.normalize("NFD", "Über")
    write(root / ".groundwire-acl.toml", 'allow = ["group:staff"]\n')
    write(root / f"{nfc}.md", "# A\n\nThe zqtwin salary table for hr.\n")
    write(root / f"{nfc}.md.acl.toml", 'allow = ["group:hr"]\n')
    write(root / f"{nfd}.md", "# B\n\nThe zqtwin canteen menu for all.\n")
    write(root / f"{nfd}.md.acl.toml", 'allow = ["everyone"]\n')
    write(root / "Board.md", "# Board\n\nThe zqtwin board minutes.\n")
    write(root / "board.md.acl.toml", 'allow = ["everyone"]\n')
    g = make_grounder({"kb": {"type": "knowledge_base", "tenant": "acme", "path": str(root)}})
    assert g.sync()[0].ok
    assert _docs(g, SAM, "zqtwin salary canteen board") == {f"{nfd}.md"}
    assert _docs(g, HAL, "zqtwin salary canteen board") == {f"{nfc}.md", f"{nfd}.md"}
    staff = UserContext.of("stan", "acme", groups=["staff"])
    assert _docs(g, staff, "zqtwin salary canteen board") == {f"{nfd}.md", "Board.md"}


def test_an_nfc_exclude_pattern_also_excludes_nfd_names(make_grounder: Any, tmp_path: Path) -> None:
    """``exclude = ["Entwürfe/*"]`` typed in NFC must keep out the drafts folder a Mac synced in NFD, as the
    ACL globs do; before, only the ACL globs were matched in NFC and the drafts were indexed and served."""
    root = tmp_path / "kb"
    write(root / ".groundwire-acl.toml", 'allow = ["everyone"]\n')
    write(root / "pay.md", "# Pay\n\nThe zqdraft payday is the 25th.\n")
    write(root / unicodedata.normalize("NFD", "Entwürfe") / "plan.md", "# Plan\n\nThe zqdraft layoff plan.\n")
    g = make_grounder({"kb": {"type": "knowledge_base", "tenant": "acme", "path": str(root),
                              "exclude": [unicodedata.normalize("NFC", "Entwürfe/*")]}})
    assert g.sync()[0].ok
    assert _docs(g, SAM, "zqdraft layoff plan payday") == {"pay.md"}
