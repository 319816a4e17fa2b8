"""Red team, round 4: PDFs that are small on disk but cost pypdf hours to read.

pypdf parses a content stream again each time a page or a ``Do`` operator draws it (about 3 s per MB
of text operators on this machine). A 5 KB PDF whose ten pages share one 1 MB stream took 30 s; at the
25 MB file limit that is weeks, while the sync holds the data dir's lock, so every other connector's
revocation waits. Each file is well inside pypdf's own limits (a 75 MB inflate cap per stream).
Extraction now has a wall-clock budget (checked at every content operator, inside forms too) and a cap
on one decoded stream (one parse cannot be interrupted); such a file is skipped with the reason and the
rest of the sync goes on.
"""

from __future__ import annotations

import io
import zlib
from pathlib import Path
from typing import Any

import pytest
from groundwire import GroundingRequest, UserContext
from groundwire import extract as extract_mod
from groundwire.extract import ExtractionError, extract

from .conftest import write
from .files import make_pdf

_OPS = b"BT /F1 12 Tf 72 712 Td (zqbombword) Tj ET\n"


def _pdf(objects: list[bytes]) -> bytes:
    """A PDF file of ``objects`` (object 1 is the catalog), with a correct xref table."""
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for n, body in enumerate(objects, 1):
        offsets.append(out.tell())
        out.write(f"{n} 0 obj\n".encode() + body + b"\nendobj\n")
    xref = out.tell()
    out.write(f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode())
    out.write(b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets))
    out.write(f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode())
    return out.getvalue()


def _stream(data: bytes, extra: bytes = b"") -> bytes:
    comp = zlib.compress(data, 9)
    return b"<< /Length %d /Filter /FlateDecode %s >>\nstream\n" % (len(comp), extra) + comp + b"\nendstream"


_FONT = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"


def shared_stream_pdf(pages: int, stream_bytes: int) -> bytes:
    """``pages`` pages that all draw one content stream of ``stream_bytes`` text operators."""
    content = _OPS * (stream_bytes // len(_OPS))
    kids = b" ".join(b"%d 0 R" % (5 + i) for i in range(pages))
    page = b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> " \
           b"/Contents 4 0 R >>"
    return _pdf([b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, pages),
                 _FONT, _stream(content)] + [page] * pages)


def form_redraw_pdf(draws: int, form_bytes: int) -> bytes:
    """One page whose small content stream draws one form XObject ``draws`` times."""
    form = _stream(_OPS * (form_bytes // len(_OPS)),
                   b"/Type /XObject /Subtype /Form /BBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >>")
    page = b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> " \
           b"/XObject << /X1 4 0 R >> >> /Contents 5 0 R >>"
    return _pdf([b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [6 0 R] /Count 1 >>", _FONT, form,
                 _stream(b"/X1 Do\n" * draws), page])


@pytest.fixture
def short_budget(monkeypatch: pytest.MonkeyPatch) -> float:
    monkeypatch.setattr(extract_mod, "MAX_PDF_SECONDS", 1.0)
    return 1.0


def test_pages_sharing_one_stream_are_stopped_at_the_budget(short_budget: float) -> None:
    data = shared_stream_pdf(pages=40, stream_bytes=250_000)  # ~3 KB on disk; ~30 s before the fix
    assert len(data) < 10_000
    with pytest.raises(ExtractionError, match=r"longer than 1 s \(at page \d+ of 40"):
        extract("bomb.pdf", data)


def test_a_form_drawn_thousands_of_times_is_stopped_at_the_budget(short_budget: float) -> None:
    data = form_redraw_pdf(draws=400, form_bytes=200_000)  # each Do re-parses the form: ~4 min before the fix
    with pytest.raises(ExtractionError, match="longer than 1 s"):
        extract("forms.pdf", data)


def test_one_oversized_stream_is_refused_before_it_is_parsed() -> None:
    data = shared_stream_pdf(pages=1, stream_bytes=extract_mod.MAX_PDF_STREAM_BYTES + len(_OPS) * 4)
    with pytest.raises(ExtractionError, match=r"page 1: a page content of \d+ bytes decoded, over the limit"):
        extract("big.pdf", data)


def test_ordinary_pdfs_and_forms_still_extract(short_budget: float) -> None:
    title, sections = extract("ok.pdf", make_pdf(["The capybara rule applies.", "Second page text."]))
    assert [s.location for s in sections] == ["page 1", "page 2"] and "capybara" in sections[0].text
    _, sections = extract("form.pdf", form_redraw_pdf(draws=3, form_bytes=200))
    assert sections and sections[0].text.count("zqbombword") >= 3  # text inside a form is still read


def test_a_bomb_pdf_in_a_knowledge_base_is_skipped_and_the_rest_synced(make_grounder: Any, tmp_path: Path,
                                                                       short_budget: float) -> None:
    root = tmp_path / "kb"
    write(root / ".groundwire-acl.toml", 'allow = ["everyone"]\n')
    write(root / "ok.md", "# OK\n\nThe okapi handbook says hello.\n")
    (root / "bomb.pdf").write_bytes(shared_stream_pdf(pages=40, stream_bytes=250_000))
    g = make_grounder({"kb": {"type": "knowledge_base", "tenant": "acme", "path": str(root)}})
    [rep] = g.sync()
    assert rep.ok, rep.error
    assert any(item == "bomb.pdf" and "longer than 1 s" in why for item, why in rep.skipped), rep.skipped
    got = g.retrieve(GroundingRequest(user=UserContext.of("sam", "acme"), prompt="okapi handbook", top_k=5))
    assert {c.doc_id for c in got} == {"ok.md"}
