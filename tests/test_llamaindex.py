"""The LlamaIndex adapter (issue 15): ``GroundwireLlamaRetriever`` is a real ``BaseRetriever`` over a
synced corpus, tested like the LangChain retriever: number of results, node ids and ``source``, security
trimming, feature enablement, sync and async, and a clear error for a query that is not a string."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

pytest.importorskip("llama_index.core", reason="needs the llamaindex extra: pip install 'groundwire[llamaindex]'")

from groundwire import FeatureDisabled, GroundwireError  # noqa: E402
from groundwire.langchain import RetrieverInputError  # noqa: E402
from groundwire.llamaindex import GroundwireLlamaRetriever  # noqa: E402
from groundwire.testing import EVERYONE_USER, HR_USER, tiny_grounder  # noqa: E402
from llama_index.core.retrievers import BaseRetriever  # noqa: E402
from llama_index.core.schema import NodeWithScore, QueryBundle  # noqa: E402

QUERY = "How many days of annual leave do employees get?"


@pytest.fixture(scope="module")
def g(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return tiny_grounder(tmp_path_factory.mktemp("llama"), features={"ask": ["*"], "summarize": ["manager"]})


def test_is_a_llamaindex_retriever_with_k_and_similarity_top_k(g: Any) -> None:
    for kwargs, n in [({"k": 1}, 1), ({"k": 3}, 3), ({"similarity_top_k": 2}, 2)]:
        r = GroundwireLlamaRetriever(g, EVERYONE_USER, **kwargs)
        assert isinstance(r, BaseRetriever)
        nodes = r.retrieve(QUERY)
        assert len(nodes) == n and all(isinstance(x, NodeWithScore) for x in nodes)
    with pytest.raises(ValueError, match="positive integer"):
        GroundwireLlamaRetriever(g, EVERYONE_USER, k=0)


def test_nodes_carry_id_text_source_and_score(g: Any) -> None:
    (top,) = GroundwireLlamaRetriever(g, EVERYONE_USER, k=1).retrieve(QueryBundle(QUERY))
    assert "25 days" in top.node.get_content()
    assert top.node.id_ == top.node.metadata["chunk_id"]
    assert top.node.metadata["source"] == "https://intranet.acme.example/kb/handbook/leave.md#annual-leave"
    assert top.score is not None and top.score > 0
    assert "tenant" not in top.node.get_content(metadata_mode="llm")  # ids stay out of the model's text


def test_trimmed_by_user_and_feature(g: Any) -> None:
    q = "salary review budget payroll"
    hr = GroundwireLlamaRetriever(g, HR_USER, k=10).retrieve(q)
    plain = GroundwireLlamaRetriever(g, EVERYONE_USER, k=10).retrieve(q)
    assert any("3.5 percent" in n.node.get_content() for n in hr)
    assert not any("3.5 percent" in n.node.get_content() for n in plain)
    with pytest.raises(FeatureDisabled):
        GroundwireLlamaRetriever(g, EVERYONE_USER, feature="summarize").retrieve(q)


def test_async_retrieve(g: Any) -> None:
    nodes = asyncio.run(GroundwireLlamaRetriever(g, EVERYONE_USER, k=2).aretrieve(QUERY))
    assert len(nodes) == 2 and "25 days" in nodes[0].node.get_content()


@pytest.mark.parametrize("bad", [3, None, "  ", QueryBundle("")])
def test_non_string_input_is_a_clear_error(g: Any, bad: object) -> None:
    with pytest.raises(RetrieverInputError, match="non-empty string") as err:
        GroundwireLlamaRetriever(g, EVERYONE_USER).retrieve(bad)  # type: ignore[arg-type]
    assert isinstance(err.value, GroundwireError)
