"""Safety of the web connector against real servers on loopback: nothing outside the configuration
is ever contacted. Every server's request log proves what was (not) requested.

Only loopback addresses are used, 127.0.0.1 as the "allowed" network and 127.0.0.2 as a blocked one.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from .static_site import StaticSite, build_docs_site, docs_settings, page
from .test_web_crawl import grounder

pytestmark = pytest.mark.integration
Serve = Callable[..., StaticSite]


def simple_site(serve: Serve, host: str = "127.0.0.1") -> StaticSite:
    site = serve(f"site-{host}", host)
    site.write("/index.html", page("Start", "<p>The start page of a small site.</p><a href='a.html'>a</a>"))
    site.write("/a.html", page("A", "<p>Page a of a small site.</p>"))
    return site


def settings_for(site: StaticSite, **extra: Any) -> dict[str, Any]:
    return {"start_urls": [site.url("/")], "allow": [site.url("/")], "audience": "public",
            "allow_http_hosts": [site.host], "requests_per_second": 500, **extra}


def test_loopback_is_refused_unless_its_network_is_allowed(tmp_path: Path, serve: Serve) -> None:
    site = simple_site(serve)
    (report,) = grounder(tmp_path, settings_for(site)).sync()
    assert report.ok and report.added == 0
    assert site.paths() == [], "nothing may reach a loopback address that is not allowed"
    reason = dict(report.skipped)[site.url("/")]
    assert "127.0.0.1 is a loopback address" in reason and "allow_networks" in reason
    (report,) = grounder(tmp_path / "ok", settings_for(site, allow_networks=["127.0.0.0/8"])).sync()
    assert report.added == 2


def test_host_names_are_resolved_and_checked_before_connecting(tmp_path: Path, serve: Serve) -> None:
    site = simple_site(serve)
    start = f"http://localhost:{site.port}/"
    (report,) = grounder(tmp_path, {"start_urls": [start], "audience": "public",
                                    "allow_http_hosts": ["localhost"]}).sync()
    assert report.added == 0 and site.paths() == []
    assert "loopback address" in dict(report.skipped)[start]


def test_a_redirect_to_a_blocked_address_is_never_followed(tmp_path: Path, serve: Serve) -> None:
    site = simple_site(serve)
    other = simple_site(serve, "127.0.0.2")  # in the allow-list, but not in allow_networks
    site.write("/index.html", page("Start", "<p>Start.</p><a href='go'>go</a><a href='a.html'>a</a>"))
    site.redirects["/go"] = (302, other.url("/a.html"))
    settings = settings_for(site, allow_networks=["127.0.0.1/32"], allow=[site.url("/"), other.url("/")],
                            allow_http_hosts=["127.0.0.1", "127.0.0.2"])
    (report,) = grounder(tmp_path, settings).sync()
    assert report.added == 2
    assert other.paths() == [], "the redirect target's address is not allowed"
    assert "127.0.0.2 is a loopback address" in dict(report.skipped)[site.url("/go")]


def test_dns_rebinding_between_connections_cannot_reach_a_blocked_address(
    tmp_path: Path, serve: Serve, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first lookup of a name answers 127.0.0.1 (allowed), every later one 127.0.0.2 (blocked):
    each new connection is checked against the address it actually connects to."""
    site = simple_site(serve)
    site.keep_alive = False  # a new connection, so a new lookup, for every request
    site.write("/robots.txt", "User-agent: *\nAllow: /\n")
    real = socket.getaddrinfo
    answers = iter(["127.0.0.1"])

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "rebind.test":
            addr = next(answers, "127.0.0.2")
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (addr, port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    base = f"http://rebind.test:{site.port}"
    settings = {"start_urls": [base + "/"], "allow": [base + "/"], "audience": "public",
                "allow_http_hosts": ["rebind.test"], "allow_networks": ["127.0.0.1/32"],
                "sitemaps": False, "requests_per_second": 500}
    (report,) = grounder(tmp_path, settings).sync()
    assert site.paths() == ["/robots.txt"]  # over the first, checked connection
    assert "127.0.0.2 is a loopback address" in dict(report.skipped)[base + "/"]
    assert report.added == 0


def test_robots_txt_of_the_configured_user_agent(tmp_path: Path, serve: Serve) -> None:
    site: StaticSite = serve()
    build_docs_site(site)  # robots.txt: "User-agent: OtherBot / Disallow: /"
    (report,) = grounder(tmp_path, docs_settings(site, user_agent="OtherBot/2.0")).sync()
    assert report.added == 0
    assert site.paths() == ["/robots.txt"]
    assert dict(report.skipped)[site.url("/docs/")] == "refused: disallowed by robots.txt"


@pytest.mark.parametrize(("status", "requested"), [
    (403, ["/robots.txt"]), (404, ["/robots.txt", "/sitemap.xml"])])
def test_robots_txt_forbidden_refuses_the_site_and_missing_allows_it(
    tmp_path: Path, serve: Serve, status: int, requested: list[str]
) -> None:
    site = simple_site(serve)
    site.status["/robots.txt"] = status
    (report,) = grounder(tmp_path, settings_for(site, allow_networks=["127.0.0.1/32"])).sync()
    assert site.paths()[: len(requested)] == requested
    assert report.added == (0 if status == 403 else 2)


@pytest.mark.parametrize(("settings", "message"), [
    ({"start_urls": ["http://127.0.0.1:9/"], "audience": "public"}, "https is required"),
    ({"start_urls": ["https://docs.example/"], "audience": []}, "empty audience"),
    ({"start_urls": ["https://docs.example/"], "audience": ["staff"]}, "invalid principal"),
    ({"start_urls": ["https://docs.example/"]}, "audience"),
    ({"start_urls": ["https://user:pw@docs.example/"], "audience": "public"}, "without credentials"),
    ({"start_urls": ["https://docs.example/"], "audience": "public", "allow_networks": ["10.0.0.300/8"]},
     "allow_networks"),
    ({"start_urls": ["https://docs.example/"], "audience": "public", "max_pages": 0}, "max_pages"),
])
def test_bad_settings_are_configuration_errors(
    tmp_path: Path, settings: dict[str, Any], message: str
) -> None:
    (report,) = grounder(tmp_path, settings).sync()
    assert not report.ok and "connectors.site" in report.error and message in report.error
