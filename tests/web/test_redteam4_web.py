"""Red team, round 4: a web page whose headings are nested in one another (attacker-controlled markup).

Each heading's text (``get_text``) and its search for an inner id (``find``) read its whole subtree, and a
heading nested in a heading holds every inner one: 8,000 nested ``<h2>`` (50 KB) took seconds and the cost
grows with the square, so a page of a few hundred KB held a crawl worker for hours. Both now read through
``groundwire.extract.bounded_descendants`` within a budget of the page's length shared by its headings;
ordinary pages read exactly as before (the anchor tests in test_web_units.py).
"""

from __future__ import annotations

import time

import pytest
from bs4 import BeautifulSoup
from groundwire.connectors.web.page import parse_html
from groundwire.extract import bounded_descendants
from hypothesis import given, settings
from hypothesis import strategies as st


@pytest.mark.parametrize("use_trafilatura", [False, True])
def test_nested_headings_cost_no_square(use_trafilatura: bool) -> None:
    n = 16_000
    html = ("<html><head><title>T</title></head><body>" + "<h2>x" * n + "<p>the body text of the page</p>"
            + "</h2>" * n + "</body></html>")
    t0 = time.process_time()
    page = parse_html(html, "https://x.example/a.html", agent_token="bot", use_trafilatura=use_trafilatura,
                      fallback_title="a")
    took = time.process_time() - t0
    assert "the body text of the page" in " ".join(s.text for s in page.sections)
    assert took < 20, f"{took:.1f} s of CPU"  # a guard against the quadratic walk, not a speed target


_TAGS = ["p", "div", "span", "h2", "a", "b", "ul", "li"]


def _html(depth: int) -> st.SearchStrategy[str]:
    leaf = st.sampled_from(["x", "", "<br>", "<!-- c -->", "<a name=n></a>", "<b id=i>y</b>"])
    if depth == 0:
        return leaf
    node = st.builds(lambda t, kids, close: f"<{t}>{''.join(kids)}" + (f"</{t}>" if close else ""),
                     st.sampled_from(_TAGS), st.lists(_html(depth - 1), max_size=3), st.booleans())
    return st.one_of(leaf, node)


@settings(max_examples=100, deadline=None)
@given(_html(5))
def test_bounded_descendants_is_descendants_while_the_budget_lasts(html: str) -> None:
    soup = BeautifulSoup(html, "html.parser")
    for el in [soup, *soup.find_all(True)]:
        everything = list(el.descendants)
        assert list(bounded_descendants(el, [len(html) + 1])) == everything
        budget = [len(everything) // 2]
        assert list(bounded_descendants(el, budget)) == everything[: len(everything) // 2] and budget == [0]
