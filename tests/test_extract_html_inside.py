"""``groundwire.extract.html_sections`` walks the tree once (``_blocks``) instead of asking every block for its
ancestors: the same sections as the code before (kept below as the reference: ``find_all`` plus
``find_parent`` per element) on generated nested HTML, unclosed and stray tags included, and deep nesting no
longer costs O(depth) per element."""

from __future__ import annotations

import time

from bs4 import BeautifulSoup
from groundwire.extract import html_sections, push_heading, slugify
from groundwire.models import Section
from hypothesis import given, settings
from hypothesis import strategies as st

_TAGS = ["p", "li", "td", "th", "pre", "blockquote", "dd", "dt", "div", "span", "ul", "table", "tr", "h1", "h2",
         "h3", "b", "body", "title", "nav", "script"]


def _reference(html: str, fallback_title: str) -> tuple[str, list[Section]]:
    """html_sections as it was before the one-walk change (find_all + find_parent per element)."""
    soup = BeautifulSoup(html, "html.parser")
    for tag in soup(["script", "style", "noscript", "template", "nav", "footer", "header", "aside"]):
        tag.decompose()
    title = (soup.title.string or "").strip() if soup.title and soup.title.string else ""
    body = soup.body or soup
    sections: list[Section] = []
    path: list[tuple[int, str]] = []
    anchor = ""
    buf: list[str] = []

    def flush() -> None:
        t = " ".join(" ".join(buf).split())
        if t:
            sections.append(Section(text=t, location=" > ".join(p for _, p in path if p != title), anchor=anchor))
        buf.clear()

    blocks = ["h1", "h2", "h3", "h4", "h5", "h6", "p", "li", "td", "th", "pre", "blockquote", "dd", "dt"]
    for el in body.find_all(blocks):
        if el.name[0] == "h" and el.name[1:].isdigit():
            flush()
            level = int(el.name[1])
            heading = " ".join(el.get_text(" ").split())
            if level == 1 and not title:
                title = heading
            push_heading(path, level, heading)
            anchor = "#" + (str(el.get("id") or "") or slugify(heading))
        elif not el.find_parent(["p", "li", "td", "th", "pre", "blockquote", "dd", "dt"]):
            buf.append(el.get_text(" ") + ("\n\n" if el.name == "p" else " "))
    flush()
    if not sections:
        text = " ".join(body.get_text(" ").split())
        if text:
            sections.append(Section(text=text))
    return title or fallback_title, sections


def _html(depth: int) -> st.SearchStrategy[str]:
    leaf = st.sampled_from(["x", "text y", "", "</p>", "<br>", "<li>stray", "<h2 id=a>H</h2>", "</body>"])
    if depth == 0:
        return leaf
    child = _html(depth - 1)
    node = st.builds(lambda t, kids, close: f"<{t}>{''.join(kids)}" + (f"</{t}>" if close else ""),
                     st.sampled_from(_TAGS), st.lists(child, max_size=3), st.booleans())
    return st.one_of(leaf, node)


@settings(max_examples=200, deadline=None)
@given(_html(5), st.booleans())
def test_the_same_sections_as_before(html: str, wrap: bool) -> None:
    doc = f"<html><body>{html}</body></html>" if wrap else html
    assert html_sections(doc, "t") == _reference(doc, "t")


def test_deep_nesting_costs_no_walk_per_element() -> None:
    """40,000 nested divs around 2,000 paragraphs (1 MB): 80 million ancestor steps before (5,000 around 500 took
    2.6 s of CPU here, and the cost grows with depth times paragraphs), one walk now (~0.5 s)."""
    html = "<body>" + "<div>" * 40_000 + "<p>deep text</p>" * 2_000 + "</div>" * 40_000 + "</body>"
    t0 = time.process_time()
    _, sections = html_sections(html, "t")
    took = time.process_time() - t0
    assert sections and sections[0].text.count("deep text") == 2_000
    assert took < 20, f"{took:.1f} s of CPU"  # a guard against the quadratic walk, not a speed target


def test_nested_headings_cost_no_quadratic_text() -> None:
    """16,000 headings nested in one another (100 KB): each one's text held every inner one's (8,000 took 9 s
    of CPU before, growing with the square); now each reads at most MAX_HEADING_CHARS, within a budget of
    the page's length shared by all headings, and the body text is still read whole."""
    from groundwire.extract import MAX_HEADING_CHARS

    n = 16_000
    html = "<body>" + "<h2>x" * n + "<p>the body text</p>" + "</h2>" * n + "</body>"
    t0 = time.process_time()
    _, sections = html_sections(html, "t")
    took = time.process_time() - t0
    assert [s.text for s in sections] == ["the body text"]
    assert all(len(s.location) <= MAX_HEADING_CHARS for s in sections)
    assert took < 10, f"{took:.1f} s of CPU"  # a guard against the quadratic texts, not a speed target
