"""The request path fetches payloads of the top_k best candidates only, and keeps what keeping from all
candidates would keep (filter_chunks denials and min_score dropping some of the first top_k included)."""

from __future__ import annotations

from pathlib import Path

import pytest
from groundwire import hookimpl
from groundwire.models import GroundingRequest, UserContext

from tests.conftest import write

WORDS = ["leave", "salary", "travel", "expenses", "budget", "holiday", "payroll", "office", "laptop", "parking"]


def _corpus(root: Path) -> Path:
    write(root / ".groundwire-acl.toml", 'allow = ["everyone"]\n')
    for i in range(30):
        body = " ".join(WORDS[(i * j) % len(WORDS)] for j in range(1, 12))
        title = f"DRAFT {i}" if i % 3 == 0 else f"Note {i}"
        write(root / f"n{i:02d}.md", f"# {title}\n\nThe {body} policy number {i} applies.\n")
    return root


class DenyDrafts:
    @hookimpl
    def filter_chunks(self, request, principals, chunks, config):
        return [c.id for c in chunks if c.title.startswith("DRAFT")]


def _reference(g, request: GroundingRequest) -> list[str]:
    """What the pipeline kept before: payloads of all n candidates, filtered, then the first top_k."""
    principals = g.principals(request.user)
    connectors = g.allowed_connectors(request)
    n = max(request.top_k, g.config.retrieval.candidates)
    vec = g.embedder.embed_query(request.prompt)
    candidates = g.fast_retriever(request.user.tenant).retrieve(vec, principals, connectors, n, text=request.prompt)
    return [c.id for c in g._keep(request, principals, candidates)][: request.top_k]


@pytest.mark.parametrize("hybrid", [False, True])
@pytest.mark.parametrize("deny", [False, True])
@pytest.mark.parametrize("min_score", [0.0, 0.2])
def test_search_keeps_what_all_candidates_would_and_fetches_top_k(
    make_grounder, tmp_path: Path, hybrid: bool, deny: bool, min_score: float
) -> None:
    g = make_grounder(
        {"kb": {"type": "knowledge_base", "tenant": "acme", "path": str(_corpus(tmp_path / "kb"))}},
        extra_plugins=(DenyDrafts(),) if deny else (),
        retrieval={"top_k": 4, "candidates": 12, "hybrid": hybrid, "min_score": min_score},
    )
    g.sync()
    tindex = g.index.tenant("acme")
    fetched: list[int] = []
    real = tindex.get_chunks

    def counting(ids, principals, connectors):
        fetched.append(len(ids))
        return real(ids, principals, connectors)

    tindex.get_chunks = counting  # type: ignore[method-assign]
    user = UserContext.of("sam@example.com", "acme")
    fallbacks = 0
    for words in (WORDS[:2], WORDS[2:5], WORDS[5:6], WORDS[::3], ["policy"]):
        request = GroundingRequest(user=user, prompt=" ".join(words), top_k=4)
        fetched.clear()
        got = [c.id for c in g._search(request)]
        first = fetched[0]
        assert got == _reference(g, request)
        assert first == 4  # the first fetch asks for top_k payloads, not for all 12 candidates
        if len(got) == 4 and fetched[1:] == []:
            continue  # nothing dropped: one fetch of top_k payloads
        assert fetched[1] == 12  # something dropped among the first four: all candidates, as before
        fallbacks += 1
    if deny:
        assert fallbacks  # the denials did drop some of the first four
        assert all(not c.title.startswith("DRAFT") for c in g._search(GroundingRequest(user=user, prompt="leave")))
