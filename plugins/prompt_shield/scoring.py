"""Scoring: rules and classifier combined, for prompts (max over word windows and decoded payloads) and for
documents (the worst unit of a chunk, :mod:`.indirect_model`; precomputed at ingestion from the chunk's stored
vector and versioned).

Invariants: a strong rule hit sets ``Score.strong`` and blocks whatever the threshold; the classifier only
ever sees normalised text; a prompt's score is the max over windows that cover the whole text and over its
readable decoded payloads, so neither filler nor an encoding lowers it; reasons never quote the text.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from groundwire.models import Chunk

from .decode import decoded_payloads, looks_english
from .indirect_model import MODEL_ID, N_FEATURES, UNIT_MIN_CHARS, chunk_probs, embed_text, load_indirect
from .model import (
    ARTEFACT_DIR,
    N_CHAR,
    char_features,
    effective_threshold,
    embed,
    load_model,
    load_veto,
)
from .normalize import WINDOW_STRIDE, WINDOW_WORDS, clean_lines, for_model, windows
from .rules import RULES, Rule, rule_hits
from .segments import FENCE, TABLE_ROW

__all__ = [
    "ANNOTATION",
    "RawScore",
    "Score",
    "cached_rule_hits",
    "clear_cache",
    "indirect_version",
    "prompt_items",
    "raw_document_scores",
    "score_chunks",
    "score_documents",
    "score_prompts",
]

ANNOTATION = "prompt_shield.indirect"


@lru_cache(maxsize=4096)
def _hits(text: str) -> tuple[Rule, ...]:
    return tuple(rule_hits(text))


def cached_rule_hits(text: str) -> tuple[Rule, ...]:
    """:func:`~.rules.rule_hits`, memoised per process (features and verdicts both need them)."""
    return _hits(text)


@dataclass(frozen=True, slots=True)
class Score:
    score: float
    reason: str
    strong: bool = False  # a strong rule hit: blocks whatever the threshold


def _combine(p: float | None, hits: Sequence[tuple[bool, str]], threshold: float) -> Score:
    """Rules and classifier: a strong rule hit blocks on its own; ``hits`` are ``(strong, reason)``."""
    strong = [reason for is_strong, reason in hits if is_strong]
    if strong:
        return Score(max(0.99, p or 0.0), strong[0], True)
    if p is None:
        return Score(0.0, "rules only (no match)")
    reason = "learned classifier" + (f" ({hits[0][1]})" if hits else "")
    return Score(p, reason if p >= threshold else "no injection pattern found")


def prompt_items(text: str) -> list[str]:
    """What the direct classifier scores for one prompt: word windows of its normalised text (one when
    short) and the readable decoded payloads hidden in it (base64 & co., an English-looking rot13)."""
    items = windows(for_model(text))
    for payload in decoded_payloads(clean_lines(text)):
        mt = for_model(payload)
        if len(mt.split()) >= 3 and looks_english(mt) >= 0.1 and mt not in items:
            items.append(mt)
    return items[:96]


# Prompts shorter than this (in words, after normalisation) are judged by the rules and decoded payloads only:
# the classifier is not calibrated on one- to three-word inputs and blocked greetings such as "hello" and "ok"
# (no labelled attack in ../shared/data/prompt-shield is that short; the rules cover the short hijacks).
MIN_MODEL_WORDS = 4


def score_prompts(
    texts: Sequence[str], use_model: bool = True, threshold: float | None = None, backend: str = "auto"
) -> list[Score]:
    """Direct-injection scores for prompts (rules + classifier, max over :func:`prompt_items`; prompts under
    :data:`MIN_MODEL_WORDS` words are scored by the classifier only through their decoded payloads)."""
    model = load_model("direct") if use_model else None
    th = effective_threshold("direct", threshold, use_model)
    probs: list[float | None] = [None] * len(texts)
    if model is not None and texts:
        items: list[str] = []
        raws: list[str] = []
        owner: list[int] = []
        for i, t in enumerate(texts):
            its = prompt_items(t)
            if len(its[0].split()) < MIN_MODEL_WORDS:  # its[0]: the first window, the whole text when short
                its = its[1:]  # keep only the decoded payloads (each has >= 3 words of readable text)
                if not its:
                    continue
            # MiniLM is uncased and whitespace-blind: the raw prompt embeds like its normalised form, and the
            # raw text hits the query memo retrieval fills (one embedding per request, not two)
            if len(its) == 1 and its[0].lower() == " ".join(t.split()).lower():
                its = [t]
            items.extend(its)
            raws.extend([t] * len(its))
            owner.extend([i] * len(its))
        chars = np.stack([char_features(for_model(s), raw) for s, raw in zip(items, raws, strict=True)]) \
            if items else None
        emb = embed(items, backend) if items else None
        p = model.predict(emb, chars) if items else []
        veto = load_veto()
        if veto is not None and items:
            # a classifier block needs the veto model (the previous artefact) to agree at its own threshold: the
            # retrained model alone blocked 9 of 15 benign questions with accented words ("crème brûlée",
            # "München"); the previous one alone, on normalised text, blocked every pasted multi-line how-to
            # article (tests/test_prompt_shield_short.py). Scores the veto rejects are reported below the threshold.
            pv = veto.predict(emb, chars)
            p = np.where(pv >= veto.threshold, p, np.minimum(p, th * pv / veto.threshold))
        best: list[float | None] = [None] * len(texts)
        for o, v in zip(owner, p, strict=True):
            best[o] = max(best[o] or 0.0, float(v))
        probs = [b if b is not None else 0.0 for b in best]
    return [
        _combine(p, [(h.strong, h.reason) for h in cached_rule_hits(t)], th)
        for t, p in zip(texts, probs, strict=True)
    ]


_SEG_CACHE: OrderedDict[tuple[str, str], float] = OrderedDict()
_SEG_LOCK = threading.Lock()
SEGMENT_CACHE_SIZE = 20_000


def clear_cache() -> None:
    """Forget cached chunk scores (benchmarks measure cold latency with it)."""
    with _SEG_LOCK:
        _SEG_CACHE.clear()


@dataclass(frozen=True, slots=True)
class RawScore:
    """A document's threshold-free screening result: the classifier's worst segment and the rule hits.

    This is what ingestion precomputes (``annotate_chunks``); the threshold is applied at query time.
    """

    p: float | None  # None: no classifier (rules only)
    hits: tuple[tuple[bool, str], ...]  # (strong, reason) per rule hit

    def to_json(self) -> dict[str, Any]:
        return {"p": self.p, "hits": [list(h) for h in self.hits]}

    @classmethod
    def from_json(cls, d: Any) -> RawScore | None:
        try:
            p = d["p"]
            hits = tuple((bool(a), str(b)) for a, b in d["hits"])
            return cls(None if p is None else float(p), hits)
        except (KeyError, TypeError, ValueError):
            return None


def _chunk_cache_key(text: str, chunk_input: str) -> tuple[str, str]:
    return (indirect_version(), hashlib.blake2b(f"{chunk_input}\0{text}".encode(), digest_size=16).hexdigest())


def raw_document_scores(
    texts: Sequence[str],
    use_model: bool = True,
    backend: str = "auto",
    remember: bool = True,
    *,
    chunk_vecs: Sequence[Any] | None = None,
    embed_units: Callable[[Sequence[str]], np.ndarray] | None = None,
    chunk_inputs: Sequence[str] | None = None,
) -> list[RawScore]:
    """The classifier's worst unit (:mod:`.indirect_model`) and the rule hits, per chunk text.

    ``chunk_vecs``: the chunks' stored embeddings (``None`` entries, or no list: embedded now from
    ``chunk_inputs``, default the texts, with the bundled model); ``embed_units``: how the units are embedded
    (ingestion passes its memoising embedder; default the bundled model). Scores of texts embedded here are
    kept in a per-process LRU (``remember``) keyed by the artefact version and a hash of the text."""
    model = load_indirect() if use_model else None
    inputs = list(chunk_inputs) if chunk_inputs is not None else list(texts)
    probs: list[float | None] = [None] * len(texts)
    if model is not None and texts:
        vecs = list(chunk_vecs) if chunk_vecs is not None else [None] * len(texts)
        keys = [_chunk_cache_key(t, c) for t, c in zip(texts, inputs, strict=True)]
        todo = []
        with _SEG_LOCK:
            for i, k in enumerate(keys):
                if k in _SEG_CACHE:
                    probs[i] = _SEG_CACHE[k]
                    _SEG_CACHE.move_to_end(k)
                else:
                    todo.append(i)
        if todo:
            def bundled(ts: Sequence[str]) -> np.ndarray:
                return embed(list(ts) + ["", ""], backend)[: len(ts)]  # > 1 text: not the one-query memo

            got = chunk_probs(
                model,
                [texts[i] for i in todo],
                [None if vecs[i] is None else np.asarray(vecs[i], np.float32) for i in todo],
                bundled,
                embed_units or bundled,
                [inputs[i] for i in todo],
            )
            with _SEG_LOCK:
                for i, p in zip(todo, got, strict=True):
                    probs[i] = float(p)
                    if remember:
                        _SEG_CACHE[keys[i]] = float(p)
                while len(_SEG_CACHE) > SEGMENT_CACHE_SIZE:
                    _SEG_CACHE.popitem(last=False)
    return [RawScore(p, tuple((h.strong, h.reason) for h in cached_rule_hits(t)))
            for t, p in zip(texts, probs, strict=True)]


def score_documents(
    texts: Sequence[str], use_model: bool = True, threshold: float | None = None, backend: str = "auto"
) -> list[Score]:
    """Indirect-injection score per chunk text: the worst of its units (one embedding batch for all)."""
    th = effective_threshold("indirect", threshold, use_model)
    return [_combine(r.p, r.hits, th) for r in raw_document_scores(texts, use_model, backend)]


@lru_cache(maxsize=1)
def indirect_version() -> str:
    """Identifies what a precomputed score depends on: the indirect artefact, the rules, normalisation and
    segmenting."""
    h = hashlib.blake2b(digest_size=8)
    h.update((ARTEFACT_DIR / "prompt_shield_indirect.npz").read_bytes())
    h.update(f"units:{UNIT_MIN_CHARS}:{N_FEATURES}:{MODEL_ID}".encode())
    for r in RULES:
        cased = r.cased.pattern if r.cased is not None else ""
        h.update(f"{r.name}\0{r.pattern.pattern}\0{cased}\0{r.strong}\0{r.reason}\0".encode())
    h.update(f"{N_CHAR}:{TABLE_ROW.pattern}:{FENCE.pattern}:norm2".encode())
    h.update(f"{WINDOW_WORDS}:{WINDOW_STRIDE}".encode())
    return h.hexdigest()


def score_chunks(
    chunks: Sequence[Chunk], use_model: bool = True, threshold: float | None = None, backend: str = "auto"
) -> list[Score]:
    """:func:`score_documents` for retrieved chunks, using the scores precomputed at ingestion when they
    are current (same artefact, rules and segmenting); other chunks are scored now."""
    th = effective_threshold("indirect", threshold, use_model)
    raw: list[RawScore | None] = [None] * len(chunks)
    if use_model:
        version = indirect_version()
        for i, c in enumerate(chunks):
            note = c.annotations.get(ANNOTATION)
            if isinstance(note, dict) and note.get("v") == version:
                raw[i] = RawScore.from_json(note)
    todo = [i for i, r in enumerate(raw) if r is None]
    if todo:
        got = raw_document_scores([chunks[i].text for i in todo], use_model, backend,
                                  chunk_inputs=[embed_text(chunks[i].text, chunks[i].title) for i in todo])
        for i, r in zip(todo, got, strict=True):
            raw[i] = r
    return [_combine(r.p, r.hits, th) for r in raw if r is not None]
