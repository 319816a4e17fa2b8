"""The offline extractive generator (default): no model, no keys, no network.

It writes the draft from the sentences of the permitted sources that best answer the prompt: every
sentence of every source is embedded with the configured embedder and scored by cosine similarity to the
prompt, plus a small bonus for shared words; the best ``max_sentences`` above the similarity floor are
kept, at most ``per_source`` from one source, and each is followed by the ``[n]`` of its source. It never
writes a word that is not in a source, so every sentence of its draft is grounded by construction.

Sentence vectors are computed once, at ``groundwire sync`` (the ``annotate_chunks`` hook stores where the
chunk's sentences lie and their vectors with the chunk, tagged with the embedder's ``model_id``), so a request
embeds only the prompt; a chunk without a current annotation (indexed before, or by another embedder) has
its sentences embedded when it is retrieved, the same way.

No second model pass at sync: the hook takes ingestion's ``sentence_vectors``, read from the chunk's own
model run when the embedder pools spans (late chunking, the ONNX MiniLM). A late-chunked sentence vector
carries its chunk's context (on SciFact the sentences of one chunk are 0.79 cosine to each other, against
0.48 embedded alone), so the stored vector is :func:`decontextualise`'d: the chunk's index vector times
:data:`CONTEXT_WEIGHT` (0.4) is subtracted and the row renormalised, which takes out the shared part (0.53).
``benchmarks.sentence_vectors`` picked 0.4 against sentences embedded alone on SciFact: the same sentence
rerank nDCG@10 (0.8250 vs 0.8248), as many drafts quoting a relevant abstract (0.813 vs 0.817) and as few
off-topic questions drafted; pure late chunking ranks as well but tells a chunk's sentences apart less and
drafts more off-topic questions. Sentences embedded alone (an embedder that does not pool spans) are stored
as they are.

Stored form (version 3): the candidate sentences as ``[start, end]`` spans into the chunk text (the text is
already in the payload; the sentences themselves only when they are not spans of it), and each vector as
int8 with its own float32 scale (``max |x| / 127``), renormalised when read: ~1.5 KB per chunk of 384-d
vectors instead of ~2.9 KB of float16 and ~0.6 KB of repeated sentence text (the payload Chroma stores per
chunk shrank from ~7.5 KB to ~4 KB encrypted). ``benchmarks.sentence_vectors`` compares the drafts and
groundedness decisions made from int8 and from float16 vectors (the ``-f16`` row). Version 2 annotations
(float16, sentences as text) are still read; the next sync re-annotates them (``annotation_versions``).

The floor is calibrated per embedder and per prompt: a sentence must be more similar to the prompt than
any of :data:`UNRELATED` (everyday sentences about nothing a knowledge base holds) is, plus ``margin``
(0.05). Cosine scales differ between embedders (MiniLM's unrelated pairs score ~0.1, a hashing
embedder's ~0), so a fixed number suits one embedder only. ``min_similarity`` set explicitly replaces
the calibrated floor.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from groundwire import (
    Embedder,
    Generation,
    Generator,
    GeneratorContext,
    GroundingRequest,
    GroundwireConfig,
    hookimpl,
    sentence_spans,
    split_sentences,
)
from groundwire.models import Chunk

PLUGIN = "extractive"
ANNOTATION = "extractive"
_VERSION = 3  # 2: sentence vectors from the chunk's own run (late chunking, decontextualised); 3: int8, spans
_FLOAT16 = 2  # the version before, still read (float16 vectors, sentences as text)
_MIN_CHARS = 12
#: how much of the chunk's index vector is taken out of a late-chunked sentence vector (see the module docstring)
CONTEXT_WEIGHT = 0.4

_WORD_RE = re.compile(r"\w+")
_STOP = frozenset(
    [
        "the", "a", "an", "and", "or", "of", "to", "in", "on", "for", "is", "are", "was", "were", "be", "by", "with",
        "as", "at", "from", "that", "this", "it", "what", "when", "where", "who", "how", "why", "which", "do", "does",
        "did", "can", "could", "should", "would", "our", "your", "their", "we", "you", "they", "i", "my", "me",
    ]
)


def _content_words(text: str) -> set[str]:
    return {w for w in _WORD_RE.findall(text.casefold()) if w not in _STOP and len(w) > 1}


UNRELATED = (
    "The weather was sunny and warm all weekend.",
    "She baked bread with flour, water and a pinch of salt.",
    "The football match ended in a draw after extra time.",
    "A cat slept on the windowsill in the afternoon sun.",
    "The mountain trail climbs steeply through the pine forest.",
    "He plays the piano every evening after dinner.",
    "The river flooded the meadow after the heavy rain.",
    "Tomatoes grow best in a greenhouse in spring.",
    "The old castle stands on a hill above the village.",
    "They watched a film about dinosaurs at the cinema.",
    "The recipe calls for two eggs and a cup of sugar.",
    "Birds migrate south when the days get shorter.",
    "The band played their new song at the festival.",
    "A gentle breeze moved the leaves of the oak tree.",
    "The children built a sandcastle on the beach.",
    "Coffee beans are roasted before they are ground.",
)


class ExtractiveGenerator(Generator):
    """Options: ``max_sentences`` (4), ``per_source`` (2), ``min_similarity`` (calibrated; see the module
    docstring), ``margin`` (0.05)."""

    name = "extractive"

    def __init__(
        self,
        context: GeneratorContext,
        max_sentences: int = 4,
        per_source: int = 2,
        min_similarity: float | None = None,
        margin: float = 0.05,
    ) -> None:
        super().__init__(context, max_sentences=max_sentences, per_source=per_source, min_similarity=min_similarity,
                         margin=margin)
        self.max_sentences = max_sentences
        self.per_source = per_source
        self.min_similarity = min_similarity
        self.margin = margin
        self._unrelated: np.ndarray | None = None

    def floor(self, query_vector: np.ndarray) -> float:
        """The similarity a sentence must reach for this prompt (see the module docstring)."""
        if self.min_similarity is not None:
            return self.min_similarity
        if self._unrelated is None:
            self._unrelated = self.context.embedder.embed_documents(list(UNRELATED))
        return float(np.max(self._unrelated @ query_vector)) + self.margin

    def generate(self, request: GroundingRequest, sources: Sequence[Chunk]) -> Generation:
        emb = self.context.embedder
        candidates: list[tuple[int, int, str]] = []  # (source index, position, sentence)
        rows: list[np.ndarray | None] = []  # the stored vector of each candidate, None = embed now
        seen: set[str] = set()
        for si, chunk in enumerate(sources):
            stored = stored_sentences(chunk, emb.model_id)
            sents, vecs = stored if stored is not None else (candidate_sentences(chunk.text), None)
            for pos, sent in enumerate(sents):
                key = sent.casefold()
                if key in seen:
                    continue
                seen.add(key)
                candidates.append((si, pos, sent))
                rows.append(vecs[pos] if vecs is not None else None)
        if not candidates:
            return Generation(text="", model=self.name)
        q = emb.embed_query(request.prompt)
        todo = [i for i, r in enumerate(rows) if r is None]
        if todo:
            need = sorted({candidates[i][0] for i in todo})
            fresh = _sentence_vectors([sources[si] for si in need], emb)
            by_text = {(si, sent.casefold()): v for si, (sents, vs) in zip(need, fresh, strict=True)
                       for sent, v in zip(sents, vs, strict=True)}
            for i in todo:
                si, _, sent = candidates[i]
                rows[i] = by_text[(si, sent.casefold())]
        sv = np.vstack([np.asarray(r, dtype=np.float32) for r in rows])
        sims = sv @ q
        floor = self.floor(q)
        qwords = _content_words(request.prompt)
        scores = []
        for (si, _, sent), sim in zip(candidates, sims, strict=True):
            overlap = len(qwords & _content_words(sent)) / (len(qwords) or 1)
            scores.append(float(sim) + 0.15 * overlap - 0.01 * si)
        picked: list[int] = []
        per: dict[int, int] = {}
        for i in np.argsort(scores)[::-1]:
            si = candidates[i][0]
            if float(sims[i]) < floor or len(picked) >= self.max_sentences:
                break
            if per.get(si, 0) >= self.per_source:
                continue
            per[si] = per.get(si, 0) + 1
            picked.append(int(i))
        # keep the source order and the order of sentences within a source: easier to read
        picked.sort(key=lambda i: (candidates[i][0], candidates[i][1]))
        parts = []
        for i in picked:
            si, _, sent = candidates[i]
            body = " ".join(sent.split())  # a hard-wrapped sentence on one line
            parts.append(f"{body} [{si + 1}]")
        return Generation(text=" ".join(parts), model=self.name)


def candidate_sentences(text: str) -> list[str]:
    """The sentences of a chunk the generator may quote (shorter ones carry no answer)."""
    return [s for s in split_sentences(text) if len(s) >= _MIN_CHARS]


def _stored_texts(note: Mapping[str, Any], text: str) -> list[str] | None:
    """The sentences of a stored annotation: its ``spans`` into ``text`` (version 3), else its ``sentences``."""
    spans = note.get("spans")
    if spans is None:
        sents = note.get("sentences")
        return [str(x) for x in sents] if isinstance(sents, list) and all(isinstance(x, str) for x in sents) \
            else None
    if not isinstance(spans, list):
        return None
    out = []
    for sp in spans:
        if not (isinstance(sp, list) and len(sp) == 2 and all(type(x) is int for x in sp)
                and 0 <= sp[0] < sp[1] <= len(text)):
            return None
        out.append(text[sp[0] : sp[1]].strip())
    return out


def stored_sentences(chunk: Chunk, model_id: str) -> tuple[list[str], np.ndarray] | None:
    """The chunk's sentences and vectors computed at sync, or ``None`` when absent or made by another
    embedder (or another version of this plugin, or malformed: then they are recomputed, never trusted)."""
    note = (chunk.annotations or {}).get(ANNOTATION)
    if not isinstance(note, Mapping) or note.get("v") not in (_VERSION, _FLOAT16) or note.get("model") != model_id:
        return None
    raw, dim, old = note.get("vectors"), note.get("dim"), note.get("v") == _FLOAT16
    sents = _stored_texts({"sentences": note.get("sentences")} if old else note, chunk.text)
    if sents is None or not isinstance(raw, str) or not isinstance(dim, int) or dim <= 0:
        return None
    try:
        if old:
            vecs = np.frombuffer(base64.b64decode(raw, validate=True), dtype=np.float16).reshape(-1, dim)
            out = vecs.astype(np.float32)
        else:
            q = np.frombuffer(base64.b64decode(raw, validate=True), dtype=np.int8).reshape(-1, dim)
            scales = np.frombuffer(base64.b64decode(str(note.get("scales")), validate=True), dtype=np.float32)
            if scales.shape != (len(q),) or not np.all(np.isfinite(scales)):
                return None
            out = q.astype(np.float32) * scales[:, None]
            norms = np.linalg.norm(out, axis=1, keepdims=True)
            out = np.asarray(out / np.where(norms > 0, norms, 1.0), dtype=np.float32)
    except (ValueError, TypeError):
        return None
    if len(out) != len(sents):
        return None
    return sents, out


def decontextualise(sentence_vectors: np.ndarray, chunk_vector: np.ndarray,
                    weight: float = CONTEXT_WEIGHT) -> np.ndarray:
    """Late-chunked sentence vectors with ``weight`` x their chunk's vector taken out, unit length again."""
    out = np.asarray(sentence_vectors, dtype=np.float32) - weight * np.asarray(chunk_vector, dtype=np.float32)
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return np.asarray(out / np.maximum(norms, 1e-12), dtype=np.float32)


def _index_text(chunk: Chunk) -> str:
    """What ingestion embeds for a chunk (``groundwire.ingest.index_text``)."""
    return f"{chunk.title}\n{chunk.text}" if chunk.title else chunk.text


def _keep(sentences: Sequence[str], vectors: np.ndarray, chunk_vector: np.ndarray | None,
          pooled: bool) -> tuple[list[int], list[str], np.ndarray]:
    """The candidate sentences (:func:`candidate_sentences`) of ingestion's sentences, their indexes and their
    stored vectors."""
    idx = [i for i, x in enumerate(sentences) if len(x) >= _MIN_CHARS]
    vecs = np.asarray(vectors, dtype=np.float32).reshape(len(sentences), -1)[idx]
    if pooled and chunk_vector is not None and len(idx):
        vecs = decontextualise(vecs, chunk_vector)
    return idx, [sentences[i] for i in idx], vecs


def _spans_of(text: str, sentences: Sequence[str], idx: Sequence[int]) -> list[list[int]] | None:
    """The spans into ``text`` of ``sentences[i]`` for ``i`` in ``idx`` when ``sentences`` are ``text``'s
    (:func:`groundwire.sentence_spans`, stripped: what ingestion passes), else ``None``."""
    spans = sentence_spans(text)
    if len(spans) != len(sentences) or any(text[a:b].strip() != s for (a, b), s in zip(spans, sentences,
                                                                                          strict=True)):
        return None
    return [list(spans[i]) for i in idx]


def _sentence_vectors(chunks: Sequence[Chunk], embedder: Embedder) -> list[tuple[list[str], np.ndarray]]:
    """Each chunk's candidate sentences and vectors computed the way sync computes them: one
    ``embed_with_spans`` call over the chunks' index texts (sentence spans shifted past the title)."""
    texts, spans, sents = [], [], []
    for c in chunks:
        shift = len(c.title) + 1 if c.title else 0
        ss = sentence_spans(c.text)
        texts.append(_index_text(c))
        spans.append([(a + shift, b + shift) for a, b in ss])
        sents.append([c.text[a:b].strip() for a, b in ss])
    if not texts:
        return []
    cvecs, per = embedder.embed_with_spans(texts, spans)
    pooled = bool(getattr(embedder, "pools_spans", False))
    return [_keep(ss, pv, cv, pooled)[1:] for ss, pv, cv in zip(sents, per, cvecs, strict=True)]


def quantize(vecs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``vecs`` as int8 and their float32 scales (``max |x| / 127``; 1 for a zero row)."""
    v = np.asarray(vecs, dtype=np.float32)
    scales = np.max(np.abs(v), axis=1) / 127.0 if len(v) else np.zeros(0, np.float32)
    scales = np.where(scales > 0, scales, 1.0).astype(np.float32)
    q = np.clip(np.rint(v / scales[:, None]), -127, 127).astype(np.int8)
    return q, scales


def _note(embedder: Embedder, sentences: list[str], vecs: np.ndarray, spans: list[list[int]] | None = None,
          storage: str = "int8") -> dict[str, Any]:
    """The stored annotation (version 3: int8 vectors, ``spans`` when given, else the sentences). ``storage =
    "float16"`` writes the version 2 form instead (``benchmarks.sentence_vectors`` compares the two)."""
    dim = int(embedder.dimension)
    part = np.asarray(vecs, dtype=np.float32).reshape(len(sentences), dim)
    head = {"model": embedder.model_id, "dim": dim, "late": bool(getattr(embedder, "pools_spans", False))}
    if storage == "float16":
        return {ANNOTATION: {"v": _FLOAT16, **head, "sentences": sentences,
                             "vectors": base64.b64encode(part.astype(np.float16).tobytes()).decode()}}
    q, scales = quantize(part)
    where: dict[str, Any] = {"spans": spans} if spans is not None else {"sentences": sentences}
    return {ANNOTATION: {"v": _VERSION, **head, **where, "vectors": base64.b64encode(q.tobytes()).decode(),
                         "scales": base64.b64encode(scales.tobytes()).decode()}}


@hookimpl
def annotate_chunks(
    chunks: Sequence[Chunk], config: GroundwireConfig, embedder: Embedder, vectors: Mapping[str, Any],
    sentence_vectors: Mapping[str, tuple[list[str], np.ndarray]],
) -> Mapping[str, Mapping[str, Any]] | None:
    """At sync: the candidate sentences of each chunk and their vectors (float16), for the extractive generator,
    from ingestion's ``sentence_vectors`` (no model run here); a chunk missing from it (a direct caller) is
    embedded like at query time, chunk by chunk if the batch fails."""
    if config.generator.name != PLUGIN or not chunks:
        return None
    pooled = bool(getattr(embedder, "pools_spans", False))
    out: dict[str, dict[str, Any]] = {}
    missing: list[Chunk] = []
    for c in chunks:
        got = sentence_vectors.get(c.id)
        cv = vectors.get(c.id)
        if got is None or (pooled and cv is None):
            missing.append(c)
            continue
        idx, sents, vecs = _keep(got[0], got[1], None if cv is None else np.asarray(cv, np.float32), pooled)
        out[c.id] = _note(embedder, sents, vecs, _spans_of(c.text, got[0], idx))
    if missing:
        try:
            fresh = _sentence_vectors(missing, embedder)
        except Exception:  # noqa: BLE001 - one bad text must not fail the batch: chunk by chunk, skip failures
            fresh = []
            for c in missing:
                try:
                    fresh.extend(_sentence_vectors([c], embedder))
                except Exception:  # noqa: BLE001 - no annotation: the generator embeds its sentences when retrieved
                    fresh.append(None)  # type: ignore[arg-type]
        for c, item in zip(missing, fresh, strict=True):
            if item is not None:
                kept = [list(sp) for sp in sentence_spans(c.text) if len(c.text[sp[0]:sp[1]].strip()) >= _MIN_CHARS]
                out[c.id] = _note(embedder, *item, kept if len(kept) == len(item[0]) else None)
    return out


@hookimpl
def annotation_versions(config: GroundwireConfig, embedder: Embedder) -> dict[str, dict[str, Any]] | None:
    """A current annotation has this version and the embedder's model id (what :func:`stored_sentences`
    checks); none is expected when the extractive generator is not the configured one."""
    if config.generator.name != PLUGIN:
        return None
    return {ANNOTATION: {"v": _VERSION, "model": embedder.model_id}}


@hookimpl
def register_generators(register: Any) -> None:
    register(ExtractiveGenerator)
