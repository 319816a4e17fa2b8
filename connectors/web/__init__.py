"""Web connector: crawl configured web sites into the index (``type = "web"``).

Configuration (one ``[connectors.<name>]`` table per site; all but ``start_urls`` and ``audience``
have defaults)::

    [connectors.handbook-site]
    type = "web"
    tenant = "acme"
    start_urls = ["https://handbook.acme.example/"]
    allow = ["https://handbook.acme.example/policies/"]   # URL prefixes crawled beyond the start URLs
    audience = ["everyone"]        # principals every page is visible to, or "public" (= everyone)
    user_agent = "GroundwireBot/0.1"
    max_depth = 3                  # link hops from a start URL (sitemap URLs count as start URLs)
    max_pages = 1000               # pages requested per sync
    requests_per_second = 2.0      # per host; robots.txt crawl-delay may slow it further
    per_host_concurrency = 2
    concurrency = 4
    timeout_seconds = 20           # per response, in total
    max_page_mb = 10
    allow_http_hosts = []          # hosts that may be crawled over plain http
    allow_networks = []            # private / loopback networks that may be crawled, e.g. "10.1.0.0/16"

Safety (each refusal is reported as a ``Skipped`` change with its reason and logged):
- only the start URLs and URLs under an ``allow`` prefix are requested, including every redirect hop
  (redirects are followed by hand); robots.txt (``user_agent``) is honoured, and so are ``noindex`` /
  ``nofollow`` in robots meta tags and ``X-Robots-Tag``. robots.txt and the sitemaps it names (or
  ``/sitemap.xml``) are read at the root of each configured origin, even when ``allow`` names only a
  path below it; the sitemaps' URLs pass the same checks as links;
- https only, unless the host is in ``allow_http_hosts``; addresses that are not public (private,
  loopback, link-local, reserved, ...) are refused at connect time unless inside ``allow_networks``;
- responses larger than ``max_page_mb`` (decoded: a gzip body is inflated only up to it; other content
  codings are refused) or slower than ``timeout_seconds`` are aborted; content types other than HTML,
  plain text and PDF are skipped;
- host names are IDNA 2008 / UTS 46, as browsers resolve them (see :func:`.urls.ascii_host`).

Every page gets the site's ``audience`` as its ACL (per site, not per page). Pages are cited by URL,
with the fragment of the nearest heading (see :mod:`.page`). Incremental syncs use conditional GET
and delete pages that are gone, no longer reachable or no longer allowed (see :mod:`.crawl`).
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
from collections.abc import Iterator, Mapping
from typing import Any, Literal

from groundwire import AccessControl, Connector, ConnectorSettings, MissingExtra, hookimpl
from groundwire.connector import Change
from groundwire.models import EVERYONE, normalize_principal
from pydantic import Field, field_validator, model_validator

from .crawl import STATE_FORMAT, Crawl
from .fetch import AddressPolicy
from .page import trafilatura_module
from .urls import Scope, ascii_host, normalize_url

__all__ = ["WebConnector", "WebSettings"]

# settings that change how fast, not what, is crawled: changing them keeps conditional requests valid
_PACE_SETTINGS = {
    "requests_per_second", "concurrency", "per_host_concurrency", "timeout_seconds", "max_crawl_delay"
}


def _url_list(values: list[str], what: str, drop: list[str] | None = None) -> list[str]:
    out = []
    for raw in values:
        url = normalize_url(raw if "://" in raw else "https://" + raw, drop or ())
        if url is None:
            raise ValueError(f"{what} {raw!r} is not an absolute http(s) URL without credentials")
        out.append(url)
    return out


class WebSettings(ConnectorSettings):
    start_urls: list[str] = Field(min_length=1)
    allow: list[str] = Field(default_factory=list)
    audience: list[str] | Literal["public"]
    deny: list[str] = Field(default_factory=list)
    user_agent: str = Field(default="GroundwireBot/0.1", min_length=1)
    max_depth: int = Field(default=3, ge=0, le=100)
    max_pages: int = Field(default=1000, ge=1, le=1_000_000)
    requests_per_second: float = Field(default=2.0, gt=0, le=1000)
    concurrency: int = Field(default=4, ge=1, le=64)
    per_host_concurrency: int = Field(default=2, ge=1, le=64)
    timeout_seconds: float = Field(default=20.0, gt=0, le=600)
    max_page_mb: float = Field(default=10.0, gt=0, le=1024)
    max_redirects: int = Field(default=5, ge=0, le=20)
    max_crawl_delay: float = Field(default=30.0, ge=0, le=3600)
    allow_http_hosts: list[str] = Field(default_factory=list)
    allow_networks: list[str] = Field(default_factory=list)
    sitemaps: bool = True
    extractor: Literal["auto", "trafilatura", "html"] = "auto"
    drop_query_params: list[str] = Field(default_factory=lambda: ["utm_*"])

    @field_validator("audience")
    @classmethod
    def _audience(cls, v: list[str] | str) -> list[str]:
        tokens = [EVERYONE] if v == "public" else [normalize_principal(p) for p in v]
        if not tokens:
            raise ValueError("an empty audience would hide every page; name principals or 'public'")
        return tokens

    @field_validator("deny")
    @classmethod
    def _deny(cls, v: list[str]) -> list[str]:
        return [normalize_principal(p) for p in v]

    @field_validator("allow_networks")
    @classmethod
    def _networks(cls, v: list[str]) -> list[str]:
        return [str(ipaddress.ip_network(n.strip(), strict=False)) for n in v]

    @field_validator("allow_http_hosts")
    @classmethod
    def _hosts(cls, v: list[str]) -> list[str]:
        out = []
        for raw in v:
            h = raw.strip().rstrip(".")
            ascii_form = h.casefold() if h.isascii() else ascii_host(h)
            if not ascii_form:
                raise ValueError(f"allow_http_hosts entry {raw!r} is not a valid host name")
            out.append(ascii_form)
        return out

    @model_validator(mode="after")
    def _urls(self) -> WebSettings:
        self.start_urls = _url_list(self.start_urls, "start URL", self.drop_query_params)
        self.allow = _url_list(self.allow, "allow entry")
        scope = Scope(self.start_urls, self.allow, self.allow_http_hosts)
        for url in self.start_urls + self.allow:
            reason = scope.scheme_refusal(url)
            if reason:
                raise ValueError(f"{url}: {reason}")
        return self


class WebConnector(Connector):
    type = "web"
    Settings = WebSettings

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        s: WebSettings = self.settings  # type: ignore[assignment]
        if s.extractor == "trafilatura" and trafilatura_module() is None:
            raise MissingExtra("the web connector's trafilatura extractor", "web")
        assert isinstance(s.audience, list)
        self.acl = AccessControl.of(s.audience, s.deny)
        self.scope = Scope(s.start_urls, s.allow, s.allow_http_hosts)
        self.address_policy = AddressPolicy(ipaddress.ip_network(n) for n in s.allow_networks)
        what = s.model_dump(mode="json", exclude=_PACE_SETTINGS)
        what_json = json.dumps([STATE_FORMAT, what], sort_keys=True)
        self.fingerprint = hashlib.sha256(what_json.encode()).hexdigest()[:12]
        self._crawl: Crawl | None = None

    def changes(self, state: Mapping[str, Any]) -> Iterator[Change]:
        self._crawl = Crawl(self, state)
        yield from self._crawl.run()

    def close(self) -> None:
        if self._crawl is not None:
            self._crawl.close()


@hookimpl
def register_connectors(register: Any) -> None:
    register(WebConnector)
