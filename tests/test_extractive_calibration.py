"""The extractive generator's similarity floor is calibrated per embedder (issue 15): with the hashing
embedder the right chunk was retrieved, yet the fixed MiniLM-tuned 0.3 floor made the draft say that no
source answers. The floor is now what unrelated everyday sentences reach for the same prompt."""

from __future__ import annotations

from pathlib import Path

import pytest
from groundwire.plugins.extractive import UNRELATED
from groundwire.testing import EVERYONE_USER, tiny_grounder

QUESTION = "How many days of annual leave do employees get?"
NO_DRAFT = "No sources you can access answer this question"


@pytest.mark.parametrize("embedder", ["hashing", pytest.param("minilm", marks=pytest.mark.slow)])
def test_the_right_sentence_is_drafted_and_an_unrelated_question_gets_none(tmp_path: Path, embedder: str) -> None:
    g = tiny_grounder(tmp_path, embedder=embedder)
    retrieved = g.retrieve(g._request(QUESTION, EVERYONE_USER, "ask", None, None))
    assert "25 days" in retrieved[0].text  # retrieval finds it with either embedder
    draft = g.ground(QUESTION, EVERYONE_USER)
    assert "Every employee receives 25 days of paid annual leave per year. [1]" in draft.text
    assert NO_DRAFT in g.ground("What is the capital of Peru?", EVERYONE_USER).text
    floor = g.generator.floor(g.embedder.embed_query(QUESTION))
    assert floor == pytest.approx(max(float(v @ g.embedder.embed_query(QUESTION))
                                      for v in g.embedder.embed_documents(list(UNRELATED))) + 0.05, abs=1e-5)


def test_an_explicit_min_similarity_replaces_the_calibrated_floor(tmp_path: Path) -> None:
    g = tiny_grounder(tmp_path, generator={"name": "extractive", "options": {"min_similarity": 0.99}})
    assert NO_DRAFT in g.ground(QUESTION, EVERYONE_USER).text
    assert g.generator.floor(g.embedder.embed_query(QUESTION)) == 0.99
