"""robots.txt rules per origin and sitemap parsing for the web connector.

Invariants:
- robots.txt is read once per origin and sync (thread-safe), with the configured user agent, and its
  rules decide before any page request and before every redirect hop.
- Unreadable rules fail closed: 401/403 or a refused fetch disallow the whole origin; a server error or
  network failure makes the origin *unavailable* for this sync: nothing is requested and nothing already
  indexed from it is deleted (an outage must not empty the index). Other 4xx mean no rules (allow all).
- Crawl-delay and request-rate slow the origin down (up to ``max_delay`` seconds per request).
- Matching follows RFC 9309 (Google's robots.txt spec) through protego, Scrapy's parser: the group of
  the most specific matching product token, ``*`` and ``$`` in paths, the longest matching rule decides
  and ``allow`` wins a tie; ``/robots.txt`` itself is always allowed. (``urllib.robotparser``, used
  before, takes the first matching rule and has no wildcards.)
"""

from __future__ import annotations

import threading
import xml.etree.ElementTree as ET
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urljoin

from protego import Protego

from .fetch import Fetcher, FetchError, Refused
from .urls import normalize_url, origin_of

__all__ = ["RobotsCache", "RobotsRules", "parse_robots", "parse_sitemap", "same_origin_hop"]

ROBOTS_MAX_BYTES = 512 * 1024
SITEMAP_MAX_BYTES = 50 * 1024 * 1024  # the sitemap protocol's own limit (uncompressed)


def same_origin_hop(origin: str) -> Callable[[str, str], str]:
    """A ``next_hop`` for site files (robots.txt, sitemaps): redirects may not leave ``origin``."""

    def hop(current: str, location: str) -> str:
        target = normalize_url(urljoin(current, location))
        if target is None or origin_of(target) != origin:
            raise Refused(f"redirects to {location}, off the origin {origin}")
        return target

    return hop


def parse_robots(body: bytes) -> Protego:
    """Parse a robots.txt body (UTF-8, invalid bytes replaced, as RFC 9309 section 2.3 expects)."""
    return Protego.parse(body.decode("utf-8", errors="replace"))


@dataclass(slots=True)
class RobotsRules:
    """The rules of one origin; ``parser`` is ``None`` when there are none (allow all)."""

    parser: Protego | None
    unavailable: str = ""  # non-empty: the rules could not be read this sync (transient)
    denied: str = ""  # non-empty: why the whole origin is refused (fail closed)
    sitemaps: list[str] = field(default_factory=list)


class RobotsCache:
    def __init__(self, fetcher: Fetcher, user_agent: str, max_delay: float) -> None:
        self.fetcher = fetcher
        self.user_agent = user_agent
        self.max_delay = max_delay
        self._rules: dict[str, RobotsRules] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()

    def rules(self, url: str) -> RobotsRules:
        origin = origin_of(url)
        with self._lock:
            lock = self._locks.setdefault(origin, threading.Lock())
        with lock:
            if origin not in self._rules:
                self._rules[origin] = self._load(origin)
            return self._rules[origin]

    def disallowed(self, url: str) -> str | None:
        """Why robots.txt forbids ``url`` (for good), or ``None``."""
        rules = self.rules(url)
        if rules.denied:
            return rules.denied
        if not rules.unavailable and rules.parser is not None and not rules.parser.can_fetch(url, self.user_agent):
            return "disallowed by robots.txt"
        return None

    def unavailable(self, url: str) -> str | None:
        """Why the rules for ``url`` could not be read this sync (transient), or ``None``."""
        return self.rules(url).unavailable or None

    def was_unavailable(self, url: str) -> bool:
        """Whether this sync found the rules for ``url`` unreadable (never fetches anything)."""
        with self._lock:
            rules = self._rules.get(origin_of(url))
        return rules is not None and bool(rules.unavailable)

    def _load(self, origin: str) -> RobotsRules:
        try:
            resp = self.fetcher.get(
                origin + "/robots.txt", next_hop=same_origin_hop(origin), max_bytes=ROBOTS_MAX_BYTES
            )
        except FetchError as exc:
            what = f"robots.txt of {origin} could not be read: {exc.reason}"
            if exc.transient:
                return RobotsRules(None, unavailable=what)
            return RobotsRules(None, denied=what)
        if resp.status in (401, 403):
            return RobotsRules(None, denied=f"robots.txt of {origin} is forbidden (HTTP {resp.status})")
        if 400 <= resp.status < 500 and resp.status != 429:
            return RobotsRules(None)
        if not 200 <= resp.status < 300:
            return RobotsRules(None, unavailable=f"robots.txt of {origin} answered HTTP {resp.status}")
        parser = parse_robots(resp.body)
        delay = parser.crawl_delay(self.user_agent)
        rate = parser.request_rate(self.user_agent)
        wanted = max(float(delay or 0), rate.seconds / rate.requests if rate and rate.requests else 0.0)
        if wanted:
            self.fetcher.slow_down(origin + "/", min(wanted, self.max_delay))
        return RobotsRules(parser, sitemaps=list(parser.sitemaps))


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def parse_sitemap(body: bytes) -> tuple[list[str], list[str]]:
    """``(page URLs, nested sitemap URLs)`` of a sitemap, a sitemap index, gzipped or not, or a text list.

    :raises ValueError: unreadable, or larger than the protocol's 50 MB once decompressed
    """
    if body[:2] == b"\x1f\x8b":
        inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            body = inflate.decompress(body, SITEMAP_MAX_BYTES)
        except zlib.error as exc:
            raise ValueError(f"bad gzip data: {exc}") from exc
        if inflate.unconsumed_tail:
            raise ValueError(f"larger than {SITEMAP_MAX_BYTES} bytes uncompressed")
    stripped = body.lstrip()
    if not stripped.startswith(b"<"):
        lines = body.decode("utf-8", errors="replace").splitlines()
        return [ln.strip() for ln in lines if ln.strip().startswith(("http://", "https://"))], []
    try:
        root = ET.fromstring(body)
    except ET.ParseError as exc:
        raise ValueError(f"not valid XML: {exc}") from exc
    pages: list[str] = []
    nested: list[str] = []
    target = nested if _local(root.tag) == "sitemapindex" else pages
    for entry in root:
        for child in entry:
            if _local(child.tag) == "loc" and child.text and child.text.strip():
                target.append(child.text.strip())
    return pages, nested
