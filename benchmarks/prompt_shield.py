"""Prompt-shield benchmark: cross-validated TPR / FPR / precision / F1 and screening latency.

    python -m benchmarks.prompt_shield --data /path/direct.jsonl --kind direct
    python -m benchmarks.prompt_shield --data /path/indirect.jsonl --kind indirect

Rows are JSON lines with ``text`` (direct) or ``document`` (indirect), ``label`` (attack|benign or
injected|clean) and ``source``. Two estimates, train and test never sharing a row:

- *stratified* k-fold (labels balanced per fold);
- *grouped* k-fold: every attack family (``source``; for indirect the attack task) lies wholly in one
  fold, so each test fold holds attack families the model never saw; benign rows are stratified.

The threshold of each fold's model is chosen on that fold's training rows only (inner out-of-fold scores,
target FPR), never on its test rows. Latency is measured with the shipped artefact, one item at a time.
This module also holds the training code used by ``benchmarks/train_prompt_shield.py``.
"""

from __future__ import annotations

import argparse
import json
import pickle
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from groundwire.plugins import prompt_shield as ps

POSITIVE = {"attack", "injected"}
TARGET_FPR = {"direct": 0.01, "indirect": 0.015}


@dataclass
class Data:
    """Per-row features. Direct: one item per row. Indirect: ``seg_row`` maps segments to rows."""

    kind: str
    y: np.ndarray  # row labels 0/1
    groups: list[str]
    emb: np.ndarray  # items (rows or segments) x 384
    chars: np.ndarray
    seg_row: np.ndarray  # item -> row
    extra_neg: int = 0  # leading items that are extra negatives (indirect: not rows)
    texts: list[str] | None = None


def read_rows(path: str | Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _group(kind: str, source: str) -> str:
    parts = source.split(":")
    return parts[2] if kind == "indirect" and len(parts) > 2 else source


def featurise(rows: Sequence[dict[str, str]], kind: str, extra_negatives: Sequence[str] = ()) -> Data:
    y = np.array([1 if r["label"] in POSITIVE else 0 for r in rows])
    groups = [_group(kind, r.get("source", "")) for r in rows]
    if kind == "direct":
        texts = [r["text"] for r in rows]
        items, seg_row = texts, np.arange(len(rows))
        extra = 0
    else:
        items, owner = list(extra_negatives), [-1] * len(extra_negatives)
        for i, r in enumerate(rows):
            for s in ps.segments(r["document"]):
                items.append(s)
                owner.append(i)
        seg_row = np.array(owner)
        extra = len(extra_negatives)
        texts = [r["document"] for r in rows]
    emb = ps.embed(items) if items else np.zeros((0, 384), np.float32)
    chars = np.stack([ps.char_features(t) for t in items]) if items else np.zeros((0, ps.N_CHAR), np.float32)
    if kind == "indirect":  # the host document's context; an extra negative stands alone as a one-line text
        ctxs = [ps.doc_context(r["document"]) for r in rows]
        lone = ps.doc_context("x")
        chars = np.hstack([chars, np.stack([ctxs[o] if o >= 0 else lone for o in seg_row])])
    return Data(kind, y, groups, emb, chars, seg_row, extra, texts)


def featurise_cached(
    rows: Sequence[dict[str, str]], kind: str, extra: Sequence[str] = (), cache: str | None = None
) -> Data:
    """:func:`featurise`, reusing a pickle at ``cache`` (embeddings are slow and not learned)."""
    if cache and Path(cache).exists():
        with open(cache, "rb") as fh:
            d: Data = pickle.load(fh)
        if len(d.y) == len(rows) and d.kind == kind:
            return d
    d = featurise(rows, kind, extra)
    if cache:
        with open(cache, "wb") as fh:
            pickle.dump(d, fh)
    return d


def _row_scores(d: Data, model: ps.ShieldModel, rows: np.ndarray) -> np.ndarray:
    """Model scores per row (indirect: max over the row's segments; no segment -> 0); rules folded in."""
    if d.kind == "direct":
        p = model.predict(d.emb[rows], d.chars[rows])
    else:
        mask = np.isin(d.seg_row, rows)
        sp = model.predict(d.emb[mask], d.chars[mask]) if mask.any() else np.zeros(0)
        best: dict[int, float] = {}
        for r, v in zip(d.seg_row[mask], sp, strict=True):
            best[int(r)] = max(best.get(int(r), 0.0), float(v))
        p = np.array([best.get(int(r), 0.0) for r in rows])
    strong = np.array([any(h.strong for h in ps.rule_hits(d.texts[r])) for r in rows]) if d.texts else 0
    return np.maximum(p, np.where(strong, 0.99, 0.0))


def _train_items(d: Data, rows: np.ndarray, l2: float) -> ps.ShieldModel:
    """Fit on the items of ``rows``. Indirect uses two rounds of multiple-instance learning: first every
    segment of an injected document is a positive, then only its highest-scoring segment."""
    if d.kind == "direct":
        idx, yi = rows, d.y[rows]
    else:
        inrows = np.isin(d.seg_row, rows) | (d.seg_row < 0)
        idx = np.flatnonzero(inrows)
        yi = np.array([d.y[r] if r >= 0 else 0 for r in d.seg_row[idx]])
    mu = d.chars[idx].mean(0)
    sd = d.chars[idx].std(0) + 1e-3
    tmp = ps.ShieldModel(np.zeros(1), 0.0, mu, sd, 0.5)
    w, b = ps.fit_logistic(tmp.features(d.emb[idx], d.chars[idx]), yi, l2)
    if d.kind == "indirect":
        model = ps.ShieldModel(w, b, mu, sd, 0.5)
        p = model.predict(d.emb[idx], d.chars[idx])
        keep = yi == 0
        owners = d.seg_row[idx]
        for r in np.unique(owners[yi == 1]):
            js = np.flatnonzero((owners == r) & (yi == 1))
            keep[js[np.argmax(p[js])]] = True
        idx, yi = idx[keep], yi[keep]
        w, b = ps.fit_logistic(tmp.features(d.emb[idx], d.chars[idx]), yi, l2)
    return ps.ShieldModel(w, b, mu, sd, 0.5)


def _folds(y: np.ndarray, k: int, seed: int, groups: Sequence[str] | None = None) -> list[np.ndarray]:
    """Test-row index arrays: stratified, or (``groups``) positives grouped by family."""
    rng = np.random.default_rng(seed)
    fold = np.zeros(len(y), dtype=int)
    neg = np.flatnonzero(y == 0)
    fold[rng.permutation(neg)] = np.arange(len(neg)) % k
    pos = np.flatnonzero(y == 1)
    if groups is None:
        fold[rng.permutation(pos)] = np.arange(len(pos)) % k
    else:
        fams: dict[str, list[int]] = {}
        for i in pos:
            fams.setdefault(groups[i], []).append(int(i))
        sizes = np.zeros(k)
        for _, members in sorted(fams.items(), key=lambda kv: -len(kv[1])):  # greedy balance
            f = int(np.argmin(sizes))
            fold[members] = f
            sizes[f] += len(members)
    return [np.flatnonzero(fold == f) for f in range(k)]


def fit(d: Data, rows: np.ndarray, l2: float = 1.0, inner: int = 3, seed: int = 0) -> ps.ShieldModel:
    """Train on ``rows`` and set the threshold from inner out-of-fold scores (target FPR)."""
    oof = np.zeros(len(rows))
    for test in _folds(d.y[rows], inner, seed + 1):
        m = _train_items(d, rows[np.setdiff1d(np.arange(len(rows)), test)], l2)
        oof[test] = _row_scores(d, m, rows[test])
    neg = oof[d.y[rows] == 0]
    th = float(np.quantile(neg, 1 - TARGET_FPR[d.kind])) + 1e-6 if len(neg) else 0.5
    th = min(max(th, 0.05), 0.98)
    m = _train_items(d, rows, l2)
    return ps.ShieldModel(m.w, m.b, m.mu, m.sd, th)


def metrics(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    tp = int((pred & (y == 1)).sum())
    fp = int((pred & (y == 0)).sum())
    fn = int((~pred & (y == 1)).sum())
    tn = int((~pred & (y == 0)).sum())
    tpr = tp / max(tp + fn, 1)
    prec = tp / max(tp + fp, 1)
    return {
        "tpr": tpr,
        "fpr": fp / max(fp + tn, 1),
        "precision": prec,
        "f1": 2 * prec * tpr / max(prec + tpr, 1e-9),
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
    }


def cross_validate(d: Data, k: int, grouped: bool, seed: int = 0) -> dict[str, float]:
    pred = np.zeros(len(d.y), dtype=bool)
    for test in _folds(d.y, k, seed, d.groups if grouped else None):
        train = np.setdiff1d(np.arange(len(d.y)), test)
        model = fit(d, train, seed=seed)
        pred[test] = _row_scores(d, model, test) >= model.threshold
    return metrics(d.y, pred)


def latency(texts: Sequence[str], kind: str, n: int = 200) -> dict[str, float]:
    fn = ps.score_prompts if kind == "direct" else ps.score_documents
    fn(texts[:2])  # warm-up: model load
    times = []
    for t in texts[:n]:
        ps.clear_cache()
        t0 = time.perf_counter()
        fn([t])
        times.append((time.perf_counter() - t0) * 1000)
    return {"p50_ms": float(np.percentile(times, 50)), "p95_ms": float(np.percentile(times, 95))}


def request_latency(
    docs: Sequence[str], prompts: Sequence[str], reps: int = 30, warm: bool = False
) -> dict[str, float]:
    """One request: screen the prompt, then 10 retrieved chunks in one batch. Cold: the segment-score cache
    is emptied before each request; warm: the same chunks were screened before (a repeated retrieval)."""
    rng = np.random.default_rng(0)
    times = []
    for i in range(reps):
        chunk_texts = [docs[j] for j in rng.choice(len(docs), 10, replace=False)]
        ps.clear_cache()
        if warm:
            ps.score_documents(chunk_texts)
        t0 = time.perf_counter()
        ps.score_prompts([prompts[i % len(prompts)]])
        ps.score_documents(chunk_texts)
        times.append((time.perf_counter() - t0) * 1000)
    return {"p50_ms": float(np.percentile(times, 50)), "p95_ms": float(np.percentile(times, 95))}


def extra_negatives(direct_path: str | Path | None) -> list[str]:
    """Benign sentences (claims, everyday questions): extra negative segments for the indirect model."""
    if not direct_path or not Path(direct_path).exists():
        return []
    return [
        r["text"]
        for r in read_rows(direct_path)
        if r["label"] == "benign" and not r["source"].startswith("bipia")
    ]


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--kind", choices=["direct", "indirect"], default="direct")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument(
        "--negatives", default=None, help="indirect: a direct.jsonl whose benign rows add negatives"
    )
    ap.add_argument("--cache", default=None, help="pickle of computed features to reuse between runs")
    ap.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    args = ap.parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    rows = read_rows(args.data)
    t0 = time.perf_counter()
    d = featurise_cached(
        rows, args.kind, extra_negatives(args.negatives) if args.kind == "indirect" else (), args.cache
    )
    print(
        f"{args.kind}: {len(rows)} rows ({int(d.y.sum())} positive), {len(d.emb)} items embedded "
        f"in {time.perf_counter() - t0:.1f}s"
    )
    for grouped in (False, True):
        m = cross_validate(d, args.folds, grouped)
        name = "grouped by source" if grouped else "stratified"
        print(
            f"  {args.folds}-fold {name:18s} TPR={m['tpr']:.3f} FPR={m['fpr']:.3f} "
            f"precision={m['precision']:.3f} F1={m['f1']:.3f} "
            f"(tp={m['tp']} fp={m['fp']} fn={m['fn']} tn={m['tn']})"
        )
    texts = d.texts or []
    lat = latency(texts, args.kind)
    print(f"  latency per item (shipped artefact): p50={lat['p50_ms']:.2f} ms p95={lat['p95_ms']:.2f} ms")
    if args.kind == "indirect":
        for warm in (False, True):
            rl = request_latency(texts, ["What were the results of the 2010 qualifiers?"], warm=warm)
            print(
                f"  one request (prompt + 10 chunks, {'warm' if warm else 'cold'} segment cache): "
                f"p50={rl['p50_ms']:.2f} ms p95={rl['p95_ms']:.2f} ms"
            )


if __name__ == "__main__":
    main()
