"""Groundedness plugin: uncited, unknown and unsupported sentences are flagged with spans."""

from __future__ import annotations

from groundwire import (
    Action,
    Chunk,
    Citation,
    Draft,
    GroundingRequest,
    UserContext,
    config_from_dict,
)
from groundwire.plugins import groundedness

from .conftest import make_chunk


def _cite(n: int, chunk: Chunk) -> Citation:
    return Citation(
        n=n,
        title=chunk.title,
        uri=chunk.uri,
        snippet="",
        location="",
        doc_id=chunk.doc_id,
        chunk_id=chunk.id,
        connector=chunk.connector,
    )


SRC = make_chunk("c1", "Salaries are paid on the 25th of every month. Increases take effect in April.")


def test_flags_uncited_and_unsupported() -> None:
    text = (
        "Salaries are paid on the 25th of every month [1]. "
        "The company headquarters moved to Lisbon last winter [1]. "
        "Everyone receives a generous holiday bonus."
    )
    draft = Draft(request_id="r", text=text, citations=[_cite(1, SRC)])
    spans = groundedness.unsupported_spans(draft, [SRC])
    labels = {text[s:e].strip(): lab for s, e, lab in spans}
    assert labels == {
        "The company headquarters moved to Lisbon last winter [1].": "unsupported",
        "Everyone receives a generous holiday bonus.": "uncited",
    }


def test_supported_draft_has_no_verdict() -> None:
    draft = Draft(request_id="r", text="Increases take effect in April [1].", citations=[_cite(1, SRC)])
    config = config_from_dict({})
    req = GroundingRequest(user=UserContext.of("u", "acme"), prompt="q")
    assert groundedness.screen_output(request=req, draft=draft, sources=[SRC], config=config) is None


def test_unknown_citation_and_hook_verdict() -> None:
    draft = Draft(request_id="r", text="Increases take effect in April [2].", citations=[_cite(1, SRC)])
    config = config_from_dict({"plugins": {"settings": {"groundedness": {"min_support": 0.9}}}})
    req = GroundingRequest(user=UserContext.of("u", "acme"), prompt="q")
    v = groundedness.screen_output(request=req, draft=draft, sources=[SRC], config=config)
    assert v is not None and v.action is Action.FLAG and v.spans[0][2] == "unknown_citation"
    assert 0 < v.score <= 1


def test_decimal_numbers_do_not_split_sentences() -> None:
    text = "The 2026 budget is 3.5 percent of payroll. [2] Salaries are paid on the 25th. [3]"
    assert [text[a:b] for a, b in groundedness.sentence_spans(text)] == [
        "The 2026 budget is 3.5 percent of payroll. [2]",
        "Salaries are paid on the 25th. [3]",
    ]
