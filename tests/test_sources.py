"""groundwire.ConfinedRoot on real files, and the glob-overlap check behind equal-length conflict errors."""

from __future__ import annotations

import fnmatch
import itertools
import os

import pytest
from groundwire import ConfinedRoot, SourceEntry, SourceRefused, SourceSkip
from groundwire.connectors.knowledge_base.acl import globs_overlap
from hypothesis import given, settings
from hypothesis import strategies as st


def test_reads_never_go_through_a_link_in_any_component(tmp_path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "real").mkdir(parents=True)
    outside.mkdir()
    (outside / "secret.md").write_text("zqsecret")
    (root / "real" / "ok.md").write_text("fine")
    (root / "via").symlink_to(outside, target_is_directory=True)
    fs = ConfinedRoot(root)
    assert fs.read("real/ok.md") == b"fine"
    for rel in ("via/secret.md", "../outside/secret.md", "/etc/passwd", "real/../via/secret.md"):
        with pytest.raises(SourceRefused):
            fs.read(rel)
    walked = list(fs.walk())
    assert [e.rel for e in walked if isinstance(e, SourceEntry)] == ["real/ok.md"]
    assert any(isinstance(e, SourceSkip) and e.item == "via" and str(outside) not in e.reason for e in walked)


def test_reads_are_bounded_and_the_root_is_resolved(tmp_path) -> None:
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "big.txt").write_bytes(b"x" * 5000)
    (tmp_path / "alias").symlink_to(tmp_path / "r", target_is_directory=True)
    fs = ConfinedRoot(tmp_path / "alias", max_bytes=4096)  # a configured root that is itself a link is fine
    assert fs.root == (tmp_path / "r").resolve()
    with pytest.raises(SourceRefused, match="larger"):
        fs.read("big.txt")
    assert len(fs.read("big.txt", max_bytes=5000)) == 5000


def test_undecodable_folder_names_are_skipped_with_a_printable_name(tmp_path) -> None:
    os.makedirs(os.fsencode(tmp_path) + b"/d\xfe/sub")
    with open(os.fsencode(tmp_path) + b"/d\xfe/sub/x.md", "wb") as f:
        f.write(b"hidden below an undecodable folder")
    skips = [e for e in ConfinedRoot(tmp_path).walk() if isinstance(e, SourceSkip)]
    assert [(s.item, s.reason.split(":")[0]) for s in skips] == [("d\\xfe", "folder name is not valid UTF-8")]


def test_hard_links_are_skipped_unless_opted_in_and_refused_at_read_time(tmp_path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "secret.md").write_text("zqsecret")
    (root / "plain.md").write_text("fine")
    os.link(outside / "secret.md", root / "linked.md")
    (root / "l").symlink_to(root / "linked.md")
    fs = ConfinedRoot(root, follow_symlinks=True)
    walked = list(fs.walk())
    assert [e.rel for e in walked if isinstance(e, SourceEntry)] == ["plain.md"]
    reasons = {e.item: e.reason for e in walked if isinstance(e, SourceSkip)}
    assert set(reasons) == {"linked.md", "l"} and all("hard link" in r for r in reasons.values())
    assert all(str(outside) not in r and "secret" not in r for r in reasons.values())
    entry = next(e for e in walked if isinstance(e, SourceEntry))
    os.link(outside / "secret.md", root / "late.md")  # made after the walk: the read's fstat refuses it
    os.replace(root / "late.md", root / "plain.md")
    with pytest.raises(SourceRefused, match="hard link"):
        fs.read(entry)
    opted = ConfinedRoot(root, follow_hardlinks=True)
    assert opted.read("linked.md") == b"zqsecret"
    assert {e.rel for e in opted.walk() if isinstance(e, SourceEntry)} == {"plain.md", "linked.md"}


def test_globs_overlap_examples() -> None:
    assert globs_overlap("hr/*", "*/x*")
    assert globs_overlap("*", "a/b/*")
    assert not globs_overlap("hr/*", "it/*")
    assert not globs_overlap("a?c", "ab")
    assert globs_overlap("[!a]x", "?x") and not globs_overlap("[!a]x", "ax")
    assert not globs_overlap("[a-c]*", "[d-f]*") and globs_overlap("[a-c]*", "[c-f]*")


_pattern = st.lists(st.sampled_from(["a", "b", "/", "*", "?", "[ab]", "[!a]"]), max_size=3).map("".join)
_WITNESSES = ["".join(p) for n in range(7) for p in itertools.product("ab/c", repeat=n)]


@settings(max_examples=60, deadline=None)
@given(p=_pattern, q=_pattern)
def test_globs_overlap_agrees_with_brute_force(p: str, q: str) -> None:
    """Any common match is found, and a claimed overlap has a short witness (patterns are tiny)."""
    common = any(fnmatch.fnmatchcase(s, p) and fnmatch.fnmatchcase(s, q) for s in _WITNESSES)
    assert globs_overlap(p, q) == common


def test_an_unreadable_root_raises_instead_of_looking_empty(tmp_path) -> None:
    (tmp_path / "r").mkdir()
    fs = ConfinedRoot(tmp_path / "r")
    (tmp_path / "r").rmdir()  # gone between configuration and walk: must not read as "every file deleted"
    with pytest.raises(SourceRefused, match="root folder"):
        list(fs.walk())
