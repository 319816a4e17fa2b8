"""The learned part of the shield: character features, MiniLM embeddings and a numpy logistic regression.

Weights ship next to this module as ``prompt_shield_{direct,indirect}.npz`` (written by
``benchmarks/train_prompt_shield.py``) and are loaded offline, once per process.

Invariants: the order of :func:`char_features` is part of the artefact format (``N_CHAR`` columns); the
model never sees raw text, only :func:`~.normalize.for_model` output (its invisible-character and homoglyph
flags included), so no transform that normalisation undoes can change a score; the rules see hidden
characters.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from .normalize import INVISIBLE, count_chars, homoglyph_words
from .rules import rule_hits

__all__ = [
    "ARTEFACT_DIR",
    "N_CHAR",
    "ShieldModel",
    "char_features",
    "effective_threshold",
    "embed",
    "embed_spans",
    "fit_logistic",
    "load_model",
]

ARTEFACT_DIR = Path(__file__).parent
_TOKEN_RE = re.compile(r"\S+")
_WORDLIKE = re.compile(r"^[\"'(]?[A-Za-z][a-z]*(?:[-'][a-z]+)*[.,;:!?\"')]*$")
_B64_RUN = re.compile(r"[A-Za-z0-9+/]{24,}={0,2}")
_BRACKETS = "{}[]<>()\\|`^~"
N_CHAR = 14


def char_features(text: str, raw: str | None = None) -> np.ndarray:
    """Cheap features: length, symbol/digit/upper ratios, gibberish-token share, invisible characters, ...

    ``text`` is what the model reads; ``raw`` (the text as received) is accepted for callers but unused; the
    invisible and homoglyph flags come from ``text``. Their order is part of the artefact format.
    """
    del raw  # the model reads only the normalised text (see the module invariants)
    n = max(len(text), 1)
    toks = _TOKEN_RE.findall(text) or [""]
    letters = count_chars(text, "alpha") or 1
    symbols = count_chars(text, "symbol")
    wordlike = [_WORDLIKE.match(t) is not None for t in toks]
    odd = wordlike.count(False)
    brackets = sum(text.count(c) for c in _BRACKETS)
    hits = rule_hits(text)
    tail = wordlike[-12:]
    tail_odd = tail.count(False) / len(tail)
    f = [
        math.log1p(len(text)) / 8.0,
        symbols / n,
        count_chars(text, "digit") / n,
        count_chars(text, "upper") / letters,
        (0 if text.isascii() else sum(1 for c in text if not c.isascii())) / n,
        odd / len(toks),
        tail_odd,
        brackets / n * 10,
        # computed on the model's (normalised) text, so always 0 in practice: taken from the raw text they let
        # zero-width characters *lower* the score of a model that saw them in benign training text
        float(INVISIBLE.search(text) is not None),
        float(not text.isascii() and homoglyph_words(text) > 0),  # an ASCII text has no mixed-script word
        float(_B64_RUN.search(text) is not None),
        float(any(h.strong for h in hits)),
        float(len(hits)) / 3.0,
        text.count("\n") / n * 10,
    ]
    return np.asarray(f, dtype=np.float32)


def embed(texts: Sequence[str], backend: str = "auto") -> np.ndarray:
    """MiniLM sentence embeddings (unit length), the bundled model loaded once per process.

    A single text (the prompt) goes through the shared query memo, so retrieval does not embed it again
    when it uses the same backend.
    """
    from groundwire.plugins.embedders import bundled_model_path, load_sentence_transformer, query_embedding

    if len(texts) == 1:
        return query_embedding(bundled_model_path(), backend, texts[0]).reshape(1, -1)
    model = load_sentence_transformer(bundled_model_path(), backend)
    vecs = model.encode(
        list(texts), batch_size=64, normalize_embeddings=True, show_progress_bar=False, convert_to_numpy=True
    )
    return np.asarray(vecs, dtype=np.float32)


def embed_spans(
    texts: Sequence[str], spans: Sequence[Sequence[tuple[int, int]]], backend: str = "auto"
) -> tuple[np.ndarray, list[np.ndarray]]:
    """The bundled MiniLM's vectors of ``texts`` and, from the same run, one vector per character span of
    each (late chunking, ``encode_spans`` of the ONNX backends). The torch backend cannot pool spans: each
    span is then embedded on its own (a different vector space from the one a late head was trained in;
    warned once)."""
    from groundwire.plugins.embedders import bundled_model_path, load_sentence_transformer

    model = load_sentence_transformer(bundled_model_path(), backend)
    if hasattr(model, "encode_spans"):
        vecs, per = model.encode_spans(list(texts), spans, batch_size=64)
        return np.asarray(vecs, np.float32), [np.asarray(p, np.float32) for p in per]
    _warn_no_spans()
    vecs = embed(list(texts) + ["", ""], backend)[: len(texts)]
    flat = [t[a:b].strip() or t for t, ss in zip(texts, spans, strict=True) for a, b in ss]
    got = embed(flat + ["", ""], backend)[: len(flat)] if flat else np.zeros((0, vecs.shape[1]), np.float32)
    out, k = [], 0
    for ss in spans:
        out.append(got[k : k + len(ss)])
        k += len(ss)
    return vecs, out


@lru_cache(maxsize=1)
def _warn_no_spans() -> None:
    import logging

    logging.getLogger("groundwire.plugins.prompt_shield").warning(
        "the torch MiniLM backend cannot read sentence vectors from the chunk's own run; the document shield "
        "embeds each sentence alone (scores differ from the ONNX backend's)")


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
    """The shipped artefact ``prompt_shield_<kind>.npz`` in this class's format (``indirect``; the direct
    artefact is a :class:`~.direct_model.DirectModel`, see :func:`~.direct_model.load_direct`)."""
    with np.load(ARTEFACT_DIR / f"prompt_shield_{kind}.npz") as z:
        return ShieldModel(z["w"], float(z["b"]), z["mu"], z["sd"], float(z["threshold"]))


def effective_threshold(kind: str, threshold: float | None, use_model: bool) -> float:
    """The configured threshold, else the artefact's; 0.5 when only the rules score (they give 0 or 0.99).

    The threshold governs the classifier only: a strong rule hit blocks whatever it is."""
    if threshold is not None:
        return threshold
    if not use_model:
        return 0.5
    if kind == "direct":  # the direct artefact has its own format (see .direct_model)
        from .direct_model import load_direct

        return load_direct().threshold
    if kind == "indirect":
        from .indirect_model import load_indirect  # the unit head (indirect_model imports this module)

        return load_indirect().threshold
    return load_model(kind).threshold


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
