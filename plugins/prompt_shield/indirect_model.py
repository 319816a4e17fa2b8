"""The indirect (retrieved-document) classifier: a small head over vectors ingestion already computes.

A stored chunk is judged by its *units*: its sentences exactly as the extractive generator splits them
(:func:`groundwire.split_sentences`, at least :data:`UNIT_MIN_CHARS` characters; a chunk with none is one
unit, its whole text). Each unit is scored by a logistic regression over

    [unit vector, chunk vector, cos(unit, chunk), char features of the unit, table share of the chunk]

where the *chunk vector* is the chunk's own stored embedding (what ingestion embeds: ``title + "\\n" + text``)
and the unit vectors come from the same embedder. At ``groundwire sync`` the chunk vector is the one ingestion
just computed (``annotate_chunks`` receives it) and the unit vectors go through ingestion's per-batch
memoising embedder, so a sentence the extractive generator also stores is embedded once for both: the
shield's own cost is the head (features and a dot product). The chunk's probability is the max over its
units.

Invariants: vectors are unit-length all-MiniLM-L6-v2 vectors (the head is trained on them; any other
embedder's vectors are never used, the bundled model embeds instead); the char features read the normalised
text (:func:`~.normalize.for_model`); the order of the feature columns is part of the artefact format
(``prompt_shield_indirect.npz``, written by ``benchmarks/train_prompt_shield.py --indirect-sources``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from groundwire import split_sentences

from .model import ARTEFACT_DIR, N_CHAR, char_features
from .normalize import for_model
from .segments import FENCE, TABLE_ROW

__all__ = ["DIM", "MODEL_ID", "N_FEATURES", "UNIT_MIN_CHARS", "IndirectModel", "chunk_probs",
           "embed_text", "load_indirect", "table_share", "units"]

MODEL_ID = "all-MiniLM-L6-v2"  # the vector space the head is trained in
DIM = 384
UNIT_MIN_CHARS = 12  # the extractive generator's candidate sentences (plugins/extractive.py, _MIN_CHARS)
N_FEATURES = 2 * DIM + 1 + N_CHAR + 1


def units(text: str) -> list[str]:
    """The units of a chunk: its sentences as the extractive generator stores them, or the whole text."""
    got = [s for s in split_sentences(text) if len(s) >= UNIT_MIN_CHARS]
    return got or ([text] if text.strip() else [])


def embed_text(text: str, title: str = "") -> str:
    """What ingestion embeds for a chunk (``framework/ingest.py``: the title on its own line first)."""
    return f"{title}\n{text}" if title else text


def table_share(text: str) -> float:
    """Share of the chunk's non-blank lines that are table rows or code fences."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return sum(1 for ln in lines if TABLE_ROW.search(ln) or FENCE.match(ln)) / max(len(lines), 1)


def features(chunk_vec: np.ndarray, unit_vecs: np.ndarray, unit_texts: Sequence[str], chunk_text: str) -> np.ndarray:
    """The raw (unstandardised) feature rows of one chunk's units, in the artefact's column order."""
    k = len(unit_texts)
    cv = np.broadcast_to(np.asarray(chunk_vec, np.float32), (k, DIM))
    uv = np.asarray(unit_vecs, np.float32).reshape(k, DIM)
    cos = (uv * cv).sum(1, keepdims=True)
    chars = np.stack([char_features(for_model(u)) for u in unit_texts]) if k else np.zeros((0, N_CHAR), np.float32)
    tab = np.full((k, 1), table_share(chunk_text), np.float32)
    return np.hstack([uv, cv, cos, chars, tab]).astype(np.float32)


@dataclass(frozen=True, slots=True)
class IndirectModel:
    """A logistic regression, or a one-hidden-layer ReLU network (``w1``/``b1`` set), over :func:`features`
    (the non-vector columns standardised by ``mu`` / ``sd``)."""

    w: np.ndarray
    b: float
    mu: np.ndarray  # over the N_FEATURES - 2*DIM non-vector columns
    sd: np.ndarray
    threshold: float
    w1: np.ndarray | None = None  # N_FEATURES x hidden
    b1: np.ndarray | None = None

    def predict(self, x: np.ndarray) -> np.ndarray:
        h = np.hstack([x[:, : 2 * DIM], (x[:, 2 * DIM :] - self.mu) / self.sd])
        if self.w1 is not None and self.b1 is not None:
            h = np.maximum(h @ self.w1 + self.b1, 0.0)
        z = h @ self.w + self.b
        return 1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))

    def save(self, path: Path) -> None:
        extra = {} if self.w1 is None else {"w1": self.w1.astype(np.float32), "b1": np.asarray(self.b1, np.float32)}
        np.savez(path, w=self.w.astype(np.float32), b=np.float64(self.b), mu=self.mu.astype(np.float32),
                 sd=self.sd.astype(np.float32), threshold=np.float64(self.threshold), layout=np.int64(N_FEATURES),
                 **extra)


@lru_cache(maxsize=1)
def load_indirect() -> IndirectModel:
    """The shipped ``prompt_shield_indirect.npz`` (``OSError`` when absent or of another layout)."""
    with np.load(ARTEFACT_DIR / "prompt_shield_indirect.npz") as z:
        if "layout" not in z or int(z["layout"]) != N_FEATURES:
            raise OSError("prompt_shield_indirect.npz is not a unit-head artefact; retrain it "
                          "(python -m benchmarks.train_prompt_shield --indirect-sources DIR)")
        w1 = z.get("w1")
        b1 = z.get("b1")
        return IndirectModel(z["w"], float(z["b"]), z["mu"], z["sd"], float(z["threshold"]), w1, b1)


Embed = Callable[[Sequence[str]], np.ndarray]


def chunk_probs(
    model: IndirectModel,
    texts: Sequence[str],
    chunk_vecs: Sequence[np.ndarray | None],
    embed_chunks: Embed,
    embed_units: Embed,
    chunk_inputs: Sequence[str] | None = None,
) -> np.ndarray:
    """The classifier's probability per chunk (max over its units).

    ``chunk_vecs[i]``: the chunk's stored embedding, or ``None`` to embed ``chunk_inputs[i]`` (default: the
    text) with ``embed_chunks``; all units of all chunks go to ``embed_units`` in one call."""
    inputs = chunk_inputs if chunk_inputs is not None else texts
    cv: list[np.ndarray | None] = list(chunk_vecs)
    miss = [i for i, v in enumerate(cv) if v is None]
    if miss:
        got = np.asarray(embed_chunks([inputs[i] for i in miss]), np.float32).reshape(len(miss), DIM)
        for i, v in zip(miss, got, strict=True):
            cv[i] = v
    per = [units(t) for t in texts]
    flat = [u for us in per for u in us]
    uv = np.asarray(embed_units(flat), np.float32).reshape(len(flat), DIM) if flat else np.zeros((0, DIM))
    out = np.zeros(len(texts))
    i = 0
    for n, (t, us) in enumerate(zip(texts, per, strict=True)):
        if us:
            vec = cv[n]
            assert vec is not None
            out[n] = float(model.predict(features(vec, uv[i : i + len(us)], us, t)).max())
        i += len(us)
    return out
