"""Groundedness (``screen_output``): flag draft sentences that their cited sources do not support.

Each sentence of the draft is read with its ``[n]`` markers (``n`` refers to ``draft.citations``, whose
``chunk_id`` names a chunk of ``sources``). A sentence is *unsupported* when it cites nothing, cites a chunk
that is not among the sources, or when its best lexical support among the cited chunks is below
``min_support``: support = share of the sentence's content words (stems of 4+ letters, stop words removed)
found in the cited chunk. One FLAG verdict lists the spans of all unsupported sentences for the reviewer.

Settings ``[plugins.settings.groundedness]``: ``min_support`` (0.5), ``min_words`` (3: shorter sentences,
such as headings or the withheld-sources note, are not checked), ``enabled``.
Invariant: the verdict never blocks or edits the draft; it only points at spans.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from groundwire import Action, Draft, GroundingRequest, GroundwireConfig, Verdict, hookimpl
from groundwire import sentence_spans as _sentence_spans
from groundwire.models import Chunk

__all__ = ["sentence_spans", "support", "unsupported_spans"]

PLUGIN = "groundedness"
_MARKER_RE = re.compile(r"\[(\d+)\]")
_WORD_RE = re.compile(r"\w+")
_STOP = frozenset(
    [
        "about",
        "above",
        "after",
        "also",
        "been",
        "before",
        "being",
        "both",
        "could",
        "does",
        "doing",
        "during",
        "each",
        "from",
        "have",
        "having",
        "here",
        "into",
        "itself",
        "more",
        "most",
        "other",
        "over",
        "same",
        "should",
        "some",
        "such",
        "than",
        "that",
        "their",
        "them",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "through",
        "under",
        "until",
        "very",
        "what",
        "when",
        "where",
        "which",
        "while",
        "will",
        "with",
        "would",
        "your",
        "yours",
    ]
)


def _stems(text: str) -> set[str]:
    return {
        w[:6] for w in _WORD_RE.findall(text.casefold()) if (len(w) >= 4 or w.isdigit()) and w not in _STOP
    }


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """Character spans of the sentences of ``text``, each including its trailing ``[n]`` markers
    (``groundwire.sentence_spans``, the splitter the extractive generator uses too)."""
    return _sentence_spans(text)


def support(sentence: str, chunk_text: str) -> float:
    """Share of the sentence's content words present in the chunk (0..1)."""
    words = _stems(_MARKER_RE.sub(" ", sentence))
    if not words:
        return 1.0
    return len(words & _stems(chunk_text)) / len(words)


def unsupported_spans(
    draft: Draft, sources: Sequence[Chunk], min_support: float = 0.5, min_words: int = 3
) -> list[tuple[int, int, str]]:
    by_id = {c.id: c for c in sources}
    cited = {c.n: by_id.get(c.chunk_id) for c in draft.citations}
    out: list[tuple[int, int, str]] = []
    for start, end in sentence_spans(draft.text):
        sent = draft.text[start:end]
        body = _MARKER_RE.sub(" ", sent)
        if len(_WORD_RE.findall(body.casefold())) < min_words or body.strip().startswith("("):
            continue
        refs = [int(n) for n in _MARKER_RE.findall(sent)]
        if not refs:
            out.append((start, end, "uncited"))
            continue
        chunks = [cited.get(n) for n in refs]
        if not any(chunks):
            out.append((start, end, "unknown_citation"))
            continue
        best = max(support(body, c.text) for c in chunks if c is not None)
        if best < min_support:
            out.append((start, end, "unsupported"))
    return out


@hookimpl
def screen_output(
    request: GroundingRequest, draft: Draft, sources: Sequence[Chunk], config: GroundwireConfig
) -> Verdict | None:
    s = config.plugin_settings(PLUGIN)
    if not s.get("enabled", True) or not draft.citations and not sources:
        return None
    spans = unsupported_spans(draft, sources, float(s.get("min_support", 0.5)), int(s.get("min_words", 3)))
    if not spans:
        return None
    n = len(sentence_spans(draft.text)) or 1
    return Verdict(
        stage="output",
        plugin=PLUGIN,
        action=Action.FLAG,
        score=round(len(spans) / n, 3),
        reason=f"{len(spans)} sentence(s) not supported by their cited sources",
        spans=tuple(spans),
    )
