"""The offline extractive generator (default): no model, no keys, no network.

It writes the draft from the sentences of the permitted sources that best answer the prompt: every
sentence of every source is embedded with the configured embedder and scored by cosine similarity to the
prompt, plus a small bonus for shared words; the best ``max_sentences`` above ``min_similarity`` are
kept, at most ``per_source`` from one source, and each is followed by the ``[n]`` of its source. It never
writes a word that is not in a source, so every sentence of its draft is grounded by construction.
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


class ExtractiveGenerator(Generator):
    """Options: ``max_sentences`` (4), ``per_source`` (2), ``min_similarity`` (0.3)."""

    name = "extractive"

    def __init__(
        self, context: GeneratorContext, max_sentences: int = 4, per_source: int = 2, min_similarity: float = 0.3
    ) -> None:
        super().__init__(context, max_sentences=max_sentences, per_source=per_source, min_similarity=min_similarity)
        self.max_sentences = max_sentences
        self.per_source = per_source
        self.min_similarity = min_similarity

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
        qwords = _content_words(request.prompt)
        scores = []
        for (si, _, sent), sim in zip(candidates, sims, strict=True):
            overlap = len(qwords & _content_words(sent)) / (len(qwords) or 1)
            scores.append(float(sim) + 0.15 * overlap - 0.01 * si)
        picked: list[int] = []
        per: dict[int, int] = {}
        for i in np.argsort(scores)[::-1]:
            si = candidates[i][0]
            if float(sims[i]) < self.min_similarity or len(picked) >= self.max_sentences:
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
