"""A small Microsoft Graph client: TLS policy, bearer tokens, paging, throttling and retries.

- Only ``https`` URLs are fetched, except ``http`` to the loopback hosts named in ``allow_http_hosts``.
- The bearer token is sent only to the configured Graph origin, never to a pre-authenticated download
  URL or any other host (a ``@odata.nextLink`` pointing elsewhere is refused).
- 429 and 503 honour ``Retry-After`` (seconds or an HTTP date, capped by ``max_retry_after``); without
  it, and for 502/504 and transport errors, capped exponential backoff with full jitter. After
  ``max_retries`` retries the last error is raised.
- 401 drops the cached token and retries once with a new one.
- Bodies are read with a size limit, so a lying ``size`` cannot make the connector read without end.
  The limit bounds what is *inflated*, not only what is kept: ``Accept-Encoding: gzip, deflate`` is
  asked for and such a body is inflated here in 64 KiB steps, stopping past the limit (httpx's own
  decoders inflate each network read whole and, with ``zstandard`` installed, also ask for ``zstd``: a
  few kilobytes of a stacked or zstd body become gigabytes in one step). Any other coding, or more than
  one, is refused unread (:class:`GraphError` ``unsupportedContentEncoding``, an item-level error).
"""

from __future__ import annotations

import email.utils
import json
import logging
import random
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from groundwire import ConnectorError
from groundwire.httpbody import CorruptEncoding, UnsupportedEncoding, bounded_body

from .auth import TokenProvider
from .settings import SharePointSettings

__all__ = ["SERVICE_STATUSES", "GraphClient", "GraphError", "Reply", "UrlRefused", "parse_retry_after"]

log = logging.getLogger("groundwire.connector.sharepoint.graph")

RETRY_AFTER_STATUSES = frozenset({429, 503})
BACKOFF_STATUSES = frozenset({502, 504})
_JSON_LIMIT = 64 * 1024 * 1024
#: statuses that speak for the whole service (credentials, throttling, an outage), not for one item
SERVICE_STATUSES = frozenset({401}) | RETRY_AFTER_STATUSES | BACKOFF_STATUSES


class UrlRefused(ConnectorError):
    """A URL the client will not fetch (plain http, the token for another host, an endless redirect
    chain): never requested. It concerns the one item whose URL it was."""


class GraphError(Exception):
    """Graph answered with an error status (after retries, where retrying applies)."""

    @property
    def item_level(self) -> bool:
        """Whether the error concerns the one resource asked for (a 4xx other than 401/429, a 500, a
        body that is not JSON) rather than the whole service (:data:`SERVICE_STATUSES`)."""
        return self.status not in SERVICE_STATUSES

    def __init__(self, status: int, url: str, code: str = "", message: str = "", location: str | None = None):
        self.status, self.url, self.code, self.message, self.location = status, url, code, message, location
        path = httpx.URL(url).path
        super().__init__(
            f"HTTP {status} from Graph for {path}"
            + (f": {code}" if code else "")
            + (f" ({message})" if message else "")
        )


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    headers: httpx.Headers
    content: bytes
    url: str

    def json(self) -> Any:
        return json.loads(self.content)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date); None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


class GraphClient:
    """Synchronous Graph access for one connector run. Close it when done."""

    def __init__(
        self,
        settings: SharePointSettings,
        tokens: TokenProvider,
        connector: str,
        *,
        sleep: Callable[[float], None] | None = None,
        rng: Callable[[], float] = random.random,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.s = settings
        self.tokens = tokens
        self.connector = connector
        self.sleep = sleep or time.sleep
        self.rng = rng
        self.base = settings.graph_url.rstrip("/")
        self.origin = self._origin(self.check_url(self.base))
        self.http = httpx.Client(
            timeout=settings.timeout,
            follow_redirects=False,
            transport=transport,
            headers={"Accept": "application/json"},
        )
        self.requests = 0
        self.retries = 0

    def close(self) -> None:
        self.http.close()

    # --- URL policy -----------------------------------------------------------------------------------

    @staticmethod
    def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
        return (url.scheme, url.host, url.port)

    def check_url(self, url: str) -> httpx.URL:
        u = httpx.URL(url)
        if u.scheme == "https" and u.host:
            return u
        if u.scheme == "http" and u.host.casefold() in self.s.allow_http_hosts:
            return u
        raise UrlRefused(
            self.connector,
            f"refusing to fetch {u.scheme}://{u.host}: only https is allowed "
            "(plain http only for loopback hosts listed in allow_http_hosts)",
        )

    def url(self, path: str) -> str:
        """Absolute URL for a Graph path (``/sites/...``); absolute URLs pass through."""
        return path if "://" in path else f"{self.base}/{path.lstrip('/')}"

    # --- requests -------------------------------------------------------------------------------------

    def _backoff(self, attempt: int) -> float:
        return self.rng() * min(self.s.backoff_max, self.s.backoff_base * (2**attempt))

    def _send_once(self, url: httpx.URL, auth: bool, headers: Mapping[str, str], limit: int) -> Reply:
        h = dict(headers)
        if auth:
            h["Authorization"] = f"Bearer {self.tokens.token()}"
        self.requests += 1
        h["Accept-Encoding"] = "gzip, deflate"  # inflated here with a limit (httpx would also ask for zstd)
        with self.http.stream("GET", url, headers=h) as r:
            declared = r.headers.get("Content-Length")
            if declared and declared.isdigit() and int(declared) > limit and r.status_code < 300:
                raise _TooLarge(int(declared))
            buf = bytearray()
            for part in _body_chunks(r, limit):
                buf += part
                if len(buf) > limit:
                    raise _TooLarge(len(buf))
            return Reply(r.status_code, r.headers, bytes(buf), str(r.url))

    def get(
        self,
        url: str,
        *,
        auth: bool = True,
        headers: Mapping[str, str] | None = None,
        limit: int = _JSON_LIMIT,
    ) -> Reply:
        """GET with retries. Returns the final reply, whatever its status (callers check it)."""
        u = self.check_url(self.url(url))
        if auth and self._origin(u) != self.origin:
            raise UrlRefused(self.connector, f"refusing to send the Graph token to {u.host}")
        attempt = 0
        renewed = False
        while True:
            try:
                reply = self._send_once(u, auth, headers or {}, limit)
            except httpx.TransportError as exc:
                if attempt >= self.s.max_retries:
                    raise ConnectorError(self.connector, f"cannot reach {u.host}: {exc}") from exc
                delay = self._backoff(attempt)
                log.info("transport error from %s (%s); retrying in %.2fs", u.host, exc, delay)
            else:
                status = reply.status
                if status == 401 and auth and not renewed:
                    renewed = True
                    self.tokens.invalidate()
                    continue
                if status not in RETRY_AFTER_STATUSES and status not in BACKOFF_STATUSES:
                    return reply
                if attempt >= self.s.max_retries:
                    return reply
                wait = None
                if status in RETRY_AFTER_STATUSES:
                    wait = parse_retry_after(reply.headers.get("Retry-After"))
                delay = min(wait, self.s.max_retry_after) if wait is not None else self._backoff(attempt)
                log.info("HTTP %s from %s; retrying in %.2fs", status, u.path, delay)
            attempt += 1
            self.retries += 1
            self.sleep(delay)

    def get_json(self, url: str, *, headers: Mapping[str, str] | None = None) -> dict[str, Any]:
        """GET a Graph resource as JSON; raise :class:`GraphError` for an error status."""
        reply = self.get(url, headers=headers)
        if reply.status >= 300:
            raise self.error(reply)
        try:
            data = reply.json()
        except ValueError as exc:
            raise GraphError(reply.status, reply.url, "invalidJson", str(exc)) from None
        if not isinstance(data, dict):
            raise GraphError(reply.status, reply.url, "invalidJson", "expected a JSON object")
        return data

    def error(self, reply: Reply) -> GraphError:
        code = message = ""
        try:
            err = reply.json().get("error", {})
            code = str(err.get("code", ""))
            message = str(err.get("message", ""))[:200]
            inner = err.get("innerError") or err.get("innererror") or {}
            if isinstance(inner, dict) and inner.get("code"):
                code = f"{code}/{inner['code']}" if code else str(inner["code"])
        except (ValueError, AttributeError):
            pass
        return GraphError(reply.status, reply.url, code, message, reply.headers.get("Location"))

    def pages(self, url: str) -> Iterator[dict[str, Any]]:
        """Each page of a collection, following ``@odata.nextLink``."""
        next_url: str | None = url
        while next_url:
            page = self.get_json(next_url)
            yield page
            next_url = page.get("@odata.nextLink")

    def get_all(self, url: str) -> list[dict[str, Any]]:
        """Every ``value`` entry of a paged collection."""
        out: list[dict[str, Any]] = []
        for page in self.pages(url):
            out.extend(v for v in page.get("value", []) if isinstance(v, dict))
        return out

    def download(self, url: str, limit: int) -> bytes:
        """Fetch file content: a pre-authenticated ``downloadUrl`` (no token sent) or a Graph
        ``/content`` URL (token sent, redirect to the download URL followed without it)."""
        for _ in range(5):
            u = self.check_url(self.url(url))
            auth = self._origin(u) == self.origin
            try:
                reply = self.get(str(u), auth=auth, limit=limit)
            except _TooLarge as exc:
                raise FileTooLarge(exc.size) from None
            if reply.status in (301, 302, 303, 307, 308) and reply.headers.get("Location"):
                url = str(u.join(reply.headers["Location"]))
                continue
            if reply.status >= 300:
                raise self.error(reply)
            return reply.content
        raise UrlRefused(self.connector, "too many redirects while downloading a file")


def _body_chunks(r: httpx.Response, limit: int) -> Iterator[bytes]:
    """The decoded body of ``r``, inflating no more than ``limit`` + one step
    (:func:`groundwire.httpbody.bounded_body`), its refusals as :class:`GraphError`."""
    if r.is_stream_consumed:  # an in-memory response (httpx.MockTransport): already read and decoded
        yield r.content
        return
    try:
        yield from bounded_body(r, limit)
    except UnsupportedEncoding as exc:
        raise GraphError(r.status_code, str(r.url), "unsupportedContentEncoding", str(exc)) from None
    except CorruptEncoding as exc:
        raise GraphError(r.status_code, str(r.url), "invalidContentEncoding", str(exc)) from None


class _TooLarge(Exception):
    def __init__(self, size: int) -> None:
        self.size = size


class FileTooLarge(Exception):
    """The body was larger than the limit (``size`` bytes seen so far)."""

    def __init__(self, size: int) -> None:
        self.size = size
        super().__init__(f"more than the limit ({size} bytes seen)")
