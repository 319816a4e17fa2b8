"""LangChain: the retriever is permission-trimmed and tenant-bound; the runnable returns a Draft."""

from __future__ import annotations

import asyncio

import pytest
from groundwire import Draft, DraftStatus, FeatureDisabled, UserContext
from groundwire.langchain import GroundwireRetriever, grounding_runnable

from .trust_helpers import ACME_HR, grounder


@pytest.fixture(scope="module")
def g(tmp_path_factory):
    g = grounder(tmp_path_factory.mktemp("lc"), features={"ask": ["*"], "summarize": ["manager"]})
    g.sync()
    return g


def test_retriever_trims_by_user(g):
    hr = GroundwireRetriever(grounder=g, user=UserContext.of("hana", "acme", groups=["hr"]), top_k=5)
    plain = GroundwireRetriever(grounder=g, user=UserContext.of("sam", "acme"), top_k=5)
    docs = hr.invoke(ACME_HR)
    assert any(d.page_content == ACME_HR for d in docs)
    assert all(d.metadata["tenant"] == "acme" and d.metadata["uri"] for d in docs)
    assert not any(d.page_content == ACME_HR for d in plain.invoke(ACME_HR))


def test_retriever_cannot_cross_tenants(g):
    other = GroundwireRetriever(
        grounder=g, user=UserContext.of("hana", "globex", groups=["hr"]), connectors=["acme-docs"], top_k=10
    )
    assert other.invoke(ACME_HR) == []


def test_retriever_respects_feature_enablement(g):
    r = GroundwireRetriever(grounder=g, user=UserContext.of("sam", "acme"), feature="summarize")
    with pytest.raises(FeatureDisabled):
        r.invoke("anything")


def test_runnable_returns_a_draft(g):
    chain = grounding_runnable(g, UserContext.of("sam", "acme"))
    draft = chain.invoke("When is payday?")
    assert isinstance(draft, Draft) and draft.status is DraftStatus.PENDING_REVIEW and draft.citations
    adraft = asyncio.run(chain.ainvoke("When is payday?"))
    assert isinstance(adraft, Draft) and "25th" in adraft.text
