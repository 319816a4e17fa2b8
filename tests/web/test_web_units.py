"""Unit tests of the web connector's parts: URLs and scope, the address policy, robots directives,
sitemaps, decoding, page parsing and citation anchors. No network."""

from __future__ import annotations

import gzip
import ipaddress
import socket
from typing import Any

import groundwire.connectors.web as web
import pytest
from groundwire import ConnectorContext, MissingExtra
from groundwire.connectors.web.fetch import AddressPolicy, BlockedAddress
from groundwire.connectors.web.page import decode, parse_html, robots_directives, trafilatura_module
from groundwire.connectors.web.robots import parse_sitemap
from groundwire.connectors.web.urls import Scope, normalize_url

from .static_site import GUIDE, OVERTIME


@pytest.mark.parametrize(("raw", "normal"), [
    ("HTTPS://Docs.Example.COM:443/a/./b/../c?x=1#frag", "https://docs.example.com/a/c?x=1"),
    ("http://docs.example.com:80", "http://docs.example.com/"),
    ("https://docs.example.com:8443/%7Euser/%2fx%c3%a9", "https://docs.example.com:8443/~user/%2Fx%C3%A9"),
    ("https://docs.example.com/a b/é", "https://docs.example.com/a%20b/%C3%A9"),
    ("https://docs.example.com/p?utm_source=mail&id=7&utm_medium=x", "https://docs.example.com/p?id=7"),
    ("https://docs.example.com./", "https://docs.example.com/"),
    ("https://bücher.example/", "https://xn--bcher-kva.example/"),
    ("https://[::1]:8080/x", "https://[::1]:8080/x"),
    ("https://docs.example.com/../../etc", "https://docs.example.com/etc"),
    ("mailto:hr@example.com", None),
    ("javascript:alert(1)", None),
    ("ftp://docs.example.com/", None),
    ("https://user:pw@docs.example.com/", None),
    ("https://docs.example.com:99999/", None),
    ("/relative/path", None),
])
def test_normalize_url(raw: str, normal: str | None) -> None:
    assert normalize_url(raw, ["utm_*"]) == normal


def test_scope() -> None:
    scope = Scope(["https://docs.example/start.html"], ["https://docs.example/docs/", "https://wiki.example/hr"],
                  ["intranet"])
    assert scope.refusal("https://docs.example/start.html") is None
    assert scope.refusal("https://docs.example/docs/") is None
    assert scope.refusal("https://docs.example/docs") is None
    assert scope.refusal("https://docs.example/docs/a/b.html") is None
    assert scope.refusal("https://wiki.example/hr/leave") is None
    assert scope.refusal("https://wiki.example/hr") is None
    assert scope.refusal("https://wiki.example/hr-secret") == "outside the allow-list"  # segment boundary
    assert scope.refusal("https://docs.example/other.html") == "outside the allow-list"
    assert scope.refusal("https://docs.example:8443/docs/") == "outside the allow-list"  # another origin
    assert scope.refusal("https://evil.example/docs/") == "outside the allow-list"
    assert "https is required" in (scope.refusal("http://docs.example/docs/") or "")
    assert scope.scheme_refusal("http://intranet/x") is None
    assert scope.origin_allowed("https://wiki.example/robots.txt")
    assert not scope.origin_allowed("http://wiki.example/robots.txt")


@pytest.mark.parametrize(("ip", "kind"), [
    ("127.0.0.1", "loopback"), ("10.1.2.3", "private"), ("172.16.0.1", "private"), ("192.168.1.1", "private"),
    ("169.254.169.254", "link-local"), ("0.0.0.0", "unspecified"), ("224.0.0.1", "multicast"),
    ("240.0.0.1", "reserved"), ("100.64.0.1", "public"), ("::1", "loopback"), ("fe80::1", "link-local"),
    ("fc00::1", "private"), ("::ffff:127.0.0.1", "loopback"), ("::ffff:10.0.0.1", "private"),
])
def test_address_policy_refuses_what_is_not_public(ip: str, kind: str) -> None:
    reason = AddressPolicy([]).refusal(ipaddress.ip_address(ip))
    assert reason is not None and kind in reason


def test_address_policy_admits_public_and_configured_networks() -> None:
    policy = AddressPolicy([ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("fd00::/8")])
    for ip in ("8.8.8.8", "2001:4860:4860::8888", "127.0.0.5", "fd12::1", "::ffff:127.0.0.1"):
        assert policy.refusal(ipaddress.ip_address(ip)) is None, ip
    assert policy.refusal(ipaddress.ip_address("10.0.0.1")) is not None


def test_resolve_keeps_only_allowed_addresses(monkeypatch: pytest.MonkeyPatch) -> None:
    answers = {"mixed.test": ["127.0.0.2", "127.0.0.1", "127.0.0.1"], "blocked.test": ["127.0.0.2", "::1"]}

    def getaddrinfo(host: str, port: int, *args: Any, **kwargs: Any) -> list[Any]:
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in answers[host]]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    policy = AddressPolicy([ipaddress.ip_network("127.0.0.1/32")])
    assert policy.resolve("mixed.test", 80) == ["127.0.0.1"]
    with pytest.raises(BlockedAddress, match="127.0.0.2 is a loopback address"):
        policy.resolve("blocked.test", 80)


@pytest.mark.parametrize(("value", "expected"), [
    ("noindex, nofollow", (True, True)), ("NONE", (True, True)), ("index, follow", (False, False)),
    ("nofollow", (False, True)), ("otherbot: noindex", (False, False)),
    ("groundwirebot: noindex", (True, False)),
    ("", (False, False)),
])
def test_robots_directives(value: str, expected: tuple[bool, bool]) -> None:
    assert robots_directives(value, "groundwirebot") == expected


def test_parse_sitemap_forms() -> None:
    urlset = (b'<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
              b"<url><loc> https://a.example/x?a=1&amp;b=2 </loc><lastmod>2024-01-01</lastmod></url>"
              b"<url><loc>https://a.example/y</loc></url></urlset>")
    assert parse_sitemap(urlset) == (["https://a.example/x?a=1&b=2", "https://a.example/y"], [])
    index = (b'<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
             b"<sitemap><loc>https://a.example/s1.xml.gz</loc></sitemap></sitemapindex>")
    assert parse_sitemap(index) == ([], ["https://a.example/s1.xml.gz"])
    assert parse_sitemap(gzip.compress(urlset))[0][1] == "https://a.example/y"
    assert parse_sitemap(b"https://a.example/1\n\nnot a url\nhttps://a.example/2\n") == (
        ["https://a.example/1", "https://a.example/2"], [])
    with pytest.raises(ValueError, match="not valid XML"):
        parse_sitemap(b"<urlset><url>")
    with pytest.raises(ValueError, match="uncompressed"):  # a decompression bomb stops at the limit
        parse_sitemap(gzip.compress(b"<" + b" " * (60 * 1024 * 1024)))


def test_decode_follows_the_browser_order() -> None:
    text = "Caf\u00e9 \u201cquoted\u201d"
    latin1 = "text/html; charset=ISO-8859-1"
    assert decode(text.encode("cp1252"), latin1, html=True) == text  # the ISO-8859-1 label means windows-1252
    meta = b"<meta charset='windows-1252'>"
    assert decode(meta + text.encode("cp1252"), "text/html", html=True) == meta.decode() + text
    assert decode(b"\xef\xbb\xbf" + text.encode(), latin1, html=True) == text  # a BOM wins
    assert decode(text.encode(), "text/plain", html=False) == text  # UTF-8 by default
    assert decode(text.encode("cp1252"), "text/plain", html=False) == text  # not UTF-8: windows-1252


def test_page_links_canonical_and_robots_meta() -> None:
    html = """<html><head><title> Leave  policy </title><base href="/base/">
    <link rel="Canonical" href="../leave.html"><meta http-equiv="refresh" content="5; url='next.html'">
    </head><body><a href="a.html">a</a><a href="#top">top</a><a href="b.html" rel="nofollow">b</a>
    <a href="a.html">again</a><area href="/map.html"><p>Text of the policy page.</p></body></html>"""
    p = parse_html(html, "https://x.example/dir/page.html", agent_token="bot", use_trafilatura=False,
                   fallback_title="page")
    assert p.title == "Leave policy"
    assert p.canonical == "https://x.example/leave.html"
    assert p.links == ["https://x.example/base/next.html", "https://x.example/base/a.html", "https://x.example/map.html"]
    noindex = parse_html("<meta name='robots' content='noindex,nofollow'><a href='a.html'>a</a><p>x</p>",
                         "https://x.example/", agent_token="bot", use_trafilatura=False, fallback_title="t")
    assert (noindex.noindex, noindex.nofollow, noindex.links, noindex.sections) == (True, True, [], [])


ANCHORS = """<html><head><title>Anchors</title></head><body>
<h2 id="own id">Own id</h2><p>Under a heading with its own id, which has a space.</p>
<h2><a name="inner"></a>Inner anchor</h2><p>Under a heading with a named anchor inside.</p>
<a id="before"></a><h2>Anchor before</h2><p>Under a heading after an empty anchor.</p>
<section id="wrapped"><h2>Wrapped</h2><p>Under a heading that opens a section with an id.</p></section>
<div id="not-first"><p>Intro of the div.</p><h2>Later in div</h2><p>Under a later heading.</p></div>
<h3>Deep, with - dash &amp; comma</h3><p>Under a heading without any id nearby.</p>
</body></html>"""


@pytest.mark.parametrize("use_trafilatura", [True, False])
def test_citation_anchors_exist_in_the_page(use_trafilatura: bool) -> None:
    if use_trafilatura and trafilatura_module() is None:
        pytest.skip("trafilatura (groundwire[web]) is not installed")
    p = parse_html(ANCHORS, "https://x.example/a.html", agent_token="bot", use_trafilatura=use_trafilatura,
                   fallback_title="a")
    anchors = {s.location: s.anchor for s in p.sections}
    assert anchors["Own id"] == "#own%20id"
    assert anchors["Inner anchor"] == "#inner"
    assert anchors["Anchor before"] == "#before"
    assert anchors["Wrapped"] == "#wrapped"
    assert anchors["Later in div"] == "#:~:text=Later%20in%20div"
    deep = anchors["Later in div > Deep, with - dash & comma"]
    assert deep == "#:~:text=Deep%2C%20with%20%2D%20dash%20%26%20comma"  # text directive delimiters escaped


@pytest.mark.parametrize("use_trafilatura", [True, False])
def test_main_content_without_navigation(use_trafilatura: bool) -> None:
    if use_trafilatura and trafilatura_module() is None:
        pytest.skip("trafilatura (groundwire[web]) is not installed")
    p = parse_html(GUIDE.format(overtime=OVERTIME), "https://x.example/guide.html", agent_token="bot",
                   use_trafilatura=use_trafilatura, fallback_title="guide")
    assert p.title == "Pay guide"
    assert [(s.location, s.anchor) for s in p.sections] == [
        ("", ""), ("Pay dates", "#pay-dates"), ("Overtime rules", "#:~:text=Overtime%20rules"),
        ("Bonus scheme", "#bonus")]
    text = " ".join(s.text for s in p.sections)
    assert "25th of every month" in text and "Copyright" not in text and "Handbook |" not in text


def test_public_audience_and_settings_defaults() -> None:
    s = web.WebSettings.model_validate({"start_urls": ["docs.example/start"], "audience": "public",
                                        "allow": ["docs.example/docs/"], "deny": ["Group:Contractors"]})
    assert s.audience == ["everyone"] and s.deny == ["group:contractors"]
    assert s.start_urls == ["https://docs.example/start"] and s.allow == ["https://docs.example/docs/"]


def test_explicit_trafilatura_without_the_extra(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    monkeypatch.setattr(web, "trafilatura_module", lambda: None)
    s = web.WebSettings.model_validate({"start_urls": ["https://docs.example/"], "audience": "public",
                                        "extractor": "trafilatura"})
    context = ConnectorContext(indexed={}, data_dir=tmp_path, config_dir=tmp_path)
    with pytest.raises(MissingExtra, match=r"groundwire\[web\]"):
        web.WebConnector("site", "acme", s, context)
