"""The chunker keeps table rows and fenced code blocks whole (issue 13: fragments of rows cut mid-cell looked
like planted prose to the prompt shield and clean tables were withheld)."""

from __future__ import annotations

from groundwire.chunking import split_text
from hypothesis import given, settings
from hypothesis import strategies as st

# the chunker collapses runs of white space, so cells are generated with single spaces
_cell = st.text(alphabet=st.sampled_from("abcdefgh XYZ.!?0123"), min_size=1, max_size=25)
_cell = _cell.map(lambda s: " ".join(s.split())).filter(bool)
_row = st.lists(_cell, min_size=2, max_size=5).map(lambda cells: "| " + " | ".join(cells) + " |")
_prose = st.lists(st.sampled_from(["Revenue rose.", "Costs fell! See below.", "Why? Because.", "Q3 ended."]),
                  min_size=1, max_size=6).map(" ".join)
_code = st.lists(st.sampled_from(["def f(x):", "    return x + 1", "", "x = f(2)  # two. Three."]),
                 min_size=1, max_size=6).map(lambda ls: "```python\n" + "\n".join(ls) + "\n```")


@settings(max_examples=80, deadline=None)
@given(st.lists(st.one_of(_row, _prose, _code), min_size=1, max_size=30), st.integers(120, 400))
def test_rows_and_code_blocks_are_never_cut(blocks: list[str], size: int) -> None:
    text = "\n".join(blocks)
    chunks = split_text(text, size, size // 5)
    joined = "\n".join(chunks)
    for b in blocks:
        row = " ".join(b.split())  # rows are stored with their whitespace collapsed
        if b.startswith("| ") and len(row) <= size:
            assert any(row in c.splitlines() for c in chunks), b  # a whole row is a whole line of a chunk
        if b.startswith("```") and len(b) <= size:
            assert any(b in c for c in chunks), b  # the block with its fences and indentation
    for c in chunks:
        assert len(c) <= size or " " not in c
    for word in text.split():
        assert word in joined  # nothing lost


def test_a_long_row_is_cut_on_cell_borders() -> None:
    row = "| " + " | ".join(f"cell {i} has some words" for i in range(30)) + " |"
    chunks = split_text(row, 200, 40)
    assert len(chunks) > 1
    for c in chunks:
        assert len(c) <= 200
        assert all(part.strip("| ").startswith("cell") for part in c.split(" | ") if part.strip("| "))


def test_code_indentation_is_kept() -> None:
    text = "Intro.\n\n```\nif x:\n        deep()\n```\nOutro."
    assert "        deep()" in split_text(text)[0]
