"""Scoring: rules and classifier combined, for prompts (max over word windows and decoded payloads) and for
documents (the worst unit of a chunk, :mod:`.indirect_model`; precomputed at ingestion from the chunk's stored
vector and versioned).

Invariants: a strong rule hit sets ``Score.strong`` and blocks whatever the threshold; the classifier only
ever sees normalised text; a prompt's score is the max over items whose lexical rank reads the whole text
(windows, sentences, its first and last runs of sentences), over its readable decoded payloads and over the
text with copied filler stripped, so neither an encoding nor a flood of copied filler lowers it; reasons never
quote the text.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from groundwire.models import Chunk

from .combo_head import ComboModel
from .decode import decoded_payloads, leet_reading, looks_english
from .direct_model import DirectModel, load_direct
from .indirect_model import (
    MODEL_ID,
    N_FEATURES,
    UNIT_MIN_CHARS,
    chunk_probs,
    chunk_probs_late,
    embed_text,
    load_indirect,
)
from .model import (
    ARTEFACT_DIR,
    N_CHAR,
    char_features,
    effective_threshold,
    embed,
    embed_spans,
)
from .normalize import WINDOW_STRIDE, WINDOW_WORDS, clean, clean_lines, for_model, strip_filler, windows
from .rules import RULES, Rule, rule_hits
from .segments import FENCE, TABLE_ROW
from .token_head import TokenHeadModel

__all__ = [
    "ANNOTATION",
    "RawScore",
    "Score",
    "cached_rule_hits",
    "clear_cache",
    "direct_probs",
    "indirect_version",
    "prompt_item_parts",
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


# Long prompts are also read in short windows: a payload behind a padding flood shares a 120-word window with up
# to ~100 filler words, which dilutes its embedding; a 40-word window (stride 20) holds any 20-word run whole.
SHORT_WORDS = 40
SHORT_STRIDE = 20
_SENTENCE = re.compile(r"(?<=[.!?])\s+")
MAX_SHORT = 256  # beyond this many short windows they grow (as windows() does past MAX_WINDOWS)
MAX_ITEMS = 720


def _short_windows(text: str) -> list[str]:
    words = text.split()
    size, stride = SHORT_WORDS, SHORT_STRIDE
    while (len(words) - size) / stride + 1 > MAX_SHORT:
        size, stride = size * 2, stride * 2
    starts = list(range(0, max(len(words) - size, 0) + 1, stride))
    if starts[-1] + size < len(words):
        starts.append(len(words) - size)
    return [" ".join(words[st : st + size]) for st in starts]


# Sentences and short windows are many per long prompt, so they would add false positives at the model's own
# threshold (pasted how-to articles and READMEs, in-sample and held out); they block only at this probability.
EXTRA_ITEM_P = 0.85
# The first and last runs of sentences and the last sentence of a long prompt (a payload before or after a
# flood of varied prose) are few, so their bar is lower: at 0.80 they blocked no more of the long benign texts
# that benchmarks.prompt_shield --parts evasion prints than the other items did.
EDGE_ITEM_P = 0.80


def prompt_items(text: str) -> list[str]:
    """:func:`prompt_item_parts` joined."""
    main, extra = prompt_item_parts(text)
    return main + extra


def prompt_item_parts(text: str) -> tuple[list[str], list[str]]:
    """What the direct classifier reads of one prompt, as ``(judged at the model's threshold, judged at a
    higher bar)`` (see :func:`_item_parts`)."""
    main, forced, head, tail, extra = _item_parts(text)
    return main + forced, head + tail + extra


def _edge_groups(sentences: list[str]) -> tuple[list[str], list[str]]:
    """``(head, tail)``: the text's first run of whole sentences of at most :data:`SHORT_WORDS` words, and
    its last sentence and last such run (a payload before or after a flood of varied prose, read with little
    or none of it); items under :data:`MIN_MODEL_WORDS` words are left out."""
    runs: list[str] = []
    for seq in (sentences, sentences[::-1]):
        run: list[str] = []
        n = 0
        for x in seq:
            n += len(x.split())
            if n > SHORT_WORDS:
                break
            run.append(x)
        runs.append(" ".join(run if seq is sentences else run[::-1]))
    head = [runs[0]] if len(runs[0].split()) >= MIN_MODEL_WORDS else []
    tail: list[str] = []
    for g in (sentences[-1] if sentences else "", runs[1]):
        if len(g.split()) >= MIN_MODEL_WORDS and g not in tail and g not in head:
            tail.append(g)
    return head, tail


def _item_parts(text: str) -> tuple[list[str], list[str], list[str], list[str], list[str]]:
    """``(main, forced, head, tail, extra)``: word windows of the prompt's normalised text (one when short) and
    its leetspeak reading; the readable decoded payloads hidden in it (base64 & co., an English-looking
    rot13; at most :data:`MAX_FORCED`) and the windows of the text with repeated filler stripped
    (:func:`~.normalize.strip_filler`; none when nothing repeats), always embedded and judged at the model's
    threshold like the main windows; and, for prompts longer than
    one window, the first run of sentences, the last sentence and the last run (:func:`_edge_groups`, judged at
    :data:`EDGE_ITEM_P`; the tail ones always embedded),
    each sentence of at least :data:`MIN_MODEL_WORDS` words and short windows (see :data:`SHORT_WORDS`),
    judged at :data:`EXTRA_ITEM_P`."""
    mtext = for_model(text)
    items = windows(mtext)
    lines = clean_lines(text)
    leet = leet_reading(lines)
    forced: list[str] = []
    for payload in decoded_payloads(lines):
        mt = for_model(payload)
        if len(mt.split()) >= 3 and looks_english(mt) >= 0.1 and mt not in items and mt not in forced:
            # a decoded blob or rot13 reading is always embedded; the leetspeak reading (most texts with
            # digits have one) is ranked with the windows
            (items if payload == leet or len(forced) >= MAX_FORCED else forced).append(mt)
    stripped = strip_filler(clean(text))
    if len(stripped.split()) >= MIN_MODEL_WORDS:
        # the case of what is left is judged on its own (shouting behind sentence-case filler is lowered)
        forced += [w for w in windows(for_model(stripped)) if w not in items and w not in forced][:MAX_FORCED]
    edges: list[str] = []
    n_head = 0
    extra: list[str] = []
    if len(items) > 1 and len(mtext.split()) > WINDOW_WORDS:
        seen = set(items) | set(forced)
        # each sentence on its own too: a short payload behind filler is then read with none of it
        sentences = [x for x in _SENTENCE.split(mtext) if x.strip()]
        head, tail = _edge_groups(sentences)
        edges = [g for g in head + tail if g not in seen]
        n_head = len([g for g in head if g not in seen])
        seen |= set(edges)
        long_enough = [x for x in sentences if len(x.split()) >= MIN_MODEL_WORDS]
        for w in [*long_enough, *_short_windows(mtext)]:
            if w not in seen:
                seen.add(w)
                extra.append(w)
    items = items[:MAX_ITEMS]
    extra = extra[: max(MAX_ITEMS - len(items) - len(forced) - len(edges), 0)]
    return items, forced, edges[:n_head], edges[n_head:], extra


# At most this many decoded payloads, and this many windows of the filler-free text, are embedded on top of
# the ranked ones (a flood strips to the payload; a long text whose repeats are stripped still has its own
# windows ranked as usual).
MAX_FORCED = 2


# Prompts shorter than this (in words, after normalisation) are judged by the rules and decoded payloads only:
# the classifier is not calibrated on one- to three-word inputs and blocked greetings such as "hello" and "ok"
# (no labelled attack in ../shared/data/prompt-shield is that short; the rules cover the short hijacks).
MIN_MODEL_WORDS = 4


# A long prompt's windows are all ranked by the cheap lexical part of the direct model; only this many (the
# best-ranked) are embedded (cut to EMBED_TOKENS), with its last run of sentences and, for a flood of copied
# filler, the filler-free windows, so screening cost does not grow with the prompt's length. One ranked item
# caught every long in-sample attack that three did and blocked fewer long benign texts
# (benchmarks.prompt_shield --parts evasion).
TOP_WINDOWS = 1


def direct_probs(
    texts: Sequence[str],
    model: DirectModel | TokenHeadModel | ComboModel,
    backend: str = "auto",
    embed_fn: Callable[[Sequence[str]], np.ndarray] | None = None,
    top_k: int = TOP_WINDOWS,
    token_fn: Callable[[Sequence[str]], Sequence[np.ndarray]] | None = None,
) -> list[float]:
    """The direct classifier's probability per prompt: the max over its :func:`prompt_items`, of which the
    ``top_k`` best by :meth:`~.direct_model.DirectModel.lexical_logit` (cut to :data:`EMBED_TOKENS` when
    there are more), the last run of sentences and the filler-free windows are embedded (one ``embed_fn``
    call for all prompts); an item with a bar above the model's threshold counts only when it reaches it;
    prompts under :data:`MIN_MODEL_WORDS` words keep only their decoded payloads (0.0 if none). Only the
    model's ``threshold``, ``lexical_logit`` and ``predict`` are used; a token head (``reads_tokens``) gets
    the items' token states instead (``token_fn``, default :func:`_token_states`: the same one model run that
    gives the sentence vector, the prompt's own through the query memo) in ``predict_tokens``."""
    items: list[str] = []
    lex: list[float] = []
    owner: list[int] = []
    bars: list[float] = []
    th = model.threshold
    for i, t in enumerate(texts):
        main, forced, head, tail, more = _item_parts(t)
        if len(main[0].split()) < MIN_MODEL_WORDS:  # main[0]: the first window, the whole text when short
            main = main[1:]  # keep only the decoded payloads (each has >= 3 words of readable text)
        # the tail (last sentence, last run) is always embedded: where a payload after a flood lies
        its = main + head + more
        bar = np.array([th] * len(main) + [max(th, EDGE_ITEM_P)] * len(head) + [max(th, EXTRA_ITEM_P)] * len(more))
        ll = model.lexical_logit(its) if its else np.zeros(0)
        if len(its) > top_k:
            keep = sorted(np.argsort(-ll, kind="stable")[:top_k])
            its, ll, bar = [its[k] for k in keep], ll[keep], bar[keep]
            # the lexical rank read every window whole; the one embedded is read up to EMBED_TOKENS
            capped = [_cap_tokens(x, backend) for x in its]
            if capped != its:
                its, ll = capped, model.lexical_logit(capped)
        if forced or tail:
            its = its + forced + tail
            ll = np.concatenate([ll, model.lexical_logit(forced + tail)])
            bar = np.concatenate([bar, np.full(len(forced), th), np.full(len(tail), max(th, EDGE_ITEM_P))])
        if not its:
            continue
        # MiniLM is uncased and whitespace-blind: the raw prompt embeds like its normalised form, and the raw
        # text hits the query memo retrieval fills (one embedding per request, not two)
        memo = embed_fn is None and token_fn is None and len(its) == 1 and its[0].lower() == " ".join(t.split()).lower()
        items.extend([t] if memo else its)
        lex.extend(ll.tolist())
        owner.extend([i] * len(its))
        bars.extend(bar.tolist())
    best = [0.0] * len(texts)
    if items:
        mtexts = [for_model(s) for s in items]
        chars = np.stack([char_features(m) for m in mtexts])
        if isinstance(model, TokenHeadModel | ComboModel):  # the heads that read the token states
            states = (token_fn or (lambda xs: _token_states(xs, backend, True)))(items)
            p = model.predict_tokens(states, chars, mtexts, np.asarray(lex))
        else:
            emb = (embed_fn or (lambda xs: _embed_unpadded(xs, backend)))(items)
            p = model.predict(emb, chars, mtexts, np.asarray(lex))
        # an item with a bar above the threshold (edge run, sentence, short window) is scaled below the
        # threshold unless it reaches its bar
        b = np.asarray(bars)
        scaled = np.divide(th * p, b, out=p.astype(float, copy=True), where=b > 0)  # a bar of 0: never below it
        p = np.where(p < b, np.minimum(p, scaled), p)
        for o, v in zip(owner, p, strict=True):
            best[o] = max(best[o], float(v))
    return best


# A long prompt's best-ranked window is embedded up to this many word pieces (a 120-word window of code or
# e-mail is 256 of them, which cost 4x one 64-token call).
EMBED_TOKENS = 128


def _cap_tokens(text: str, backend: str, limit: int | None = None) -> str:
    """``text`` cut after its first ``limit`` (default :data:`EMBED_TOKENS`) MiniLM word pieces, special
    tokens included (the bundled model's own tokenizer; the text unchanged when it is shorter)."""
    from groundwire.plugins.embedders import bundled_model_path, load_sentence_transformer

    limit = EMBED_TOKENS if limit is None else limit
    tok = load_sentence_transformer(bundled_model_path(), backend).tokenizer
    if hasattr(tok, "encode_batch"):  # a tokenizers.Tokenizer (ONNX): offsets of every piece, [CLS]/[SEP] (0, 0)
        offsets = [o for o in tok.encode(text).offsets if o != (0, 0)]
    else:  # a transformers fast tokenizer (torch)
        offsets = list(tok(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"])
    if len(offsets) <= limit - 2:
        return text
    return text[: offsets[limit - 3][1]]


def _token_states(texts: Sequence[str], backend: str, memo: bool) -> list[np.ndarray]:
    """The bundled MiniLM's token states of ``texts`` (``groundwire.plugins.embedders.token_states``): one
    text through the shared query memo (``memo``; retrieval then reuses the run), a few texts one per model
    call (no padding computed, as :func:`_embed_unpadded`)."""
    from groundwire.plugins.embedders import bundled_model_path, query_token_states, token_states

    path = bundled_model_path()
    if memo and len(texts) == 1:
        return [query_token_states(path, backend, texts[0])[1]]
    return token_states(path, backend, texts, batch_size=1 if len(texts) <= 8 else 64)[1]


def _embed_unpadded(texts: Sequence[str], backend: str) -> np.ndarray:
    """:func:`~.model.embed`, but a few texts of different lengths go one per model call: a batch pads every
    text to its longest (a 120-word window with two sentences cost 1.5x the three embedded separately)."""
    if len(texts) <= 1 or len(texts) > 8:
        return embed(texts, backend)
    from groundwire.plugins.embedders import bundled_model_path, load_sentence_transformer

    model = load_sentence_transformer(bundled_model_path(), backend)
    return np.concatenate([
        np.asarray(model.encode([t], normalize_embeddings=True, show_progress_bar=False, convert_to_numpy=True),
                   dtype=np.float32)
        for t in texts
    ])


def score_prompts(
    texts: Sequence[str], use_model: bool = True, threshold: float | None = None, backend: str = "auto"
) -> list[Score]:
    """Direct-injection scores for prompts (rules + classifier, see :func:`direct_probs`)."""
    th = effective_threshold("direct", threshold, use_model)
    probs: list[float | None] = [None] * len(texts)
    if use_model and texts:
        probs = list(direct_probs(texts, load_direct(), backend))
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
    unit_vecs: Sequence[Any] | None = None,
) -> list[RawScore]:
    """The classifier's worst unit (:mod:`.indirect_model`) and the rule hits, per chunk text.

    ``chunk_vecs``: the chunks' stored embeddings (``None`` entries, or no list: embedded now from
    ``chunk_inputs``, default the texts, with the bundled model). A head on standalone unit vectors embeds
    the units with ``embed_units`` (ingestion passes its memoising embedder; default the bundled model); a
    *late* head (:func:`~.indirect_model.chunk_probs_late`) takes ``unit_vecs`` (per chunk, its units'
    vectors from the chunk's own run, or ``None``) and reads the missing ones, with the chunk vector, from
    one bundled-model run per chunk. Scores of texts embedded here are kept in a per-process LRU
    (``remember``) keyed by the artefact version and a hash of the text."""
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

            cvs = [None if vecs[i] is None else np.asarray(vecs[i], np.float32) for i in todo]
            if model.late:
                uvs = list(unit_vecs) if unit_vecs is not None else [None] * len(texts)
                got = chunk_probs_late(model, [texts[i] for i in todo], cvs,
                                       [None if uvs[i] is None else np.asarray(uvs[i], np.float32) for i in todo],
                                       lambda ts, sp: embed_spans(ts, sp, backend), [inputs[i] for i in todo])
            else:
                got = chunk_probs(model, [texts[i] for i in todo], cvs, bundled, embed_units or bundled,
                                  [inputs[i] for i in todo])
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
