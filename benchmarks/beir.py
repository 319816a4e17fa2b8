"""BEIR-format quality evaluation: ``python -m benchmarks.beir --data DIR --split NAME``.

``--through-product [--backend B ...]``: the same corpus through the product's own path instead: the corpus
written as Markdown files (``# title`` + text), ``Grounder.sync`` with the knowledge-base connector (its
extractor, chunker, embedder and index), then ``Grounder.retrieve`` per query as a user who may read
everything, chunk hits folded to documents (a document ranks at its best chunk). Prints nDCG@10 and
recall@100 per backend, each backend's sync chunks/s, and the nDCG@10 change against the first backend.
By default the generator's and the shield's index-time work and the shield's query-time screening are
left out (``--all-plugins`` keeps them): they cost sync time and do not choose what retrieval ranks.

Reads any BEIR folder (``corpus.jsonl[.gz]``, ``queries.jsonl[.gz]``, ``qrels/<split>.tsv``) and prints
nDCG@10 and recall@100 for BM25 (bm25s), dense (MiniLM, the default embedder) and hybrid (reciprocal rank
fusion with the same formula as :mod:`groundwire.retrieval`). Corpus embeddings are cached under
``benchmarks/.cache/beir-<name>-<hash>.npy``.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

CACHE = Path(__file__).parent / ".cache"


def _open(folder: Path, stem: str) -> Any:
    for name in (f"{stem}.jsonl", f"{stem}.jsonl.gz"):
        p = folder / name
        if p.is_file():
            return gzip.open(p, "rt", encoding="utf-8") if name.endswith(".gz") else p.open(encoding="utf-8")
    raise FileNotFoundError(f"{folder} has no {stem}.jsonl or {stem}.jsonl.gz: is it a BEIR folder?")


def load_corpus(folder: str | Path) -> dict[str, str]:
    with _open(Path(folder), "corpus") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return {str(r["_id"]): f"{r.get('title', '')}\n{r.get('text', '')}".strip() for r in rows}


def load_queries(folder: str | Path) -> dict[str, str]:
    with _open(Path(folder), "queries") as f:
        return {str(r["_id"]): r["text"] for r in (json.loads(line) for line in f if line.strip())}


def load_qrels(folder: str | Path, split: str) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    with (Path(folder) / "qrels" / f"{split}.tsv").open(encoding="utf-8") as f:
        for i, line in enumerate(f):
            parts = line.rstrip("\n").split("\t")
            if i == 0 and not parts[-1].lstrip("-").isdigit():
                continue  # header
            out.setdefault(parts[0], {})[parts[1]] = int(parts[2])
    return out


def ndcg_at(ranked: list[str], rel: dict[str, int], k: int = 10) -> float:
    dcg = sum((2 ** rel.get(d, 0) - 1) / math.log2(i + 2) for i, d in enumerate(ranked[:k]))
    ideal = sorted(rel.values(), reverse=True)[:k]
    idcg = sum((2**g - 1) / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def recall_at(ranked: list[str], rel: dict[str, int], k: int = 100) -> float:
    positive = {d for d, g in rel.items() if g > 0}
    return len(positive & set(ranked[:k])) / len(positive) if positive else 0.0


def rrf(lists: list[list[int]], weights: list[float], rrf_k: int = 60) -> list[int]:
    fused: dict[int, float] = {}
    for ranked, w in zip(lists, weights, strict=True):
        for rank, r in enumerate(ranked):
            fused[r] = fused.get(r, 0.0) + w / (rrf_k + rank + 1)
    return sorted(fused, key=lambda r: (-fused[r], r))


def corpus_embeddings(name: str, doc_ids: list[str], texts: list[str], embedder: Any) -> np.ndarray:
    digest = hashlib.sha256("\x00".join(doc_ids).encode()).hexdigest()[:12]
    path = CACHE / f"beir-{name}-{embedder.model_id.replace('/', '_')}-{digest}.npy"
    if path.is_file():
        return np.load(path)
    t0 = time.perf_counter()
    vec = np.asarray(embedder.embed_documents(texts), dtype=np.float32)
    print(f"embedded {len(texts)} documents in {time.perf_counter() - t0:.1f} s "
          f"({len(texts) / (time.perf_counter() - t0):.1f} docs/s)")
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(path, vec)
    return vec


def evaluate(folder: str | Path, split: str, depth: int = 1000, weights: tuple[float, float] = (1.0, 1.0),
             rrf_k: int = 60) -> dict[str, dict[str, float]]:
    import bm25s
    from groundwire.plugins.embedders import MiniLMEmbedder

    folder = Path(folder)
    corpus = load_corpus(folder)
    queries = load_queries(folder)
    qrels = {q: r for q, r in load_qrels(folder, split).items() if q in queries}
    doc_ids, texts = list(corpus), list(corpus.values())
    emb = MiniLMEmbedder()
    vec = corpus_embeddings(folder.name, doc_ids, texts, emb)
    bm = bm25s.BM25()
    bm.index(bm25s.tokenize(texts, stopwords="en", show_progress=False), show_progress=False)
    qids = list(qrels)
    qvec = np.asarray(emb.embed_documents([queries[q] for q in qids]), dtype=np.float32)
    depth = min(depth, len(doc_ids))
    runs: dict[str, list[list[int]]] = {"bm25": [], "dense": [], "hybrid": []}
    for i, q in enumerate(qids):
        scores = vec @ qvec[i]
        dense = np.argsort(-scores)[:depth].tolist()
        tokens = bm25s.tokenize([queries[q]], stopwords="en", return_ids=False, show_progress=False)[0]
        lexical: list[int] = []
        if tokens:
            s = np.asarray(bm.get_scores(list(tokens)))
            lexical = [int(r) for r in np.argsort(-s)[:depth] if s[r] > 0]
        runs["dense"].append(dense)
        runs["bm25"].append(lexical)
        runs["hybrid"].append(rrf([dense, lexical], list(weights), rrf_k))
    out = {}
    for name, ranked in runs.items():
        docs = [[doc_ids[r] for r in rr] for rr in ranked]
        out[name] = {
            "ndcg@10": float(np.mean([ndcg_at(d, qrels[q]) for d, q in zip(docs, qids, strict=True)])),
            "recall@100": float(np.mean([recall_at(d, qrels[q]) for d, q in zip(docs, qids, strict=True)])),
        }
    out["_"] = {"queries": float(len(qids)), "documents": float(len(doc_ids))}
    return out


def through_product(folder: str | Path, split: str, backend: str = "auto", limit: int | None = None,
                    hybrid: bool = False, all_plugins: bool = False, top_k: int = 100) -> dict[str, float]:
    """nDCG@10 and recall@100 of ``Grounder.retrieve`` over the corpus synced from files (see the module
    docstring); ``limit`` keeps the first documents only (and the queries whose relevant documents are all
    among them)."""
    import tempfile

    from groundwire import Grounder, config_from_dict

    from benchmarks.sync_speed import write_corpus

    folder = Path(folder)
    queries = load_queries(folder)
    qrels = {q: r for q, r in load_qrels(folder, split).items() if q in queries}
    with tempfile.TemporaryDirectory(prefix="gw-beir-") as tmp:
        root = Path(tmp)
        n = write_corpus(folder, root / "kb", limit)
        names = {p.stem for p in (root / "kb").glob("*.md")}
        if limit:
            qrels = {q: r for q, r in qrels.items() if all(d in names for d in r)}
        data: dict[str, Any] = {
            "data_dir": str(root / "data"), "default_tenant": "bench",
            "embedder": {"name": "minilm", "options": {"backend": backend}},
            "retrieval": {"top_k": top_k, "hybrid": hybrid},
            "features": {"ask": ["*"]},
            "connectors": {"corpus": {"type": "knowledge_base", "tenant": "bench", "path": str(root / "kb"),
                                      "default_allow": ["everyone"]}},
        }
        if not all_plugins:
            data["generator"] = {"name": "openai"}  # never built: only retrieve runs; no sentence vectors at sync
            data["plugins"] = {"disabled": ["prompt_shield"]}
        g = Grounder(config_from_dict(data, base_dir=root))
        g.embedder.warm_up()
        (rep,) = g.sync()
        if not rep.ok:
            raise RuntimeError(rep.error)
        ndcg, rec = [], []
        user = g.make_user("bench@example.com")
        t0 = time.perf_counter()
        for q, rel in qrels.items():
            ranked: list[str] = []
            for c in g.retrieve(queries[q], user, top_k=top_k):
                d = c.doc_id.removesuffix(".md")
                if d not in ranked:
                    ranked.append(d)
            ndcg.append(ndcg_at(ranked, rel))
            rec.append(recall_at(ranked, rel))
        query_s = time.perf_counter() - t0
    return {"ndcg@10": float(np.mean(ndcg)), "recall@100": float(np.mean(rec)), "queries": float(len(qrels)),
            "documents": float(n), "chunks": float(rep.chunks), "sync_seconds": rep.seconds,
            "chunks_per_s": rep.chunks / rep.seconds, "query_ms": 1000 * query_s / max(1, len(qrels))}


def main_through_product(args: Any) -> dict[str, dict[str, float]]:
    results: dict[str, dict[str, float]] = {}
    for backend in args.backend or ["onnx", "onnx-int8"]:
        results[backend] = through_product(args.data, args.split, backend, args.limit or None, args.hybrid,
                                           args.all_plugins)
        r = results[backend]
        print(f"{backend:<10} nDCG@10 {r['ndcg@10']:.4f}  recall@100 {r['recall@100']:.4f}  "
              f"sync {int(r['chunks'])} chunks in {r['sync_seconds']:.1f} s = {r['chunks_per_s']:.1f} chunks/s  "
              f"({int(r['queries'])} queries, {int(r['documents'])} documents, {r['query_ms']:.1f} ms/query)",
              flush=True)
    first, *rest = list(results)
    for b in rest:
        d = results[b]["ndcg@10"] - results[first]["ndcg@10"]
        speed = results[b]["chunks_per_s"] / results[first]["chunks_per_s"]
        print(f"{b} vs {first}: nDCG@10 {d:+.4f}, sync chunks/s {speed:.2f}x")
    return results


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="nDCG@10 and recall@100 of BM25, dense, hybrid (BEIR)")
    ap.add_argument("--through-product", action="store_true",
                    help="sync the corpus as files and rank with Grounder.retrieve (see the module docstring)")
    ap.add_argument("--backend", action="append", help="with --through-product: MiniLM backend(s), repeatable "
                    "(default: onnx and onnx-int8)")
    ap.add_argument("--limit", type=int, default=0, help="with --through-product: first N documents only")
    ap.add_argument("--hybrid", action="store_true", help="with --through-product: [retrieval] hybrid = true")
    ap.add_argument("--all-plugins", action="store_true", help="with --through-product: keep every plugin")
    ap.add_argument("--data", required=True, help="BEIR folder (corpus.jsonl[.gz], queries.jsonl, qrels/)")
    ap.add_argument("--split", default="test")
    ap.add_argument("--dense-weight", type=float, default=1.0)
    ap.add_argument("--bm25-weight", type=float, default=1.0)
    ap.add_argument("--rrf-k", type=int, default=60)
    args = ap.parse_args(argv)
    if args.through_product:
        main_through_product(args)
        return
    res = evaluate(args.data, args.split, weights=(args.dense_weight, args.bm25_weight), rrf_k=args.rrf_k)
    meta = res.pop("_")
    print(f"{Path(args.data).name} split={args.split}: {int(meta['queries'])} queries, "
          f"{int(meta['documents'])} documents")
    print(f"{'method':<8} {'nDCG@10':>8} {'recall@100':>11}")
    for name, m in res.items():
        print(f"{name:<8} {m['ndcg@10']:>8.4f} {m['recall@100']:>11.4f}")


if __name__ == "__main__":
    main()
