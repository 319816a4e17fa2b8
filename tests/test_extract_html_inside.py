"""``groundwire.extract._inside``, the hand-walked ancestor test html_sections uses, answers as bs4's
``find_parent`` did, on generated nested HTML (unclosed and stray tags included)."""

from __future__ import annotations

from bs4 import BeautifulSoup
from groundwire.extract import _INNER_BLOCKS, _inside, html_sections
from hypothesis import given, settings
from hypothesis import strategies as st

_TAGS = ["p", "li", "td", "th", "pre", "blockquote", "dd", "dt", "div", "span", "ul", "table", "tr", "h2", "b"]


def _html(depth: int) -> st.SearchStrategy[str]:
    leaf = st.sampled_from(["x", "text y", "", "</p>", "<br>", "<li>stray"])
    if depth == 0:
        return leaf
    child = _html(depth - 1)
    node = st.builds(lambda t, kids, close: f"<{t}>{''.join(kids)}" + (f"</{t}>" if close else ""),
                     st.sampled_from(_TAGS), st.lists(child, max_size=3), st.booleans())
    return st.one_of(leaf, node)


@settings(max_examples=150, deadline=None)
@given(_html(5))
def test_inside_equals_find_parent(html: str) -> None:
    soup = BeautifulSoup(f"<html><body>{html}</body></html>", "html.parser")
    for el in soup.find_all(True):
        assert _inside(el, _INNER_BLOCKS) == (el.find_parent(sorted(_INNER_BLOCKS)) is not None)


def test_nested_blocks_are_read_once() -> None:
    _, sections = html_sections("<body><h2>Steps</h2><ul><li>outer <p>inner</p></li></ul><p>after</p></body>", "t")
    text = " ".join(s.text for s in sections)
    assert text.count("inner") == 1 and "after" in text
