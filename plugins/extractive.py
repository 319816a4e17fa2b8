"""The offline extractive generator (default): no model, no keys, no network.

It writes the draft from the sentences of the permitted sources that best answer the prompt: every
sentence of every source is embedded with the configured embedder and scored by cosine similarity to the
prompt, plus a small bonus for shared words; the best ``max_sentences`` above the similarity floor are
kept, at most ``per_source`` from one source, and each is followed by the ``[n]`` of its source. It never
writes a word that is not in a source, so every sentence of its draft is grounded by construction.

The floor is calibrated per embedder and per prompt: a sentence must be more similar to the prompt than
any of :data:`UNRELATED` (everyday sentences about nothing a knowledge base holds) is, plus ``margin``
(0.05). Cosine scales differ between embedders (MiniLM's unrelated pairs score ~0.1, a hashing
embedder's ~0), so a fixed number suits one embedder only. ``min_similarity`` set explicitly replaces
the calibrated floor.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np
from groundwire import Generation, Generator, GeneratorContext, GroundingRequest, hookimpl, split_sentences
from groundwire.models import Chunk

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
        candidates: list[tuple[int, int, str]] = []  # (source index, position, sentence)
        seen: set[str] = set()
        for si, chunk in enumerate(sources):
            for pos, sent in enumerate(split_sentences(chunk.text)):
                key = sent.casefold()
                if len(sent) < 12 or key in seen:
                    continue
                seen.add(key)
                candidates.append((si, pos, sent))
        if not candidates:
            return Generation(text="", model=self.name)
        emb = self.context.embedder
        q = emb.embed_query(request.prompt)
        sv = emb.embed_documents([s for _, _, s in candidates])
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
            body = sent.rstrip()
            parts.append(f"{body} [{si + 1}]")
        return Generation(text=" ".join(parts), model=self.name)


@hookimpl
def register_generators(register: Any) -> None:
    register(ExtractiveGenerator)
