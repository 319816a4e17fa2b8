"""Red-team probes of the knowledge base's ACL handling (real files, real embedded Chroma).

Each test names the hostile or careless input it feeds in and the trust claim it checks; the ones that found a
bug failed on the code before its fix (see the commit that added them).
"""

from __future__ import annotations

import os
import unicodedata

import pytest
from groundwire import UserContext

from .conftest import kb, write

QUESTION = "When is the zqpayday bonus paid?"
TEXT = "# Bonus\n\nThe zqpayday bonus is paid on the last Friday of March.\n"


def _sees(g, user: UserContext, doc_id: str) -> bool:
    return any(c.doc_id == doc_id for c in g.retrieve(QUESTION, user))


def _resync(g) -> None:
    reports = g.sync()
    assert all(r.ok for r in reports), [r.error for r in reports]


@pytest.mark.parametrize(
    ("before", "after"),
    [
        # a separator inside one id must not make two ACLs look alike to the change detector
        ('allow = ["group:a", "group:b"]\n', 'allow = ["group:a|group:b"]\n'),
        ('allow = ["group:a"]\ndeny = ["group:x#group:y"]\n', 'allow = ["group:a#group:x"]\ndeny = ["group:y"]\n'),
    ],
    ids=["pipe-in-an-id", "hash-in-an-id"],
)
def test_a_narrowed_sidecar_whose_ids_hold_separators_is_applied(make_grounder, tmp_path, before, after) -> None:
    """Hostile input: ACL ids holding ``|`` / ``#`` (printable ASCII, so valid ids). Narrowing
    ``[group:a, group:b]`` to the single id ``group:a|group:b`` revokes group ``a``; the revocation must reach
    the index at the next sync even though the file itself (mtime, size, text) did not change."""
    corpus = tmp_path / "corpus"
    doc = write(corpus / "bonus.md", TEXT)
    sidecar = write(corpus / "bonus.md.acl.toml", before)
    g = make_grounder({"kb": kb(corpus)})
    _resync(g)
    member_of_a = UserContext.of("ann@example.com", "acme", groups=["a"])
    assert _sees(g, member_of_a, "bonus.md")
    st = doc.stat()
    sidecar.write_text(after, encoding="utf-8")
    os.utime(doc, ns=(st.st_atime_ns, st.st_mtime_ns))  # the document itself is untouched
    _resync(g)
    assert not _sees(g, member_of_a, "bonus.md"), "a revoked group still reads the document"
    # the new ACL is in force, not just "nobody": the literal id still reads it
    assert _sees(g, UserContext.of("lit@example.com", "acme", groups=[after.split('"')[1].split(":", 1)[1]]),
                 "bonus.md")


def test_glob_and_file_names_match_whatever_their_unicode_normalization(make_grounder, tmp_path) -> None:
    """Careless operator: the configuration's glob ``"Gehälter/*"`` is typed in NFC (as editors write it) while
    the folder came from a Mac (NFD names: ``a`` + U+0308). The glob's deny and allow must still apply; before
    the fix the NFD folder escaped the glob and got ``default_allow = everyone``."""
    corpus = tmp_path / "corpus"
    nfd = unicodedata.normalize("NFD", "Gehälter")
    assert nfd != "Gehälter"
    write(corpus / nfd / "bonus.md", TEXT)
    write(corpus / unicodedata.normalize("NFD", "Übersicht.md"), TEXT.replace("zqpayday", "zqpayday overview"))
    g = make_grounder({"kb": kb(corpus, default_allow=["everyone"], acl={
        "Gehälter/*": ["group:hr"],
        "Übersicht.md": {"deny": ["everyone"]},
    })})
    _resync(g)
    sam = UserContext.of("sam@example.com", "acme")
    hr = UserContext.of("hana@example.com", "acme", groups=["hr"])
    assert not _sees(g, sam, f"{nfd}/bonus.md"), "an NFD folder name escaped an NFC glob"
    assert _sees(g, hr, f"{nfd}/bonus.md")
    ids = {c.doc_id for c in g.retrieve(QUESTION, hr)} | {c.doc_id for c in g.retrieve(QUESTION, sam)}
    assert unicodedata.normalize("NFD", "Übersicht.md") not in ids, "an NFD file name escaped an NFC deny glob"


def test_a_file_sidecar_governs_its_file_in_either_normalization_form(make_grounder, tmp_path) -> None:
    """Careless operator: ``Über.md`` came from a Mac (NFD) and its sidecar ``Über.md.acl.toml`` was typed in a
    Linux shell (NFC), or the other way round. The sidecar must still narrow the file (before the fix it was
    ignored and the folder's ``allow = ["everyone"]`` applied)."""
    corpus = tmp_path / "corpus"
    write(corpus / ".groundwire-acl.toml", 'allow = ["everyone"]\n')
    for form, other in (("NFD", "NFC"), ("NFC", "NFD")):
        name = unicodedata.normalize(form, f"Über-{form}.md")
        write(corpus / name, TEXT.replace("zqpayday", f"zqpayday {form}"))
        write(corpus / (unicodedata.normalize(other, f"Über-{form}.md") + ".acl.toml"), 'allow = ["group:hr"]\n')
    g = make_grounder({"kb": kb(corpus)})
    _resync(g)
    sam = UserContext.of("sam@example.com", "acme")
    hr = UserContext.of("hana@example.com", "acme", groups=["hr"])
    assert not {c.doc_id for c in g.retrieve(QUESTION, sam)}, "a sidecar in the other form was ignored"
    assert len({c.doc_id for c in g.retrieve(QUESTION, hr)}) == 2


HOSTILE_SIDECARS = {
    "duplicate-key": 'allow = ["group:hr"]\nallow = ["everyone"]\n',
    "bom-then-wide-deny": '\ufeffdeny = ["everyone"]\n',
    "nul-byte": 'allow = ["group:hr"]\x00\n',
    "sentinel-principal": 'allow = ["nobody:"]\n',
    "empty-id": 'allow = ["group:"]\n',
    "zero-width-id": 'allow = ["group:h\u200br"]\n',
    "table-not-list": '[allow]\neveryone = true\n',
    "inline-table": 'allow = { everyone = true }\n',
    "deny-only-everyone": 'deny = ["everyone"]\n',
    "empty-allow": "allow = []\n",
    "allow-and-deny-same": 'allow = ["everyone"]\ndeny = ["EVERYONE"]\n',
    "huge": 'allow = [' + ", ".join(['"group:hr"'] * 7000) + "]\n",
    "not-utf8": b'allow = ["group:\xff"]\n',
}


@pytest.mark.parametrize("body", list(HOSTILE_SIDECARS.values()), ids=list(HOSTILE_SIDECARS))
def test_a_hostile_file_sidecar_never_opens_its_file(make_grounder, tmp_path, body) -> None:
    """Hostile sidecars beside a file whose folder allows everyone: duplicate keys, a BOM, a NUL byte, the
    index's own ``nobody:`` sentinel, empty or invisible ids, tables instead of lists, deny-only, empty allow,
    over 64 KiB, not UTF-8. None may let a regular user read the file (fail closed: the file is skipped or
    readable by nobody), and the sync goes on."""
    corpus = tmp_path / "corpus"
    write(corpus / ".groundwire-acl.toml", 'allow = ["everyone"]\n')
    write(corpus / "bonus.md", TEXT)
    write(corpus / "other.md", TEXT.replace("Bonus", "Other").replace("bonus", "other bonus"))
    side = corpus / "bonus.md.acl.toml"
    side.write_bytes(body if isinstance(body, bytes) else body.encode("utf-8"))
    g = make_grounder({"kb": kb(corpus)})
    report = g.sync()[0]
    assert report.ok, report.error
    for user in (UserContext.of("sam@example.com", "acme"), UserContext.of("h@example.com", "acme", groups=["hr"])):
        seen = {c.doc_id for c in g.retrieve(QUESTION, user)}
        assert "other.md" in seen
        if user.groups:
            continue
        assert "bonus.md" not in seen, f"{body[:40]!r} opened the file"


def test_two_files_whose_names_differ_only_in_normalization_keep_their_own_acls(make_grounder, tmp_path) -> None:
    """Hostile names: ``hr/café.md`` in NFC with a sidecar opening it to everyone, and a second, secret file
    ``hr/café.md`` in NFD (another name on disk, the same on screen) without one. The NFD file must keep the
    folder's ``group:hr``: the other file's sidecar must not be borrowed for it."""
    corpus = tmp_path / "corpus"
    write(corpus / "hr" / ".groundwire-acl.toml", 'allow = ["group:hr"]\n')
    nfc, nfd = unicodedata.normalize("NFC", "café.md"), unicodedata.normalize("NFD", "café.md")
    write(corpus / "hr" / nfc, TEXT)
    write(corpus / "hr" / f"{nfc}.acl.toml", 'allow = ["everyone"]\n')
    write(corpus / "hr" / nfd, TEXT.replace("last Friday", "first Monday"))
    g = make_grounder({"kb": kb(corpus)})
    _resync(g)
    sam = UserContext.of("sam@example.com", "acme")
    hr = UserContext.of("hana@example.com", "acme", groups=["hr"])
    assert {c.doc_id for c in g.retrieve(QUESTION, sam)} == {f"hr/{nfc}"}
    assert {c.doc_id for c in g.retrieve(QUESTION, hr)} == {f"hr/{nfc}", f"hr/{nfd}"}
