"""The README demo, as a test: the real MiniLM model, the example corpus, two users, different drafts."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest
from groundwire import Grounder, load_config

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
QUESTION = "When do salary increases take effect and how big is the budget?"


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Grounder:
    root = tmp_path_factory.mktemp("demo")
    shutil.copytree(EXAMPLES / "corpus", root / "corpus")
    cfg_text = (EXAMPLES / "groundwire.toml").read_text().replace("../.groundwire/demo", "state")
    (root / "groundwire.toml").write_text(cfg_text)
    g = Grounder(load_config(root / "groundwire.toml"))
    reports = g.sync()
    assert all(r.ok for r in reports), [r.error for r in reports]
    return g


@pytest.mark.slow
def test_hr_and_regular_user_get_different_cited_drafts(demo: Grounder) -> None:
    regular = demo.ground(QUESTION, "sam@example.com")
    hr = demo.ground(QUESTION, "hana@example.com", groups=["hr"])
    assert regular.text != hr.text
    assert regular.citations and hr.citations
    assert not any(c.doc_id.startswith(("hr/", "people/")) for c in regular.citations)
    assert any(c.doc_id.startswith("hr/") for c in hr.citations)
    for word in ("3.5 percent", "Band L3", "Dana"):
        assert word not in regular.text and all(word not in c.snippet for c in regular.citations)
    for d in (regular, hr):
        assert d.status == "pending_review" and "review" in d.notice
        for c in d.citations:
            assert f"[{c.n}]" in d.text and c.uri.startswith("https://intranet.acme.example/kb/")


@pytest.mark.slow
def test_named_user_sees_only_their_own_review(demo: Grounder) -> None:
    q = "What are Dana's goals for 2026?"
    assert any(c.doc_id == "people/dana-performance-review.md" for c in demo.ground(q, "dana@example.com").citations)
    assert not any(c.doc_id.startswith("people/") for c in demo.ground(q, "sam@example.com").citations)


@pytest.mark.slow
def test_async_ground_matches_sync(demo: Grounder) -> None:
    sync_draft = demo.ground(QUESTION, "hana@example.com", groups=["hr"])
    async_draft = asyncio.run(demo.aground(QUESTION, "hana@example.com", groups=["hr"]))
    assert async_draft.text == sync_draft.text
    assert [c.chunk_id for c in async_draft.citations] == [c.chunk_id for c in sync_draft.citations]


@pytest.mark.slow
def test_concurrent_requests_do_not_mix_users(demo: Grounder) -> None:
    async def both():
        return await asyncio.gather(
            *[demo.aground(QUESTION, "sam@example.com") for _ in range(3)],
            *[demo.aground(QUESTION, "hana@example.com", groups=["hr"]) for _ in range(3)],
        )

    drafts = asyncio.run(both())
    for d in drafts[:3]:
        assert not any(c.doc_id.startswith(("hr/", "people/")) for c in d.citations)
    for d in drafts[3:]:
        assert any(c.doc_id.startswith("hr/") for c in d.citations)


@pytest.mark.slow
def test_prompt_is_embedded_once_per_request(demo: Grounder) -> None:
    """Prompt shield and retrieval share one query embedding (one model call per prompt)."""
    from groundwire.plugins.embedders import query_embedding

    before = query_embedding.cache_info()
    demo.ground("How many weeks of parental leave are there, and can they be split?", "sam@example.com")
    after = query_embedding.cache_info()
    assert after.misses - before.misses == 1
    assert after.hits - before.hits >= 1
