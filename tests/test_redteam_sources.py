"""Red-team probes of hostile file names and contents in a knowledge base (real files, real embedded Chroma).

Each test names the hostile input; the ones that found a bug failed on the code before its fix.
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

from groundwire import UserContext

from .conftest import kb, write

SAM = UserContext.of("sam@example.com", "acme")
PREFIX = "https://intranet.acme.example/kb"


def test_citation_uris_point_at_their_file_whatever_its_name(make_grounder, tmp_path) -> None:
    """Hostile names: ``Q&A #2.md``, ``pay?.md``, ``50% raise.md``, ``a b.md``, a newline. Joined raw onto
    ``uri_prefix``, ``#`` and ``?`` cut the path (the citation then opens ``.../Q&A`` or ``.../pay``, another
    document) and a raw newline or space is no URL at all. Each citation's path must decode to exactly its
    file and its fragment be only the heading anchor."""
    corpus = tmp_path / "corpus"
    write(corpus / ".groundwire-acl.toml", 'allow = ["everyone"]\n')
    names = ["Q&A #2.md", "pay?.md", "50% raise.md", "a b.md", "new\nline.md", "ünï.md"]
    for n, name in enumerate(names):
        write(corpus / "sub dir" / name, f"# Heading {n}\n\nThe zqname rule number {n} applies here.\n")
    g = make_grounder({"kb": kb(corpus, uri_prefix=PREFIX)})
    report = g.sync()[0]
    assert report.ok, report.error
    chunks = g.retrieve("Which zqname rule applies here?", SAM, top_k=20)
    assert {c.doc_id for c in chunks} == {f"sub dir/{name}" for name in names}
    for c in chunks:
        parts = urlsplit(c.uri)
        assert not any(ch in c.uri for ch in " \n?"), c.uri
        assert unquote(parts.path) == urlsplit(PREFIX).path + "/" + c.doc_id, c.uri
        assert parts.fragment.startswith("heading-") and "." not in parts.fragment, c.uri
