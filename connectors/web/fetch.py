"""The web connector's HTTP client: one guarded GET at a time per slot, redirects followed by hand.

Invariants:
- SSRF guard at connect time: every TCP connection (first request and every redirect hop) resolves
  the host itself, refuses private, loopback, link-local, reserved, multicast, unspecified and other
  non-global addresses unless they lie in a configured network, and connects to the address it checked
  (no second DNS lookup an attacker could answer differently). No proxies from the environment.
- Content codings: ``Accept-Encoding: identity`` is asked for. A server that sends ``gzip`` or ``deflate``
  anyway is decoded here, in bounded steps, so ``max_bytes`` limits what is inflated, not only what is
  kept (httpx would inflate each network read at once, without limit); any other coding, or more than
  one, is refused unread (a stack of codings or zstd turns a few kilobytes into gigabytes).
- Redirects are never followed by the HTTP library: each hop goes through the caller's ``next_hop``
  check (allow-list, robots.txt, de-duplication) before it is requested.
- Limits: a response larger than ``max_bytes`` (declared or streamed) is aborted; ``timeout`` is one
  total deadline per request, from connect through TLS, headers and body: every socket operation waits
  at most the time left, so a server trickling one byte a second cannot stretch it (httpx's own
  timeouts apply per operation). At most ``per_host`` requests run against one host at a time, spaced
  by the host's interval (rate limit, robots.txt crawl-delay); waiting for a slot is not counted.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx
from groundwire.httpbody import CorruptEncoding, UnsupportedEncoding, bounded_body

__all__ = ["AddressPolicy", "BlockedAddress", "FetchError", "Fetcher", "Refused", "Response"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
REDIRECTS = frozenset({301, 302, 303, 307, 308})


class FetchError(Exception):
    """A request that produced no usable response. ``transient``: worth trying again next sync."""

    def __init__(self, reason: str, transient: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.transient = transient


class Refused(FetchError):
    """A request the policy forbids (never sent, or stopped before connecting)."""


class BlockedAddress(Exception):
    """Raised by the network backend: the host resolves only to addresses that may not be contacted."""


class AddressPolicy:
    """Which IP addresses may be contacted: global ones, plus those inside ``allowed`` networks."""

    def __init__(self, allowed: Iterable[IPNetwork]) -> None:
        self.allowed = tuple(allowed)

    def refusal(self, ip: IPAddress) -> str | None:
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if any(ip.version == net.version and ip in net for net in self.allowed):
            return None
        # the most specific kind first: ipaddress counts link-local and reserved ranges as private too
        for kind in ("loopback", "link_local", "unspecified", "multicast", "reserved", "private"):
            if getattr(ip, f"is_{kind}"):
                return f"{ip} is a {kind.replace('_', '-')} address"
        if not ip.is_global:
            return f"{ip} is not a public address"
        return None

    def resolve(self, host: str, port: int) -> list[str]:
        """The addresses of ``host`` that may be contacted, in resolver order; raise if there are none."""
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        ok: list[str] = []
        reasons: list[str] = []
        for *_, sockaddr in infos:
            addr = str(sockaddr[0]).split("%", 1)[0]
            reason = self.refusal(ipaddress.ip_address(addr))
            if reason is None:
                if addr not in ok:
                    ok.append(addr)
            else:
                reasons.append(reason)
        if not ok:
            why = "; ".join(sorted(set(reasons)))
            raise BlockedAddress(f"{host} refused: {why} (add the network to allow_networks to crawl it)")
        return ok


_deadline = threading.local()  # .at: time.monotonic() by which the current thread's request must end


def _time_left(timeout: float | None, exc: type[Exception]) -> float | None:
    """``timeout`` shortened to what is left of the current request's deadline; ``exc`` once it passed."""
    at: float | None = getattr(_deadline, "at", None)
    if at is None:
        return timeout
    left = at - time.monotonic()
    if left <= 0:
        raise exc("the request's total deadline passed")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    """A connection whose every read, write and TLS handshake waits at most the time left."""

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self.inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self.inner.read(max_bytes, _time_left(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self.inner.write(buffer, _time_left(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self.inner.close()

    def start_tls(self, ssl_context: Any, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        tls = self.inner.start_tls(ssl_context, server_hostname, _time_left(timeout, httpcore.ConnectTimeout))
        return _DeadlineStream(tls)

    def get_extra_info(self, info: str) -> Any:
        return self.inner.get_extra_info(info)


class _GuardedBackend(httpcore.NetworkBackend):
    def __init__(self, policy: AddressPolicy) -> None:
        self.policy = policy
        self.inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        last: Exception | None = None
        for addr in self.policy.resolve(host, port):
            try:  # TLS still verifies against ``host``: httpcore passes the origin's name as SNI
                left = _time_left(timeout, httpcore.ConnectTimeout)
                return _DeadlineStream(self.inner.connect_tcp(addr, port, left, local_address, socket_options))
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        assert last is not None
        raise last

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        raise BlockedAddress("unix sockets are never contacted")

    def sleep(self, seconds: float) -> None:
        self.inner.sleep(seconds)


def guarded_transport(policy: AddressPolicy, limits: httpx.Limits) -> httpx.HTTPTransport:
    """An httpx transport whose every connection goes through ``policy``.

    httpx has no public hook for the network backend, so the transport's connection pool is replaced;
    if a future httpx changes that, this fails here, closed, instead of crawling unguarded.
    """
    transport = httpx.HTTPTransport(trust_env=False, limits=limits)
    if not isinstance(getattr(transport, "_pool", None), httpcore.ConnectionPool):  # pragma: no cover
        raise RuntimeError("this httpx version cannot take the web connector's address guard")
    transport._pool = httpcore.ConnectionPool(
        ssl_context=httpx.create_ssl_context(trust_env=False),
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry,
        network_backend=_GuardedBackend(policy),
    )
    return transport


class HostGate:
    """At most ``concurrency`` requests at once, started at least ``interval`` seconds apart."""

    def __init__(self, interval: float, concurrency: int) -> None:
        self.interval = interval
        self._slots = threading.BoundedSemaphore(concurrency)
        self._lock = threading.Lock()
        self._next = 0.0

    @contextmanager
    def slot(self) -> Iterator[None]:
        with self._slots:
            with self._lock:
                now = time.monotonic()
                start = max(now, self._next)
                self._next = start + self.interval
            if start > now:
                time.sleep(start - now)
            yield


def _body_chunks(r: httpx.Response, max_bytes: int) -> Iterator[bytes]:
    """The decoded body of ``r``, inflating no more than ``max_bytes`` + one step
    (:func:`groundwire.httpbody.bounded_body`), its refusals as :class:`FetchError`."""
    try:
        yield from bounded_body(r, max_bytes)
    except UnsupportedEncoding as exc:
        raise FetchError(f"content encoding {', '.join(exc.codings)} was not asked for (Accept-Encoding: "
                         "identity) and is not read") from None
    except CorruptEncoding as exc:
        raise FetchError(str(exc)) from None


@dataclass(frozen=True, slots=True)
class Response:
    url: str  # the URL that answered (after redirects)
    status: int
    headers: httpx.Headers
    body: bytes

    @property
    def media_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().casefold()


class Fetcher:
    """GET with limits and hand-followed redirects, shared by the crawl's worker threads."""

    def __init__(
        self,
        *,
        user_agent: str,
        policy: AddressPolicy,
        timeout: float,
        max_bytes: int,
        max_redirects: int,
        interval: float,
        per_host: int,
        connections: int,
    ) -> None:
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.max_redirects = max_redirects
        self.interval = interval
        self.per_host = per_host
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        self.client = httpx.Client(
            transport=guarded_transport(policy, limits),
            follow_redirects=False,
            trust_env=False,
            timeout=httpx.Timeout(timeout),
            # identity: the size limit then counts what is read, and no compressed bomb is inflated
            headers={"User-Agent": user_agent, "Accept-Encoding": "identity"},
        )
        self._gates: dict[str, HostGate] = {}
        self._lock = threading.Lock()

    def gate(self, url: str) -> HostGate:
        host = urlsplit(url).hostname or ""  # per host, whatever the port or scheme
        with self._lock:
            if host not in self._gates:
                self._gates[host] = HostGate(self.interval, self.per_host)
            return self._gates[host]

    def slow_down(self, url: str, delay: float) -> None:
        """Space requests to ``url``'s host at least ``delay`` seconds apart (robots.txt crawl-delay)."""
        gate = self.gate(url)
        gate.interval = max(gate.interval, delay)

    def get(
        self,
        url: str,
        next_hop: Callable[[str, str], str],
        headers_for: Callable[[str], Mapping[str, str]] = lambda url: {},
        accept: Callable[[Response], str | None] = lambda r: None,
        max_bytes: int | None = None,
    ) -> Response:
        """GET ``url``, following redirects through ``next_hop(current, location)``.

        :param next_hop: returns the normalised redirect target or raises :class:`Refused`
        :param headers_for: extra request headers for a URL (conditional GET validators)
        :param accept: called with the headers of a 2xx response (empty body); a reason to refuse
            the body, or ``None`` to read it
        :raises FetchError: no usable response (``Refused`` for policy refusals)
        """
        current = url
        for _ in range(self.max_redirects + 1):
            resp = self._request(current, headers_for(current), accept, max_bytes or self.max_bytes)
            location = resp.headers.get("location")
            if resp.status not in REDIRECTS or not location:
                return resp
            current = next_hop(current, location)
        raise FetchError(f"more than {self.max_redirects} redirects")

    def _request(
        self, url: str, headers: Mapping[str, str], accept: Callable[[Response], str | None], max_bytes: int
    ) -> Response:
        with self.gate(url).slot():
            deadline = _deadline.at = time.monotonic() + self.timeout
            head: Response | None = None
            try:
                with self.client.stream("GET", url, headers=dict(headers)) as r:
                    head = Response(url, r.status_code, r.headers, b"")
                    if not 200 <= r.status_code < 300:
                        return head
                    reason = accept(head)
                    if reason:
                        raise FetchError(reason)
                    declared = r.headers.get("content-length", "")
                    if declared.isdigit() and int(declared) > max_bytes:
                        raise FetchError(f"larger than the limit of {max_bytes} bytes ({declared} declared)")
                    body = bytearray()
                    for chunk in _body_chunks(r, max_bytes):
                        body += chunk
                        if len(body) > max_bytes:
                            raise FetchError(f"larger than the limit of {max_bytes} bytes; download aborted")
                        if time.monotonic() > deadline:
                            raise FetchError(f"slower than the limit of {self.timeout:g} s; download aborted",
                                             transient=True)
                    return Response(url, r.status_code, r.headers, bytes(body))
            except BlockedAddress as exc:
                raise Refused(str(exc)) from None
            except httpx.TimeoutException:
                if head is not None:
                    raise FetchError(f"slower than the limit of {self.timeout:g} s; download aborted",
                                     transient=True) from None
                raise FetchError(f"no answer within {self.timeout:g} s", transient=True) from None
            except httpx.HTTPError as exc:
                raise FetchError(f"network error: {type(exc).__name__}: {exc}", transient=True) from None
            finally:
                _deadline.at = None

    def close(self) -> None:
        self.client.close()
