"""LangChain conformance (issue 15): langchain-tests' standard ``RetrieversIntegrationTests`` run against
``GroundwireRetriever`` over a real synced corpus, plus what the standard suite does not cover: document
ids and ``source``, the ``k`` alias, non-string input, ``| draft_text`` and the retrieval child run."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from groundwire import Draft, GroundwireError
from groundwire.langchain import GroundwireRetriever, RetrieverInputError, draft_text, grounding_runnable
from groundwire.testing import EVERYONE_USER, HR_USER, tiny_grounder
from langchain_core.documents import Document
from langchain_core.messages import HumanMessage
from langchain_core.runnables import RunnableLambda
from langchain_core.tracers.context import collect_runs
from langchain_tests.integration_tests import RetrieversIntegrationTests

QUERY = "How many days of annual leave do employees get?"


@pytest.fixture(scope="module")
def g(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return tiny_grounder(tmp_path_factory.mktemp("lc-standard"))


class TestGroundwireRetrieverStandard(RetrieversIntegrationTests):
    @pytest.fixture(autouse=True)
    def _grounder(self, g: Any) -> None:
        type(self).grounder = g

    @property
    def retriever_constructor(self) -> type[GroundwireRetriever]:
        return GroundwireRetriever

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        return {"grounder": self.grounder, "user": EVERYONE_USER}

    @property
    def retriever_query_example(self) -> str:
        return QUERY


def test_documents_carry_id_source_and_stay_trimmed(g: Any) -> None:
    docs = GroundwireRetriever(grounder=g, user=EVERYONE_USER, top_k=10).invoke("salary review budget payroll")
    assert docs and all(d.id == d.metadata["chunk_id"] and d.metadata["source"] == d.metadata["uri"] for d in docs)
    assert all(d.metadata["source"].startswith("https://intranet.acme.example/kb/handbook/") for d in docs)
    hr = GroundwireRetriever(grounder=g, user=HR_USER, k=10).invoke("salary review budget payroll")
    assert any("3.5 percent" in d.page_content for d in hr)
    assert not any("3.5 percent" in d.page_content for d in docs)


def test_k_is_an_alias_of_top_k(g: Any) -> None:
    r = GroundwireRetriever(grounder=g, user=EVERYONE_USER, k=2)
    assert r.top_k == r.k == 2 and len(r.invoke(QUERY)) == 2
    assert len(r.invoke(QUERY, top_k=1)) == 1
    with pytest.raises(ValueError, match="positive integer"):
        r.invoke(QUERY, k=0)
    with pytest.raises(TypeError, match="only k"):
        r.invoke(QUERY, filter={"x": 1})


@pytest.mark.parametrize("bad", [HumanMessage(content=QUERY), {"query": QUERY}, 3, None, "   "])
def test_non_string_input_is_a_clear_error(g: Any, bad: object) -> None:
    r = GroundwireRetriever(grounder=g, user=EVERYONE_USER)
    with pytest.raises(RetrieverInputError, match="must be a non-empty string") as err:
        r.invoke(bad)  # type: ignore[arg-type]
    assert isinstance(err.value, GroundwireError)
    with pytest.raises(RetrieverInputError):
        grounding_runnable(g, EVERYONE_USER).invoke(bad)  # type: ignore[arg-type]


def test_draft_text_continues_a_chain(g: Any) -> None:
    chain = grounding_runnable(g, EVERYONE_USER) | draft_text | RunnableLambda(lambda text: text.upper())
    out = chain.invoke(QUERY)
    assert isinstance(out, str) and "25 DAYS" in out and "[1]" in out
    with pytest.raises(RetrieverInputError, match="draft_text takes a Draft"):
        draft_text.invoke("not a draft")  # type: ignore[arg-type]


def _find(run: Any, run_type: str) -> list[Any]:
    found = [run] if run.run_type == run_type else []
    for child in run.child_runs:
        found += _find(child, run_type)
    return found


def test_retrieval_is_a_child_run_of_the_grounding_run(g: Any) -> None:
    chain = grounding_runnable(g, EVERYONE_USER)
    with collect_runs() as cb:
        draft = chain.invoke(QUERY)
    (root,) = cb.traced_runs
    assert root.name == "groundwire_ground" and isinstance(draft, Draft)
    (retrieval,) = _find(root, "retriever")
    assert retrieval.name == "groundwire_retrieve" and retrieval.parent_run_id == root.id
    docs = [Document(**d) if isinstance(d, dict) else d for d in retrieval.outputs["documents"]]
    assert [d.id for d in docs] == [c.chunk_id for c in draft.citations] and docs
    with collect_runs() as cb:
        adraft = asyncio.run(chain.ainvoke(QUERY))
    assert _find(cb.traced_runs[0], "retriever") and "25 days" in adraft.text
