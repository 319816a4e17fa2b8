"""False positives of the prompt shield on benign how-to text (issue 5): instructions *for people* are not
planted instructions *for the assistant*.

    python -m benchmarks.howto                      # both sources, eval split of the harvest, + questions
    python -m benchmarks.howto --benign benchmarks/data/howto_enterprise.jsonl --benign @installed:eval

Two sources of benign passages, all labelled clean:

- ``@installed[:train|:eval|:all]``: harvested at run time from the long descriptions of the installed Python
  distributions (their PyPI READMEs: "install this, run that, click here"). Nothing is copied into the
  repository. Each description goes through the framework's own extractor (Markdown split at headings) and
  chunker with the ingestion defaults, so passages look like the chunks ``screen_documents`` sees. Passages
  under ``MIN_CHARS`` and passages that are mostly code, tables or markup (fewer than half of their tokens are
  ordinary words) are dropped, duplicates are dropped, and the order is deterministic (distributions sorted
  by name). Distributions are split into ``train`` / ``eval`` by a hash of their name, so the eval passages
  never come from a distribution whose passages may be used as training negatives. Groundwire's own
  distributions are left out (this project's README describes the shield itself).
- a JSONL file (``document``, ``label``, ``source``) such as ``benchmarks/data/howto_enterprise.jsonl``:
  hand-written intranet how-to articles, scored as written and as ingested (through the chunker).

Printed per source: chunk-level FPR (share of passages ``score_documents`` flags at the configured
threshold), segment-level FPR (share of the shield's segments over the threshold, a segment's own strong
rule hit included), the reasons of flagged passages and the rules that matched any passage. ``--questions``
adds the direct shield's FPR on how-to questions (``text`` rows) through ``score_prompts``.

``--plant INDIRECT.jsonl`` is the other side of the coin: the injected instructions of a labelled indirect
set (each injected document minus its clean host) are planted in the middle of the hand-written articles,
one per article in turn, and the share still caught is printed: sparing how-to text must not mean sparing
instructions hidden in it. The shipped artefact was trained on those instructions, so this is an in-sample
figure; the held-out one (each cross-validation fold's unseen instructions in unseen hosts) is
``python -m benchmarks.prompt_shield --kind indirect --plant-eval``.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata as md
import re
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from groundwire.chunking import split_text
from groundwire.extract import extract
from groundwire.plugins import prompt_shield as ps

from benchmarks.prompt_shield import read_rows, row_instructions

DATA = Path(__file__).parent / "data"
ARTICLES = DATA / "howto_enterprise.jsonl"
QUESTIONS = DATA / "howto_questions.jsonl"
MIN_CHARS = 300
CHUNK_SIZE, CHUNK_OVERLAP = 800, 120  # the ingestion defaults (RetrievalSettings)
OWN = re.compile(r"^groundwire(?:-|$)")
_WORD = re.compile(r"^[\"'(]?[A-Za-z][A-Za-z]*(?:[-'][A-Za-z]+)*[.,;:!?\"')]*$")
_CANON = re.compile(r"[-_.]+")


@dataclass(frozen=True, slots=True)
class Passage:
    text: str
    source: str  # "pypi:<distribution>" or the row's source


@dataclass
class Harvest:
    passages: list[Passage] = field(default_factory=list)
    distributions: int = 0
    chunks: int = 0
    dropped: Counter[str] = field(default_factory=Counter)


def split_of(name: str, eval_share: float = 0.5) -> str:
    """``train`` or ``eval`` for a distribution, from a stable hash of its canonical name."""
    h = int.from_bytes(hashlib.blake2b(canonical(name).encode(), digest_size=8).digest(), "big")
    return "eval" if h / 2**64 < eval_share else "train"


def canonical(name: str) -> str:
    return _CANON.sub("-", name).lower()


def description(dist: md.Distribution) -> tuple[str, str]:
    """A distribution's long description and its content type (body first, then the old header form)."""
    meta = dist.metadata
    body = meta.get_payload() if not meta.is_multipart() else ""
    if not isinstance(body, str) or not body.strip():
        body = re.sub(r"\n {7,8}\|", "\n", meta.get("Description") or "")  # metadata 1.x folding
    ctype = (meta.get("Description-Content-Type") or "text/plain").split(";")[0].strip().lower()
    return body, ctype


def word_share(text: str) -> float:
    """Share of whitespace-separated tokens that are ordinary words (code, tables, URLs and markup are not)."""
    toks = text.split()
    return sum(1 for t in toks if _WORD.match(t)) / max(len(toks), 1)


def passages_of(body: str, ctype: str, name: str) -> list[str]:
    """A description as chunks, the way ingestion would chunk it as a file (Markdown by headings)."""
    ext = ".md" if ctype == "text/markdown" else ".txt"
    _, sections = extract(f"{name}{ext}", body.encode("utf-8"))
    return [c for s in sections for c in split_text(s.text, CHUNK_SIZE, CHUNK_OVERLAP)]


def harvest_installed(split: str = "eval", min_chars: int = MIN_CHARS) -> Harvest:
    """Benign passages from the installed distributions' long descriptions (``split``: train, eval or all)."""
    dists: dict[str, md.Distribution] = {}
    for d in md.distributions():
        name = d.metadata["Name"] or ""
        key = canonical(name)
        if name and not OWN.match(key) and key not in dists:
            dists[key] = d
    out = Harvest()
    seen: set[str] = set()
    for key in sorted(dists):
        if split != "all" and split_of(key) != split:
            continue
        body, ctype = description(dists[key])
        if not body.strip():
            continue
        out.distributions += 1
        for text in passages_of(body, ctype, key):
            out.chunks += 1
            norm = " ".join(text.split()).casefold()
            if len(text) < min_chars:
                out.dropped[f"shorter than {min_chars} chars"] += 1
            elif word_share(text) < 0.5:
                out.dropped["mostly code, tables or markup"] += 1
            elif norm in seen:
                out.dropped["duplicate"] += 1
            else:
                seen.add(norm)
                out.passages.append(Passage(text, f"pypi:{key}"))
    return out


# --- scoring ------------------------------------------------------------------------------------------


def segment_scores(texts: Sequence[str]) -> list[np.ndarray]:
    """Per document, the shipped indirect head's score of each of its units (``ps.units``: the sentences the
    chunk is judged by; one embedding batch); a unit whose own text hits a strong rule counts as 0.99."""
    from groundwire.plugins.prompt_shield import indirect_model as im

    model = im.load_indirect()
    per = [im.units(t) for t in texts]
    flat = [u for us in per for u in us]
    if not flat:
        return [np.zeros(0) for _ in texts]
    cvec = ps.embed(list(texts) + ["", ""])[: len(texts)]
    uvec = ps.embed(flat + ["", ""])[: len(flat)]
    out, i = [], 0
    for n, (t, us) in enumerate(zip(texts, per, strict=True)):
        p = model.predict(im.features(cvec[n], uvec[i : i + len(us)], us, t)) if us else np.zeros(0)
        strong = np.array([any(h.strong for h in ps.rule_hits(u)) for u in us], dtype=bool)
        out.append(np.maximum(p, np.where(strong, 0.99, 0.0)))
        i += len(us)
    return out


def _also_at(kind: str, scores: np.ndarray, also: Sequence[float]) -> None:
    """The same scores at other thresholds (scores do not depend on the threshold)."""
    for th in also:
        k = int((scores >= th).sum())
        print(f"  at threshold {th:.3f}: {kind} {k / max(len(scores), 1):.3f} ({k}/{len(scores)})")


def report_documents(
    name: str, passages: Sequence[Passage], threshold: float | None, show: int, also: Sequence[float] = ()
) -> None:
    texts = [p.text for p in passages]
    th = ps.effective_threshold("indirect", threshold, True)
    t0 = time.perf_counter()
    scores = ps.score_documents(texts, threshold=th)
    seg = segment_scores(texts)
    secs = time.perf_counter() - t0
    flagged = [i for i, s in enumerate(scores) if s.score >= th]
    n_seg = sum(len(s) for s in seg)
    seg_over = sum(int((s >= th).sum()) for s in seg)
    docs_hit = {passages[i].source for i in flagged}
    print(f"{name}: {len(texts)} passages, {n_seg} segments, threshold {th:.3f} ({secs:.1f}s)")
    print(
        f"  chunk-level FPR   {len(flagged) / max(len(texts), 1):.3f} ({len(flagged)}/{len(texts)}; "
        f"{len(docs_hit)} of {len({p.source for p in passages})} sources)"
    )
    print(f"  segment-level FPR {seg_over / max(n_seg, 1):.4f} ({seg_over}/{n_seg})")
    _also_at("chunk-level FPR", np.array([s.score for s in scores]), also)
    reasons = Counter(scores[i].reason for i in flagged)
    print("  reasons of flagged passages: " + (", ".join(f"{r}: {n}" for r, n in reasons.most_common()) or "-"))
    rules = Counter(f"{h.name}{'' if h.strong else ' (weak)'}" for t in texts for h in ps.rule_hits(t))
    print("  rules matching any passage:  " + (", ".join(f"{r}: {n}" for r, n in rules.most_common()) or "-"))
    for i in sorted(flagged, key=lambda i: -scores[i].score)[:show]:
        snippet = " ".join(texts[i].split())[:160]
        print(f"    {scores[i].score:.3f} {passages[i].source}: {snippet}")


def report_questions(path: Path, threshold: float | None, show: int) -> None:
    rows = read_rows(path)
    texts = [r["text"] for r in rows]
    th = ps.effective_threshold("direct", threshold, True)
    scores = ps.score_prompts(texts, threshold=th)
    flagged = [i for i, s in enumerate(scores) if s.score >= th]
    print(f"{path.name} (direct shield, threshold {th:.3f}): {len(texts)} questions")
    print(f"  FPR {len(flagged) / max(len(texts), 1):.3f} ({len(flagged)}/{len(texts)})")
    reasons = Counter(scores[i].reason for i in flagged)
    print("  reasons of flagged questions: " + (", ".join(f"{r}: {n}" for r, n in reasons.most_common()) or "-"))
    for i in flagged[:show]:
        print(f"    {scores[i].score:.3f} {rows[i].get('source', '')}: {texts[i]}")


def injections(rows: Sequence[dict[str, str]]) -> list[tuple[str, str]]:
    """``(family, instruction)`` of each injected row: the text its clean host does not have (unique, in order;
    see :func:`benchmarks.prompt_shield.row_instructions`)."""
    out: dict[str, str] = {}
    for r, text in zip(rows, row_instructions(rows), strict=True):
        if text and text not in out:
            out[text] = r.get("source", "").split(":")[2] if r.get("source", "").count(":") >= 2 else ""
    return [(fam, text) for text, fam in out.items()]


def plant(article: str, instruction: str) -> str:
    """``instruction`` on its own line(s) in the middle of ``article``."""
    lines = article.split("\n")
    mid = len(lines) // 2
    return "\n".join([*lines[:mid], instruction, *lines[mid:]])


def report_planted(
    path: Path, articles: Sequence[Passage], threshold: float | None, show: int, also: Sequence[float] = ()
) -> None:
    inj = injections(read_rows(path))
    docs = [plant(articles[i % len(articles)].text, text) for i, (_, text) in enumerate(inj)]
    th = ps.effective_threshold("indirect", threshold, True)
    scores = ps.score_documents(docs, threshold=th)
    caught = np.array([s.score >= th for s in scores])
    code = np.array(["```" in text for _, text in inj])
    print(f"instructions from {path.name} planted in how-to articles: {len(inj)} unique, threshold {th:.3f}")
    for name, mask in (("all", np.ones_like(code)), ("code blocks", code), ("text", ~code)):
        n, k = int(mask.sum()), int(caught[mask].sum())
        print(f"  TPR {name:11s} {k / max(n, 1):.3f} ({k}/{n})")
    _also_at("TPR", np.array([s.score for s in scores]), also)
    missed = Counter(fam for (fam, _), c in zip(inj, caught, strict=True) if not c)
    print("  missed, by family: " + (", ".join(f"{f}: {n}" for f, n in missed.most_common()) or "-"))
    for i in [i for i in np.argsort([s.score for s in scores]) if not caught[i]][:show]:
        print(f"    {scores[i].score:.3f} {inj[i][0]}: {' '.join(inj[i][1].split())[:140]}")


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument(
        "--benign",
        action="append",
        help=f"a JSONL file or @installed[:train|:eval|:all] (repeatable; default: {ARTICLES.name} and "
        "@installed:eval)",
    )
    ap.add_argument("--questions", default=str(QUESTIONS), help="how-to questions for the direct shield ('' = none)")
    ap.add_argument("--plant", default=None, help="an indirect JSONL whose injected instructions are planted")
    ap.add_argument("--threshold", type=float, default=None, help="override the artefact's threshold")
    ap.add_argument(
        "--also-at", default="", help="comma-separated thresholds: FPR/TPR there too (e.g. a retrained artefact's)"
    )
    ap.add_argument("--show", type=int, default=5, help="print this many of the highest-scoring flagged items")
    args = ap.parse_args(argv)
    also = [float(x) for x in args.also_at.split(",") if x.strip()]
    for spec in args.benign or [str(ARTICLES), "@installed:eval"]:
        if spec.startswith("@installed"):
            split = spec.partition(":")[2] or "eval"
            h = harvest_installed(split)
            dropped = ", ".join(f"{r}: {n}" for r, n in sorted(h.dropped.items()))
            print(
                f"harvest ({split} split): {h.distributions} distributions with a description, {h.chunks} chunks, "
                f"kept {len(h.passages)}; dropped {dropped or 'none'}"
            )
            report_documents(f"@installed:{split}", h.passages, args.threshold, args.show, also)
        else:
            rows = [r for r in read_rows(spec) if r["label"] in ("clean", "benign")]
            written = [Passage(r["document"], r.get("source", "")) for r in rows]
            ingested = [Passage(c, p.source) for p in written for c in split_text(p.text, CHUNK_SIZE, CHUNK_OVERLAP)]
            report_documents(f"{Path(spec).name} (as written)", written, args.threshold, args.show, also)
            report_documents(f"{Path(spec).name} (as ingested)", ingested, args.threshold, args.show, also)
    if args.questions:
        report_questions(Path(args.questions), args.threshold, args.show)
    if args.plant:
        rows = read_rows(ARTICLES)
        arts = [Passage(r["document"], r["source"]) for r in rows]
        report_planted(Path(args.plant), arts, args.threshold, args.show, also)


if __name__ == "__main__":
    main()
