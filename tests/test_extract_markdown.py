"""Markdown sections from markdown-it-py's token stream (issue 15): fenced code is not a heading, front
matter is skipped, setext headings count, and duplicate headings get GitHub's unique anchors."""

from __future__ import annotations

import pytest
from groundwire.extract import Slugger, extract, markdown_headings, slugify


def test_hash_lines_inside_tilde_and_backtick_fences_are_not_headings() -> None:
    md = (b"~~~bash\n# comment in a tilde fence\n~~~\n\nSetup text.\n\n"
          b"```python\n# comment in a backtick fence\n```\n\n"
          b"    # indented code\n\n# Real title\n\nBody.\n")
    title, sections = extract("setup.md", md)
    assert title == "Real title"
    assert [(s.location, s.anchor) for s in sections] == [("", ""), ("", "#real-title")]
    assert "# comment in a tilde fence" in sections[0].text
    assert "# comment in a backtick fence" in sections[0].text


def test_front_matter_is_skipped() -> None:
    md = b"---\ntitle: Leave policy\n# not: a heading\ntags: [hr]\n---\n# Leave\n\n25 days.\n"
    title, sections = extract("leave.md", md)
    assert title == "Leave"
    assert [(s.location, s.anchor, s.text) for s in sections] == [("", "#leave", "25 days.")]
    toml = b"+++\ntitle = 'x'\n+++\n## Pay\n\nOn the 25th.\n"
    assert [s.location for s in extract("pay.md", toml)[1]] == ["Pay"]


def test_setext_headings() -> None:
    md = b"Travel guide\n============\n\nIntro.\n\nTrains\n------\n\nBook early.\n"
    title, sections = extract("travel.md", md)
    assert title == "Travel guide"
    assert [(s.location, s.anchor, s.text) for s in sections] == [
        ("", "#travel-guide", "Intro."), ("Trains", "#trains", "Book early.")]


def test_duplicate_headings_get_unique_anchors() -> None:
    md = b"# Guide\n\n## Setup\n\nA.\n\n## Setup\n\nB.\n\n## Setup\n\nC.\n\n## Setup-1\n\nD.\n"
    _, sections = extract("guide.md", md)
    assert [s.anchor for s in sections] == ["#setup", "#setup-1", "#setup-2", "#setup-1-1"]


@pytest.mark.parametrize(("heading", "slug"), [
    ("Annual leave", "annual-leave"),
    ("Grüße & Co.", "grüße--co"),  # GitHub keeps letters of any script and maps each space
    ("What's new in v2.0?", "whats-new-in-v20"),
    ("snake_case and-dash", "snake_case-and-dash"),
    ("Привет мир", "привет-мир"),
])
def test_github_slugs(heading: str, slug: str) -> None:
    assert slugify(heading) == slug


def test_heading_text_is_the_visible_text() -> None:
    (h,) = markdown_headings("## Use `groundwire sync` and **[the docs](https://x.example)**\n")
    assert h == (2, 0, 1, "Use groundwire sync and the docs")
    slugger = Slugger()
    assert [slugger.slug("A"), slugger.slug("A"), slugger.slug("a")] == ["a", "a-1", "a-2"]


def test_hash_in_block_quote_and_html_is_not_a_section_heading() -> None:
    md = b"# Title\n\n> # quoted\n\n<div>\n# inside html\n</div>\n\nText.\n"
    _, sections = extract("q.md", md)
    assert [s.location for s in sections] == [""]
    assert "> # quoted" in sections[0].text and "# inside html" in sections[0].text
