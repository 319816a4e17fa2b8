"""Red team, round 3: the web connector against hostile servers and look-alike host names.

- Compression bombs: the connector asks for ``Accept-Encoding: identity``, but a server may send a
  compressed body anyway. What is *inflated* must stay within ``max_page_mb`` (measured with tracemalloc
  while a real loopback server sends the bomb), not only what is kept.
- Host names: a configured ``straße.example`` is ``xn--strae-oqa.example`` (IDNA 2008 / UTS #46, what
  browsers resolve), never ``strasse.example``, which is someone else's domain.
"""

from __future__ import annotations

import gzip
import threading
import tracemalloc
import zlib
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from groundwire.connectors.web import WebSettings
from groundwire.connectors.web.fetch import Fetcher, FetchError
from groundwire.connectors.web.urls import Scope, normalize_url
from hypothesis import given, settings
from hypothesis import strategies as st

from .conftest import loopback_fetcher

pytestmark = pytest.mark.integration

MB = 1 << 20
LIMIT = MB  # loopback_fetcher's max_bytes


def _deflate_zeros(n_mb: int) -> bytes:
    """gzip of ``n_mb`` MiB of zeros, built without holding them in memory."""
    c = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = bytes(MB)
    return b"".join(c.compress(block) for _ in range(n_mb)) + c.flush()


def _zstd_zeros(n_mb: int) -> bytes:
    zstandard = pytest.importorskip("zstandard")
    c = zstandard.ZstdCompressor().compressobj()
    block = bytes(MB)
    return b"".join(c.compress(block) for _ in range(n_mb)) + c.flush()


class _OneBody:
    """A loopback server answering every GET with ``body`` and ``headers`` (Content-Length set)."""

    def __init__(self) -> None:
        self.body, self.headers = b"", {}  # type: tuple[bytes, dict[str, str]]
        me = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802
                self.send_response(200)
                for k, v in me.headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(me.body)))
                self.end_headers()
                try:
                    self.wfile.write(me.body)
                except OSError:
                    pass

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/page.html"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def origin() -> Iterator[_OneBody]:
    srv = _OneBody()
    try:
        yield srv
    finally:
        srv.close()


@pytest.fixture
def fetcher() -> Iterator[Fetcher]:
    f = loopback_fetcher(10.0)
    try:
        yield f
    finally:
        f.close()


def _peak_while(fn: Callable[[], Any]) -> tuple[Any, int]:
    """``fn()``'s result (or the FetchError it raised) and the peak of Python memory allocated meanwhile."""
    tracemalloc.start()
    try:
        try:
            result: Any = fn()
        except FetchError as exc:
            result = exc
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return result, peak


def _hop(current: str, location: str) -> str:
    raise AssertionError("no redirect expected")


BOMBS = {
    "gzip 64 MiB": (lambda: _deflate_zeros(64), "gzip"),
    "gzip inside gzip 256 MiB": (lambda: gzip.compress(_deflate_zeros(256)), "gzip, gzip"),
    "zstd 256 MiB": (lambda: _zstd_zeros(256), "zstd"),
}


@pytest.mark.parametrize("bomb", list(BOMBS))
def test_a_compressed_bomb_is_refused_without_inflating_it(origin: _OneBody, fetcher: Fetcher, bomb: str) -> None:
    build, coding = BOMBS[bomb]
    origin.body, origin.headers = build(), {"Content-Type": "text/html", "Content-Encoding": coding}
    assert len(origin.body) < LIMIT, "the bomb itself is small: the declared size cannot catch it"
    result, peak = _peak_while(lambda: fetcher.get(origin.url, next_hop=_hop))
    assert isinstance(result, FetchError), f"a {bomb} bomb was read: {type(result).__name__}"
    assert "limit" in result.reason or "not asked for" in result.reason, result.reason
    # what is inflated stays near the page limit (the old code inflated 64 MiB+ in one step)
    assert peak < 8 * LIMIT, f"{peak / MB:.1f} MiB allocated while refusing a {bomb} bomb"


def test_a_gzip_page_within_the_limit_is_still_read(origin: _OneBody, fetcher: Fetcher) -> None:
    html = "<html><head><title>Gz</title></head><body><p>" + "quagga " * 20000 + "</p></body></html>"
    origin.body = gzip.compress(html.encode())
    origin.headers = {"Content-Type": "text/html; charset=utf-8", "Content-Encoding": "gzip"}
    resp = fetcher.get(origin.url, next_hop=_hop)
    assert resp.status == 200 and resp.body == html.encode()
    origin.body = b"\x1f\x8b\x08\x00not really gzip"
    with pytest.raises(FetchError, match="corrupt"):
        fetcher.get(origin.url, next_hop=_hop)


# --- look-alike host names ------------------------------------------------------------------------------


@pytest.mark.parametrize(("configured", "ascii_form", "other_domain"), [
    ("https://straße.example/", "https://xn--strae-oqa.example/", "https://strasse.example/"),
    ("https://σοφος.example/", "https://xn--0xaajbq.example/", "https://xn--0xaakcn.example/"),  # final ς, not σ
    ("https://xn--strae-oqa.example./a/../", "https://xn--strae-oqa.example/", "https://strasse.example/"),
])
def test_an_idn_host_is_the_host_a_browser_would_open(configured: str, ascii_form: str, other_domain: str) -> None:
    assert normalize_url(configured) == ascii_form
    s = WebSettings(start_urls=[configured], audience=["everyone"])
    assert s.start_urls == [ascii_form]
    scope = Scope(s.start_urls, [ascii_form], ())
    assert scope.refusal(ascii_form) is None
    assert scope.refusal(other_domain) == "outside the allow-list", f"{other_domain} was admitted for {configured}"


def test_allow_http_hosts_takes_idn_names_in_their_ascii_form() -> None:
    s = WebSettings(start_urls=["http://bücher.example/"], audience=["everyone"], allow_http_hosts=["Bücher.example."])
    assert s.allow_http_hosts == ["xn--bcher-kva.example"]
    assert s.start_urls == ["http://xn--bcher-kva.example/"]


# --- encoded dot segments --------------------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "normal"), [
    ("https://site.example/policies/%2E%2E/admin/secret", "https://site.example/admin/secret"),
    ("https://site.example/policies/.%2e/admin", "https://site.example/admin"),
    ("https://site.example/policies/%2e/leave", "https://site.example/policies/leave"),
    ("https://site.example/policies/..;/admin", None),
    ("https://site.example/policies/.;x/admin", None),
])
def test_percent_encoded_dot_segments_are_resolved_before_the_scope_check(raw: str, normal: str | None) -> None:
    assert normalize_url(raw) == normal
    scope = Scope(["https://site.example/policies/"], ["https://site.example/policies/"], ())
    if normal is not None and not normal.startswith("https://site.example/policies/"):
        assert scope.refusal(normal) == "outside the allow-list"


def test_a_link_with_encoded_dots_cannot_reach_a_page_outside_the_allow_list(tmp_path: Any, serve: Any) -> None:
    from .static_site import page
    from .test_web_crawl import grounder, indexed_paths

    site = serve()
    links = "".join(f'<p><a href="{h}">more</a></p>' for h in (
        "%2E%2E/admin/secret.html", "/policies/.%2e/admin/secret.html", "/policies/..;/admin/secret.html",
        "leave.html", "old-leave.html"))
    # a redirect and a sitemap entry are normalised once before the scope check (links twice)
    site.redirects["/policies/old-leave.html"] = (301, "/policies/%2E%2E/admin/secret.html")
    site.write("/sitemap.xml", '<?xml version="1.0" encoding="UTF-8"?><urlset '
               'xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
               f'<url><loc>{site.url("/policies/%2e%2e/admin/payroll.html")}</loc></url></urlset>')
    site.write("/admin/payroll.html", page("Payroll", "<p>The capybarapayroll of every employee.</p>"))
    site.write("/policies/index.html", page("Policies", "<p>Our policies on kinkajouleave.</p>" + links))
    site.write("/policies/leave.html", page("Leave", "<p>Kinkajouleave is twenty days.</p>"))
    site.write("/admin/secret.html", page("Salaries", "<p>The capybarasalary table of every employee.</p>"))
    g = grounder(tmp_path, {
        "start_urls": [site.url("/policies/index.html")], "allow": [site.url("/policies/")],
        "audience": ["everyone"], "allow_http_hosts": ["127.0.0.1"], "allow_networks": ["127.0.0.1/32"],
        "requests_per_second": 500,
    })
    (rep,) = g.sync()
    assert rep.ok, rep.error
    assert indexed_paths(g, site) == {"/policies/index.html", "/policies/leave.html"}
    requested = {h.path for h in site.hits}
    assert not any(p.startswith("/admin") for p in requested), f"requested outside the allow-list: {requested}"


_SEGMENTS = st.sampled_from(["docs", "admin", ".", "..", "%2E", "%2e%2E", ".%2e", "%2F", "%252E%252E", "a;b",
                             "%41", "ä", "%C3%A4", "", "~x", "%7E", "..;", "?q=1", "#f", "%", "%zz"])


@settings(max_examples=300, deadline=None)
@given(st.lists(_SEGMENTS, min_size=1, max_size=7))
def test_the_path_checked_is_the_path_requested(segments: list[str]) -> None:
    """Property: for any URL with a normal form, normalising is idempotent, and the path the HTTP client
    sends is the normalised path the scope checked (no later resolution moves it)."""
    n = normalize_url("https://site.example/" + "/".join(segments))
    if n is None:
        return
    assert normalize_url(n) == n
    sent = httpx.URL(n).raw_path.decode("ascii").split("?", 1)[0]
    assert sent == urlsplit(n).path, f"checked {urlsplit(n).path!r}, requested {sent!r}"


# --- a narrowed audience while the site is down -----------------------------------------------------------


@pytest.mark.parametrize("outage", ["page-503", "robots-503"])
def test_a_narrowed_audience_applies_even_when_the_site_is_down(tmp_path: Any, serve: Any, outage: str) -> None:
    """An outage keeps what is indexed (by design), but never under an audience the operator removed: a
    page kept from an earlier sync whose ACL is no longer the configured one is withdrawn instead."""
    from groundwire import GroundingRequest, UserContext

    from .static_site import page
    from .test_web_crawl import grounder, indexed_paths

    site = serve()
    site.write("/docs/index.html", page("Docs", '<p>Start.</p><p><a href="pay.html">pay</a></p>'))
    site.write("/docs/pay.html", page("Pay", "<p>The ocelotbonus pool is forty thousand.</p>"))
    settings = {"start_urls": [site.url("/docs/index.html")], "allow": [site.url("/docs/")],
                "allow_http_hosts": ["127.0.0.1"], "allow_networks": ["127.0.0.1/32"],
                "requests_per_second": 500, "timeout_seconds": 2, "sitemaps": False}

    def sees(g: Any, groups: tuple[str, ...]) -> bool:
        user = UserContext.of("sam@acme.example", "acme", groups=groups)
        chunks = g.retrieve(GroundingRequest(user=user, prompt="ocelotbonus pool", top_k=5))
        return any(c.uri.startswith(site.url("/docs/pay.html")) for c in chunks)

    g = grounder(tmp_path, {**settings, "audience": ["everyone"]})
    assert g.sync()[0].ok
    assert sees(g, ())
    if outage == "page-503":
        site.status["/docs/pay.html"] = 503
    else:
        site.status["/robots.txt"] = 503
    g = grounder(tmp_path, {**settings, "audience": ["group:payroll"]})  # the operator narrows the audience
    (rep,) = g.sync()
    assert not sees(g, ()), f"the removed audience still reads the page during the outage ({outage})"
    del site.status["/docs/pay.html" if outage == "page-503" else "/robots.txt"]
    assert g.sync()[0].ok
    assert sees(g, ("payroll",)) and not sees(g, ())
    assert "/docs/pay.html" in indexed_paths(g, site)
