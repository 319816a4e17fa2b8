"""What ingestion embeds for a batch and how: one ``embed_with_spans`` call for the chunk vectors and the sentence
vectors of the chunks to be annotated.

Invariants:
- A chunk's index text is ``title + "\\n" + text`` (the text alone when untitled): :func:`index_text`.
- Its sentences are :func:`groundwire.split_sentences` of the chunk text, all of them, and their spans are
  shifted past the title prefix so they point into the index text (:func:`index_text_spans`).
- :func:`embed_chunks` sends each distinct ``(title, text)`` once, in one embedder call: the chunks to be
  annotated (no reusable stored annotations) with their sentence spans, the others only when their index text
  has no stored vector, without spans. With an embedder that pools spans (the ONNX MiniLM) that is one model
  pass for the chunk and its sentences.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .chunking import chunk_document
from .embedding import Embedder, Vectors
from .ingest_reuse import Reuse
from .models import Chunk, Document
from .sentences import sentence_spans

__all__ = ["Embedded", "embed_chunks", "index_text", "index_text_spans", "split_ahead"]

#: ``(title, text)`` -> (the text's sentences, their vectors ``(len(sentences), dimension)``)
Embedded = dict[tuple[str, str], tuple[list[str], Vectors]]


def index_text(chunk: Chunk) -> str:
    """The text a chunk's index vector embeds: its title and text (the text alone when untitled)."""
    return f"{chunk.title}\n{chunk.text}" if chunk.title else chunk.text


def index_text_spans(title: str, text: str) -> tuple[list[str], list[tuple[int, int]]]:
    """The sentences of ``text`` (:func:`groundwire.split_sentences`) and their character spans in the index
    text of a chunk with this title and text (shifted past ``title + "\\n"``)."""
    shift = len(title) + 1 if title else 0
    spans = sentence_spans(text)
    return [text[a:b].strip() for a, b in spans], [(a + shift, b + shift) for a, b in spans]


def split_ahead(doc: Document, connector: str, tenant: str, size: int, overlap: int) -> None:
    """Split the sentences of ``doc``'s chunks now (in ingestion's producer thread, while the previous batch
    embeds): :func:`~groundwire.sentences.sentence_spans` caches them per text, so the embedding step finds
    them ready. Only a warm-up: any error is left for the embedding step to report."""
    try:
        for c in chunk_document(doc, connector, tenant, size, overlap):
            sentence_spans(c.text)
    except Exception:  # noqa: BLE001 - reported (and the item skipped) where the chunks are really made
        return


def embed_chunks(
    embedder: Embedder, chunks: Sequence[Chunk], reuse: Reuse, annotating: bool, sentences: Embedded
) -> tuple[dict[str, Any], int]:
    """Embed what ``chunks`` need in one call (see the module docstring): returns index text -> fresh vector
    and how many texts were embedded; the sentence vectors of the chunks to be annotated (``annotating``) are
    added to ``sentences``."""
    jobs: dict[tuple[str, str], bool] = {}  # (title, text) -> its sentence vectors are needed
    covered: set[str] = set()
    for c in chunks:
        t, key = index_text(c), (c.title, c.text)
        if annotating and reuse.annotations(c) is None:
            jobs[key] = True
            covered.add(t)
        elif reuse.vector(t) is None and t not in covered and key not in jobs:
            jobs[key] = False
            covered.add(t)
    if not jobs:
        return {}, 0
    keys = list(jobs)
    todo = [f"{ti}\n{tx}" if ti else tx for ti, tx in keys]
    split = [index_text_spans(*k) if jobs[k] else ([], []) for k in keys]
    vecs, per = embedder.embed_with_spans(todo, [sp for _, sp in split])
    dim = embedder.dimension
    for k, (sents, _), sv in zip(keys, split, per, strict=True):
        if jobs[k]:
            sentences[k] = (sents, np.asarray(sv, dtype=np.float32).reshape(len(sents), dim))
    fresh: dict[str, Any] = {}
    for t, v in zip(todo, vecs, strict=True):
        fresh.setdefault(t, v)
    return fresh, len(todo)
