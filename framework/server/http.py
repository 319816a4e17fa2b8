"""Cross-cutting HTTP machinery: RFC 9457 problems, the audit / body-limit / security-header middleware, the
per-user rate limit and the concurrency gate.

Invariants:
- Every request that reaches the app is audited once (``http_request`` event) with the authenticated
  identity (or ``anonymous`` and the refusal reason) *before* its response starts; if the audit record
  cannot be written the caller gets a 500 instead of the response (a request is never served unaudited).
- A body larger than ``max_body_bytes`` is refused with 413 before any handler reads it.
- Error bodies are ``application/problem+json`` and never carry internal detail (exception text of an
  unexpected error, paths, keys): an unexpected error is a bare 500 with the request id.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.responses import JSONResponse

__all__ = [
    "AuditMiddleware",
    "ConcurrencyGate",
    "Problem",
    "RateLimiter",
    "problem_response",
]

log = logging.getLogger("groundwire.server")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_TITLES = {
    400: "Bad request",
    401: "Not authenticated",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Request too large",
    415: "Unsupported media type",
    422: "Invalid request",
    429: "Too many requests",
    500: "Internal error",
    503: "Service unavailable",
}


class Problem(Exception):
    """An error response: ``status``, a short ``code`` (audited) and a ``detail`` safe to show the caller."""

    def __init__(self, status: int, code: str, detail: str = "", headers: dict[str, str] | None = None) -> None:
        super().__init__(detail or code)
        self.status, self.code, self.detail, self.headers = status, code, detail, headers or {}


def problem_response(
    status: int, code: str, detail: str = "", request_id: str = "", headers: dict[str, str] | None = None
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": f"urn:groundwire:problem:{code}",
        "title": _TITLES.get(status, "Error"),
        "status": status,
    }
    if detail:
        body["detail"] = detail
    if request_id:
        body["instance"] = f"urn:groundwire:request:{request_id}"
    return JSONResponse(body, status_code=status, media_type="application/problem+json", headers=headers)


def state(scope: Scope) -> dict[str, Any]:
    """The per-request dict shared by middleware and handlers (Starlette's ``request.state``)."""
    return scope.setdefault("state", {})  # type: ignore[no-any-return]


API_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
    (b"x-frame-options", b"DENY"),
]
API_CSP = b"default-src 'none'; frame-ancestors 'none'; base-uri 'none'"


class AuditMiddleware:
    """Request id, body-size limit, security headers and the per-request audit record (pure ASGI)."""

    def __init__(
        self,
        app: ASGIApp,
        record: Callable[[dict[str, Any]], Awaitable[None]],
        max_body_bytes: int,
        observe: Callable[[str, str, int, float], None] | None = None,
    ) -> None:
        self.app, self.record, self.max_body_bytes, self.observe = app, record, max_body_bytes, observe

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = uuid.uuid4().hex
        st = state(scope)
        st["request_id"] = rid
        t0 = time.perf_counter()
        sent_start = False
        replaced = False

        async def finish(status: int) -> bool:
            """Audit the request; False if the record could not be written."""
            latency = time.perf_counter() - t0
            identity = st.get("identity")
            route = st.get("route") or _route_of(scope)
            entry = {
                "request_id": rid,
                "method": scope["method"],
                "path": scope["path"],
                "route": route,
                "status": status,
                "latency_ms": round(latency * 1000, 2),
                "identity": identity,
                "refused": st.get("refused", ""),
                "extra": st.get("audit_extra", {}),
            }
            if self.observe is not None:
                self.observe(scope["method"], route, status, latency)
            try:
                await self.record(entry)
            except Exception:  # noqa: BLE001 - any audit failure must fail the request
                log.exception("could not write the audit record of request %s", rid)
                return False
            return True

        # the body, read up to the limit before any handler sees it
        declared = _content_length(scope)
        if declared is not None and declared > self.max_body_bytes:
            st["refused"] = "body_too_large"
            await self._refuse(send, finish, 413, "body_too_large",
                               f"the request body is larger than {self.max_body_bytes} bytes", rid)
            return
        body = b""
        more = scope["method"] not in ("GET", "HEAD", "OPTIONS", "DELETE")
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = bool(message.get("more_body", False))
            if len(body) > self.max_body_bytes:
                st["refused"] = "body_too_large"
                await self._refuse(send, finish, 413, "body_too_large",
                                   f"the request body is larger than {self.max_body_bytes} bytes", rid)
                return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        async def wrapped_send(message: Message) -> None:
            nonlocal sent_start, replaced
            if replaced:
                return
            if message["type"] == "http.response.start":
                if not await finish(int(message["status"])):
                    replaced = True
                    await _send_response(send, problem_response(500, "audit_failed", "", rid))
                    return
                headers = list(message.get("headers", []))
                names = {k.lower() for k, _ in headers}
                headers += [(k, v) for k, v in API_HEADERS if k not in names]
                if b"content-security-policy" not in names:
                    headers.append((b"content-security-policy", API_CSP))
                headers.append((b"x-request-id", rid.encode()))
                message = dict(message, headers=headers)
                sent_start = True
            await send(message)

        try:
            await self.app(scope, replay, wrapped_send)
        except Exception:
            log.exception("unhandled error in request %s", rid)
            if not sent_start and not replaced:
                await self._refuse(send, finish, 500, "internal", "", rid)
            else:
                raise

    @staticmethod
    async def _refuse(
        send: Send, finish: Callable[[int], Awaitable[bool]], status: int, code: str, detail: str, rid: str
    ) -> None:
        ok = await finish(status)
        response = problem_response(status, code, detail, rid) if ok else problem_response(500, "audit_failed", "", rid)
        await _send_response(send, response, rid)


async def _send_response(send: Send, response: JSONResponse, rid: str = "") -> None:
    headers = list(response.raw_headers) + API_HEADERS + [(b"content-security-policy", API_CSP)]
    if rid:
        headers.append((b"x-request-id", rid.encode()))
    await send({"type": "http.response.start", "status": response.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": response.body})


def _content_length(scope: Scope) -> int | None:
    for k, v in scope.get("headers", []):
        if k.lower() == b"content-length":
            try:
                return int(v)
            except ValueError:
                return None
    return None


def _route_of(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return str(path) if path else "(unmatched)"


class RateLimiter:
    """Token bucket per identity key: ``burst`` at once, then ``rate_per_minute`` (per worker process)."""

    def __init__(self, rate_per_minute: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate_per_minute / 60.0
        self.burst = float(burst)
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}

    def check(self, key: str) -> float:
        """0.0 if the request may go ahead (and spend a token), else the seconds until it may."""
        now = self.clock()
        tokens, at = self._buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.rate)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / self.rate
        self._buckets[key] = (tokens - 1.0, now)
        if len(self._buckets) > 100_000:  # forget idle users rather than grow without bound
            full = [k for k, (t, a) in self._buckets.items() if t + (now - a) * self.rate >= self.burst]
            for k in full:
                del self._buckets[k]
        return 0.0


class ConcurrencyGate:
    """At most ``limit`` grounding / retrieval calls at once; a caller waits ``timeout`` then gets 503."""

    def __init__(self, limit: int, timeout: float) -> None:
        self.limit, self.timeout = limit, timeout
        self._sem = asyncio.Semaphore(limit)
        self.in_flight = 0

    async def __aenter__(self) -> ConcurrencyGate:
        try:
            await asyncio.wait_for(self._sem.acquire(), timeout=self.timeout)
        except TimeoutError:
            raise Problem(503, "busy", "the service is at its concurrency limit; retry shortly",
                          {"Retry-After": "1"}) from None
        self.in_flight += 1
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.in_flight -= 1
        self._sem.release()
