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


def _sentences(text: str) -> list[tuple[str, str]]:
    """``(sentence, separator)`` pairs: the separator is a line break where the sentence ended a line or a
    paragraph, else a space. Whitespace inside a line is collapsed."""
    out: list[tuple[str, str]] = []
    for para in _PARA_RE.split(text):
        para = "\n".join(" ".join(line.split()) for line in para.splitlines() if line.strip())
        if not para:
            continue
        pos = 0
        for m in _SENT_RE.finditer(para):
            sent = para[pos : m.start()] + m.group(0).rstrip()
            if sent.strip():
                out.append((sent.strip(), "\n" if "\n" in m.group(0) else " "))
            pos = m.end()
        if para[pos:].strip():
            out.append((para[pos:].strip(), "\n"))
    return out


def split_sentences(text: str) -> list[str]:
    """A light sentence splitter (no model): splits after ., ! or ? followed by a capital or digit.

    Whitespace inside a line is collapsed, but line breaks inside a sentence are kept.
    """
    return [s for s, _ in _sentences(text)]


def _pieces(text: str, size: int) -> Iterator[tuple[str, str]]:
    """Sentences and their separators, with any sentence longer than ``size`` cut on word boundaries."""
    for sent, sep in _sentences(text):
        if len(sent) <= size:
            yield sent, sep
            continue
        line = ""
        for word in sent.split(" "):
            if line and len(line) + 1 + len(word) > size:
                yield line, " "
                line = word
            else:
                line = f"{line} {word}" if line else word
        if line:
            yield line, sep


def _join(pieces: list[tuple[str, str]]) -> str:
    return "".join(p + sep for p, sep in pieces).rstrip()


def split_text(text: str, size: int = 800, overlap: int = 120) -> list[str]:
    """Greedy packing of sentences into chunks of at most ``size`` chars, overlapping by whole sentences.

    Sentences are joined as they were separated in the source (a space, or a line break at the end of a
    line or paragraph), so tables, lists and headers keep their lines.
    """
    chunks: list[str] = []
    cur: list[tuple[str, str]] = []
    cur_len = 0
    for piece in _pieces(text, size):
        n = len(piece[0])
        if cur and cur_len + 1 + n > size:
            chunks.append(_join(cur))
            tail: list[tuple[str, str]] = []
            tail_len = 0
            for s in reversed(cur):
                if tail_len + len(s[0]) + 1 > overlap or tail_len + len(s[0]) + 1 + n > size:
                    break
                tail.insert(0, s)
                tail_len += len(s[0]) + 1
            cur, cur_len = tail, tail_len
        cur.append(piece)
        cur_len += n + (1 if cur_len else 0)
    if cur:
        chunks.append(_join(cur))
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
