"""Red-team probes of hostile file names and contents in a knowledge base (real files, real embedded Chroma).

Each test names the hostile input; the ones that found a bug failed on the code before its fix.
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

import pytest
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


_CONTROLS = ("\x1b", "\x9b", "\x07", "\r", "\u202e")


def test_cli_output_never_carries_terminal_controls_from_documents_or_names(tmp_path, capsys, monkeypatch) -> None:
    """Hostile input: a document whose text holds ESC sequences (``ESC ] 52`` writes the reader's clipboard,
    ``ESC [ 2J`` clears the screen, hiding the review notice), a text file whose *name* holds one (it becomes the
    title), and FIFOs and links whose names hold ESC, CR, U+202E or a newline followed by a forged report line.
    ``groundwire sync`` and ``groundwire ask`` must print them escaped (visible, one line per skipped item),
    never raw."""
    import os

    from groundwire.cli import main

    from .test_trust_audit import _write_toml

    monkeypatch.setenv("GROUNDWIRE_NO_PLUGIN_COMMANDS", "1")
    corpus = tmp_path / "corpus"
    write(corpus / ".groundwire-acl.toml", 'allow = ["everyone"]\n')
    write(corpus / "office.md", "# Office\n\nThe zqoffice opens at 8 \x1b]52;c;cHduZWQ=\x07 every day\x1b[2J.\n")
    write(corpus / "t\x1b[8mhidden\u202e.txt", "The zqoffice closes at 6 \x9b31m in the evening.\n")
    os.mkfifo(corpus / "evil\x1b[2J\nskipped kb:fake.md: all good.md")
    (corpus / "l\x1b[31m\rred.md").symlink_to("/etc/passwd")
    cfg = tmp_path / "g.toml"
    _write_toml(cfg, {"data_dir": str(tmp_path / "data"), "default_tenant": "acme",
                      "embedder": {"name": "hashing"}, "plugins": {"load_entrypoints": False},
                      "generator": {"name": "extractive", "options": {"min_similarity": 0.0}},
                      "connectors": {"kb": kb(corpus)}})
    assert main(["sync", "--config", str(cfg)]) == 0
    out = capsys.readouterr()
    skipped = [ln for ln in out.err.splitlines() if ln.startswith("skipped ")]
    assert len(skipped) == 2, out.err  # the FIFO and the link: one line each, no forged third line
    assert main(["ask", "When does the zqoffice open and close?", "--user", "sam", "--config", str(cfg)]) == 0
    asked = capsys.readouterr()
    assert "zqoffice" in asked.out
    for text in (out.out, out.err, asked.out, asked.err):
        assert not any(c in text for c in _CONTROLS), repr(text)
    assert "\\x1b" in out.err + asked.out  # shown, not silently dropped


def _office_bomb(path, unpacked: int) -> None:
    """A real .docx (python-docx) whose ``word/document.xml`` is replaced by ``unpacked`` bytes of spaces:
    deflate packs them about 200:1, so the file stays small."""
    import io
    import zipfile
    import zlib

    docx = pytest.importorskip("docx")
    buf = io.BytesIO()
    docx.Document().save(buf)
    src = zipfile.ZipFile(io.BytesIO(buf.getvalue()))
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as out:
        for info in src.infolist():
            if info.filename != "word/document.xml":
                out.writestr(info, src.read(info))
        with out.open("word/document.xml", "w", force_zip64=True) as f:
            block = b" " * (8 << 20)
            for _ in range(unpacked // len(block) + 1):
                f.write(block)
    assert zlib  # the stdlib deflate used above


def test_an_office_zip_bomb_is_skipped_before_it_is_unpacked(make_grounder, tmp_path) -> None:
    """Hostile input: a .docx of a few MB that unpacks to more than ``MAX_UNPACKED_BYTES`` (a zip bomb: the
    same file at 25 MB would unpack to gigabytes and get the sync killed by the OOM killer, every time, so no
    later revocation or deletion would ever propagate). It must be refused from the zip's directory, before
    anything is unpacked (the child process's peak memory shows it), with a reason, and the sync goes on."""
    import subprocess
    import sys

    from groundwire.extract import MAX_UNPACKED_BYTES

    corpus = tmp_path / "corpus"
    write(corpus / ".groundwire-acl.toml", 'allow = ["everyone"]\n')
    write(corpus / "z.md", "# Z\n\nThe zqbomb drill is on Monday.\n")
    _office_bomb(corpus / "a-bomb.docx", MAX_UNPACKED_BYTES + (16 << 20))
    assert (corpus / "a-bomb.docx").stat().st_size < MAX_UNPACKED_BYTES // 20
    probe = (
        "import resource, sys\n"
        "from groundwire.extract import extract\n"
        "data = open(sys.argv[1], 'rb').read()\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "try:\n    extract('a-bomb.docx', data)\n    print('extracted')\n"
        "except Exception as exc:\n    print(type(exc).__name__, exc)\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)\n"
    )
    out = subprocess.run([sys.executable, "-c", probe, str(corpus / "a-bomb.docx")], capture_output=True,
                         text=True, timeout=120, check=True).stdout.splitlines()
    grew_kib = int(out[-1])
    assert out[0].startswith("ExtractionError") and "unpack" in out[0], out
    assert grew_kib * 1024 < MAX_UNPACKED_BYTES // 8, f"unpacked {grew_kib} KiB before refusing"
    g = make_grounder({"kb": kb(corpus)})
    report = g.sync()[0]
    assert report.ok and "z.md" in g.index.tenant("acme").documents("kb")
    assert [r for item, r in report.skipped if item == "a-bomb.docx" and "unpack" in r], report.skipped
