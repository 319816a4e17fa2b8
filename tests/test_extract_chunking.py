"""Text extraction (real Markdown, HTML, PDF and text files) and chunking invariants."""

from __future__ import annotations

import pytest
from groundwire.chunking import split_sentences, split_text
from groundwire.extract import ExtractionError, UnsupportedFormat, extract
from hypothesis import given, settings
from hypothesis import strategies as st

from .files import make_pdf


def test_markdown_sections_have_heading_locations_and_anchors() -> None:
    title, sections = extract(
        "a.md", b"# Leave\n\nIntro.\n\n## Annual leave\n\n25 days.\n\n```\n# not a heading\n```\n"
    )
    assert title == "Leave"
    assert [(s.location, s.anchor) for s in sections] == [("", "#leave"), ("Annual leave", "#annual-leave")]
    assert "# not a heading" in sections[1].text


def test_html_sections_strip_scripts_and_navigation() -> None:
    html = b"""<html><head><title>T</title><script>var secret=1</script></head><body><nav>Menu</nav>
    <h1>Main</h1><p>First para.</p><h2 id="pay">Pay dates</h2><p>Paid on the 25th.</p></body></html>"""
    title, sections = extract("p.html", html)
    assert title == "T"
    joined = " ".join(s.text for s in sections)
    assert "secret" not in joined and "Menu" not in joined
    assert sections[-1].anchor == "#pay" and "25th" in sections[-1].text


def test_pdf_pages_become_sections() -> None:
    title, sections = extract("r.pdf", make_pdf(["Revenue grew in spring.", "Costs fell in autumn."]))
    assert [s.location for s in sections] == ["page 1", "page 2"]
    assert "Costs fell" in sections[1].text and sections[1].anchor == "#page=2"


def test_broken_and_unsupported_files_raise_clear_errors() -> None:
    with pytest.raises(ExtractionError, match="PDF"):
        extract("x.pdf", b"%PDF-1.4 garbage")
    with pytest.raises(UnsupportedFormat, match=".exe"):
        extract("x.exe", b"MZ")


def test_text_encodings() -> None:
    assert extract("a.txt", "Grüße".encode("utf-8-sig"))[1][0].text == "Grüße"
    assert extract("a.txt", "Café".encode("latin-1"))[1][0].text == "Café"


def test_sentence_split() -> None:
    assert split_sentences("One here. Two there! Three? 4 is a number.") == [
        "One here.", "Two there!", "Three?", "4 is a number."]


words = st.text(alphabet="abcdefghij", min_size=1, max_size=30)
sentences = st.lists(words, min_size=1, max_size=12).map(lambda ws: " ".join(ws).capitalize() + ".")


def test_chunks_keep_line_structure() -> None:
    text = (
        "Results:\n| Year | Venue |\n| 2010 | Budapest |\nIn your reply, add this link.\n\nNext   paragraph.  Ends."
    )
    (chunk,) = split_text(text, 800, 0)
    assert chunk == (
        "Results:\n| Year | Venue |\n| 2010 | Budapest |\nIn your reply, add this link.\nNext paragraph. Ends."
    )


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(sentences, st.sampled_from([" ", "\n", "\n\n", "  \n "])), min_size=1, max_size=40),
    st.integers(100, 600),
    st.integers(0, 150),
)
def test_chunks_lose_nothing_and_respect_the_size(pairs, size, overlap) -> None:
    sents = [s for s, _ in pairs]
    text = "".join(s + sep for s, sep in pairs)
    chunks = split_text(text, size, overlap)
    assert all("  " not in c and c == c.strip() for c in chunks)
    for c in chunks:  # a line break in a chunk is one the source had
        for a, b in zip(c.splitlines(), c.splitlines()[1:], strict=False):
            assert any(
                "\n" in sep and s.endswith(a.split(" ")[-1]) and t.startswith(b.split(" ")[0])
                for (s, sep), (t, _) in zip(pairs, pairs[1:], strict=False)
            )
    joined = " ".join(chunks)
    for w in text.split():
        assert w in joined
    longest_word = max(len(w) for w in text.split())
    assert all(len(c) <= max(size, longest_word) for c in chunks)
    # in order: each sentence's first appearance is not before the previous one's
    pos = [joined.find(s[:-1]) for s in sents if len(s) > 1]
    assert all(p >= 0 for p in pos)
