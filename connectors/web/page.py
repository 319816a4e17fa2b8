"""HTML pages for the web connector: decoding, links, canonical URL, robots directives, title and
citation-ready sections.

Main content comes from trafilatura (the ``groundwire[web]`` extra) when it is installed and finds
some with its headings; otherwise from :func:`groundwire.extract.html_sections` (scripts, navigation
and footers removed).

Invariants:
- A heading section's anchor is a fragment that exists in the page (the heading's ``id``, an ``id`` or
  ``name`` inside or right before it, or the ``id`` of the section it opens) or else a text fragment
  (``#:~:text=``) of the heading, so a citation opens the page at the nearest heading. Text before
  the first heading has no anchor (the page itself).
- Decoding follows the browser's order: byte order mark, HTTP ``charset``, ``<meta charset>``, then
  UTF-8 with a windows-1252 fallback; ISO-8859-1 and ASCII labels mean windows-1252 (WHATWG).
"""

from __future__ import annotations

import codecs
import re
import xml.etree.ElementTree as ET
from collections import defaultdict, deque
from dataclasses import dataclass, field
from functools import cache
from types import ModuleType
from typing import Any
from urllib.parse import quote, urljoin

from bs4 import BeautifulSoup, Tag
from groundwire import Section
from groundwire.extract import (
    bounded_descendants,
    decode_text,
    heading_text,
    html_sections,
    push_heading,
    slugify,
)

__all__ = ["Page", "decode", "parse_html", "robots_directives", "trafilatura_module"]

_BOMS = ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be"))
_WINDOWS_1252 = {"iso-8859-1", "iso8859-1", "iso_8859-1", "latin1", "latin-1", "l1", "ascii", "us-ascii"}
_CHARSET = re.compile(r"charset\s*=\s*[\"']?\s*([\w.:-]+)", re.I)
_META_CHARSET = re.compile(rb"<meta[^>]+charset\s*=\s*[\"']?\s*([\w.:-]+)", re.I)
_HEADINGS = ("h1", "h2", "h3", "h4", "h5", "h6")
_FRAGMENT_SAFE = "!$&'()*+,;=:@/?-._~"
_TEXT_FRAGMENT_WORDS = 12
TEXT_FRAGMENT = "#:~:text="


def decode(body: bytes, content_type: str, html: bool) -> str:
    """Text of a response body (see the module docstring for the order of charset sources)."""
    for bom, encoding in _BOMS:
        if body.startswith(bom):
            return body[len(bom) :].decode(encoding, errors="replace")
    m = _CHARSET.search(content_type)
    charset = m.group(1) if m else None
    if charset is None and html:
        mm = _META_CHARSET.search(body[:4096])
        charset = mm.group(1).decode("ascii", errors="replace") if mm else None
    if charset and charset.casefold() in _WINDOWS_1252:
        charset = "cp1252"
    return decode_text(body, charset)


def robots_directives(value: str, agent_token: str) -> tuple[bool, bool]:
    """``(noindex, nofollow)`` from a robots meta content or an ``X-Robots-Tag`` value.

    A value may be scoped to one crawler (``otherbot: noindex``); only unscoped values and values for
    ``agent_token`` apply.
    """
    tokens: set[str] = set()
    for part in value.split(","):
        part = part.strip().casefold()
        scope, sep, rest = part.partition(":")
        if sep and scope.strip() not in ("noindex", "nofollow", "none", "all"):
            if scope.strip() != agent_token:
                continue
            part = rest.strip()
        tokens.add(part)
    none = "none" in tokens
    return none or "noindex" in tokens, none or "nofollow" in tokens


@dataclass(slots=True)
class Page:
    title: str
    sections: list[Section]
    links: list[str] = field(default_factory=list)  # absolute, not yet normalised
    canonical: str | None = None
    noindex: bool = False
    nofollow: bool = False


@cache
def trafilatura_module() -> ModuleType | None:
    try:
        import trafilatura
    except ImportError:
        return None
    return trafilatura


def _attr(tag: Tag, name: str) -> str:
    value: Any = tag.get(name)
    if isinstance(value, list):
        value = " ".join(value)
    return str(value).strip() if value else ""


def _words(text: str) -> str:
    return " ".join(text.split())


def _fragment(ident: str) -> str:
    return "#" + quote(ident, safe=_FRAGMENT_SAFE)


def _text_fragment(text: str) -> str:
    words = text.split()[:_TEXT_FRAGMENT_WORDS]
    return TEXT_FRAGMENT + quote(" ".join(words), safe="").replace("-", "%2D") if words else ""


def _section(text: str, location: str, anchor: str) -> Section:
    """A section; under the page title itself only a real id is worth a fragment (the page opens there)."""
    if not location and anchor.startswith(TEXT_FRAGMENT):
        anchor = ""
    return Section(text=text, location=location, anchor=anchor)


def _heading_anchor(h: Tag, text: str, budget: list[int]) -> str:
    """The fragment that opens the page at heading ``h`` (see the module docstring); the search for an id
    inside it reads at most ``budget`` nodes (shared by the page's headings: nested ones were quadratic)."""
    if _attr(h, "id"):
        return _fragment(_attr(h, "id"))
    inner = next((t for t in bounded_descendants(h, budget) if isinstance(t, Tag)
                  and (bool(_attr(t, "id")) or (t.name == "a" and bool(_attr(t, "name"))))), None)
    if isinstance(inner, Tag):
        return _fragment(_attr(inner, "id") or _attr(inner, "name"))
    prev = h.find_previous_sibling()
    if isinstance(prev, Tag) and prev.name == "a" and not prev.get_text(strip=True):
        ident = _attr(prev, "id") or _attr(prev, "name")
        if ident:
            return _fragment(ident)
    parent = h.parent
    if (  # a section, article or div that this heading opens
        isinstance(parent, Tag) and parent.name in ("section", "article", "div")
        and _attr(parent, "id") and parent.find(True) is h
    ):
        return _fragment(_attr(parent, "id"))
    return _text_fragment(text)


@dataclass(frozen=True, slots=True)
class _Heading:
    level: int
    text: str
    anchor: str


class _SectionBuilder:
    """Collects blocks under the current heading path (the same locations as ``html_sections``)."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.sections: list[Section] = []
        self.path: list[tuple[int, str]] = []
        self.anchor = ""
        self.buf: list[str] = []

    def heading(self, level: int, text: str, anchor: str) -> None:
        self.flush()
        push_heading(self.path, level, text)
        self.anchor = anchor

    def add(self, text: str) -> None:
        if text.strip():
            self.buf.append(text.strip())

    def flush(self) -> None:
        body = "\n\n".join(self.buf)
        if body:
            location = " > ".join(p for _, p in self.path if p != self.title)
            self.sections.append(_section(body, location, self.anchor))
        self.buf.clear()


def _xml_text(el: ET.Element) -> str:
    return _words("".join(el.itertext()))


def _trafilatura_sections(html: str, title: str, headings: list[_Heading]) -> list[Section] | None:
    traf = trafilatura_module()
    if traf is None:
        return None
    xml = traf.extract(
        html, output_format="xml", include_formatting=False, include_tables=True, include_links=False,
        include_images=False, include_comments=False, favor_recall=True, deduplicate=False,
        with_metadata=False,
    )
    if not xml:
        return None
    try:
        root = ET.fromstring(xml)
    except ET.ParseError:
        return None
    anchors: dict[str, deque[str]] = defaultdict(deque)
    for h in headings:
        anchors[h.text.casefold()].append(h.anchor)
    out = _SectionBuilder(title)

    def walk(el: ET.Element) -> None:
        for child in el:
            if child.tag == "head":
                text = _xml_text(child)
                rend = child.get("rend", "h2")
                level = int(rend[1]) if len(rend) == 2 and rend[1].isdigit() else 2
                queue = anchors.get(text.casefold())
                if text:
                    out.heading(level, text, queue.popleft() if queue else _text_fragment(text))
            elif child.tag == "list":
                out.add("\n".join("- " + _xml_text(i) for i in child.findall("item") if _xml_text(i)))
            elif child.tag == "table":
                rows = (" | ".join(_xml_text(c) for c in row.findall("cell")) for row in child.findall("row"))
                out.add("\n".join(r for r in rows if r.strip(" |")))
            elif child.tag in ("p", "quote", "code"):
                out.add(_xml_text(child))
            elif child.tag not in ("graphic", "lb", "comments"):
                walk(child)

    main = root.find("main")
    walk(main if main is not None else root)
    out.flush()
    if not any(s.location for s in out.sections) and any(h.text != title for h in headings):
        return None  # its fallback flattened the page: no heading left to cite
    return out.sections or None


def _fallback_sections(html: str, title: str, soup: BeautifulSoup, headings: list[_Heading]) -> list[Section]:
    """``html_sections``, with its heading-slug anchors replaced by fragments that exist in the page."""
    _, sections = html_sections(html, title)
    ids = {_attr(t, "id") for t in soup.find_all(id=True)}
    by_slug: dict[str, str] = {}
    for h in headings:
        by_slug.setdefault("#" + slugify(h.text), h.anchor)
    fixed = []
    for s in sections:
        anchor = s.anchor
        if anchor:
            anchor = _fragment(anchor[1:]) if anchor[1:] in ids else by_slug.get(anchor, "")
        fixed.append(_section(s.text, s.location, anchor))
    return fixed


def _title(soup: BeautifulSoup) -> str:
    if soup.title is not None and _words(soup.title.get_text()):
        return _words(soup.title.get_text())
    og = soup.find("meta", attrs={"property": "og:title"})
    if isinstance(og, Tag) and _attr(og, "content"):
        return _words(_attr(og, "content"))
    h1 = soup.find("h1")
    return _words(h1.get_text(" ")) if isinstance(h1, Tag) else ""


def parse_html(html: str, url: str, *, agent_token: str, use_trafilatura: bool, fallback_title: str) -> Page:
    """Parse one HTML page fetched from ``url``."""
    soup = BeautifulSoup(html, "html.parser")
    base = url
    base_tag = soup.find("base", href=True)
    if isinstance(base_tag, Tag):
        base = urljoin(url, _attr(base_tag, "href"))
    page = Page(title=_title(soup) or fallback_title, sections=[])
    for meta in soup.find_all("meta"):
        name = _attr(meta, "name").casefold()
        if name in ("robots", agent_token):
            noindex, nofollow = robots_directives(_attr(meta, "content"), agent_token)
            page.noindex |= noindex
            page.nofollow |= nofollow
        elif _attr(meta, "http-equiv").casefold() == "refresh":
            _, sep, target = _attr(meta, "content").partition("=")
            if sep and target.strip(" '\""):
                page.links.append(urljoin(base, target.strip(" '\"")))
    for link in soup.find_all("link", href=True):
        if "canonical" in _attr(link, "rel").casefold().split():
            page.canonical = urljoin(base, _attr(link, "href"))
            break
    if not page.nofollow:
        for a in soup.find_all(["a", "area"], href=True):
            href = _attr(a, "href")
            if href and not href.startswith("#") and "nofollow" not in _attr(a, "rel").casefold().split():
                page.links.append(urljoin(base, href))
    else:
        page.links.clear()
    page.links = list(dict.fromkeys(page.links))
    if page.noindex:
        return page
    headings = []
    texts, anchors = [len(html) + 1000], [len(html) + 1000]  # nodes the headings may read (bounded_descendants)
    for h in soup.find_all(_HEADINGS):
        text = heading_text(h, texts)
        if text:
            headings.append(_Heading(int(h.name[1]), text, _heading_anchor(h, text, anchors)))
    sections = _trafilatura_sections(html, page.title, headings) if use_trafilatura else None
    page.sections = sections if sections is not None else _fallback_sections(html, page.title, soup, headings)
    return page
