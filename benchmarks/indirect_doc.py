"""Document-level decisions for the indirect shield, measured leave-one-source-out (issue 13).

    python -m benchmarks.prompt_shield_indirect --seed-dir DIR --parts loso --decision doc [options]

The chunk-level decision (shipped) withholds a chunk when its worst unit's probability reaches the threshold.
Clean how-to articles and READMEs are imperative throughout, while a planted instruction stands out from the
rest of its document, so the document-level rules here withhold a chunk when its worst unit is high
*relative to the document's other units*:

    z = logit(chunk max) - a * max(logit(doc stat) - floor, 0)

where ``doc stat`` is the median (``med``) or 75th percentile (``q75``) of the unit logits of the document's
units other than the chunk's worst one (all chunks of the document, as a per-document pass at sync would see
them; a document with no other unit gets no penalty), or the same over the units of the document's *other
chunks* only (``omed``, ``oq75``: a one-chunk document gets no penalty), or over the document's units but the
chunk's units within 2 logits of its worst one (``xmed``, ``xq75``: a long attack fills several units);
``floor`` is a quantile of that statistic over the *inner out-of-fold clean* training documents (``-inf``: no
floor, so a very clean document raises its chunks); a strong rule hit always withholds. Every rule is
thresholded on the inner out-of-fold scores of the training documents only, at ``fpr`` of the pooled clean
chunks (as shipped) or at ``fpr`` averaged over host kinds (``macro``: each kind's clean-chunk FPR counts the
same). All rule / threshold pairs are scored from the same unit probabilities of one LOSO run, so their
figures differ only by the decision.

Needs the planted documents' other chunks (``--decision doc`` keeps them, label -1: never trained on, never
counted as clean); training is unchanged, so the ``chunk | pooled`` row is the shipped decision (up to the
float16 embedding cache, whose values depend on the batches they were computed in).
Also printed: the rule picked on the inner folds (among the rules whose inner out-of-fold TPR is at least
the chunk-level rule's at the pooled FPR, the one withholding the fewest inner clean documents, macro over host
kinds), so that row stays a generalization figure.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from benchmarks import prompt_shield_indirect as P

__all__ = ["Rule", "loso_doc", "macro_threshold", "rules"]

_EPS = 1e-6


def _logit(p: np.ndarray) -> np.ndarray:
    q = np.clip(p, _EPS, 1 - _EPS)
    return np.log(q / (1 - q))


@dataclass(frozen=True)
class Rule:
    name: str
    stat: str  # "chunk", "med", "q75"
    a: float = 0.0
    floor_q: float | None = None  # quantile of inner clean documents' stat; None: no floor


def rules() -> list[Rule]:
    out = [Rule("chunk", "chunk")]
    for stat in ("med", "q75"):
        for a in (0.5, 1.0):
            for fq in (0.5, 0.9):
                out.append(Rule(f"{stat} a={a} floor=q{int(fq * 100)}", stat, a, fq))
        out.append(Rule(f"{stat} a=0.25 no floor", stat, 0.25, None))
    for stat in ("xmed", "xq75"):  # without the chunk's units near its worst one (a long attack fills several)
        out.append(Rule(f"{stat} a=0.5 floor=q50", stat, 0.5, 0.5))
    for stat in ("omed", "oq75"):  # the document's *other chunks* only (a one-chunk document: no penalty)
        for a in (0.5, 1.0):
            out.append(Rule(f"{stat} a={a} floor=q50", stat, a, 0.5))
    return out


def _unit_probs(f: P.Featurised, model: object, chunks: np.ndarray, out: np.ndarray) -> None:
    mask = np.isin(f.owner, chunks)
    out[mask] = model.predict(f.x[mask])  # type: ignore[attr-defined]


@dataclass
class Scored:
    """Per chunk of ``idx``: its max unit probability (strong rule hits 0.99) and the logit of the document
    statistic(s) over the document's other units."""

    idx: np.ndarray
    smax: np.ndarray
    strong: np.ndarray
    stats: dict[str, np.ndarray] = field(default_factory=dict)


def score(f: P.Featurised, probs: np.ndarray, idx: np.ndarray, unit_rows: dict[int, np.ndarray]) -> Scored:
    doc_of = np.array([f.chunks[i].doc for i in idx])
    per_doc: dict[int, list[int]] = {}
    for i, d in zip(idx, doc_of, strict=True):
        per_doc.setdefault(int(d), []).append(int(i))
    smax = np.zeros(len(idx))
    med = np.full(len(idx), -np.inf)
    q75 = np.full(len(idx), -np.inf)
    omed = np.full(len(idx), -np.inf)
    oq75 = np.full(len(idx), -np.inf)
    xmed = np.full(len(idx), -np.inf)
    xq75 = np.full(len(idx), -np.inf)
    pos = {int(i): k for k, i in enumerate(idx)}
    for cs in per_doc.values():
        rows = np.concatenate([unit_rows[c] for c in cs])
        lg = _logit(probs[rows])
        for c in cs:
            r = unit_rows[c]
            k = pos[c]
            j = int(r[np.argmax(probs[r])])
            smax[k] = probs[j]
            rest = lg[rows != j]
            if len(rest):
                med[k] = float(np.median(rest))
                q75[k] = float(np.quantile(rest, 0.75))
            near = r[_logit(probs[r]) >= _logit(probs[j : j + 1])[0] - 2.0]
            keep = lg[~np.isin(rows, near)]
            if len(keep):
                xmed[k] = float(np.median(keep))
                xq75[k] = float(np.quantile(keep, 0.75))
            other = lg[~np.isin(rows, r)]
            if len(other):
                omed[k] = float(np.median(other))
                oq75[k] = float(np.quantile(other, 0.75))
    strong = f.strong[idx]
    smax = np.maximum(smax, np.where(strong, 0.99, 0.0))
    return Scored(idx, smax, strong, {"med": med, "q75": q75, "omed": omed, "oq75": oq75,
                                      "xmed": xmed, "xq75": xq75})


def floors(sc: Scored, clean: np.ndarray, docs: np.ndarray) -> dict[tuple[str, float], float]:
    """Quantiles of each document statistic over the clean documents (one value per document)."""
    out = {}
    for stat, v in sc.stats.items():
        seen: dict[int, float] = {}
        for x, d, cl in zip(v, docs, clean, strict=True):
            if cl and np.isfinite(x):
                seen.setdefault(int(d), float(x))
        vals = np.array(list(seen.values())) if seen else np.zeros(1)
        for q in (0.5, 0.9):
            out[(stat, q)] = float(np.quantile(vals, q))
    return out


def decide(rule: Rule, sc: Scored, fl: dict[tuple[str, float], float]) -> np.ndarray:
    if rule.stat == "chunk":
        return sc.smax
    st = sc.stats[rule.stat]
    floor = -np.inf if rule.floor_q is None else fl[(rule.stat, rule.floor_q)]
    pen = np.where(np.isfinite(st), np.maximum(st - floor, 0.0) if np.isfinite(floor) else st, 0.0)
    return np.where(sc.strong, np.inf, _logit(sc.smax) - rule.a * pen)


def macro_threshold(z: np.ndarray, kinds: np.ndarray, fpr: float) -> float:
    """The lowest threshold at which the clean-chunk FPR averaged over host kinds is at most ``fpr``."""
    arrs = [np.sort(z[kinds == k]) for k in np.unique(kinds)]

    def macro(t: float) -> float:
        return float(np.mean([1.0 - np.searchsorted(a, t, side="left") / len(a) for a in arrs]))

    cands = np.unique(z[np.isfinite(z)])
    lo, hi = 0, len(cands) - 1
    while lo < hi:
        mid = (lo + hi) // 2
        if macro(float(cands[mid]) + _EPS) <= fpr:
            hi = mid
        else:
            lo = mid + 1
    return float(cands[lo]) + _EPS


def threshold(rule: Rule, z: np.ndarray, kinds: np.ndarray, fpr: float, mode: str) -> float:
    th = macro_threshold(z, kinds, fpr) if mode == "macro" else float(np.quantile(z[np.isfinite(z)], 1 - fpr)) + _EPS
    if rule.stat == "chunk":  # as P.train
        return min(max(th, 0.05), 0.995)
    return th


def _caught(z: np.ndarray, th: float, lab: np.ndarray, docs: np.ndarray,
            src: np.ndarray) -> dict[tuple[str, int], bool]:
    hit: dict[tuple[str, int], bool] = {}
    for v, y, d, s in zip(z, lab, docs, src, strict=True):
        if y == 1:
            hit[(str(s), int(d))] = hit.get((str(s), int(d)), False) or bool(v >= th)
    return hit


def _doc_rates(flags: np.ndarray, docs: np.ndarray, kinds: np.ndarray) -> dict[str, tuple[int, int]]:
    per: dict[str, dict[int, bool]] = {}
    for fl, d, k in zip(flags, docs, kinds, strict=True):
        dd = per.setdefault(str(k), {})
        dd[int(d)] = dd.get(int(d), False) or bool(fl)
    return {k: (sum(v.values()), len(v)) for k, v in per.items()}


def _fit(f: P.Featurised, idx: np.ndarray, c: float, fit: Callable[..., object], hard_weight: float,
         inner: int = 3) -> tuple[object, np.ndarray]:
    """As :func:`P.train`: the model on the units of ``idx`` and the inner out-of-fold unit probabilities of
    every unit of ``idx`` (planted documents' other chunks included; folds by document)."""
    docs = np.array([f.chunks[i].doc for i in idx])
    fold = np.array([int(hashlib.blake2b(str(d).encode(), digest_size=4).hexdigest(), 16) % inner for d in docs])
    kinds = np.array([ch.kind for ch in f.chunks])
    docs_all = np.array([ch.doc for ch in f.chunks])
    hard = np.isin(kinds, list(P.HARD)) & (f.chunk_y == 0)

    def weights(u: np.ndarray) -> np.ndarray:
        return np.where(hard[f.owner[u]], hard_weight, 1.0)

    def units_of(ix: np.ndarray) -> np.ndarray:
        m = np.isin(f.owner, ix)
        return np.flatnonzero(m & ((f.unit_y == 1) | (f.chunk_y[f.owner] == 0)))

    oof = np.full(len(f.owner), np.nan)
    for k in range(inner):
        u = units_of(idx[fold != k])
        m = fit(f.x[u], f.unit_y[u], c, weights(u), docs_all[f.owner[u]])
        _unit_probs(f, m, idx[fold == k], oof)
    u = units_of(idx)
    return fit(f.x[u], f.unit_y[u], c, weights(u), docs_all[f.owner[u]]), oof


@dataclass
class Acc:
    tp: int = 0
    n: int = 0
    inner_tp: int = 0
    inner_n: int = 0
    inner_doc: list[float] = field(default_factory=list)
    fprs: list[float] = field(default_factory=list)
    kinds: dict[str, list[int]] = field(default_factory=dict)
    per_src: dict[str, float] = field(default_factory=dict)


def loso_doc(f: P.Featurised, fpr: float, c: float, fprs: tuple[float, ...] = (0.01, 0.012, 0.015),
             modes: tuple[str, ...] = ("pooled", "macro"), log: Callable[[str], None] = print,
             fit: Callable[..., object] | None = None, hard_weight: float | None = None,
             show: str = "") -> dict[str, Acc]:
    """Every rule x threshold mode x FPR from the same LOSO unit probabilities; prints one row each. ``fit``
    and ``hard_weight``: the caller's :func:`P.fit_head` and hard-negative weight (``python -m`` runs the
    benchmark as ``__main__``, whose head settings this module's import of it does not see). ``show``: a
    rule / threshold key (as printed) whose withheld clean eval documents are listed with their worst unit
    (diagnostic only: nothing is tuned on them)."""
    fit = fit or P.fit_head
    hard_weight = P.HARD_WEIGHT["w"] if hard_weight is None else hard_weight
    split = np.array([ch.split for ch in f.chunks])
    src = np.array([ch.source for ch in f.chunks])
    kinds = np.array([ch.kind for ch in f.chunks])
    docs = np.array([ch.doc for ch in f.chunks])
    y = f.chunk_y
    order = np.argsort(f.owner, kind="stable")
    bounds = np.searchsorted(f.owner[order], np.arange(len(f.chunks) + 1))
    unit_rows = {i: order[bounds[i] : bounds[i + 1]] for i in range(len(f.chunks))}
    sources = sorted({s for s in src if s})
    fprs = tuple(sorted({fpr, *fprs}))
    combos = [(r, mode, q) for r in rules() for mode in modes for q in fprs]
    acc = {f"{r.name} | {mode} {q}": Acc() for r, mode, q in combos}
    clean_eval = np.flatnonzero((split == "eval") & (y == 0))
    shown: dict[tuple[str, int], tuple[str, float, str]] = {}
    log(f"indirect LOSO, document-level rules ({len(combos)} rule x threshold pairs on the same unit scores), "
        f"C={c}, hard-negative weight {hard_weight}")
    for s in sources:
        tr = np.flatnonzero((split == "train") & (src != s))
        te = np.flatnonzero((split == "eval") & (src == s))
        model, oof = _fit(f, tr, c, fit, hard_weight)
        probs = oof.copy()
        _unit_probs(f, model, np.concatenate([te, clean_eval]), probs)
        sc_in = score(f, oof, tr, unit_rows)
        ev = np.concatenate([te, clean_eval])
        sc_ev = score(f, probs, ev, unit_rows)
        cl_in = y[tr] == 0
        fl = floors(sc_in, cl_in, docs[tr])
        for r, mode, q in combos:
            a = acc[f"{r.name} | {mode} {q}"]
            z_in = decide(r, sc_in, fl)
            th = threshold(r, z_in[cl_in], kinds[tr][cl_in], q, mode)
            hit_in = _caught(z_in, th, y[tr], docs[tr], src[tr])
            a.inner_tp += sum(hit_in.values())
            a.inner_n += len(hit_in)
            rates = _doc_rates(z_in[cl_in] >= th, docs[tr][cl_in], kinds[tr][cl_in])
            a.inner_doc.append(float(np.mean([k / max(n, 1) for k, n in rates.values()])))
            z_ev = decide(r, sc_ev, fl)
            hit = _caught(z_ev, th, y[ev], docs[ev], src[ev])
            a.tp += sum(hit.values())
            a.n += len(hit)
            a.per_src[s] = sum(hit.values()) / max(len(hit), 1)
            ce = y[ev] == 0
            flags = z_ev[ce] >= th
            a.fprs.append(float(flags.mean()))
            for k, (w, n) in _doc_rates(flags, docs[ev][ce], kinds[ev][ce]).items():
                kk = a.kinds.setdefault(k, [0, 0])
                kk[0] += w
                kk[1] += n
            if show and f"{r.name} | {mode} {q}" == show:
                for i in ev[ce][flags]:
                    rows = unit_rows[int(i)]
                    j = int(rows[np.argmax(probs[rows])])
                    k = int(np.flatnonzero(rows == j)[0])
                    us = P.im.units(f.chunks[int(i)].text)
                    shown.setdefault((f.chunks[int(i)].kind, f.chunks[int(i)].doc), (s, float(probs[j]),
                                     us[k] if k < len(us) else f.chunks[int(i)].text[:160]))
        log(f"  fold {s} done")
    kind_names = sorted({k for a in acc.values() for k in a.kinds})
    short = {"bipia-code": "bcode", "bipia-email": "bmail", "bipia-table": "btable", "gen-code": "gcode",
             "gen-email": "gmail", "gen-howto": "ghowto", "gen-readme": "grdme", "gen-table": "gtable",
             "howto": "howto", "readme": "readme", "scifact": "scifact"}
    log(f"  {'rule | threshold':42s} {'micro TPR':>15s} {'FPR':>11s} {'inner TPR':>9s} {'inner doc':>9s} "
        + " ".join(f"{short.get(k, k):>7s}" for k in kind_names))
    for key, a in acc.items():
        log(f"  {key:42s} {a.tp / max(a.n, 1):.3f} ({a.tp}/{a.n}) {min(a.fprs):.3f}-{max(a.fprs):.3f} "
            f"{a.inner_tp / max(a.inner_n, 1):9.3f} {np.mean(a.inner_doc):9.4f} "
            + " ".join(f"{a.kinds[k][0] / max(a.kinds[k][1], 1):7.1%}" for k in kind_names))
    log("  per held-out source TPR:")
    for key, a in acc.items():
        log(f"  {key:42s} " + " ".join(f"{s} {v:.3f}" for s, v in sorted(a.per_src.items())))
    for q in fprs:  # the pick reads inner-fold figures only: the eval figures stay generalization figures
        base = acc[f"chunk | pooled {q}"]
        ok = [(k, a) for k, a in acc.items() if a.inner_tp / max(a.inner_n, 1) >= base.inner_tp / max(base.inner_n, 1)]
        k, a = min(ok, key=lambda kv: (float(np.mean(kv[1].inner_doc)), -kv[1].inner_tp))
        log(f"  picked on the inner folds (inner TPR >= chunk | pooled {q}'s, fewest inner clean documents "
            f"withheld, macro over kinds): {k}: micro {a.tp / max(a.n, 1):.3f} ({a.tp}/{a.n})")
        log("    clean documents withheld: " + ", ".join(f"{kn} {w}/{n}" for kn, (w, n) in sorted(a.kinds.items())))
    for q in fprs:
        b = acc[f"chunk | pooled {q}"]
        log(f"  chunk | pooled {q}: clean documents withheld: "
            + ", ".join(f"{kn} {w}/{n}" for kn, (w, n) in sorted(b.kinds.items())))
    if show:
        log(f"  withheld clean eval documents under {show} (first LOSO model to withhold each; worst unit):")
        for (kind, d), (s, pv, u) in sorted(shown.items()):
            log(f"    {kind:12s} doc {d:5d} [{s}] {pv:.3f} {' '.join(u.split())[:150]!r}")
    return acc
