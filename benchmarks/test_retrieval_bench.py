"""pytest-benchmark: filtered top-10 search, Groundwire fast path vs LangChain's Chroma retriever with the
equivalent ``where`` filter, on the same collection; records recall@10 and short results per cell."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest

from benchmarks.common import CONNECTORS, SELECTIVITIES, K, baseline_search, recall, user_principals
from benchmarks.conftest import RESULTS


def _run(benchmark: Any, corpus: Any, s: float, search: Any, system: str) -> None:
    queries = corpus.queries(40)
    truths = [corpus.truth(q, s) for q in queries]
    allowed = int(corpus.allowed_mask(s).sum())
    it = itertools.cycle(range(len(queries)))
    got: dict[int, list[str]] = {}

    def once() -> None:
        i = next(it)
        got[i] = search(queries[i])

    benchmark.pedantic(once, rounds=len(queries), iterations=1, warmup_rounds=2)
    recalls = [recall(got[i], truths[i]) for i in got]
    short = sum(len(got[i]) < min(K, allowed) for i in got)
    benchmark.extra_info.update({"recall@10": float(np.mean(recalls)), "short": short, "allowed": allowed})
    RESULTS.setdefault((corpus.kind, corpus.n, s), {})[system] = {
        "p50": benchmark.stats.stats.median * 1000, "recall": float(np.mean(recalls)), "short": short,
    }
    assert short == 0 or system == "langchain"


@pytest.mark.parametrize("s", SELECTIVITIES, ids=lambda s: f"sel{s:g}")
def test_groundwire(benchmark: Any, bench_corpus: Any, s: float) -> None:
    corpus, fast, _ = bench_corpus
    principals = user_principals(s)
    benchmark.group = f"{corpus.kind}-n{corpus.n}-sel{s:g}"
    _run(benchmark, corpus, s, lambda q: [h.id for h in fast.search(q, principals, CONNECTORS, K).hits],
         "groundwire")


@pytest.mark.parametrize("s", SELECTIVITIES, ids=lambda s: f"sel{s:g}")
def test_langchain_chroma(benchmark: Any, bench_corpus: Any, s: float) -> None:
    corpus, _, store = bench_corpus
    where = corpus.where(s)
    benchmark.group = f"{corpus.kind}-n{corpus.n}-sel{s:g}"
    _run(benchmark, corpus, s, lambda q: baseline_search(store, q, where), "langchain")
