"""Citations: turn ``[n]`` markers into numbered :class:`~groundwire.models.Citation` objects.

Markers are renumbered by first appearance; markers pointing outside the sources are removed (a
generator cannot cite what it was not given). The snippet is the sentence of the cited chunk that best
matches the claim before the marker, so a reviewer sees the supporting text at a glance.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from groundwire import Citation, GroundingRequest, GroundwireConfig, hookimpl
from groundwire.chunking import split_sentences
from groundwire.models import Chunk

MARKER_RE = re.compile(r"\s?\[(\d+(?:\s*,\s*\d+)*)\]")
_WORD_RE = re.compile(r"\w+")
SNIPPET_CHARS = 280


def _words(text: str) -> set[str]:
    return {w for w in _WORD_RE.findall(text.casefold()) if len(w) > 2}


def best_snippet(claim: str, chunk_text: str) -> str:
    """The sentence of ``chunk_text`` sharing most words with ``claim`` (trimmed to a snippet)."""
    sentences = split_sentences(chunk_text) or [chunk_text]
    want = _words(claim)
    best = max(sentences, key=lambda s: len(want & _words(s)) / (1 + len(_words(s)) ** 0.5))
    return best if len(best) <= SNIPPET_CHARS else best[: SNIPPET_CHARS - 1].rstrip() + "…"


@hookimpl(trylast=True)
def cite(
    request: GroundingRequest, text: str, sources: Sequence[Chunk], config: GroundwireConfig
) -> tuple[str, list[Citation]]:
    numbers: dict[str, int] = {}  # chunk id -> citation number
    citations: list[Citation] = []
    out: list[str] = []
    last = 0
    for m in MARKER_RE.finditer(text):
        out.append(text[last : m.start()])
        claim = text[last : m.start()].rsplit("]", 1)[-1]
        refs: list[int] = []
        for raw in m.group(1).split(","):
            i = int(raw) - 1
            if not 0 <= i < len(sources):
                continue
            chunk = sources[i]
            if chunk.id not in numbers:
                numbers[chunk.id] = len(citations) + 1
                citations.append(
                    Citation(
                        n=numbers[chunk.id],
                        title=chunk.title,
                        uri=chunk.uri,
                        snippet=best_snippet(claim, chunk.text),
                        location=chunk.location,
                        doc_id=chunk.doc_id,
                        chunk_id=chunk.id,
                        connector=chunk.connector,
                    )
                )
            if numbers[chunk.id] not in refs:
                refs.append(numbers[chunk.id])
        if refs:
            out.append(" " + "".join(f"[{n}]" for n in refs))
        last = m.end()
    out.append(text[last:])
    return "".join(out), citations
