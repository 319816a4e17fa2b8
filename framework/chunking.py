"""Split a document's sections into overlapping chunks on paragraph and sentence boundaries.

Invariants: every chunk belongs to exactly one section (so its citation location is exact); no text
of a section is lost (every character lies in at least one chunk); chunks are at most ``size``
characters unless a single word is longer; a table row (a line starting with ``|`` or holding `` | ``
cell separators, as the extractor writes table rows) is never cut unless it alone is longer than ``size``
(then on cell borders first); a fenced code block (```` ``` ```` or ``~~~``) is kept whole, lines verbatim
(indentation kept), when it fits in ``size``, else cut between lines. Cut fragments of rows and code looked
like planted prose to the prompt shield (issue 13).
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


_FENCE_RE = re.compile(r"^\s*(```|~~~)")
_ROW_RE = re.compile(r"^\s*\|.*\||\S \| \S")


def _blocks(text: str) -> Iterator[tuple[str, str]]:
    """``(kind, text)`` in order: ``prose`` (lines between the others, blank lines kept), ``row`` (one table
    row) and ``code`` (a fenced block with its fences; an unclosed fence runs to the end)."""
    prose: list[str] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        fence = _FENCE_RE.match(line)
        if fence or _ROW_RE.search(line):
            if prose:
                yield "prose", "\n".join(prose)
                prose = []
            if not fence:
                yield "row", " ".join(line.split())
                i += 1
                continue
            j = i + 1
            while j < len(lines) and not lines[j].lstrip().startswith(fence.group(1)):
                j += 1
            yield "code", "\n".join(ln.rstrip() for ln in lines[i : j + 1])
            i = j + 1
            continue
        prose.append(line)
        i += 1
    if prose:
        yield "prose", "\n".join(prose)


def _cut(text: str, size: int, seps: tuple[str, ...]) -> Iterator[str]:
    """``text`` in parts of at most ``size`` characters, cut at the first of ``seps`` that works (a part
    longer than ``size`` is cut again with the next separator; words are never cut)."""
    if len(text) <= size or not seps:
        yield text
        return
    sep, rest = seps[0], seps[1:]
    cur = ""
    for part in text.split(sep):
        if cur and len(cur) + len(sep) + len(part) > size:
            yield from _cut(cur, size, rest)
            cur = part
        else:
            cur = f"{cur}{sep}{part}" if cur else part
    if cur:
        yield from _cut(cur, size, rest)


def _pieces(text: str, size: int) -> Iterator[tuple[str, str]]:
    """Sentences, table rows and code blocks with their separators; a piece longer than ``size`` is cut
    (prose on word boundaries, a row on cell borders then words, code between lines then words)."""
    for kind, block in _blocks(text):
        if kind == "row":
            for part in _cut(block, size, (" | ", " ")):
                yield part, "\n"
            continue
        if kind == "code":
            for part in _cut(block, size, ("\n", " ")):
                yield part, "\n"
            continue
        for sent, sep in _sentences(block):
            if len(sent) <= size:
                yield sent, sep
                continue
            parts = list(_cut(sent, size, (" ",)))
            for k, part in enumerate(parts):
                yield part, sep if k == len(parts) - 1 else " "


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
