"""Text of SharePoint site pages: the canvas web parts of a ``sitePage`` fetched with
``$expand=canvasLayout``.

Text web parts (``innerHtml``) are split at their headings like any HTML; other web parts contribute
their ``serverProcessedContent.searchablePlainTexts``. Both horizontal sections (in order, column by
column) and the vertical section are read.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from groundwire.extract import html_sections
from groundwire.models import Section

__all__ = ["canvas_sections"]


def _webparts(layout: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    for hs in layout.get("horizontalSections") or []:
        for col in (hs or {}).get("columns") or []:
            yield from ((col or {}).get("webparts") or [])
    vs = layout.get("verticalSection") or {}
    yield from (vs.get("webparts") or [])


def canvas_sections(page: Mapping[str, Any]) -> list[Section]:
    """Citation-ready sections of a page's canvas (empty if it has no text)."""
    title = str(page.get("title") or page.get("name") or "")
    layout = page.get("canvasLayout")
    if not isinstance(layout, dict):
        return []
    out: list[Section] = []
    for wp in _webparts(layout):
        if not isinstance(wp, dict):
            continue
        html = wp.get("innerHtml")
        if isinstance(html, str) and html.strip():
            _, sections = html_sections(html, title)
            out.extend(sections)
            continue
        data = wp.get("data") if isinstance(wp.get("data"), dict) else {}
        spc = data.get("serverProcessedContent")
        plain = spc.get("searchablePlainTexts") if isinstance(spc, dict) else None
        texts = [str(t.get("value", "")).strip() for t in plain or [] if isinstance(t, dict)]
        text = "\n".join(t for t in texts if t)
        if text:
            out.append(Section(text=text, location=str(data.get("title") or "")))
    return out
