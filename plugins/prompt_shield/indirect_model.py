"""The indirect (retrieved-document) classifier: a small head over vectors ingestion already computes.

A stored chunk is judged by its *units*: its sentences exactly as the extractive generator splits them
(:func:`groundwire.sentence_spans`, at least :data:`UNIT_MIN_CHARS` characters; a chunk with none is one
unit, its whole text). Each unit is scored by a logistic regression over

    [unit vector, chunk vector, cos(unit, chunk), char features of the unit, table share of the chunk,
     contrast features of the unit against the chunk's other units (:mod:`.contrast`)]

where the *chunk vector* is the chunk's own stored embedding (what ingestion embeds: ``title + "\n" + text``).
The unit vectors come in one of two spaces, recorded in the artefact (``late``):

* *late* (the shipped head): a sentence's vector is the mean of its tokens' hidden states in the run over the
  chunk's index text (late chunking, ``Embedder.embed_with_spans`` / ONNX ``encode_spans``), so one model
  pass gives the chunk vector and all unit vectors; a chunk without sentence units is one unit whose vector is
  the chunk vector (:func:`chunk_probs_late`). At sync ingestion hands over the sentence vectors of its own
  run (:func:`late_units_from_sentences`); a chunk scored when retrieved needs one ``encode_spans`` run.
* *standalone*: each unit embedded on its own (:func:`chunk_probs`; at sync through ingestion's per-batch
  memo, where the extractive generator's sentence vectors are the same texts).

The chunk's probability is the max over its units. The head is a logistic regression or a one-hidden-layer
ReLU network (the shipped one; ``w1`` / ``b1`` in the artefact).

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
from groundwire import sentence_spans

from .contrast import N_CONTRAST, contrast_features
from .model import ARTEFACT_DIR, N_CHAR, char_features
from .normalize import for_model
from .segments import FENCE, TABLE_ROW

__all__ = ["DIM", "MODEL_ID", "N_FEATURES", "UNIT_MIN_CHARS", "IndirectModel", "chunk_probs",
           "embed_text", "load_indirect", "probs_from_vectors", "sentence_units", "table_share", "unit_spans", "units"]

MODEL_ID = "all-MiniLM-L6-v2"  # the vector space the head is trained in
DIM = 384
UNIT_MIN_CHARS = 12  # the extractive generator's candidate sentences (plugins/extractive.py, _MIN_CHARS)
N_FEATURES = 2 * DIM + 1 + N_CHAR + 1 + N_CONTRAST


def sentence_units(text: str) -> list[int]:
    """Indexes into :func:`groundwire.sentence_spans` (``text``) of the sentences that are units: at least
    :data:`UNIT_MIN_CHARS` characters once stripped."""
    return [i for i, (a, b) in enumerate(sentence_spans(text)) if len(text[a:b].strip()) >= UNIT_MIN_CHARS]


def unit_spans(text: str) -> list[tuple[int, int]]:
    """``(start, end)`` of each unit of a chunk in ``text``: its sentences (:func:`sentence_units`), or the
    whole text when it has none; ``[]`` for a blank text."""
    spans = sentence_spans(text)
    got = [spans[i] for i in sentence_units(text)]
    return got or ([(0, len(text))] if text.strip() else [])


def units(text: str) -> list[str]:
    """The units of a chunk: its sentences as the extractive generator stores them, or the whole text."""
    return [text[a:b].strip() for a, b in unit_spans(text)]


def embed_text(text: str, title: str = "") -> str:
    """What ingestion embeds for a chunk (``framework/ingest.py``: the title on its own line first)."""
    return f"{title}\n{text}" if title else text


def table_share(text: str) -> float:
    """Share of the chunk's non-blank lines that are table rows or code fences."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return sum(1 for ln in lines if TABLE_ROW.search(ln) or FENCE.match(ln)) / max(len(lines), 1)


def features(chunk_vec: np.ndarray, unit_vecs: np.ndarray, unit_texts: Sequence[str], chunk_text: str) -> np.ndarray:
    """The raw (unstandardised) feature rows of one chunk's units, in the artefact's column order: every row
    reads all the chunk's unit vectors (the contrast columns), so a chunk's units are featurised together."""
    k = len(unit_texts)
    cv = np.broadcast_to(np.asarray(chunk_vec, np.float32), (k, DIM))
    uv = np.asarray(unit_vecs, np.float32).reshape(k, DIM)
    cos = (uv * cv).sum(1, keepdims=True)
    chars = np.stack([char_features(for_model(u)) for u in unit_texts]) if k else np.zeros((0, N_CHAR), np.float32)
    tab = np.full((k, 1), table_share(chunk_text), np.float32)
    con = contrast_features(cv[0] if k else np.zeros(DIM, np.float32), uv, unit_texts)
    return np.hstack([uv, cv, cos, chars, tab, con]).astype(np.float32)


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
    late: bool = False  # unit vectors read from the chunk's own model run (see chunk_probs_late)

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
                 late=np.int64(self.late), **extra)


@lru_cache(maxsize=1)
def load_indirect() -> IndirectModel:
    """The shipped ``prompt_shield_indirect.npz`` (``OSError`` when absent or of another layout)."""
    with np.load(ARTEFACT_DIR / "prompt_shield_indirect.npz") as z:
        if "layout" not in z or int(z["layout"]) != N_FEATURES:
            raise OSError("prompt_shield_indirect.npz is not a unit-head artefact; retrain it "
                          "(python -m benchmarks.train_prompt_shield --indirect-sources DIR)")
        w1 = z.get("w1")
        b1 = z.get("b1")
        late = bool(int(z["late"])) if "late" in z else False
        return IndirectModel(z["w"], float(z["b"]), z["mu"], z["sd"], float(z["threshold"]), w1, b1, late)


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
    rows = []
    i = 0
    for n, (t, us) in enumerate(zip(texts, per, strict=True)):
        if us:
            vec = cv[n]
            assert vec is not None
            rows.append((n, features(vec, uv[i : i + len(us)], us, t)))
        i += len(us)
    return _predict_max(model, rows, len(texts))


def probs_from_vectors(
    model: IndirectModel, texts: Sequence[str], chunk_vecs: Sequence[np.ndarray], unit_vecs: Sequence[np.ndarray]
) -> np.ndarray:
    """The classifier's probability per chunk (max over its units) from the chunk's vector and its
    :func:`units`' vectors (``unit_vecs[i]``: ``len(units(texts[i]))`` rows)."""
    rows = [(n, features(chunk_vecs[n], unit_vecs[n], us, t)) for n, t in enumerate(texts) if (us := units(t))]
    return _predict_max(model, rows, len(texts))


def _predict_max(model: IndirectModel, rows: Sequence[tuple[int, np.ndarray]], n: int) -> np.ndarray:
    """``out[i]``: the max of ``model.predict`` over chunk ``i``'s feature rows (0 for chunks without rows).

    Every chunk is still predicted on its own (the same matrix shapes, so the same BLAS path and bit-identical
    probabilities), but only after all features are built: interleaved, OpenBLAS's worker threads spin between
    the head's calls and took the CPU from the feature code on a busy 2-core machine (the precompute was
    several times slower under load, ``benchmarks.prompt_shield_indirect --parts cost``)."""
    out = np.zeros(n)
    for i, x in rows:
        out[i] = float(model.predict(x).max())
    return out


EmbedSpans = Callable[[Sequence[str], Sequence[Sequence[tuple[int, int]]]], tuple[np.ndarray, Sequence[np.ndarray]]]


def late_units_from_sentences(text: str, sentence_vecs: np.ndarray, chunk_vec: np.ndarray) -> np.ndarray | None:
    """A late head's unit vectors from the vectors of *all* the chunk text's sentences (one row per
    :func:`groundwire.sentence_spans` span, read from the chunk's own run, as ingestion passes them), or
    ``None`` when the rows do not match the text's sentences. A chunk without sentence units is one unit
    whose vector is the chunk's own."""
    sv = np.asarray(sentence_vecs, np.float32)
    if sv.ndim != 2 or sv.shape[0] != len(sentence_spans(text)) or sv.shape[1] != DIM:
        return None
    keep = sentence_units(text)
    if keep:
        return sv[keep]
    return np.asarray(chunk_vec, np.float32).reshape(1, DIM) if text.strip() else np.zeros((0, DIM), np.float32)


def chunk_probs_late(
    model: IndirectModel,
    texts: Sequence[str],
    chunk_vecs: Sequence[np.ndarray | None],
    unit_vecs: Sequence[np.ndarray | None],
    embed_spans: EmbedSpans,
    chunk_inputs: Sequence[str] | None = None,
) -> np.ndarray:
    """The probability per chunk for a head trained on *late-chunked* unit vectors: each sentence unit's
    vector is the mean of its tokens' states in the run over the chunk's index text (``chunk_inputs[i]``,
    default the text; it must end with the text, as ``title + "\n" + text`` does), a chunk without
    sentence units is one unit with the chunk's vector. Chunks missing either vector go to one
    ``embed_spans`` call over their index texts, which yields both (one model pass per chunk)."""
    inputs = chunk_inputs if chunk_inputs is not None else texts
    cv = list(chunk_vecs)
    uv = list(unit_vecs)
    miss = [i for i in range(len(texts)) if cv[i] is None or uv[i] is None]
    if miss:
        spans = []
        for i in miss:
            off = len(inputs[i]) - len(texts[i])
            if off < 0 or not inputs[i].endswith(texts[i]):
                raise ValueError("a chunk's index text must end with its text")
            ss = sentence_spans(texts[i])
            spans.append([(ss[k][0] + off, ss[k][1] + off) for k in sentence_units(texts[i])])
        vecs, per = embed_spans([inputs[i] for i in miss], spans)
        for i, v, p in zip(miss, vecs, per, strict=True):
            cv[i] = np.asarray(v, np.float32) if cv[i] is None else cv[i]
            got = np.asarray(p, np.float32).reshape(-1, DIM)
            if not len(got) and texts[i].strip():
                got = np.asarray(cv[i], np.float32).reshape(1, DIM)
            uv[i] = got
    return probs_from_vectors(model, texts, [np.asarray(v, np.float32) for v in cv if v is not None],
                              [np.asarray(u) for u in uv if u is not None])
