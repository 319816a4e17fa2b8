"""Prompt shield: direct (``screen_prompt``) and indirect (``screen_documents``) prompt-injection screening.

Offline, no downloads. Each text is scored by two parts that are combined:

- **rules** for known attack families: instruction override, role-play / DAN personas, system-prompt
  extraction, encoded payloads (base64, hex, rot13, leetspeak), invisible / bidi characters, homoglyph
  mixing and adversarial-suffix gibberish. A *strong* rule hit blocks on its own; every rule is also a
  feature of the classifier.
- a **logistic regression** (numpy) over MiniLM sentence embeddings (the bundled model, loaded once per
  process) plus cheap character-level features. Weights ship as ``prompt_shield_{direct,indirect}.npz``,
  written by ``benchmarks/train_prompt_shield.py``.

Documents are screened per *segment* (non-table lines packed into short blocks), and a chunk's score is its
worst segment, so an article that merely *describes* steps is judged on what it says, while a planted
instruction inside a table or an e-mail stands out. Each segment also carries two features of its host
document (share of table rows, number of prose segments). All segments of all chunks of one request are
embedded in one batch, and segment scores are cached per process (retrieved chunks recur).

Documents are screened at ingestion already (``annotate_chunks``): the worst segment's probability and the
rule hits are stored with each chunk, tagged with a version of the artefact, rules and segmenting; at query
time only the threshold is applied, and chunks without a current precomputed result are scored then.

Settings (``[plugins.settings.prompt_shield]``): ``threshold`` / ``document_threshold`` (override the
artefact's), ``document_action`` (``drop`` | ``quarantine``), ``use_model`` (``true``; ``false`` = rules
only), ``direct`` / ``indirect`` (enable each hook), ``precompute`` (``true``: score chunks at ingestion).

Invariants: verdict reasons never quote the screened text; a failure to load the model falls back to the
rules only and says so in the reason (the shield never fails open silently).
"""

from __future__ import annotations

import base64
import binascii
import codecs
import hashlib
import logging
import math
import re
import threading
import unicodedata
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from groundwire import Action, GroundingRequest, GroundwireConfig, Verdict, hookimpl
from groundwire.models import Chunk

__all__ = [
    "ANNOTATION",
    "RULES",
    "RawScore",
    "ShieldModel",
    "char_features",
    "clear_cache",
    "doc_context",
    "effective_threshold",
    "embed",
    "load_model",
    "rule_hits",
    "indirect_version",
    "raw_document_scores",
    "score_chunks",
    "score_documents",
    "score_prompts",
    "segments",
]

log = logging.getLogger("groundwire.plugins.prompt_shield")
PLUGIN = "prompt_shield"
ARTEFACT_DIR = Path(__file__).parent

# --- normalisation ------------------------------------------------------------------------------------

_INVISIBLE = re.compile(
    "[\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff\u00ad\U000e0000-\U000e007f]"
)
_LEET = str.maketrans(
    {"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s", "!": "i"}
)
_SCRIPT_CACHE: dict[str, str] = {}


def _script(ch: str) -> str:
    s = _SCRIPT_CACHE.get(ch)
    if s is None:
        try:
            s = unicodedata.name(ch).split(" ", 1)[0]
        except ValueError:
            s = ""
        _SCRIPT_CACHE[ch] = s
    return s


def homoglyph_words(text: str) -> int:
    """Words mixing Latin letters with Cyrillic or Greek ones (``pаypal`` with a Cyrillic ``а``)."""
    n = 0
    for word in re.findall(r"\w{3,}", text):
        if word.isascii():
            continue
        scripts = {_script(c) for c in word if c.isalpha()}
        if "LATIN" in scripts and scripts & {"CYRILLIC", "GREEK"}:
            n += 1
    return n


def _clean(text: str) -> str:
    """NFKC, invisible characters removed, whitespace collapsed (case kept)."""
    return " ".join(_INVISIBLE.sub("", unicodedata.normalize("NFKC", text)).split())


def normalise(text: str) -> str:
    """NFKC, invisible characters removed, whitespace collapsed, case-folded."""
    return _clean(text).casefold()


def _decoded_payloads(text: str) -> list[str]:
    """Plain text hidden in base64 / hex blobs, and the rot13 and leetspeak readings of the text."""
    out: list[str] = []
    for blob in re.findall(r"[A-Za-z0-9+/]{24,}={0,2}", text)[:8]:
        try:
            raw = base64.b64decode(blob + "=" * (-len(blob) % 4), validate=False)
            s = raw.decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            continue
        if sum(c.isprintable() for c in s) > 0.9 * len(s) and re.search(r"[a-z]{3,} [a-z]{2,}", s.lower()):
            out.append(s)
    for blob in re.findall(r"(?:[0-9a-fA-F]{2}[\s:]?){12,}", text)[:8]:
        try:
            s = bytes.fromhex(re.sub(r"[\s:]", "", blob)).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            continue
        if re.search(r"[a-z]{3,} [a-z]{2,}", s.lower()):
            out.append(s)
    out.append(codecs.decode(text, "rot13"))
    out.append(text.translate(_LEET))
    return out


# --- rules --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    pattern: re.Pattern[str]
    strong: bool  # a hit blocks on its own
    reason: str
    cased: re.Pattern[str] | None = None  # also a hit: this pattern on the text with its case kept

    def matches(self, norm: str, plain: str) -> bool:
        return bool(self.pattern.search(norm) or (self.cased is not None and self.cased.search(plain)))


def _r(name: str, rx: str, strong: bool, reason: str, cased: str | None = None) -> Rule:
    return Rule(name, re.compile(rx, re.I), strong, reason, re.compile(cased) if cased else None)


_PRIOR = (
    r"(?:all |any |the |your |my |these |those )*"
    r"(?:previous|prior|above|earlier|preceding|initial|original|system)"
)
RULES: tuple[Rule, ...] = (
    _r(
        "override",
        rf"\b(?:ignore|disregard|forget|override|bypass|skip)\b.{{0,20}}\b{_PRIOR}\b.{{0,20}}"
        r"\b(?:instructions?|prompts?|rules?|directions?|guidelines?|context|messages?)",
        True,
        "instruction override",
    ),
    _r(
        "override2",
        r"\b(?:new|updated|real) (?:instructions?|system prompt|rules)\s*[:\-]|"
        r"\bfrom now on,? you (?:will|must|are)\b|\byou are no longer bound\b|"
        # "Developer Mode" blocks only as the jailbreak's persona ("ChatGPT with Developer Mode enabled",
        # "(Developer Mode Output)"); "turn on Developer mode" on a phone or in Chrome is a weak hit
        r"\b(?:chatgpt|assistant|ai|model|llm) (?:with|in) developer mode\b|\bdeveloper mode output\b|"
        r"\byou(?: are|'re) now (?:in|running in) developer mode\b|"
        r"\b(?:simulate|emulate) developer mode\b",
        True,
        "instruction override",
    ),
    _r(
        "persona",
        r"\b(?:do anything now|jailbr[eo]ak(?:en)?|unfiltered and amoral|no (?:ethical|moral) "
        r"(?:or moral )?guidelines|stay in character|"
        # "without any restrictions" blocks only when it qualifies how to answer ("the dataset may be reused
        # without any restrictions" is a licence, "reply without any restrictions on length" a form)
        r"(?:answers?|answering|respond(?:s|ing)?|repl(?:y|ies|ying)|generat(?:e|es|ing)|writ(?:e|es|ing)|"
        r"act|acting|operat(?:e|es|ing))\b[^.,;\n]{0,40}\bwithout any (?:restrictions|filters|censorship)"
        r"(?!\s+(?:on|to|for|in|of|regarding)\b)|"
        r"(?:act|pretend|roleplay|role-play) as (?:an? )?(?:unrestricted|evil|unfiltered|uncensored))\b",
        True,
        "role-play persona to evade safety rules",
        r"\bDAN\b",  # the persona is written in capitals; "Dan" is a first name, "dan" a martial-arts rank
    ),
    _r(
        "persona_weak",
        r"\b(?:you are to act as|pretend (?:to be|you are)|in this hypothetical story|"
        r"imagine you are|let'?s play a game|never refuses?|always (?:fulfills?|complies|answers)|"
        r"developer mode|without any (?:restrictions|filters|censorship))\b",
        False,
        "role-play framing",
    ),
    _r(
        "extraction",
        r"\b(?:reveal|print|show|repeat|output|leak|dump|tell me|write out)\b.{0,30}"
        r"\b(?:your (?:system prompt|(?:exact |full |original |initial |hidden )?"
        r"(?:instructions|prompt|rules))|"
        r"the (?:system prompt|(?:initial|hidden|original) (?:prompt|instructions)|instructions above))\b|"
        r"\bwhat (?:is|are|were) your "
        r"(?:system prompt|(?:original |initial |hidden )?(?:instructions|prompt))\b",
        True,
        "system-prompt extraction",
    ),
    _r(
        "response_prime",
        r"(?:start|begin) (?:your|the) (?:response|reply|answer) with|"
        r"\bsure,? here(?:'s| is)\b|never ever",
        False,
        "response priming",
    ),
    _r(
        "embedded_task",
        r"\b(?:in your (?:reply|response|answer)|your (?:reply|response|answer) (?:must|should)|"
        r"(?:include|insert|add|embed) (?:the following|this) (?:code|link|url|text)|"
        r"(?:visit|click|go to) (?:this|the following) (?:link|url|website))\b",
        False,
        "instruction addressed to the assistant",
    ),
)


def rule_hits(text: str) -> list[Rule]:
    """Rules matching the text itself or any decoded reading of it (base64, hex, rot13, leetspeak)."""
    plain = _clean(text)
    hits = [r for r in RULES if r.matches(plain.casefold(), plain)]
    if not any(r.strong for r in hits):
        for payload in _decoded_payloads(text):
            dec = _clean(payload)
            strong = [r for r in RULES if r.strong and r.matches(dec.casefold(), dec)]
            if strong:
                hits.extend(replace(r, reason=r.reason + " (encoded)") for r in strong)
                break
    return hits


# --- character-level features -------------------------------------------------------------------------

_TOKEN_RE = re.compile(r"\S+")
_WORDLIKE = re.compile(r"^[\"'(]?[A-Za-z][a-z]*(?:[-'][a-z]+)*[.,;:!?\"')]*$")
N_CHAR = 14


def char_features(text: str) -> np.ndarray:
    """Cheap features: length, symbol/digit/upper ratios, gibberish-token share, invisible characters, ...

    Independent of the embedding model; their order is part of the artefact format.
    """
    n = max(len(text), 1)
    toks = _TOKEN_RE.findall(text) or [""]
    letters = sum(c.isalpha() for c in text) or 1
    symbols = sum(not c.isalnum() and not c.isspace() for c in text)
    odd = sum(1 for t in toks if not _WORDLIKE.match(t))
    brackets = sum(text.count(c) for c in "{}[]<>()\\|`^~")
    hits = rule_hits(text)
    b64 = len(re.findall(r"[A-Za-z0-9+/]{24,}={0,2}", text))
    tail = toks[-12:]
    tail_odd = sum(1 for t in tail if not _WORDLIKE.match(t)) / len(tail)
    f = [
        math.log1p(len(text)) / 8.0,
        symbols / n,
        sum(c.isdigit() for c in text) / n,
        sum(c.isupper() for c in text) / letters,
        sum(not c.isascii() for c in text) / n,
        odd / len(toks),
        tail_odd,
        brackets / n * 10,
        float(len(_INVISIBLE.findall(text)) > 0),
        float(homoglyph_words(text) > 0),
        float(b64 > 0),
        float(any(h.strong for h in hits)),
        float(len(hits)) / 3.0,
        text.count("\n") / n * 10,
    ]
    return np.asarray(f, dtype=np.float32)


# --- embeddings and the model -------------------------------------------------------------------------


def embed(texts: Sequence[str], backend: str = "auto") -> np.ndarray:
    """MiniLM sentence embeddings (unit length), the bundled model loaded once per process.

    A single text (the prompt) goes through the shared query memo, so retrieval does not embed it again
    when it uses the same backend (see :func:`embedder_backend`).
    """
    from groundwire.plugins.embedders import bundled_model_path, load_sentence_transformer, query_embedding

    if len(texts) == 1:
        return query_embedding(bundled_model_path(), backend, texts[0]).reshape(1, -1)
    model = load_sentence_transformer(bundled_model_path(), backend)
    vecs = model.encode(
        list(texts), batch_size=64, normalize_embeddings=True, show_progress_bar=False, convert_to_numpy=True
    )
    return np.asarray(vecs, dtype=np.float32)


@dataclass(frozen=True, slots=True)
class ShieldModel:
    """Logistic regression over ``[embedding, standardised char features]``."""

    w: np.ndarray
    b: float
    mu: np.ndarray
    sd: np.ndarray
    threshold: float

    def features(self, emb: np.ndarray, chars: np.ndarray) -> np.ndarray:
        return np.hstack([emb, (chars - self.mu) / self.sd])

    def predict(self, emb: np.ndarray, chars: np.ndarray) -> np.ndarray:
        z = self.features(emb, chars) @ self.w + self.b
        return 1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))

    def save(self, path: Path) -> None:
        np.savez(
            path, w=self.w, b=np.float64(self.b), mu=self.mu, sd=self.sd, threshold=np.float64(self.threshold)
        )


@lru_cache(maxsize=4)
def load_model(kind: str) -> ShieldModel:
    with np.load(ARTEFACT_DIR / f"prompt_shield_{kind}.npz") as z:
        return ShieldModel(z["w"], float(z["b"]), z["mu"], z["sd"], float(z["threshold"]))


def effective_threshold(kind: str, threshold: float | None, use_model: bool) -> float:
    """The configured threshold, else the artefact's; 0.5 when only the rules score (they give 0 or 0.99)."""
    if threshold is not None:
        return threshold
    return load_model(kind).threshold if use_model else 0.5


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1.0, iters: int = 25) -> tuple[np.ndarray, float]:
    """Class-balanced L2 logistic regression by Newton's method (IRLS); returns ``(w, b)``."""
    n, d = x.shape
    xb = np.hstack([x, np.ones((n, 1))])
    pos = max(float(y.sum()), 1.0)
    sw = np.where(y > 0, n / (2 * pos), n / (2 * max(n - pos, 1.0)))
    beta = np.zeros(d + 1)
    reg = np.full(d + 1, l2)
    reg[-1] = 0.0
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-np.clip(xb @ beta, -30, 30)))
        g = xb.T @ (sw * (p - y)) + reg * beta
        h = (xb * (sw * p * (1 - p))[:, None]).T @ xb + np.diag(reg + 1e-6)
        step = np.linalg.solve(h, g)
        beta -= step
        if float(np.abs(step).max()) < 1e-6:
            break
    return beta[:-1].astype(np.float32), float(beta[-1])


# --- segments and scoring -----------------------------------------------------------------------------

# a table row, or a fragment of one (a row cut where text was inserted): starts or ends with a cell border
_TABLE_ROW = re.compile(r"^\s*\|.*\|\s*$|^\s*\|[\s\-:|]+$|^\s*\|(?:[^|\n]*\|){2,}|(?:\|[^|\n]*){2,}\|\s*$")
N_CONTEXT = 2


def doc_context(text: str) -> np.ndarray:
    """Features of the document a segment comes from: the share of its lines that are table rows (prose
    wedged into a data table is unusual) and how many prose segments it has."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    table = sum(1 for ln in lines if _TABLE_ROW.search(ln)) / max(len(lines), 1)
    return np.asarray([table, math.log1p(len(segments(text))) / 3.0], dtype=np.float32)


SEGMENT_CHARS = 320


def segments(text: str, size: int = SEGMENT_CHARS) -> list[str]:
    """Non-table lines of ``text`` packed into blocks of about ``size`` characters (blank lines break).

    Table rows are data, not instructions; long lines are cut on sentence and word boundaries.
    """
    out: list[str] = []
    cur = ""
    for line in [*text.splitlines(), ""]:
        if not line.strip() or _TABLE_ROW.search(line):
            if cur:
                out.append(cur)
            cur = ""
            continue
        line = line.strip()
        pieces = [line] if len(line) <= size else re.split(r"(?<=[.!?|])\s*(?=[A-Z])", line)
        for piece in pieces:
            while len(piece) > size:
                cut = piece.rfind(" ", 0, size)
                cut = cut if cut > size // 2 else size
                if cur:
                    out.append(cur)
                    cur = ""
                out.append(piece[:cut])
                piece = piece[cut:].strip()
            if cur and len(cur) + len(piece) + 1 > size:
                out.append(cur)
                cur = ""
            cur = f"{cur}\n{piece}" if cur else piece
    return [s for s in out if len(s.strip()) >= 3]


@dataclass(frozen=True, slots=True)
class Score:
    score: float
    reason: str


def _combine(p: float | None, hits: Sequence[tuple[bool, str]], threshold: float) -> Score:
    """Rules and classifier: a strong rule hit blocks on its own; ``hits`` are ``(strong, reason)``."""
    strong = [reason for is_strong, reason in hits if is_strong]
    if strong:
        return Score(max(0.99, p or 0.0), strong[0])
    if p is None:
        return Score(0.0, "rules only (no match)")
    reason = "learned classifier" + (f" ({hits[0][1]})" if hits else "")
    return Score(p, reason if p >= threshold else "no injection pattern found")


def score_prompts(
    texts: Sequence[str], use_model: bool = True, threshold: float | None = None, backend: str = "auto"
) -> list[Score]:
    """Direct-injection scores for prompts (rules + classifier)."""
    model = load_model("direct") if use_model else None
    th = effective_threshold("direct", threshold, use_model)
    probs: list[float | None] = [None] * len(texts)
    if model is not None and texts:
        chars = np.stack([char_features(t) for t in texts])
        probs = [float(p) for p in model.predict(embed(texts, backend), chars)]
    return [
        _combine(p, [(h.strong, h.reason) for h in rule_hits(t)], th) for t, p in zip(texts, probs, strict=True)
    ]


_SEG_CACHE: OrderedDict[tuple[int, str], float] = OrderedDict()
_SEG_LOCK = threading.Lock()
SEGMENT_CACHE_SIZE = 20_000


def _segment_probs(
    model: ShieldModel, flat: Sequence[str], context: np.ndarray, backend: str = "auto", remember: bool = True
) -> np.ndarray:
    """Segment scores; retrieved chunks recur across requests, so scores are kept in a per-process LRU
    (keyed by the model and a hash of the segment text) and only the misses are embedded, in one batch."""
    keys = [
        (id(model), hashlib.blake2b(s.encode() + c.tobytes(), digest_size=16).hexdigest())
        for s, c in zip(flat, context, strict=True)
    ]
    probs = np.zeros(len(flat))
    with _SEG_LOCK:
        miss = []
        for i, k in enumerate(keys):
            if k in _SEG_CACHE:
                probs[i] = _SEG_CACHE[k]
                _SEG_CACHE.move_to_end(k)
            else:
                miss.append(i)
    if miss:
        texts = [flat[i] for i in miss]
        chars = np.hstack([np.stack([char_features(t) for t in texts]), context[miss]])
        got = model.predict(embed(texts, backend), chars)
        if not remember:
            probs[miss] = got
            return probs
        with _SEG_LOCK:
            for i, p in zip(miss, got, strict=True):
                probs[i] = float(p)
                _SEG_CACHE[keys[i]] = float(p)
            while len(_SEG_CACHE) > SEGMENT_CACHE_SIZE:
                _SEG_CACHE.popitem(last=False)
    return probs


def clear_cache() -> None:
    """Forget cached segment scores (benchmarks measure cold latency with it)."""
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


def raw_document_scores(
    texts: Sequence[str], use_model: bool = True, backend: str = "auto", remember: bool = True
) -> list[RawScore]:
    """Worst segment probability (one embedding batch for all segments of all texts) and rule hits."""
    model = load_model("indirect") if use_model else None
    segs = [segments(t) for t in texts]
    flat = [s for ss in segs for s in ss]
    probs = np.zeros(len(flat))
    if model is not None and flat:
        ctx = np.vstack(
            [np.tile(doc_context(t), (len(ss), 1)) for t, ss in zip(texts, segs, strict=True) if ss]
        )
        probs = _segment_probs(model, flat, ctx, backend, remember)
    out: list[RawScore] = []
    i = 0
    for t, ss in zip(texts, segs, strict=True):
        p = float(probs[i : i + len(ss)].max()) if (model is not None and ss) else (0.0 if model else None)
        i += len(ss)
        out.append(RawScore(p, tuple((h.strong, h.reason) for h in rule_hits(t))))
    return out


def score_documents(
    texts: Sequence[str], use_model: bool = True, threshold: float | None = None, backend: str = "auto"
) -> list[Score]:
    """Indirect-injection score per document: the worst of its segments (one embedding batch for all)."""
    th = effective_threshold("indirect", threshold, use_model)
    return [_combine(r.p, r.hits, th) for r in raw_document_scores(texts, use_model, backend)]


@lru_cache(maxsize=1)
def indirect_version() -> str:
    """Identifies what a precomputed score depends on: the indirect artefact, the rules and segmenting."""
    h = hashlib.blake2b(digest_size=8)
    h.update((ARTEFACT_DIR / "prompt_shield_indirect.npz").read_bytes())
    for r in RULES:
        cased = r.cased.pattern if r.cased is not None else ""
        h.update(f"{r.name}\0{r.pattern.pattern}\0{cased}\0{r.strong}\0{r.reason}\0".encode())
    h.update(f"{SEGMENT_CHARS}:{N_CHAR}:{N_CONTEXT}:{_TABLE_ROW.pattern}".encode())
    return h.hexdigest()


ANNOTATION = f"{PLUGIN}.indirect"


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
        for i, r in zip(todo, raw_document_scores([chunks[i].text for i in todo], use_model, backend), strict=True):
            raw[i] = r
    return [_combine(r.p, r.hits, th) for r in raw if r is not None]


# --- hooks --------------------------------------------------------------------------------------------


def _settings(config: GroundwireConfig) -> dict[str, Any]:
    return config.plugin_settings(PLUGIN)


def embedder_backend(config: GroundwireConfig) -> str:
    """The MiniLM backend retrieval uses, so the shield shares its prompt embedding and loaded model."""
    e = config.embedder
    if e.name == "minilm" and not e.options.get("path"):
        return str(e.options.get("backend", "auto"))
    return "auto"


@hookimpl
def screen_prompt(request: GroundingRequest, config: GroundwireConfig) -> Verdict | None:
    s = _settings(config)
    if not s.get("direct", True):
        return None
    threshold = s.get("threshold")
    use_model = bool(s.get("use_model", True))
    try:
        sc = score_prompts([request.prompt], use_model, threshold, embedder_backend(config))[0]
        th = effective_threshold("direct", threshold, use_model)
    except (OSError, ImportError) as exc:  # model unavailable: rules still apply
        log.warning("prompt shield model unavailable, using rules only: %s", exc)
        sc = score_prompts([request.prompt], False)[0]
        sc = Score(sc.score, sc.reason + "; classifier unavailable")
        th = effective_threshold("direct", None, False)
    action = Action.BLOCK if sc.score >= th else Action.ALLOW
    return Verdict(stage="prompt", plugin=PLUGIN, action=action, score=round(sc.score, 4), reason=sc.reason)


@hookimpl
def annotate_chunks(chunks: Sequence[Chunk], config: GroundwireConfig) -> dict[str, dict[str, Any]] | None:
    """Precompute the indirect screening of new chunks at ingestion (``precompute``, default on), so a
    request only applies the threshold to stored results. Costs about one more embedding pass at sync."""
    s = _settings(config)
    if not (s.get("indirect", True) and s.get("use_model", True) and s.get("precompute", True)) or not chunks:
        return None
    try:
        raw = raw_document_scores([c.text for c in chunks], True, embedder_backend(config), remember=False)
    except (OSError, ImportError) as exc:  # scored at query time instead
        log.warning("prompt shield could not precompute chunk scores: %s", exc)
        return None
    version = indirect_version()
    return {c.id: {ANNOTATION: {"v": version, **r.to_json()}} for c, r in zip(chunks, raw, strict=True)}


@hookimpl
def screen_documents(
    request: GroundingRequest, chunks: Sequence[Chunk], config: GroundwireConfig
) -> list[Verdict]:
    s = _settings(config)
    if not s.get("indirect", True) or not chunks:
        return []
    name = str(s.get("document_action", "drop"))
    if name not in (Action.DROP, Action.QUARANTINE):
        raise config.error(
            f"plugins.settings.{PLUGIN}.document_action",
            f"unknown action {name!r}",
            "use 'drop' or 'quarantine'",
        )
    action = Action(name)
    threshold = s.get("document_threshold")
    use_model = bool(s.get("use_model", True))
    try:
        scores = score_chunks(chunks, use_model, threshold, embedder_backend(config))
        th = effective_threshold("indirect", threshold, use_model)
    except (OSError, ImportError) as exc:
        log.warning("document shield model unavailable, using rules only: %s", exc)
        scores = score_documents([c.text for c in chunks], False)
        th = effective_threshold("indirect", None, False)
    return [
        Verdict(
            stage="documents",
            plugin=PLUGIN,
            action=action,
            score=round(sc.score, 4),
            reason=f"possible planted instruction: {sc.reason}",
            target=c.id,
        )
        for c, sc in zip(chunks, scores, strict=True)
        if sc.score >= th
    ]
