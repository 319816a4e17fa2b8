"""The content-safety API client (issue 15): one pooled keep-alive connection for all calls, retries of
429 / 5xx with ``Retry-After``, no retry of other 4xx. Against a real loopback HTTP server speaking the
Azure AI Content Safety wire format (``text:shieldPrompt`` and ``text:analyze``, api-version 2024-09-01)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from groundwire import Action, Draft, GroundingRequest, UserContext, config_from_dict
from groundwire.plugins import content_safety_api as api

REQ = GroundingRequest(user=UserContext.of("u", "acme"), prompt="What is the leave policy?")


@dataclass
class Azure:
    """What the server saw and what it will answer: ``script`` holds (status, headers) answers given
    before the real one, in order."""

    url: str = ""
    calls: list[tuple[str, float]] = field(default_factory=list)  # (path, time)
    connections: set[int] = field(default_factory=set)  # client ports: one per TCP connection
    script: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the real service
    server: Any

    def log_message(self, *args: Any) -> None:
        pass

    def _json(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
        az: Azure = self.server.azure
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with az.lock:
            az.calls.append((self.path.split("?")[0], time.monotonic()))
            az.connections.add(self.client_address[1])
            scripted = az.script.pop(0) if az.script else None
        if self.headers.get("Ocp-Apim-Subscription-Key") != "k1":
            return self._json(401, {"error": {"code": "401", "message": "Access denied due to invalid key."}})
        if "api-version=2024-09-01" not in self.path:
            return self._json(404, {"error": {"code": "NotFound", "message": "Resource not found"}})
        if scripted is not None:
            status, headers = scripted
            return self._json(status, {"error": {"code": str(status), "message": "scripted"}}, headers)
        if self.path.startswith("/contentsafety/text:shieldPrompt"):
            attack = "ignore previous" in body["userPrompt"].lower()
            return self._json(200, {"userPromptAnalysis": {"attackDetected": attack},
                                    "documentsAnalysis": [{"attackDetected": False} for _ in body["documents"]]})
        if self.path.startswith("/contentsafety/text:analyze"):
            sev = 4 if "kill" in body["text"] else 0
            return self._json(200, {"blocklistsMatch": [], "categoriesAnalysis": [
                {"category": c, "severity": sev if c == "Violence" else 0} for c in body["categories"]]})
        return self._json(404, {"error": {"code": "NotFound", "message": "Resource not found"}})


@pytest.fixture
def azure() -> Iterator[Azure]:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.daemon_threads = True
    srv.azure = Azure(url=f"http://127.0.0.1:{srv.server_address[1]}")  # type: ignore[attr-defined]
    t = threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True)
    t.start()
    try:
        yield srv.azure  # type: ignore[attr-defined]
    finally:
        srv.shutdown()
        srv.server_close()


def _cfg(azure: Azure, **extra: Any) -> Any:
    settings = {"endpoint": azure.url, "key": "k1", "backoff": 0.01, **extra}
    return config_from_dict({"plugins": {"settings": {"azure_content_safety": settings}}})


def test_calls_share_one_pooled_connection(azure: Azure) -> None:
    config = _cfg(azure)
    for _ in range(4):
        v = api.screen_prompt(request=REQ, config=config)
        assert v is not None and v.action is Action.ALLOW
    out = api.screen_output(request=REQ, draft=Draft("r", "We will kill it."), sources=[], config=config)
    assert [(x.action, x.reason) for x in out] == [(Action.FLAG, "violence: severity 4")]
    assert len(azure.calls) == 5 and len(azure.connections) == 1


def test_429_waits_what_retry_after_says_then_succeeds(azure: Azure) -> None:
    azure.script = [(429, {"Retry-After": "1"})]
    v = api.screen_prompt(request=REQ, config=_cfg(azure))
    assert v is not None and v.action is Action.ALLOW
    (_, first), (_, second) = azure.calls
    assert second - first >= 0.95  # the server asked for one second


def test_retry_after_as_an_http_date_and_its_cap() -> None:
    now = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    assert api.retry_after(format_datetime(now + timedelta(seconds=7), usegmt=True), now) == 7.0
    assert api.retry_after(format_datetime(now - timedelta(seconds=7), usegmt=True), now) == 0.0
    assert api.retry_after("12", now) == 12.0
    assert api.retry_after("soon", now) is None and api.retry_after(None) is None


def test_a_long_retry_after_is_capped(azure: Azure) -> None:
    azure.script = [(503, {"Retry-After": "3600"})]
    v = api.screen_prompt(request=REQ, config=_cfg(azure, max_retry_after=0.2))
    assert v is not None and v.action is Action.ALLOW and len(azure.calls) == 2


def test_server_errors_are_retried_then_reported_unavailable(azure: Azure) -> None:
    azure.script = [(503, {}), (500, {})]
    v = api.screen_prompt(request=REQ, config=_cfg(azure))
    assert v is not None and v.action is Action.ALLOW and len(azure.calls) == 3
    azure.calls.clear()
    azure.script = [(502, {})] * 3
    v = api.screen_prompt(request=REQ, config=_cfg(azure, fail_closed=True))
    assert v is not None and v.action is Action.BLOCK and v.reason == "screening service unavailable (HTTPStatusError)"
    assert len(azure.calls) == 3  # retries = 2 by default


def test_other_client_errors_are_not_retried(azure: Azure) -> None:
    v = api.screen_prompt(request=REQ, config=_cfg(azure, key="wrong"))
    assert v is not None and v.action is Action.FLAG and "unavailable" in v.reason
    assert len(azure.calls) == 1
    azure.calls.clear()
    v = api.screen_prompt(request=REQ, config=_cfg(azure, api_version="1999-01-01", retries=5))
    assert v is not None and "unavailable" in v.reason and len(azure.calls) == 1


def test_a_refused_connection_is_retried_and_reported(azure: Azure) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = config_from_dict({"plugins": {"settings": {"azure_content_safety": {
        "endpoint": f"http://127.0.0.1:{port}", "key": "k1", "backoff": 0.01, "fail_closed": True}}}})
    v = api.screen_prompt(request=REQ, config=config)
    assert v is not None and v.action is Action.BLOCK and v.reason == "screening service unavailable (ConnectError)"
