"""Helpers for the SharePoint integration tests: Office/PDF files, a Grounder over the double, and
comparisons of the index with the double's state."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from groundwire import Grounder, GroundingRequest, UserContext, config_from_dict
from groundwire.connectors.sharepoint import file_doc_id, page_doc_id
from groundwire.index import NOBODY, take_payloads

from ..files import make_pdf
from .graph_double import TOKEN_ENV, GraphDouble

TENANT = "acme"


def docx_bytes(title: str, heading: str, body: str) -> bytes:
    import docx

    d = docx.Document()
    d.core_properties.title = title
    d.add_heading(heading, level=1)
    d.add_paragraph(body)
    table = d.add_table(rows=1, cols=2)
    table.rows[0].cells[0].text = "Owner"
    table.rows[0].cells[1].text = "Policy team"
    buf = io.BytesIO()
    d.save(buf)
    return buf.getvalue()


def pptx_bytes(slides: list[tuple[str, str]]) -> bytes:
    import pptx

    prs = pptx.Presentation()
    for title, body in slides:
        slide = prs.slides.add_slide(prs.slide_layouts[1])
        slide.shapes.title.text = title
        slide.placeholders[1].text = body
    buf = io.BytesIO()
    prs.save(buf)
    return buf.getvalue()


def xlsx_bytes(sheets: dict[str, list[list[Any]]]) -> bytes:
    import openpyxl

    wb = openpyxl.Workbook()
    wb.remove(wb.active)
    for name, rows in sheets.items():
        ws = wb.create_sheet(name)
        for row in rows:
            ws.append(row)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def pdf_bytes(text: str) -> bytes:
    """A one-page PDF showing ``text``."""
    return make_pdf([text])


def make_grounder(tmp_path: Path, graph: GraphDouble, sites: list[str], **settings: Any) -> Grounder:
    """A Grounder with the hashing embedder, one SharePoint connector ``sp`` over the double."""
    sp = {
        "type": "sharepoint",
        "tenant": TENANT,
        "sites": sites,
        "graph_url": graph.graph_url,
        "allow_http_hosts": ["127.0.0.1"],
        "access_token_env": TOKEN_ENV,
        "organization_links_grant_everyone": True,
        "backoff_base": 0.001,
        "backoff_max": 0.01,
        "max_retry_after": 0.05,
        **settings,
    }
    cfg = config_from_dict(
        {
            "data_dir": str(tmp_path / "gw"),
            "default_tenant": TENANT,
            "embedder": {"name": "hashing"},
            "generator": {"name": "extractive", "options": {"min_similarity": 0.1}},
            "plugins": {"load_entrypoints": False},
            "connectors": {"sp": sp},
        },
        base_dir=tmp_path,
    )
    return Grounder(cfg)


def index_state(g: Grounder, connector: str = "sp") -> dict[str, dict[str, Any]]:
    """doc id -> {"allow", "text", "uri", "title", "positions"} read back from the index."""
    got = take_payloads(g.index.tenant(TENANT).collection.get(where={"connector": connector},
                                                              include=["metadatas", "documents"]))
    docs: dict[str, dict[str, Any]] = {}
    import json

    for cid, stored, meta in zip(got["ids"], got["documents"], got["metadatas"], strict=True):
        payload = json.loads(g.index.codec.decode(stored, cid))
        d = docs.setdefault(
            str(meta["doc_id"]),
            {"allow": set(), "parts": {}, "uri": payload["uri"].split("#")[0], "title": payload["title"]},
        )
        d["allow"] = {p for p in meta["acl_allow"] if p != NOBODY}
        d["parts"][int(meta["position"])] = payload["text"]
    for d in docs.values():
        d["positions"] = sorted(d["parts"])
        d["text"] = "\n".join(d["parts"][p] for p in d["positions"])
    return docs


def expected_state(
    graph: GraphDouble,
    site_ids: list[str],
    pages_allow: frozenset[str] = frozenset(),
    max_bytes: int | None = None,
    supported: tuple[str, ...] = (".txt", ".md", ".html", ".pdf", ".docx", ".pptx", ".xlsx"),
) -> dict[str, dict[str, Any]]:
    """What the index must hold: every readable, supported file and page of the sites, with its ACL."""
    out: dict[str, dict[str, Any]] = {}
    for drive_id, item in graph.live_files(site_ids):
        allow = graph.expected_allow(drive_id, item.id)
        if not allow or not item.name.endswith(supported):
            continue
        if max_bytes is not None and len(item.content) > max_bytes:
            continue
        d = graph.drives[drive_id]
        out[file_doc_id(drive_id, item.id)] = {"allow": set(allow), "uri": graph.item_json(d, item)["webUrl"]}
    if pages_allow:
        for sid in site_ids:
            site = graph.sites[sid]
            for p in site.pages.values():
                out[page_doc_id(sid, p.id)] = {
                    "allow": set(pages_allow),
                    "uri": graph.page_json(site, p, False)["webUrl"],
                }
    return out


def assert_index_matches(g: Grounder, expected: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    got = index_state(g)
    assert set(got) == set(expected), (
        f"missing: {sorted(set(expected) - set(got))}, unexpected: {sorted(set(got) - set(expected))}"
    )
    for doc_id, exp in expected.items():
        assert got[doc_id]["allow"] == exp["allow"], f"{doc_id}: ACL {got[doc_id]['allow']} != {exp['allow']}"
        assert got[doc_id]["uri"] == exp["uri"], f"{doc_id}: stale URI {got[doc_id]['uri']} != {exp['uri']}"
        n = len(got[doc_id]["positions"])
        assert got[doc_id]["positions"] == list(range(n)), f"{doc_id}: duplicated or missing chunks"
    return got


def retrieved_docs(g: Grounder, user: str, prompt: str, groups: tuple[str, ...] = ()) -> set[str]:
    req = GroundingRequest(user=UserContext.of(user, TENANT, groups), prompt=prompt, top_k=20)
    return {c.doc_id for c in g.retrieve(req)}


def cited_docs(g: Grounder, user: str, prompt: str, groups: tuple[str, ...] = ()) -> set[str]:
    draft = g.ground(prompt, user, tenant=TENANT, groups=groups, top_k=20)
    return {c.doc_id for c in draft.citations}
