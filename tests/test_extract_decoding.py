"""Text decoding (issue 15): byte-order marks for UTF-8/16/32, charset-normalizer for unmarked legacy
encodings, and binary content named .md/.txt skipped with its reason instead of indexed as garbage."""

from __future__ import annotations

import codecs
import random

import pytest
from groundwire.extract import ExtractionError, decode_text, extract

from .conftest import kb

TEXT = "Grüße aus Köln: the leave policy gives 25 days."


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le",
                                      "utf-32-be"])
def test_byte_order_marks(encoding: str) -> None:
    data = TEXT.encode(encoding)
    marks = {"utf-16-le": codecs.BOM_UTF16_LE, "utf-16-be": codecs.BOM_UTF16_BE, "utf-32-le": codecs.BOM_UTF32_LE,
             "utf-32-be": codecs.BOM_UTF32_BE}
    data = marks.get(encoding, b"") + data  # the -le/-be codecs write no mark of their own
    for name in ("a.txt", "a.md"):
        title, sections = extract(name, data)
        assert [s.text for s in sections] == [TEXT]


@pytest.mark.parametrize(("text", "encoding"), [
    ("Café", "latin-1"),
    ("Café au lait, très bien, à bientôt.", "cp1252"),
    ("Привет, как дела? Всё хорошо, спасибо.", "cp1251"),
    ("Zażółć gęślą jaźń, powiedział.", "cp1250"),
    ("日本語のテキストです。これはテストです。", "shift_jis"),
    ("Γεια σου κόσμε, τι κάνεις σήμερα;", "cp1253"),
    ("Plain ASCII stays plain.", "ascii"),
])
def test_unmarked_legacy_encodings(text: str, encoding: str) -> None:
    assert extract("a.txt", text.encode(encoding))[1][0].text == text


def test_declared_charset_wins_and_bad_utf8_is_not_mojibake() -> None:
    assert decode_text("Grüße".encode("cp1252"), "windows-1252") == "Grüße"
    assert "\ufffd" not in decode_text("Straße und Grüße".encode("cp1252"))


def _binary() -> dict[str, bytes]:
    rnd = random.Random(15)
    noise = bytes(rnd.randrange(256) for _ in range(4000))
    return {
        "png": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + noise,
        "zip": b"PK\x03\x04\x14\x00\x00\x00" + noise,
        "unmarked-utf16": TEXT.encode("utf-16-le"),  # NULs without a mark: not guessed
        "controls": bytes(b % 32 for b in noise if b % 32 not in (0, 9, 10, 13)),
    }


@pytest.mark.parametrize("kind", list(_binary()))
def test_binary_content_named_as_text_is_refused_with_a_reason(kind: str) -> None:
    for name in ("notes.md", "notes.txt", "page.html"):
        with pytest.raises(ExtractionError, match="binary content"):
            extract(name, _binary()[kind])


def test_a_binary_md_file_is_skipped_in_a_sync_and_the_rest_indexed(make_grounder, corpus) -> None:
    (corpus / "handbook" / "logo.md").write_bytes(_binary()["png"])
    (corpus / "handbook" / "utf16.md").write_bytes(codecs.BOM_UTF16_LE + "# Pay\n\nPaid on the 25th.".encode(
        "utf-16-le"))
    g = make_grounder({"kb": kb(corpus)})
    (report,) = g.sync()
    reasons = dict(report.skipped)
    assert "binary content" in reasons["handbook/logo.md"]
    assert report.added == 4  # leave, salaries, dana and the UTF-16 file
    assert {"handbook/utf16.md", "handbook/leave.md"} <= set(g.index.tenant("acme").documents("kb"))
    assert "handbook/logo.md" not in set(g.index.tenant("acme").documents("kb"))


def test_control_character_class_is_unicode_cc_without_whitespace() -> None:
    """document_text counts control characters with one regex: exactly category Cc minus \\t \\n \\v \\f \\r."""
    import sys
    import unicodedata

    from groundwire.extract import _CONTROLS

    every = "".join(chr(c) for c in range(sys.maxunicode + 1) if not 0xD800 <= c <= 0xDFFF)
    want = [ch for ch in every if unicodedata.category(ch) == "Cc" and ch not in "\t\n\r\f\v"]
    assert _CONTROLS.findall(every) == want
