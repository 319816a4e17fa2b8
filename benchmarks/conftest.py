"""pytest-benchmark fixtures: cached corpora (synthetic sizes from ``GW_BENCH_SIZES``, default 1000,10000;
SciFact chunks with real MiniLM vectors from ``GW_BENCH_REAL_SIZES``, default 1000) and a
session summary printing Groundwire/baseline ratios, recall@10 and short results. Run with
``make bench`` (``pytest benchmarks --benchmark-only``); never collected by ``pytest tests``."""

from __future__ import annotations

import os
from typing import Any

import pytest
from groundwire.retrieval import FastRetriever

from benchmarks.common import langchain_baseline, load_corpus, load_real_corpus, peak_rss_mb

SIZES = [("synthetic", int(x)) for x in os.environ.get("GW_BENCH_SIZES", "1000,10000").split(",") if x]
SIZES += [("scifact", int(x)) for x in os.environ.get("GW_BENCH_REAL_SIZES", "1000").split(",") if x]
RESULTS: dict[tuple[str, int, float], dict[str, Any]] = {}


@pytest.fixture(scope="session", params=SIZES, ids=lambda p: f"{p[0]}-n{p[1]}")
def bench_corpus(request: pytest.FixtureRequest) -> Any:
    kind, n = request.param
    corpus = load_corpus(n, progress=False) if kind == "synthetic" else load_real_corpus(n, progress=False)
    fast = FastRetriever(corpus.tindex)
    fast.snapshot()
    return corpus, fast, langchain_baseline(corpus)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not RESULTS:
        return
    tr = terminalreporter
    tr.section("groundwire vs langchain-chroma (p50 ms)")
    for (kind, n, s), r in sorted(RESULTS.items()):
        g, b = r.get("groundwire"), r.get("langchain")
        if not g or not b:
            continue
        tr.write_line(
            f"{kind:>9} n={n:>7} sel={s:>6.1%}  groundwire {g['p50']:.3f} "
            f"(recall {g['recall']:.3f}, short {g['short']})  langchain {b['p50']:.2f} "
            f"(recall {b['recall']:.3f}, short {b['short']})  ratio {b['p50'] / g['p50']:.1f}x"
        )
    tr.write_line(f"peak RSS {peak_rss_mb():.0f} MB")
