"""URL normalisation and the crawl scope of the web connector.

Invariants:
- :func:`normalize_url` gives one spelling per resource: lower-case scheme and host (IDNA 2008 / UTS #46,
  as browsers: see :func:`ascii_host`), no default
  port, percent-encoding normalised and then dot segments resolved (so ``%2E%2E`` cannot climb out of a
  prefix), no fragment, no ignored query parameters. URLs with credentials, a scheme other than
  http(s) or a segment like ``..;x`` have no normal form (``None``): never crawled.
- :class:`Scope` admits a URL only if it is a configured start URL or lies under an allow-list prefix
  (same scheme, host and port; path prefix on a segment boundary), and only over https unless its host is
  explicitly allowed plain http. Everything else is refused with a reason.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import quote, urlsplit, urlunsplit

import idna

__all__ = ["Scope", "ascii_host", "normalize_url", "origin_of"]

_DEFAULT_PORTS = {"http": 80, "https": 443}
_UNRESERVED = re.compile(r"[A-Za-z0-9\-._~]")
_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")
_PATH_SAFE = "/%:@!$&'()*+,;=~"
_QUERY_SAFE = _PATH_SAFE + "?"


def _norm_escapes(s: str, safe: str) -> str:
    """Decode escaped unreserved characters, upper-case the other escapes, escape what must be."""

    def repl(m: re.Match[str]) -> str:
        ch = chr(int(m.group(1), 16))
        return ch if _UNRESERVED.fullmatch(ch) else "%" + m.group(1).upper()

    return quote(_ESCAPE.sub(repl, s), safe=safe)


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 section 5.2.4."""
    out: list[str] = []
    segments = path.split("/")
    for i, seg in enumerate(segments):
        last = i == len(segments) - 1
        if seg == ".":
            if last:
                out.append("")
        elif seg == "..":
            if len(out) > 1:
                out.pop()
            if last:
                out.append("")
        else:
            out.append(seg)
    result = "/".join(out)
    return result if result.startswith("/") else "/" + result


def ascii_host(host: str) -> str | None:
    """The ASCII (punycode) form of a host name under IDNA 2008 with UTS #46 mapping, non-transitional,
    as browsers resolve it (``straße.de`` is ``xn--strae-oqa.de``); ``None`` if it has none.

    Python's own ``"idna"`` codec is IDNA 2003, which maps ``ß`` to ``ss`` (and ``ς`` to ``σ``...): it would
    crawl ``strasse.de``, another registrant's domain, for a configured ``straße.de``.
    """
    try:
        return idna.encode(host.rstrip("."), uts46=True).decode("ascii").casefold()
    except (idna.IDNAError, UnicodeError):
        return None


def normalize_url(url: str, drop_params: Iterable[str] = ()) -> str | None:
    """The normal form of an absolute http(s) URL, or ``None`` if it must not be crawled at all.

    :param drop_params: glob patterns of query parameter names to remove (e.g. ``utm_*``)
    """
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").rstrip(".")
    if scheme not in _DEFAULT_PORTS or not host or parts.username is not None or parts.password is not None:
        return None
    if not host.isascii():
        host = ascii_host(host) or ""
        if not host:
            return None
    netloc = f"[{host}]" if ":" in host else host
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        netloc += f":{port}"
    # escapes first, then dot segments (RFC 3986 6.2.2): "%2E%2E" is "..", and the HTTP client (and the
    # server) would resolve it after the scope check, climbing out of an allow-list prefix
    path = _norm_escapes(parts.path or "/", _PATH_SAFE)
    if any(seg.split(";", 1)[0] in (".", "..") and seg not in (".", "..") for seg in path.split("/")):
        return None  # "..;/": a dot segment to some servers (Tomcat), not to RFC 3986: never crawled
    path = _remove_dot_segments(path)
    patterns = list(drop_params)
    params = [
        _norm_escapes(p, _QUERY_SAFE)
        for p in parts.query.split("&")
        if p and not any(fnmatch.fnmatchcase(p.split("=", 1)[0], pat) for pat in patterns)
    ]
    return urlunsplit((scheme, netloc, path, "&".join(params), ""))


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of a normalised URL."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


@dataclass(frozen=True, slots=True)
class _Prefix:
    origin: str
    path: str

    def covers(self, origin: str, path: str) -> bool:
        if origin != self.origin:
            return False
        if self.path == "/":
            return True
        base = self.path.rstrip("/")
        return path == base or path.startswith(base + "/")


class Scope:
    """Which URLs may be requested: the start URLs, the allow-list prefixes, https unless allowed.

    :param start_urls: normalised start URLs (each is in scope exactly)
    :param allow: normalised URL prefixes; a prefix covers its path and everything below it
    :param http_hosts: host names (lower case) for which plain http is allowed
    """

    def __init__(self, start_urls: Iterable[str], allow: Iterable[str], http_hosts: Iterable[str]) -> None:
        self.start_urls = frozenset(start_urls)
        self.prefixes = tuple(_Prefix(origin_of(p), urlsplit(p).path or "/") for p in allow)
        self.http_hosts = frozenset(h.strip().casefold() for h in http_hosts)
        self.origins = frozenset(origin_of(u) for u in self.start_urls) | {p.origin for p in self.prefixes}

    def scheme_refusal(self, url: str) -> str | None:
        parts = urlsplit(url)
        if parts.scheme == "https":
            return None
        host = (parts.hostname or "").casefold()
        if parts.scheme == "http" and host in self.http_hosts:
            return None
        return f"plain {parts.scheme} to {host}: https is required unless the host is in allow_http_hosts"

    def refusal(self, url: str) -> str | None:
        """Why the normalised ``url`` may not be crawled, or ``None`` if it may."""
        reason = self.scheme_refusal(url)
        if reason:
            return reason
        if url in self.start_urls:
            return None
        origin, path = origin_of(url), urlsplit(url).path or "/"
        if any(p.covers(origin, path) for p in self.prefixes):
            return None
        return "outside the allow-list"

    def origin_allowed(self, url: str) -> bool:
        """Whether ``url`` is on a crawled origin (for robots.txt and sitemaps, which live at the root)."""
        return origin_of(url) in self.origins and self.scheme_refusal(url) is None
