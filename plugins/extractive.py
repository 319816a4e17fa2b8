"""The offline extractive generator (default): no model, no keys, no network.

It writes the draft from the sentences of the permitted sources that best answer the prompt: every
sentence of every source is embedded with the configured embedder and scored by cosine similarity to the
prompt, plus a small bonus for shared words; the best ``max_sentences`` above the similarity floor are
kept, at most ``per_source`` from one source, and each is followed by the ``[n]`` of its source. It never
writes a word that is not in a source, so every sentence of its draft is grounded by construction.

Sentence vectors are computed once, at ``groundwire sync`` (the ``annotate_chunks`` hook stores the chunk's
sentences and their float16 vectors with the chunk, tagged with the embedder's ``model_id``), so a request
embeds only the prompt; a chunk without a current annotation (indexed before, or by another embedder) has
its sentences embedded when it is retrieved.

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
    split_sentences,
)
from groundwire.models import Chunk

PLUGIN = "extractive"
ANNOTATION = "extractive"
_VERSION = 1
_MIN_CHARS = 12

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
            fresh = emb.embed_documents([candidates[i][2] for i in todo])
            for i, v in zip(todo, fresh, strict=True):
                rows[i] = v
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


def stored_sentences(chunk: Chunk, model_id: str) -> tuple[list[str], np.ndarray] | None:
    """The chunk's sentences and vectors computed at sync, or ``None`` when absent or made by another
    embedder (or another version of this plugin, or malformed: then they are recomputed, never trusted)."""
    note = (chunk.annotations or {}).get(ANNOTATION)
    if not isinstance(note, Mapping) or note.get("v") != _VERSION or note.get("model") != model_id:
        return None
    sents, raw, dim = note.get("sentences"), note.get("vectors"), note.get("dim")
    if not isinstance(sents, list) or not isinstance(raw, str) or not isinstance(dim, int) or dim <= 0:
        return None
    try:
        vecs = np.frombuffer(base64.b64decode(raw, validate=True), dtype=np.float16).reshape(-1, dim)
    except (ValueError, TypeError):
        return None
    if len(vecs) != len(sents) or not all(isinstance(x, str) for x in sents):
        return None
    return [str(x) for x in sents], vecs.astype(np.float32)


@hookimpl
def annotate_chunks(
    chunks: Sequence[Chunk], config: GroundwireConfig, embedder: Embedder
) -> Mapping[str, Mapping[str, Any]] | None:
    """At sync: the sentences of each chunk and their vectors (float16), for the extractive generator."""
    if config.generator.name != PLUGIN or not chunks:
        return None
    per = [candidate_sentences(c.text) for c in chunks]
    flat = [s for ss in per for s in ss]
    parts: list[np.ndarray | None]
    try:
        vecs = np.asarray(embedder.embed_documents(flat), dtype=np.float16) if flat else None
        starts = np.cumsum([0, *(len(ss) for ss in per)])
        parts = [vecs[a:b] if vecs is not None else np.zeros((0, 1), np.float16)
                 for a, b in zip(starts[:-1], starts[1:], strict=True)]
    except Exception:  # noqa: BLE001 - one bad text must not fail the batch: chunk by chunk, skip failures
        parts = []
        for ss in per:
            try:
                parts.append(np.asarray(embedder.embed_documents(ss), dtype=np.float16) if ss
                             else np.zeros((0, 1), np.float16))
            except Exception:  # noqa: BLE001 - no annotation: the generator embeds its sentences when retrieved
                parts.append(None)
    out: dict[str, dict[str, Any]] = {}
    for c, ss, part in zip(chunks, per, parts, strict=True):
        if part is None:
            continue
        out[c.id] = {ANNOTATION: {"v": _VERSION, "model": embedder.model_id, "dim": int(embedder.dimension),
                                  "sentences": ss, "vectors": base64.b64encode(part.tobytes()).decode()}}
    return out


@hookimpl
def register_generators(register: Any) -> None:
    register(ExtractiveGenerator)
