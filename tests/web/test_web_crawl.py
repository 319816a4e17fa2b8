"""The web connector against a real static site on 127.0.0.1, through ``Grounder.sync``.

The site (conftest.build_docs_site) has, under the crawled prefix /docs/: pages linked from the start
page, one page only in the sitemap, a depth chain d1 -> d4 (d4 is too deep), redirects in and out of
scope, a canonical variant, a noindex page, ISO-8859-1 (charset header) and windows-1252 (meta charset)
pages, broken HTML, text, a PDF, an image, a 404 and a 410, a stalled page, an endless page, a page
whose Content-Length is too big and a page that drips slower than the time limit. Outside the prefix
or disallowed by robots.txt: /docs/drafts/, /private/, /outside/ and https://example.com/.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from groundwire import Grounder, GroundingRequest, UserContext, config_from_dict

from .static_site import GUIDE, StaticSite, build_docs_site, docs_settings, page

pytestmark = pytest.mark.integration

INDEXED = {
    "/docs/", "/docs/guide.html", "/docs/latin1.html", "/docs/cp1252.html", "/docs/broken.html",
    "/docs/notes.txt", "/docs/manual.pdf", "/docs/new-home.html", "/docs/orphan.html",
    "/docs/d1.html", "/docs/d2.html", "/docs/d3.html",
}
NEVER_REQUESTED = {
    "/docs/drafts/wip.html", "/docs/drafts/from-sitemap.html", "/private/secret.html", "/docs/d4.html",
    "/outside/page.html", "/outside/landing.html", "/outside/from-sitemap.html", "/outside/legal.html",
}
# answered 200 but never indexable, so fetched (or started) again each sync
NEVER_INDEXABLE = {"/docs/logo.png", "/docs/huge.html", "/docs/big.html", "/docs/drip.html"}


def grounder(tmp_path: Path, settings: dict[str, Any]) -> Grounder:
    return Grounder(config_from_dict({
        "data_dir": str(tmp_path / "gw"),
        "embedder": {"name": "hashing"},
        "generator": {"name": "extractive", "options": {"min_similarity": 0.05}},  # tuned for MiniLM
        "plugins": {"load_entrypoints": False},
        "connectors": {"site": {"type": "web", "tenant": "acme", **settings}},
    }, base_dir=tmp_path))


def indexed_paths(g: Grounder, site: StaticSite) -> set[str]:
    return {doc_id.removeprefix(site.base) for doc_id in g.index.tenant("acme").documents("site")}


def retrieve(g: Grounder, question: str, groups: tuple[str, ...] = ()) -> list[Any]:
    user = UserContext.of("sam@acme.example", "acme", groups=groups)
    return g.retrieve(GroundingRequest(user=user, prompt=question, top_k=3))


@pytest.fixture
def docs_site(serve: Any) -> StaticSite:
    site: StaticSite = serve()
    build_docs_site(site)
    return site


def test_sync_indexes_exactly_the_allowed_pages_and_syncs_incrementally(
    tmp_path: Path, docs_site: StaticSite
) -> None:
    site = docs_site
    g = grounder(tmp_path, docs_settings(site))

    (first,) = g.sync()
    assert first.ok, first.error
    assert indexed_paths(g, site) == INDEXED
    assert first.added == len(INDEXED) and first.deleted == 0
    hits = site.since(0)
    paths = Counter(h.path for h in hits)
    assert not NEVER_REQUESTED & set(paths), "out-of-scope or disallowed URLs were requested"
    assert "/" not in paths and "/outside/" not in {p[:9] for p in paths}
    assert max(paths.values()) == 1, f"a URL was requested twice: {paths.most_common(3)}"
    assert {h.user_agent for h in hits} == {"GroundwireTest/1.0"}
    skipped = dict(first.skipped)
    assert skipped[site.url("/outside/page.html")] == "refused: outside the allow-list"
    assert skipped["https://example.com/"] == "refused: outside the allow-list"
    assert skipped[site.url("/docs/drafts/wip.html")] == "refused: disallowed by robots.txt"
    assert skipped[site.url("/docs/leave")] == (
        f"refused: redirects to {site.url('/outside/landing.html')}: outside the allow-list")
    canonical = "not indexed: its canonical URL is " + site.url("/docs/guide.html")
    assert skipped[site.url("/docs/canonical-variant.html")] == canonical
    assert skipped[site.url("/docs/index.html")] == "duplicate of " + site.url("/docs/")
    assert skipped[site.url("/docs/noindex.html")] == "not indexed: noindex"
    assert skipped[site.url("/docs/logo.png")] == "unsupported content type image/png"
    assert skipped[site.url("/docs/missing.html")] == "gone (HTTP 404)"
    assert skipped[site.url("/docs/gone.html")] == "gone (HTTP 410)"
    assert "larger than the limit" in skipped[site.url("/docs/huge.html")]
    assert "(1200" in skipped[site.url("/docs/big.html")]  # refused on its declared length
    assert "no answer within 1.5 s" in skipped[site.url("/docs/slow.html")]
    assert "slower than the limit" in skipped[site.url("/docs/drip.html")]

    # retrieval: the page URL with the nearest heading's fragment, the heading path as location
    top = retrieve(g, "When are salaries paid?")[0]
    assert (top.uri, top.location, top.title) == (
        site.url("/docs/guide.html#pay-dates"), "Pay dates", "Pay guide")
    top = retrieve(g, "How is overtime paid?")[0]
    assert top.uri == site.url("/docs/guide.html#:~:text=Overtime%20rules")  # heading without an id
    top = retrieve(g, "When are bonuses paid?")[0]
    assert top.uri == site.url("/docs/guide.html#bonus")  # the id of the section the heading opens
    assert "Zürich" in retrieve(g, "crème brûlée canteen Zürich")[0].text  # ISO-8859-1 by header
    assert "“travel fee” – 50 €" in retrieve(g, "travel fee refund")[0].text  # windows-1252 by meta
    assert retrieve(g, "helmet in the warehouse")[0].uri == site.url("/docs/manual.pdf#page=1")
    draft = g.ground("When are salaries paid?", user="sam@acme.example", tenant="acme")
    assert site.url("/docs/guide.html#pay-dates") in {c.uri for c in draft.citations}

    # second sync: one page edited, one removed; only the edited page's content is fetched again
    site.write("/docs/guide.html", GUIDE.format(overtime="Overtime is now paid at twice the hourly rate."))
    site.remove("/docs/d3.html")
    mark = site.mark()
    (second,) = g.sync()
    assert second.ok, second.error
    assert (second.added, second.updated, second.deleted) == (0, 1, 1)
    assert second.unchanged == len(INDEXED) - 2
    assert indexed_paths(g, site) == INDEXED - {"/docs/d3.html"}
    hits = site.since(mark)
    by_status: dict[int, set[str]] = {}
    for h in hits:
        by_status.setdefault(h.status, set()).add(h.path)
    assert max(Counter(h.path for h in hits).values()) == 1
    # a 304 carries no content; every URL that gave a document, a duplicate, a noindex page or a canonical
    # alias last time was asked conditionally and answered 304
    assert all(h.conditional for h in hits if h.status == 304)
    assert by_status[304] == (INDEXED - {"/docs/guide.html", "/docs/d3.html"}) | {
        "/docs/index.html", "/docs/noindex.html", "/docs/canonical-variant.html"}
    # content fetched: the site files, the edited page, and the pages that can never be indexed
    assert by_status[200] == {"/robots.txt", "/sitemap.xml", "/docs/guide.html"} | NEVER_INDEXABLE
    assert next(h for h in hits if h.path == "/docs/guide.html").conditional
    assert by_status[404] == {"/docs/missing.html", "/docs/d3.html"}
    assert by_status[0] == {"/docs/slow.html"}  # still stalled: no status line was ever sent
    assert "twice the hourly rate" in retrieve(g, "How is overtime paid?")[0].text
    assert not NEVER_REQUESTED & {h.path for h in hits}
    assert dict(second.skipped)[site.url("/docs/canonical-variant.html")] == canonical  # reported as before

    # third sync: robots.txt now disallows a page that is indexed: it is deleted and never requested
    site.write("/robots.txt", (site.root / "robots.txt").read_text().replace(
        "Disallow: /private/", "Disallow: /private/\nDisallow: /docs/orphan.html"))
    mark = site.mark()
    (third,) = g.sync()
    assert third.deleted == 1 and "/docs/orphan.html" not in indexed_paths(g, site)
    assert "/docs/orphan.html" not in site.paths(mark)


def test_site_audience_is_the_acl_of_every_page(tmp_path: Path, docs_site: StaticSite) -> None:
    g = grounder(tmp_path, docs_settings(docs_site, audience=["group:staff"], deny=["user:sam@acme.example"]))
    (report,) = g.sync()
    assert report.ok and report.added == len(INDEXED)
    user = UserContext.of("kim@acme.example", "acme")
    assert g.retrieve(GroundingRequest(user=user, prompt="When are salaries paid?")) == []
    staff = UserContext.of("kim@acme.example", "acme", groups=["staff"])
    chunks = g.retrieve(GroundingRequest(user=staff, prompt="When are salaries paid?"))
    assert chunks and all(c.acl.allow == {"group:staff"} for c in chunks)
    assert retrieve(g, "When are salaries paid?", groups=("staff",)) == []  # sam is denied


def test_transient_failures_keep_the_indexed_pages(tmp_path: Path, docs_site: StaticSite) -> None:
    g = grounder(tmp_path, docs_settings(docs_site))
    (first,) = g.sync()
    before = indexed_paths(g, docs_site)
    docs_site.status["/docs/"] = 503  # the start page fails: its stored links keep the crawl going
    docs_site.status["/docs/guide.html"] = 500
    (second,) = g.sync()
    assert second.ok and second.deleted == 0
    assert indexed_paths(g, docs_site) == before
    assert dict(second.skipped)[docs_site.url("/docs/guide.html")] == "HTTP 500; the indexed version is kept"
    docs_site.status["/robots.txt"] = 503  # rules unreadable: nothing requested, nothing deleted
    mark = docs_site.mark()
    (third,) = g.sync()
    assert third.ok and third.deleted == 0 and indexed_paths(g, docs_site) == before
    assert docs_site.paths(mark) == ["/robots.txt"]


def test_depth_and_page_limits(tmp_path: Path, docs_site: StaticSite) -> None:
    g = grounder(tmp_path, docs_settings(docs_site, max_depth=1, max_pages=5, sitemaps=False))
    (report,) = g.sync()
    pages = [p for p in docs_site.paths() if p != "/robots.txt"]
    assert len(pages) == 5 and pages[0] == "/docs/"
    assert any(reason == "not crawled: max_pages=5" for _, reason in report.skipped)
    g2 = grounder(tmp_path / "two", docs_settings(docs_site, max_depth=0))
    mark = docs_site.mark()
    g2.sync()
    level0 = {p for p in docs_site.paths(mark) if p.startswith("/docs/")}  # the start URL and the sitemap's
    assert level0 == {"/docs/", "/docs/orphan.html", "/docs/guide.html"}


def test_per_host_rate_and_concurrency(tmp_path: Path, serve: Any) -> None:
    site: StaticSite = serve()
    links = "".join(f"<a href='p{i}.html'>{i}</a>" for i in range(8))
    site.write("/index.html", page("Start", f"<p>Eight pages follow.</p>{links}"))
    for i in range(8):
        site.write(f"/p{i}.html", page(f"Page {i}", f"<p>Page number {i} of the paced site.</p>"))
        site.delay[f"/p{i}.html"] = 0.15
    base = {"start_urls": [site.url("/")], "allow": [site.url("/")], "audience": "public",
            "allow_http_hosts": ["127.0.0.1"], "allow_networks": ["127.0.0.0/8"], "concurrency": 8}
    (report,) = grounder(tmp_path, {**base, "per_host_concurrency": 2, "requests_per_second": 100}).sync()
    assert report.ok and report.added == 9
    assert site.max_in_flight == 2
    mark = site.mark()
    paced = {**base, "per_host_concurrency": 8, "requests_per_second": 8}
    (report,) = grounder(tmp_path / "slow", paced).sync()
    starts = [h.start for h in site.since(mark)]
    gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
    assert len(starts) == 11  # robots.txt, sitemap.xml, 9 pages
    # the client starts requests >= 1/8 s apart; arrival times at the server jitter with connect times,
    # so the span is the exact check and each gap only has to show the limiter was there at all
    assert starts[-1] - starts[0] >= 10 * 0.125 - 0.02 and min(gaps) >= 0.125 / 2, gaps


def test_crawl_delay_from_robots_txt_slows_the_host(tmp_path: Path, serve: Any) -> None:
    site: StaticSite = serve()
    site.write("/robots.txt", "User-agent: *\nCrawl-delay: 1\n")
    site.write("/index.html", page("Start", "<p>Two pages.</p><a href='a.html'>a</a>"))
    site.write("/a.html", page("A", "<p>Page a.</p>"))
    settings = {"start_urls": [site.url("/")], "audience": "public", "allow": [site.url("/")],
                "allow_http_hosts": ["127.0.0.1"], "allow_networks": ["127.0.0.1/32"],
                "requests_per_second": 100, "sitemaps": False}
    (report,) = grounder(tmp_path, settings).sync()
    starts = [h.start for h in site.since(0)]
    assert report.added == 2 and len(starts) == 3
    assert starts[2] - starts[1] >= 0.9  # Crawl-delay: 1 (requests_per_second alone would allow 0.01 s)


def small_site(serve: Any) -> StaticSite:
    site: StaticSite = serve()
    site.write("/index.html", page("Start", "<p>The start page.</p><a href='print.html'>print</a>"
                                   "<a href='b.html'>b</a>"))
    site.write("/print.html", page("Article (print)", "<p>Printer version of the article.</p>",
                                   "<link rel='canonical' href='/article.html'>"))
    site.write("/article.html", page("Article", "<p>The article about parental leave rules.</p>"))
    site.write("/b.html", page("B", "<p>Page b about the canteen menu.</p>"))
    return site


def small_settings(site: StaticSite, **extra: Any) -> dict[str, Any]:
    return {"start_urls": [site.url("/")], "allow": [site.url("/")], "audience": "public",
            "allow_http_hosts": ["127.0.0.1"], "allow_networks": ["127.0.0.1/32"], "requests_per_second": 500,
            **extra}


def test_a_canonical_alias_is_not_indexed_its_canonical_url_is(tmp_path: Path, serve: Any) -> None:
    site = small_site(serve)  # print.html comes first and is the only way to article.html
    g = grounder(tmp_path, small_settings(site))
    (report,) = g.sync()
    assert indexed_paths(g, site) == {"/", "/article.html", "/b.html"}
    chunks = retrieve(g, "parental leave rules")
    assert chunks[0].uri == site.url("/article.html") and "Printer" not in chunks[0].text


def test_settings_change_refetches_once_then_conditional_again(tmp_path: Path, serve: Any) -> None:
    site = small_site(serve)
    (first,) = grounder(tmp_path, small_settings(site)).sync()
    g = grounder(tmp_path, small_settings(site, max_pages=50))  # what is crawled may differ: no 304s
    mark = site.mark()
    (second,) = g.sync()
    assert (second.added, second.updated, second.unchanged) == (0, 0, first.added)  # nothing re-embedded
    assert not any(h.conditional for h in site.since(mark))
    mark = site.mark()
    (third,) = g.sync()
    assert third.unchanged == first.added
    not_modified = {h.path for h in site.since(mark) if h.status == 304}
    assert not_modified == {"/", "/print.html", "/article.html", "/b.html"}


def test_a_page_that_breaks_the_parser_is_skipped(
    tmp_path: Path, serve: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import groundwire.connectors.web.crawl as crawl

    real = crawl.parse_html

    def parse_html(html: str, url: str, **kwargs: Any) -> Any:
        if url.endswith("/b.html"):
            raise RecursionError("maximum recursion depth exceeded")
        return real(html, url, **kwargs)

    monkeypatch.setattr(crawl, "parse_html", parse_html)
    site = small_site(serve)
    g = grounder(tmp_path, small_settings(site))
    (report,) = g.sync()
    assert report.ok and indexed_paths(g, site) == {"/", "/article.html"}
    reason = dict(report.skipped)[site.url("/b.html")]
    assert reason == "could not be parsed: RecursionError: maximum recursion depth exceeded"
