"""Text extraction from files into citation-ready sections.

``extract(name, data)`` picks the extractor by file extension (or ``content_type``) and returns the
document title and its sections: Markdown and HTML split at headings (location = heading path, anchor =
``#slug``), PDF per page (``page N``), Word (.docx) at headings, PowerPoint (.pptx) per slide (``slide N``),
Excel (.xlsx) per sheet (``sheet NAME``), plain text as one section. Office formats need the
``sharepoint`` extra (python-docx, python-pptx, openpyxl), imported only when such a file is read; without
it they fail with an :class:`ExtractionError` naming the extra. Unsupported types raise
:class:`UnsupportedFormat`; broken files raise :class:`ExtractionError`: callers turn both into a
``Skipped`` change with the reason, never into a silent loss.
"""

from __future__ import annotations

import codecs
import importlib
import io
import re
import time
import unicodedata
import zipfile
from collections.abc import Callable, Iterator
from pathlib import PurePosixPath
from typing import Any

from .errors import GroundwireError, MissingExtra
from .models import Section

__all__ = [
    "EXTRACTORS", "MAX_HEADING_CHARS", "MAX_PDF_SECONDS", "MAX_PDF_STREAM_BYTES", "MAX_UNPACKED_BYTES",
    "ExtractionError", "Slugger", "UnsupportedFormat", "binary_reason",
    "bounded_descendants", "decode_text", "document_text", "extract", "heading_text", "html_sections",
    "markdown_headings", "push_heading", "slugify",
]


class UnsupportedFormat(GroundwireError):
    pass


class ExtractionError(GroundwireError):
    pass


Extracted = tuple[str, list[Section]]


def slugify(text: str) -> str:
    """GitHub-style heading anchor: lower case, punctuation removed (letters of any script and digits
    kept), each space to '-'. ``## Grüße & Co.`` -> ``grüße--co``."""
    text = unicodedata.normalize("NFC", text).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


class Slugger:
    """Unique anchors within one document, as GitHub makes them: the second ``Setup`` is ``setup-1``."""

    def __init__(self) -> None:
        self.seen: dict[str, int] = {}

    def slug(self, text: str) -> str:
        base = slugify(text)
        slug, n = base, self.seen.get(base, 0)
        while slug in self.seen:
            n += 1
            slug = f"{base}-{n}"
        self.seen[base] = n
        self.seen.setdefault(slug, 0)
        return slug


# longest first: the UTF-32 LE mark begins with the UTF-16 LE one
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_SNIFF = 8000  # bytes looked at for NULs, as git does to tell binary from text


def decode_text(data: bytes, charset: str | None = None) -> str:
    """Decode bytes: a byte-order mark (UTF-8/16/32) first, then the declared charset, then strict UTF-8,
    then charset-normalizer's best guess (windows-1252 on a tie); cp1252 with replacement characters as
    the last resort.
    Never raises (use :func:`document_text` for files, which refuses binary content)."""
    for bom, mark_enc in _BOMS:
        if data.startswith(bom):
            return data[len(bom) :].decode(mark_enc, errors="replace")
    for enc in (charset, "utf-8"):
        if enc:
            try:
                return data.decode(enc)
            except (LookupError, UnicodeDecodeError):
                continue
    from charset_normalizer import from_bytes

    # UTF-16/32 without a mark is not guessed (real UTF-16 text has NULs and is refused as binary);
    # among equally plausible guesses windows-1252 wins, the WHATWG default for legacy Western text
    guesses = [m for m in from_bytes(data) if not m.encoding.startswith(("utf_16", "utf_32"))]
    if guesses:
        least = min(m.chaos for m in guesses)
        tied = [m for m in guesses if m.chaos <= least + 0.01]
        western: str | None
        try:
            western = data.decode("cp1252")
        except UnicodeDecodeError:
            western = None
        texts = [str(m) for m in tied]  # charset-normalizer merges codecs that decode alike
        return western if western in texts else texts[0]
    return data.decode("cp1252", errors="replace")


def binary_reason(data: bytes) -> str | None:
    """Why ``data`` is not text (NUL bytes without a UTF-16/32 byte-order mark, or mostly control
    characters once decoded), or ``None``."""
    if any(data.startswith(bom) for bom, _ in _BOMS):
        return None
    if b"\x00" in data[:_SNIFF]:
        return "binary content (NUL bytes, no UTF-16/32 byte-order mark)"
    return None


#: Unicode category Cc (U+0000-U+001F, U+007F-U+009F) but the whitespace controls: one regex scan instead of
#: ``unicodedata.category`` per character (tests/test_extract*.py check it against unicodedata)
_CONTROLS = re.compile("[\x00-\x08\x0e-\x1f\x7f-\x9f]")


def document_text(data: bytes, charset: str | None = None) -> str:
    """The text of a file's bytes (:func:`decode_text`); binary content raises :class:`ExtractionError`."""
    reason = binary_reason(data)
    if reason is None:
        text = decode_text(data, charset)
        sample = text[:_SNIFF]
        controls = len(_CONTROLS.findall(sample))
        if sample and controls > len(sample) // 10:
            reason = f"binary content ({controls} control characters in the first {len(sample)})"
        else:
            return text
    raise ExtractionError(f"{reason}: not indexed as text; check the file's type or extension")


def _stem(name: str) -> str:
    return PurePosixPath(name).stem.replace("-", " ").replace("_", " ")


def push_heading(path: list[tuple[int, str]], level: int, heading: str) -> None:
    """Make ``heading`` (level 1-6) the innermost entry of ``path``, a stack of ``(level, text)``.

    Headings of the same or a deeper level are closed first, so skipped levels (an ``h2`` with no
    ``h1`` above it, an ``h4`` under an ``h2``) never nest one sibling under another.
    """
    while path and path[-1][0] >= level:
        path.pop()
    path.append((level, heading))


class _HeadingSections:
    """Text collected under the current heading path; each heading closes the section before it.

    A section's location is its heading path without the document title; its anchor is the slug of the
    nearest heading. The first level-1 heading becomes the title when none is known.
    """

    def __init__(self, title: str = "", slugger: Slugger | None = None) -> None:
        self.title = title
        self.slugger = slugger
        self.sections: list[Section] = []
        self.path: list[tuple[int, str]] = []
        self.anchor = ""
        self.buf: list[str] = []

    def heading(self, level: int, text: str) -> None:
        self.flush()
        if level == 1 and not self.title:
            self.title = text
        push_heading(self.path, level, text)
        self.anchor = "#" + (self.slugger.slug(text) if self.slugger else slugify(text))

    def flush(self) -> None:
        body = "\n".join(self.buf).strip()
        if body:
            location = " > ".join(p for _, p in self.path if p != self.title)
            self.sections.append(Section(text=body, location=location, anchor=self.anchor))
        self.buf.clear()

    def result(self, name: str) -> Extracted:
        self.flush()
        return self.title or _stem(name), self.sections


# YAML (---) or TOML (+++) front matter: only at the very start, closed by the same fence (or ``...``)
_FRONT_MATTER = re.compile(r"\A(---|\+\+\+)[ \t]*\r?\n(?:.*?\r?\n)?(?:\1|\.\.\.)[ \t]*(?:\r?\n|\Z)", re.S)


def _inline_text(token: Any) -> str:
    """The visible text of an inline token (emphasis, links and code spans reduced to their text)."""
    parts = []
    for child in token.children or []:
        if child.type in ("text", "code_inline"):
            parts.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            parts.append(" ")
        elif child.type == "image":
            parts.append(child.content)
    return " ".join("".join(parts).split())


def markdown_headings(text: str) -> list[tuple[int, int, int, str]]:
    """``(level, first line, end line, text)`` of the top-level ATX and setext headings of ``text``.

    Parsed by markdown-it-py (CommonMark), so ``#`` lines inside fenced (`````` or ``~~~``) or indented code
    blocks, HTML blocks and block quotes are not headings; line numbers are 0-based, ``end`` exclusive.
    """
    from markdown_it import MarkdownIt

    tokens = MarkdownIt("commonmark").parse(text)
    out: list[tuple[int, int, int, str]] = []
    for i, tok in enumerate(tokens):
        if tok.type == "heading_open" and tok.level == 0 and tok.map is not None:
            out.append((int(tok.tag[1]), tok.map[0], tok.map[1], _inline_text(tokens[i + 1])))
    return out


def _markdown(name: str, data: bytes) -> Extracted:
    """Sections at headings; front matter is skipped; the body of a section is its raw Markdown lines."""
    text = document_text(data)
    m = _FRONT_MATTER.match(text)
    if m:  # keep the line count so line numbers stay those of the file
        text = "\n" * m.group(0).count("\n") + text[m.end():]
    lines = text.splitlines()
    out = _HeadingSections(slugger=Slugger())
    pos = 0
    for level, start, end, heading in markdown_headings(text):
        out.buf.extend(lines[pos:start])
        out.heading(level, heading)
        pos = end
    out.buf.extend(lines[pos:])
    return out.result(name)


def _plain(name: str, data: bytes) -> Extracted:
    text = document_text(data).strip()
    return _stem(name), [Section(text=text)] if text else []


#: blocks whose text is taken whole: a block inside one of them is not read again
_INNER_BLOCKS = frozenset({"p", "li", "td", "th", "pre", "blockquote", "dd", "dt"})


def _inside(el: Any, names: frozenset[str]) -> bool:
    """``el.find_parent(list(names)) is not None``, walked by hand."""
    parent = el.parent
    while parent is not None:
        if parent.name in names:
            return True
        parent = parent.parent
    return False


def _blocks(root: Any, names: frozenset[str], inner: frozenset[str]) -> Iterator[tuple[Any, bool]]:
    """``(el, inside)`` for each tag below ``root`` named in ``names``, in document order (as
    ``root.find_all(list(names))``), ``inside`` telling whether an ancestor is named in ``inner`` (as
    ``el.find_parent(list(inner)) is not None``). One walk of the tree, with an explicit stack: asking each
    element for its ancestors was O(depth) per element, so 1 MB of nested ``<div>`` around ``<p>`` elements
    took hours (bs4's matcher per ancestor was also half the time of a large flat table)."""
    from bs4 import Tag

    top = _inside(root, inner) or root.name in inner
    stack = [(c, top) for c in reversed(root.contents) if isinstance(c, Tag)]
    while stack:
        el, inside = stack.pop()
        if el.name in names:
            yield el, inside
        below = inside or el.name in inner
        stack.extend((c, below) for c in reversed(el.contents) if isinstance(c, Tag))


#: longest heading text kept (a location label, never document text)
MAX_HEADING_CHARS = 1000


def bounded_descendants(el: Any, budget: list[int]) -> Iterator[Any]:
    """``el.descendants`` (document order), at most ``budget[0]`` of them: each one yielded decrements it.

    A walk of ``contents`` with an explicit stack that can stop early (bs4's ``descendants`` first walks to
    the subtree's last element, O(depth) per call). Share one budget of the page's length between calls
    on disjoint elements: it only runs out when elements are nested in one another, whose subtrees sum up
    quadratically (headings in headings)."""
    from bs4.element import Tag

    stack = list(reversed(el.contents))
    while stack and budget[0] > 0:
        node = stack.pop()
        budget[0] -= 1
        yield node
        if isinstance(node, Tag):
            stack.extend(reversed(node.contents))


def heading_text(el: Any, budget: list[int]) -> str:
    """``" ".join(el.get_text(" ").split())`` cut at :data:`MAX_HEADING_CHARS`, reading no more of ``el`` than
    that needs, within ``budget`` (:func:`bounded_descendants`). The strings are those ``get_text`` joins
    (bs4's ``_all_strings``: the tag's interesting string types); the same text as ``get_text`` for every
    heading shorter than the cap while the budget lasts (8,000 nested ``<h2>``, 50 KB of markup, took 9 s)."""
    from bs4.element import NavigableString

    types = el.interesting_string_types
    if types is None:
        types = el.MAIN_CONTENT_STRING_TYPES
    parts: list[str] = []
    size = 0
    for node in bounded_descendants(el, budget):
        if isinstance(node, NavigableString):
            kind = type(node)
            if kind is types if isinstance(types, type) else (types is None or kind in types):
                parts.append(node)
                size += len(node) + 1
                if size > MAX_HEADING_CHARS + 1:
                    break
    return " ".join(" ".join(parts).split())[:MAX_HEADING_CHARS]


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
            sections.append(Section(text=t, location=" > ".join(p for _, p in path if p != title), anchor=anchor))
        buf.clear()

    blocks = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"}) | _INNER_BLOCKS
    budget = [len(html) + 1000]  # nodes the heading texts may visit (see heading_text)
    for el, inside in _blocks(body, blocks, _INNER_BLOCKS):
        if el.name[0] == "h" and el.name[1:].isdigit():
            flush()
            level = int(el.name[1])
            heading = heading_text(el, budget)
            if level == 1 and not title:
                title = heading
            push_heading(path, level, heading)
            anchor = "#" + (str(el.get("id") or "") or slugify(heading))
        elif not inside:
            buf.append(el.get_text(" ") + ("\n\n" if el.name == "p" else " "))
    flush()
    if not sections:
        text = " ".join(body.get_text(" ").split())
        if text:
            sections.append(Section(text=text))
    return title or fallback_title, sections


def _html(name: str, data: bytes) -> Extracted:
    m = re.search(rb"<meta[^>]+charset=[\"']?([\w-]+)", data[:4096], re.I)
    html = document_text(data, m.group(1).decode(errors="replace") if m else None)
    return html_sections(html, PurePosixPath(name).stem)


#: wall-clock budget for the text of one PDF. pypdf re-parses a content stream each time a page or a
#: ``Do`` draws it, so a 5 KB file whose pages share one 1 MB stream took 3 s per page (weeks for 25 MB)
#: while the sync held its lock; past the budget the file is skipped with the reason
MAX_PDF_SECONDS = 60.0
#: largest decoded content stream (a page's, or a form XObject it draws) parsed at all: one parse of a
#: stream cannot be interrupted, so this bounds how far :data:`MAX_PDF_SECONDS` can be overrun
MAX_PDF_STREAM_BYTES = 8 * 1024 * 1024


class _PdfBudget(BaseException):  # not Exception: no parser `except Exception` may swallow it
    pass


def _pdf_streams(obj: Any, seen: set[int]) -> Iterator[tuple[str, int]]:
    """``(what, decoded size)`` of ``obj``'s content and of every form XObject its resources reach."""
    from pypdf.generic import ArrayObject, StreamObject

    contents = obj.get("/Contents") if "/Contents" in obj else None
    if contents is not None:
        contents = contents.get_object()
        parts = contents if isinstance(contents, ArrayObject) else [contents]
        streams = [c.get_object() for c in parts]  # malformed entries (not streams) are pypdf's to judge
        yield "page content", sum(len(c.get_data()) for c in streams if isinstance(c, StreamObject))
    elif isinstance(obj, StreamObject):
        yield "form XObject", len(obj.get_data())
    resources = obj.get("/Resources")
    xobjects = resources.get_object().get("/XObject") if resources is not None else None
    if xobjects is None:
        return
    for ref in xobjects.get_object().values():
        form = ref.get_object()
        key = id(form)
        if key in seen or not isinstance(form, StreamObject) or form.get("/Subtype") != "/Form":
            continue
        seen.add(key)
        yield from _pdf_streams(form, seen)


def _pdf(name: str, data: bytes) -> Extracted:
    """Per page. Bounded: :data:`MAX_PDF_SECONDS` for the whole file (checked at every content operator,
    also inside forms, and between pages) and :data:`MAX_PDF_STREAM_BYTES` per decoded stream (checked
    before a page is parsed)."""
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    deadline = time.monotonic() + MAX_PDF_SECONDS

    def on_operator(*_: Any) -> None:
        if time.monotonic() > deadline:
            raise _PdfBudget

    try:
        reader = PdfReader(io.BytesIO(data))
        title = ""
        if reader.metadata and reader.metadata.title:
            title = str(reader.metadata.title).strip()
        sections = []
        for i, page in enumerate(reader.pages, 1):
            for what, size in _pdf_streams(page, set()):
                if size > MAX_PDF_STREAM_BYTES:
                    raise ExtractionError(f"page {i}: a {what} of {size} bytes decoded, over the limit of "
                                          f"{MAX_PDF_STREAM_BYTES} bytes (a decompression bomb, or a page that "
                                          "is a drawing rather than text); not read")
            on_operator()
            text = (page.extract_text(visitor_operand_before=on_operator) or "").strip()
            if text:
                sections.append(Section(text=text, location=f"page {i}", anchor=f"#page={i}"))
    except _PdfBudget:
        raise ExtractionError(f"text extraction took longer than {MAX_PDF_SECONDS:g} s (at page {i} of "
                              f"{len(reader.pages)}; pages that redraw shared content, or a very long PDF); "
                              "not read: split the document") from None
    except (PdfReadError, ValueError, KeyError, TypeError) as exc:
        raise ExtractionError(f"unreadable PDF: {exc}") from exc
    return title or PurePosixPath(name).stem, sections


MAX_UNPACKED_BYTES = 256 * 1024 * 1024  # what an Office file (a zip) may unpack to, all its members together


def _unpack_check(name: str, data: bytes) -> None:
    """Refuse an Office file whose zip directory declares more than :data:`MAX_UNPACKED_BYTES`, before any
    member is unpacked: deflate packs up to ~1000:1, so a 25 MB file could unpack to 25 GB (a zip bomb).
    The declared sizes bind: :mod:`zipfile` stops each member at its declared size (and then fails its CRC)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            total = sum(i.file_size for i in zf.infolist())
    except (zipfile.BadZipFile, ValueError, OSError) as exc:  # ValueError/OSError: a corrupt directory
        raise ExtractionError(f"{_stem(name)}: not a valid Office file (zip): {exc}") from None
    if total > MAX_UNPACKED_BYTES:
        raise ExtractionError(
            f"unpacks to {total} bytes, over the limit of {MAX_UNPACKED_BYTES} bytes (a zip bomb, or a document "
            "too large to index): not indexed; split the document"
        )


def _office_module(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise MissingExtra("Office extraction", "sharepoint") from exc


def _docx(name: str, data: bytes) -> Extracted:
    """Word: body paragraphs and tables in document order, split at Title / Heading N paragraphs."""
    docx = _office_module("docx")  # a missing extra is named first
    _unpack_check(name, data)
    doc = docx.Document(io.BytesIO(data))
    out = _HeadingSections((doc.core_properties.title or "").strip())
    for block in doc.iter_inner_content():  # paragraphs and tables in document order
        if isinstance(block, docx.table.Table):
            for row in block.rows:
                line = " | ".join(t for t in (" ".join(c.text.split()) for c in row.cells) if t)
                if line:
                    out.buf.append(line)
            continue
        text = block.text.strip()
        style = block.style.name if block.style is not None else ""
        m = re.match(r"(?i)^(title|heading (\d))$", style or "")
        if m and text:
            out.heading(1 if m.group(1).casefold() == "title" else int(m.group(2)), text)
        elif text:
            out.buf.append(text)
    return out.result(name)


def _pptx(name: str, data: bytes) -> Extracted:
    """PowerPoint: one section per slide (its title is the location), speaker notes included."""
    pptx = _office_module("pptx")  # a missing extra is named first
    _unpack_check(name, data)
    prs = pptx.Presentation(io.BytesIO(data))
    title = (prs.core_properties.title or "").strip()
    sections: list[Section] = []
    for i, slide in enumerate(prs.slides, 1):
        lines: list[str] = []
        slide_title = ""
        if slide.shapes.title is not None and slide.shapes.title.has_text_frame:
            slide_title = " ".join(slide.shapes.title.text_frame.text.split())
        for shape in slide.shapes:
            if shape.has_text_frame:
                t = shape.text_frame.text.strip()
                if t:
                    lines.append(t)
            if getattr(shape, "has_table", False) and shape.has_table:
                for row in shape.table.rows:
                    line = " | ".join(" ".join(c.text.split()) for c in row.cells if c.text.strip())
                    if line:
                        lines.append(line)
        notes_frame = slide.notes_slide.notes_text_frame if slide.has_notes_slide else None
        if notes_frame is not None and notes_frame.text.strip():
            lines.append(notes_frame.text.strip())
        if not title and slide_title:
            title = slide_title
        if lines:
            loc = f"slide {i}" + (f": {slide_title}" if slide_title else "")
            sections.append(Section(text="\n".join(lines), location=loc, anchor=f"#slide={i}"))
    return title or _stem(name), sections


_XLSX_MAX_CELLS = 200_000


def _xlsx(name: str, data: bytes) -> Extracted:
    """Excel: one section per sheet, a line per row (cell values joined by ' | '), cached values only."""
    openpyxl = _office_module("openpyxl")  # a missing extra is named first
    _unpack_check(name, data)
    wb = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    try:
        title = (wb.properties.title or "").strip() if wb.properties else ""
        sections: list[Section] = []
        cells = 0
        for ws in wb.worksheets:
            lines: list[str] = []
            for row in ws.iter_rows(values_only=True):
                vals = [str(v).strip() for v in row if v is not None and str(v).strip()]
                cells += len(vals)
                if vals:
                    lines.append(" | ".join(vals))
                if cells > _XLSX_MAX_CELLS:
                    break
            if lines:
                sections.append(Section(text="\n".join(lines), location=f"sheet {ws.title}",
                                        anchor=f"#sheet={ws.title}"))
            if cells > _XLSX_MAX_CELLS:
                break
    finally:
        wb.close()
    return title or _stem(name), sections


EXTRACTORS: dict[str, Callable[[str, bytes], Extracted]] = {
    ".md": _markdown,
    ".markdown": _markdown,
    ".txt": _plain,
    ".text": _plain,
    ".html": _html,
    ".htm": _html,
    ".pdf": _pdf,
    ".docx": _docx,
    ".pptx": _pptx,
    ".xlsx": _xlsx,
}

_CONTENT_TYPES = {
    "text/markdown": ".md",
    "text/plain": ".txt",
    "text/html": ".html",
    "application/xhtml+xml": ".html",
    "application/pdf": ".pdf",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": ".docx",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation": ".pptx",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": ".xlsx",
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
    except MissingExtra as exc:
        raise ExtractionError(str(exc)) from exc
    except Exception as exc:  # noqa: BLE001 - any parser failure becomes a reported skip
        raise ExtractionError(f"could not extract text: {type(exc).__name__}: {exc}") from exc
