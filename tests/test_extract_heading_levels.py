"""Heading locations when a document skips levels (no h1, an h4 under an h2): siblings never nest."""

from __future__ import annotations

from groundwire.extract import extract, html_sections, push_heading


def test_push_heading_closes_same_and_deeper_levels() -> None:
    path: list[tuple[int, str]] = []
    for level, text in [(2, "A"), (4, "A.1"), (2, "B"), (3, "B.1"), (3, "B.2"), (1, "Top"), (2, "C")]:
        push_heading(path, level, text)
    assert path == [(1, "Top"), (2, "C")]


def test_html_without_h1_keeps_h2_siblings_apart() -> None:
    html = "<html><body><h2>Trains</h2><p>Book trains.</p><h2>Hotels</h2><p>Book hotels.</p></body></html>"
    _, sections = html_sections(html, "travel")
    assert [s.location for s in sections] == ["Trains", "Hotels"]


def test_markdown_with_skipped_levels() -> None:
    md = b"# Guide\n\nIntro.\n\n### Deep\n\nDeep text.\n\n## Next\n\nNext text.\n\n## Last\n\nLast text.\n"
    title, sections = extract("guide.md", md)
    assert title == "Guide"
    assert [s.location for s in sections] == ["", "Deep", "Next", "Last"]
