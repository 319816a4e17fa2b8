"""Text extraction from files into citation-ready sections.

``extract(name, data)`` picks the extractor by file extension (or ``content_type``) and returns the
document title and its sections: Markdown and HTML split at headings (location = heading path, anchor =
``#slug``), PDF per page (``page N``), plain text as one section. Unsupported types raise
:class:`UnsupportedFormat`; broken files raise :class:`ExtractionError`: callers turn both into a
``Skipped`` change with the reason, never into a silent loss.
"""

from __future__ import annotations

import io
import re
import unicodedata
from collections.abc import Callable
from pathlib import PurePosixPath

from .errors import GroundwireError
from .models import Section

__all__ = [
    "EXTRACTORS",
    "ExtractionError",
    "UnsupportedFormat",
    "decode_text",
    "extract",
    "push_heading",
    "slugify",
]


class UnsupportedFormat(GroundwireError):
    pass


class ExtractionError(GroundwireError):
    pass


Extracted = tuple[str, list[Section]]


def slugify(text: str) -> str:
    """GitHub-style heading anchor: lower case, punctuation removed, spaces to '-'."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().casefold()
    text = re.sub(r"[^\w\s-]", "", text).strip()
    return re.sub(r"[\s]+", "-", text)


def decode_text(data: bytes, charset: str | None = None) -> str:
    """Decode bytes: declared charset, then UTF-8 (with BOM), then cp1252 as the last resort."""
    for enc in [charset, "utf-8-sig"]:
        if enc:
            try:
                return data.decode(enc)
            except (LookupError, UnicodeDecodeError):
                continue
    return data.decode("cp1252", errors="replace")


def push_heading(path: list[tuple[int, str]], level: int, heading: str) -> None:
    """Make ``heading`` (level 1-6) the innermost entry of ``path``, a stack of ``(level, text)``.

    Headings of the same or a deeper level are closed first, so skipped levels (an ``h2`` with no
    ``h1`` above it, an ``h4`` under an ``h2``) never nest one sibling under another.
    """
    while path and path[-1][0] >= level:
        path.pop()
    path.append((level, heading))


_MD_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")


def _markdown(name: str, data: bytes) -> Extracted:
    text = decode_text(data)
    title = ""
    sections: list[Section] = []
    path: list[tuple[int, str]] = []
    buf: list[str] = []
    anchor = ""
    in_fence = False

    def flush() -> None:
        body = "\n".join(buf).strip()
        if body:
            location = " > ".join(p for _, p in path if p != title)
            sections.append(Section(text=body, location=location, anchor=anchor))
        buf.clear()

    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            in_fence = not in_fence
        m = None if in_fence else _MD_HEADING.match(line)
        if m:
            flush()
            level, heading = len(m.group(1)), m.group(2).strip()
            if level == 1 and not title:
                title = heading
            push_heading(path, level, heading)
            anchor = "#" + slugify(heading)
            continue
        buf.append(line)
    flush()
    return title or PurePosixPath(name).stem.replace("-", " ").replace("_", " "), sections


def _plain(name: str, data: bytes) -> Extracted:
    text = decode_text(data).strip()
    title = PurePosixPath(name).stem.replace("-", " ").replace("_", " ")
    return title, [Section(text=text)] if text else []


def html_sections(html: str, fallback_title: str) -> Extracted:
    """Split HTML into sections at h1-h6 (scripts, styles, nav and footer removed)."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "html.parser")
    for tag in soup(["script", "style", "noscript", "template", "nav", "footer", "header", "aside"]):
        tag.decompose()
    title = (soup.title.string or "").strip() if soup.title and soup.title.string else ""
    body = soup.body or soup
    sections: list[Section] = []
    path: list[tuple[int, str]] = []
    anchor = ""
    buf: list[str] = []

    def flush() -> None:
        t = " ".join(" ".join(buf).split())
        if t:
            location = " > ".join(p for _, p in path if p != title)
            sections.append(Section(text=t, location=location, anchor=anchor))
        buf.clear()

    for el in body.find_all(["h1", "h2", "h3", "h4", "h5", "h6", "p", "li", "td", "th", "pre", "blockquote", "dd", "dt"]):
        if el.name[0] == "h" and el.name[1:].isdigit():
            flush()
            level = int(el.name[1])
            heading = " ".join(el.get_text(" ").split())
            if level == 1 and not title:
                title = heading
            push_heading(path, level, heading)
            anchor = "#" + (el.get("id") or slugify(heading))
        elif not el.find_parent(["p", "li", "td", "th", "pre", "blockquote", "dd", "dt"]):
            buf.append(el.get_text(" ") + ("\n\n" if el.name == "p" else " "))
    flush()
    if not sections:
        text = " ".join(body.get_text(" ").split())
        if text:
            sections.append(Section(text=text))
    return title or fallback_title, sections


def _html(name: str, data: bytes) -> Extracted:
    m = re.search(rb"<meta[^>]+charset=[\"']?([\w-]+)", data[:4096], re.I)
    html = decode_text(data, m.group(1).decode() if m else None)
    return html_sections(html, PurePosixPath(name).stem)


def _pdf(name: str, data: bytes) -> Extracted:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        title = ""
        if reader.metadata and reader.metadata.title:
            title = str(reader.metadata.title).strip()
        sections = []
        for i, page in enumerate(reader.pages, 1):
            text = (page.extract_text() or "").strip()
            if text:
                sections.append(Section(text=text, location=f"page {i}", anchor=f"#page={i}"))
    except (PdfReadError, ValueError, KeyError, TypeError) as exc:
        raise ExtractionError(f"unreadable PDF: {exc}") from exc
    return title or PurePosixPath(name).stem, sections


EXTRACTORS: dict[str, Callable[[str, bytes], Extracted]] = {
    ".md": _markdown,
    ".markdown": _markdown,
    ".txt": _plain,
    ".text": _plain,
    ".html": _html,
    ".htm": _html,
    ".pdf": _pdf,
}

_CONTENT_TYPES = {
    "text/markdown": ".md",
    "text/plain": ".txt",
    "text/html": ".html",
    "application/xhtml+xml": ".html",
    "application/pdf": ".pdf",
}


def extract(name: str, data: bytes, content_type: str | None = None) -> Extracted:
    """Extract ``(title, sections)`` from a file's bytes."""
    ext = PurePosixPath(name).suffix.casefold()
    if ext not in EXTRACTORS and content_type:
        ext = _CONTENT_TYPES.get(content_type.split(";")[0].strip().casefold(), ext)
    fn = EXTRACTORS.get(ext)
    if fn is None:
        raise UnsupportedFormat(f"unsupported file type {ext or '(none)'!r}")
    try:
        return fn(name, data)
    except (UnsupportedFormat, ExtractionError):
        raise
    except Exception as exc:  # noqa: BLE001 - any parser failure becomes a reported skip
        raise ExtractionError(f"could not extract text: {type(exc).__name__}: {exc}") from exc
