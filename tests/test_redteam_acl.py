"""Red-team probes of the knowledge base's ACL handling (real files, real embedded Chroma).

Each test names the hostile or careless input it feeds in and the trust claim it checks; the ones that found a
bug failed on the code before its fix (see the commit that added them).
"""

from __future__ import annotations

import os

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
