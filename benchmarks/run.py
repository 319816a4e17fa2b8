"""Plain benchmark runner: ``python -m benchmarks.run --sizes 1000,10000,100000``.

For every corpus (synthetic vectors at ``--sizes``; SciFact chunks with real MiniLM vectors and real
questions at ``--real-sizes``) and ACL selectivity it measures, in one process against the same Chroma
collection: Groundwire's fast path (ids only, and with payloads via ``get_chunks``) and LangChain's
Chroma vector store with the equivalent ``where`` filter. It prints p50/p95 latency, QPS, recall@10
against exact search over the allowed set, short results, the Groundwire/baseline ratio, ingest rates,
end-to-end latency (MiniLM query embedding + retrieval) and peak RSS; snapshot start-up per 100k chunks
from Chroma and from the memory-mapped snapshot file, with RSS, in fresh processes (benchmarks.snapshot_load,
``--snapshot-sizes``; mapped-file start-up and RSS at ``--snapshot-file-only`` rows, 1M by default); the ANN
plan's recall@10 at every selectivity; a whole ``Grounder.ground`` request at ``--ground-size`` chunks beside
LangChain's equivalent extractive pipeline (benchmarks.ground_scale); the sync figures of
benchmarks.sync_speed when that module is present (chunks/s, ratio vs LangChain, matmul fraction, the default
backend against fp32, and ``--sync-before DIR`` against another checkout); SciFact nDCG@10 through the product for fp32
and int8 (benchmarks.beir ``through_product``, ``--quality-limit``). It ends with the issue-14 table
(benchmarks.issue14: every "Must show" figure side by side with its comparison, ratio and target) and the wall
time of each phase; writes a PNG plot and a JSON file to ``benchmarks/results/`` (and to ``--json PATH``).
``--quick`` sizes everything down to a smoke run.

Run time on the idle 2-core machine (an estimate from the idle rates in the README; the runner prints each
phase's wall time, so a run gives the real split): the full default run takes ~35-45 min with cold caches,
~21 min of it building the cached 100k-chunk ``ground()`` tenant once (~80 chunks/s), and ~15 min warm.
``--sizes 100000 --real-sizes '' --backends onnx --sync-limit 200 --quality-limit 400`` keeps every issue-14
row and takes ~30 min cold (mostly the tenant build, which ``benchmarks.ground_scale --size 100000`` can do
ahead of time: same cache), ~10 min warm.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from groundwire.retrieval import FastRetriever

from benchmarks import issue14
from benchmarks.common import (
    CONNECTORS,
    RESULTS,
    SCIFACT,
    SELECTIVITIES,
    K,
    baseline_search,
    langchain_baseline,
    load_corpus,
    load_real_corpus,
    peak_rss_mb,
    recall,
    user_principals,
)


def _stats(ms: list[float]) -> dict[str, float]:
    a = np.asarray(ms)
    p50, p95 = np.percentile(a, [50, 95])
    return {"p50": float(p50), "p95": float(p95), "qps": 1000.0 / float(a.mean())}


def measure_cell(
    corpus: Any, fast: FastRetriever, store: Any, s: float, queries: np.ndarray
) -> dict[str, Any]:
    principals, where = user_principals(s), corpus.where(s)
    allowed = int(corpus.allowed_mask(s).sum())
    out: dict[str, Any] = {"corpus": corpus.kind, "size": corpus.n, "selectivity": s, "allowed": allowed}
    # ground truth first: its multi-threaded BLAS leaves threads spinning that would slow the timed query
    # right after it (Chroma's ANN at 50%: 25 ms instead of 2 ms on 2 cores)
    truths = [corpus.truth(q, s) for q in queries]
    for system in ("groundwire", "groundwire+payload", "langchain"):
        times, recalls, short, plans = [], [], 0, set()
        for q, truth in zip(queries, truths, strict=True):
            t0 = time.perf_counter()
            if system == "groundwire":
                res = fast.search(q, principals, CONNECTORS, K)
                ids = [h.id for h in res.hits]
                plans.add(res.plan)
            elif system == "groundwire+payload":
                ids = [c.id for c in fast.retrieve(q, principals, CONNECTORS, K)]
            else:
                ids = baseline_search(store, q, where)
            times.append((time.perf_counter() - t0) * 1000)
            recalls.append(recall(ids, truth))
            short += int(len(ids) < min(K, allowed))
        out[system] = {**_stats(times), "recall": float(np.mean(recalls)), "short": short,
                       "plan": ",".join(sorted(plans))}
    out["ratio"] = out["langchain"]["p50"] / out["groundwire"]["p50"]
    out["ratio_payload"] = out["langchain"]["p50"] / out["groundwire+payload"]["p50"]
    return out


def end_to_end(corpus: Any, fast: FastRetriever, backend: str, n: int = 60) -> dict[str, float]:
    """MiniLM query embedding (uncached, distinct SciFact claims) + fast retrieval with payloads at 10%."""
    from groundwire.plugins.embedders import MiniLMEmbedder

    from benchmarks.beir import load_queries

    emb = MiniLMEmbedder(backend=backend)
    emb.warm_up()
    texts = list(load_queries(SCIFACT).values())[: n + 5]
    for t in texts[:5]:
        emb.embed_query(t)
    embed_ms, total_ms = [], []
    for t in texts[5:]:
        t0 = time.perf_counter()
        v = emb.embed_query(t)
        t1 = time.perf_counter()
        fast.retrieve(v, user_principals(0.1), CONNECTORS, K)
        t2 = time.perf_counter()
        embed_ms.append((t1 - t0) * 1000)
        total_ms.append((t2 - t0) * 1000)
    return {f"embed_query_p50_ms[{backend}]": float(np.median(embed_ms)),
            f"e2e_p50_ms[{backend}]": float(np.median(total_ms)),
            f"e2e_p95_ms[{backend}]": float(np.percentile(total_ms, 95))}


def ingest_rates(backends: list[str], docs: int = 512, inserts: int = 20_000) -> dict[str, float]:
    """Ingest throughput, measured now: embedding SciFact abstracts cut to chunk size (per backend), and
    inserting chunks with their vectors and ACLs into a fresh embedded Chroma through ``TenantIndex``."""
    import tempfile

    from groundwire import AccessControl
    from groundwire.chunking import split_text
    from groundwire.index import Index, make_client
    from groundwire.models import Chunk
    from groundwire.plugins.embedders import MiniLMEmbedder

    from benchmarks.beir import load_corpus as load_beir

    texts: list[str] = []
    for body in load_beir(SCIFACT).values():
        texts.extend(split_text(body, 800, 0))
        if len(texts) >= docs:
            break
    texts = texts[:docs]
    out: dict[str, float] = {"embed_chunk_chars_mean": float(np.mean([len(t) for t in texts]))}
    for backend in backends:
        emb = MiniLMEmbedder(backend=backend)
        emb.embed_documents(texts[:16])  # load and warm up
        t0 = time.perf_counter()
        emb.embed_documents(texts)
        out[f"embed_chunks_per_s[{backend}]"] = len(texts) / (time.perf_counter() - t0)
    vec = np.random.default_rng(1).normal(size=(inserts, 384)).astype(np.float32)
    vec /= np.linalg.norm(vec, axis=1, keepdims=True)
    with tempfile.TemporaryDirectory() as tmp:
        tindex = Index(make_client("embedded", Path(tmp) / "chroma"), "synthetic-384", 384).tenant("ingest")
        t0 = time.perf_counter()
        for start in range(0, inserts, 1000):
            batch = [
                Chunk(id=f"i{i}", doc_id=f"d{i // 4}", connector="kb", tenant="ingest", text=texts[i % len(texts)],
                      title=f"doc {i // 4}", uri=f"https://example.test/{i // 4}", location="",
                      acl=AccessControl.of([f"group:g{i % 50}", f"user:u{i % 997}"], []), position=i % 4)
                for i in range(start, min(inserts, start + 1000))
            ]
            tindex.add_document_chunks(batch, vec[start : start + len(batch)], "v1", "h")
        out["insert_chunks_per_s"] = inserts / (time.perf_counter() - t0)
    return out


def sync_figures(limit: int, before: str | None = None) -> dict[str, float]:
    """The figures of benchmarks.sync_speed (another module, maybe absent): default backend and fp32 (``onnx``); with
    ``before`` (a folder another checkout is installed in, ``pip install --target``; the sync subprocess's
    PYTHONPATH) also that code's chunks/s on the same documents."""
    try:
        from benchmarks import sync_speed  # type: ignore[attr-defined]
    except ImportError:
        print("sync figures: benchmarks.sync_speed is not in this tree; skipped")
        return {}

    def call(**kw: Any) -> dict[str, Any]:
        accepted = inspect.signature(sync_speed.measure).parameters
        return dict(sync_speed.measure(**{k: v for k, v in kw.items() if k in accepted}))

    out: dict[str, float] = {}
    try:
        res = call(limit=limit, langchain=True, limit_model=True)
        for key in ("groundwire_chunks_per_s", "langchain_chunks_per_s", "ratio_chunks_per_s", "matmul_fraction",
                    "embed_matmul_fraction", "gemm_gflops"):
            if isinstance(res.get(key), int | float):
                out[f"sync_{key}[{res.get('docs', limit)} docs]"] = float(res[key])
        # the default backend is "auto" (onnx-int8 on a CPU with VNNI): the other row is fp32, named
        fp32 = call(limit=limit, backend="onnx", langchain=False, limit_model=False)
        if res.get("groundwire_chunks_per_s") and fp32.get("groundwire_chunks_per_s"):
            out[f"sync_groundwire_chunks_per_s[fp32,{fp32.get('docs', limit)} docs]"] = float(
                fp32["groundwire_chunks_per_s"])
            out["sync_default_speedup[chunks/s default / fp32]"] = (
                float(res["groundwire_chunks_per_s"]) / float(fp32["groundwire_chunks_per_s"]))
        if before:
            old = call(limit=limit, langchain=False, limit_model=False, python_path=before)
            out[f"sync_groundwire_chunks_per_s[before,{old.get('docs', limit)} docs]"] = float(
                old["groundwire_chunks_per_s"])
    except Exception as exc:  # noqa: BLE001 - another module's failure must not lose the other figures
        print(f"sync figures: benchmarks.sync_speed failed ({type(exc).__name__}: {exc}); skipped")
    return out


def int8_quality(limit: int, split: str = "train") -> dict[str, float]:
    """SciFact nDCG@10 and recall@100 through the product (files -> sync -> ``Grounder.retrieve``, chunk hits
    folded to documents; benchmarks.beir ``through_product``) for the fp32 and int8 backends, on the first
    ``limit`` abstracts and the claims whose relevant abstracts are all among them."""
    from benchmarks.beir import through_product

    out: dict[str, float] = {}
    got: dict[str, dict[str, float]] = {}
    try:
        for backend in ("onnx", "onnx-int8"):
            got[backend] = r = through_product(SCIFACT, split, backend, limit)
            if not r["queries"]:
                print(f"int8 quality: no {split} claim has all its relevant abstracts among the first {limit}; "
                      "raise --quality-limit")
                return {}
            q = f"{int(r['documents'])} docs"
            out[f"scifact_ndcg@10[{backend},{q}]"] = r["ndcg@10"]
            out[f"scifact_recall@100[{backend},{q}]"] = r["recall@100"]
            out[f"scifact_queries[{q}]"] = r["queries"]
            out[f"through_product_sync_chunks_per_s[{backend},{q}]"] = r["chunks_per_s"]
    except Exception as exc:  # noqa: BLE001 - a failure here must not lose the other figures
        print(f"int8 quality: benchmarks.beir failed ({type(exc).__name__}: {exc}); skipped")
        return out
    q = f"{int(got['onnx']['documents'])} docs"
    out[f"scifact_ndcg@10_change[int8 - fp32,{q}]"] = got["onnx-int8"]["ndcg@10"] - got["onnx"]["ndcg@10"]
    return out


class Phases:
    """Wall time of each phase of the run (printed at the end, so the next run can be sized)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.start = time.perf_counter()

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t0

    def report(self) -> str:
        total = time.perf_counter() - self.start
        parts = ", ".join(f"{k} {v:.0f} s" for k, v in self.seconds.items())
        return f"phase wall times: {parts}; total {total:.0f} s ({total / 60:.1f} min)"


def plot(rows: list[dict[str, Any]], path: Any) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(SELECTIVITIES), figsize=(4 * len(SELECTIVITIES), 3.5), sharey=True)
    for ax, s in zip(np.atleast_1d(axes), SELECTIVITIES, strict=True):
        for kind, line in (("synthetic", "-"), ("scifact", ":")):
            cells = sorted((r for r in rows if r["selectivity"] == s and r["corpus"] == kind), key=lambda r: r["size"])
            if not cells:
                continue
            sizes = [r["size"] for r in cells]
            for system, marker in (("groundwire", "o"), ("groundwire+payload", "s"), ("langchain", "x")):
                ax.plot(sizes, [r[system]["p50"] for r in cells], marker + line, label=f"{system} ({kind})")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(f"selectivity {s:.1%}")
        ax.set_xlabel("chunks")
    np.atleast_1d(axes)[0].set_ylabel("p50 latency (ms)")
    np.atleast_1d(axes)[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--queries", type=int, default=50)
    ap.add_argument("--backends", default="onnx,torch", help="MiniLM backends for the end-to-end and ingest figures")
    ap.add_argument("--real-sizes", default="1000,10000",
                    help="SciFact chunks with real MiniLM vectors (embedded once, cached); '' to skip")
    ap.add_argument("--no-e2e", action="store_true")
    ap.add_argument("--snapshot-sizes", default=None,
                    help="synthetic sizes for the snapshot start-up and RSS figures in fresh processes "
                         "(default: the largest of --sizes; '' to skip)")
    ap.add_argument("--snapshot-file-only", type=int, default=1_000_000,
                    help="rows of the mapped-file start-up and RSS figure without Chroma (0 to skip)")
    ap.add_argument("--ground-size", type=int, default=100_000, help="chunks of the ground() tenant (0 to skip)")
    ap.add_argument("--ground-requests", type=int, default=60, help="ground() requests per round")
    ap.add_argument("--ground-repeats", type=int, default=3, help="rounds (the median of their p50s is printed)")
    ap.add_argument("--ground-pool", type=int, default=1500, help="SciFact sentences the ground() chunks use")
    ap.add_argument("--sync-limit", type=int, default=None,
                    help="SciFact documents for the sync figures (default 500; --quick: 8; 0: skip)")
    ap.add_argument("--sync-before", default=None, metavar="DIR",
                    help="also sync with the code installed at DIR (PYTHONPATH of the sync subprocess) for the "
                         ">= 2.5x row; make it with 'git worktree add /tmp/old REV && pip install --no-deps "
                         "--no-build-isolation --target DIR /tmp/old'")
    ap.add_argument("--quality-limit", type=int, default=None,
                    help="SciFact abstracts for the fp32/int8 nDCG@10 through the product (default 800; "
                         "--quick: 20; 0: skip)")
    ap.add_argument("--json", default=None, metavar="PATH", help="also write every figure and the table here")
    ap.add_argument("--quick", action="store_true",
                    help="a smoke run: 300 chunks, 5 queries, no end-to-end, ground() at 300 chunks, snapshot "
                         "file-only at 20,000 rows, sync of 8 documents (default, fp32, LangChain), nDCG@10 on 20")
    args = ap.parse_args(argv)
    if args.quick:
        args.sizes, args.real_sizes, args.queries, args.no_e2e = "300", "", 5, True
        args.snapshot_file_only = 20_000 if args.snapshot_file_only == 1_000_000 else args.snapshot_file_only
        args.ground_size, args.ground_requests, args.ground_repeats, args.ground_pool = 300, 3, 1, 60
    if args.sync_limit is None:
        args.sync_limit = 8 if args.quick else 500
    if args.quality_limit is None:
        args.quality_limit = 20 if args.quick else 800
    phase = Phases()
    sizes = [int(x) for x in args.sizes.split(",")]
    plan = [("synthetic", n) for n in sizes] + [("scifact", int(x)) for x in args.real_sizes.split(",") if x]
    rows: list[dict[str, Any]] = []
    extra: dict[str, Any] = {}
    for kind, n in plan:
        with phase(f"retrieval {kind}-{n}"):
            e2e = args.backends.split(",") if kind == "synthetic" and n == max(sizes) and not args.no_e2e else []
            rows += retrieval(kind, n, args.queries, e2e, extra)
    if not args.no_e2e:
        with phase("ingest rates"):
            extra.update(ingest_rates(args.backends.split(",")))
    for r in rows:
        extra[f"recall@10[{r['corpus']}-{r['size']},{r['selectivity']:.1%},{r['groundwire']['plan']}]"] = (
            r["groundwire"]["recall"])
    snapshot_sizes = [int(x) for x in (str(max(sizes)) if args.snapshot_sizes is None else args.snapshot_sizes
                                       ).split(",") if x]
    from benchmarks.snapshot_load import measure as snapshot_measure
    from benchmarks.snapshot_load import measure_file_only

    with phase("snapshot"):
        for size in snapshot_sizes:
            extra.update(snapshot_measure(size))
        if args.snapshot_file_only:
            extra.update(measure_file_only(args.snapshot_file_only))
    if args.ground_size:
        from benchmarks.ground_scale import measure as ground_measure

        with phase("ground()"):
            extra.update(ground_measure(args.ground_size, args.ground_requests, args.ground_repeats,
                                        args.ground_pool, progress=not args.quick))
    if args.sync_limit:
        with phase("sync"):
            extra.update(sync_figures(args.sync_limit, args.sync_before))
    if args.quality_limit:
        with phase("int8 quality"):
            extra.update(int8_quality(args.quality_limit))
    extra["peak_rss_mb"] = peak_rss_mb()
    print_cells(rows)
    for key, val in extra.items():
        print(f"{key}: {val:.3f}" if abs(val) < 10 else f"{key}: {val:.1f}")
    table = issue14.rows(extra, args.ground_size, _docs(extra, "sync_groundwire_chunks_per_s[", args.sync_limit),
                         _docs(extra, "scifact_ndcg@10[onnx,", args.quality_limit),
                         max(snapshot_sizes) if snapshot_sizes else 0, args.snapshot_file_only)
    print("\nside by side (issue 14):")
    print(issue14.format_table(table))
    print("(ratio: how many times faster Groundwire, the mapped file or int8 is than what it is compared with; "
          "for nDCG@10 the change)")
    print(phase.report())
    RESULTS.mkdir(parents=True, exist_ok=True)
    plot(rows, RESULTS / "latency.png")
    doc = {"cells": rows, "extra": extra, "issue14": [r.to_dict() for r in table], "phase_seconds": phase.seconds,
           "args": vars(args)}
    (RESULTS / "results.json").write_text(json.dumps(doc, indent=2))
    print(f"wrote {RESULTS / 'latency.png'} and {RESULTS / 'results.json'}")
    if args.json:
        Path(args.json).write_text(json.dumps(doc, indent=2), encoding="utf-8")
        print(f"wrote {args.json}")


def _docs(figures: dict[str, Any], prefix: str, limit: int) -> int:
    """The document count a keyed figure was measured on (``...[<n> docs]``; the limit when absent)."""
    for key in figures:
        tagged = any(tag in key for tag in ("int8", "fp32", "before"))
        if key.startswith(prefix) and key.endswith(" docs]") and not tagged:
            return int(key.rsplit(",", 1)[-1].removeprefix(prefix).split()[0])
    return limit


def retrieval(kind: str, n: int, queries: int, e2e_backends: list[str], extra: dict[str, Any]) -> list[dict[str, Any]]:
    """The retrieval cells of one corpus (every selectivity), and its end-to-end figures per backend."""
    corpus = load_corpus(n) if kind == "synthetic" else load_real_corpus(n)
    fast = FastRetriever(corpus.tindex)
    t0 = time.perf_counter()
    source = fast.snapshot().source
    extra[f"cache_load_s[{kind}-{n},{source}]"] = time.perf_counter() - t0
    store = langchain_baseline(corpus)
    qs = corpus.queries(queries)
    cells = [measure_cell(corpus, fast, store, s, qs) for s in SELECTIVITIES]
    for backend in e2e_backends:
        extra.update(end_to_end(corpus, fast, backend))
    return cells


def print_cells(rows: list[dict[str, Any]]) -> None:
    head = (f"{'corpus':>9} {'size':>7} {'sel':>6} {'allowed':>7} | {'gw p50':>7} {'p95':>7} {'QPS':>7} {'rec':>5} "
            f"{'short':>5} {'plan':>9} | {'+payload':>8} | {'lc p50':>7} {'p95':>7} {'rec':>5} "
            f"{'short':>5} | {'ratio':>6} {'ratio+p':>7}")
    print(head)
    print("-" * len(head))
    for r in rows:
        g, p, b = r["groundwire"], r["groundwire+payload"], r["langchain"]
        print(f"{r['corpus']:>9} {r['size']:>7} {r['selectivity']:>6.1%} {r['allowed']:>7} | {g['p50']:>7.3f} "
              f"{g['p95']:>7.3f} "
              f"{g['qps']:>7.0f} {g['recall']:>5.3f} {g['short']:>5} {g['plan']:>9} | {p['p50']:>8.3f} | "
              f"{b['p50']:>7.2f} {b['p95']:>7.2f} {b['recall']:>5.3f} {b['short']:>5} | "
              f"{r['ratio']:>5.1f}x {r['ratio_payload']:>6.1f}x")
    print("(latencies in ms; ratio = langchain p50 / groundwire p50)")

if __name__ == "__main__":
    main()
