"""Split a document's sections into overlapping chunks on paragraph and sentence boundaries.

Invariants: every chunk belongs to exactly one section (so its citation location is exact); no text
of a section is lost (every character lies in at least one chunk); chunks are at most ``size``
characters unless a single word is longer.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from .index import doc_key
from .models import Chunk, Document

__all__ = ["chunk_document", "split_sentences", "split_text"]

_SENT_RE = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])")
_PARA_RE = re.compile(r"\n\s*\n")


def split_sentences(text: str) -> list[str]:
    """A light sentence splitter (no model): splits after ., ! or ? followed by a capital or digit."""
    out: list[str] = []
    for para in _PARA_RE.split(text):
        para = " ".join(para.split())
        if para:
            out.extend(s.strip() for s in _SENT_RE.split(para) if s.strip())
    return out


def _pieces(text: str, size: int) -> Iterator[str]:
    """Sentences, with any sentence longer than ``size`` cut on word boundaries."""
    for sent in split_sentences(text):
        if len(sent) <= size:
            yield sent
            continue
        line = ""
        for word in sent.split(" "):
            if line and len(line) + 1 + len(word) > size:
                yield line
                line = word
            else:
                line = f"{line} {word}" if line else word
        if line:
            yield line


def split_text(text: str, size: int = 800, overlap: int = 120) -> list[str]:
    """Greedy packing of sentences into chunks of at most ``size`` chars, overlapping by whole sentences."""
    chunks: list[str] = []
    cur: list[str] = []
    cur_len = 0
    for piece in _pieces(text, size):
        if cur and cur_len + 1 + len(piece) > size:
            chunks.append(" ".join(cur))
            tail: list[str] = []
            tail_len = 0
            for s in reversed(cur):
                if tail_len + len(s) + 1 > overlap or tail_len + len(s) + 1 + len(piece) > size:
                    break
                tail.insert(0, s)
                tail_len += len(s) + 1
            cur, cur_len = tail, tail_len
        cur.append(piece)
        cur_len += len(piece) + (1 if cur_len else 0)
    if cur:
        chunks.append(" ".join(cur))
    return chunks


def chunk_document(doc: Document, connector: str, tenant: str, size: int = 800, overlap: int = 120) -> list[Chunk]:
    """The chunks of ``doc``; ids are ``<doc key>:<position>`` and stable while the text is unchanged."""
    key = doc_key(connector, doc.id)
    out: list[Chunk] = []
    for section in doc.sections:
        uri = doc.uri + section.anchor if section.anchor else doc.uri
        for text in split_text(section.text, size, overlap):
            out.append(
                Chunk(
                    id=f"{key}:{len(out)}",
                    doc_id=doc.id,
                    connector=connector,
                    tenant=tenant,
                    text=text,
                    title=doc.title,
                    uri=uri,
                    location=section.location,
                    acl=doc.acl,
                    position=len(out),
                )
            )
    return out
