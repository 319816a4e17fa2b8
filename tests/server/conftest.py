"""Fixtures: a live OIDC issuer double and a live ``groundwire serve`` app (uvicorn on 127.0.0.1) over a
small corpus with an everyone folder, an HR-only folder and a hostile (XSS) document."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

pytest.importorskip("fastapi", reason="needs groundwire[server]")

from groundwire import Grounder, config_from_dict  # noqa: E402
from groundwire.audit import AuditLog  # noqa: E402
from groundwire.server.app import create_app  # noqa: E402

from .oidc_double import TENANT_ID, LiveServer, OIDCIssuer, free_port  # noqa: E402

os.environ.setdefault("GROUNDWIRE_SESSION_SECRET", "test-session-secret-" + "s" * 40)

XSS_TEXT = (
    "Parking rules for visitors. <script>window.__xss = 1; alert('xss')</script> Visitors park in lot B "
    '<img src=x onerror="window.__xss = 2; alert(2)"> after nine in the morning.\n'
)

USERS: dict[str, dict[str, Any]] = {
    "alice": {"groups": ["hr"], "roles": ["reviewer"]},            # HR reviewer
    "bob": {"groups": [], "roles": ["reviewer"]},                  # reviewer without HR access
    "carol": {"groups": ["hr"], "roles": []},                      # asks, does not review
    "admin": {"groups": [], "roles": ["security-admin", "metrics-reader"]},
}


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


@pytest.fixture(scope="session")
def issuer() -> Iterator[OIDCIssuer]:
    iss = OIDCIssuer()
    for name, extra in USERS.items():
        iss.users[name] = {"oid": f"oid-{name}", "sub": f"sub-{name}", "preferred_username": f"{name}@example.com",
                           **extra}
    with iss.serve():
        yield iss


def server_config(tmp: Path, issuer: OIDCIssuer, port: int, **server: Any) -> dict[str, Any]:
    corpus = tmp / "corpus"
    _write(corpus / ".groundwire-acl.toml", 'allow = ["everyone"]\n')
    _write(corpus / "hr" / ".groundwire-acl.toml", 'allow = ["group:hr"]\n')
    _write(corpus / "handbook" / "leave.md",
           "# Leave policy\n\n## Annual leave\n\nEvery employee receives 25 days of paid annual leave per year.\n")
    _write(corpus / "hr" / "salaries.md",
           "# Salary review\n\n## Budget\n\nThe salary review budget is 3.5 percent of payroll. "
           "Increases take effect in April.\n")
    _write(corpus / "handbook" / "parking.txt", XSS_TEXT)
    settings: dict[str, Any] = {
        "warm_up": False,
        "oidc": {"issuer": issuer.url, "audience": ["api://groundwire"], "jwks_min_refresh_seconds": 0.5},
        "tenants": {TENANT_ID: "acme"},
        "review": {"client_id": "groundwire-review", "redirect_uri": f"http://127.0.0.1:{port}/review/callback"},
    }
    for key, value in server.items():
        if isinstance(value, dict) and isinstance(settings.get(key), dict):
            settings[key] = {**settings[key], **value}
        else:
            settings[key] = value
    return {
        "data_dir": str(tmp / "data"),
        "default_tenant": "acme",
        "embedder": {"name": "hashing"},
        "generator": {"name": "extractive", "options": {"min_similarity": 0.1}},
        "plugins": {"load_entrypoints": False},
        "features": {"ask": ["*"], "review": ["reviewer"], "quarantine_admin": ["security-admin"],
                     "trust_report": ["security-admin"]},
        "connectors": {"kb": {"type": "knowledge_base", "tenant": "acme", "path": str(corpus),
                              "uri_prefix": "https://intranet.example/kb"}},
        "server": settings,
    }


@dataclass
class Service:
    url: str
    grounder: Grounder
    issuer: OIDCIssuer
    app: Any

    def token(self, user: str = "alice", **claims: Any) -> str:
        return self.issuer.mint(self.issuer.claims(user, **claims))

    def client(self, user: str | None = "alice", **claims: Any) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.token(user, **claims)}"} if user else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30, trust_env=False)

    def audit(self) -> list[dict[str, Any]]:
        """Every audit event written so far (all tenants' logs and the system log)."""
        folder = self.grounder.config.data_path / "audit"
        events: list[dict[str, Any]] = []
        for path in sorted(folder.glob("*.jsonl")):
            events.extend(AuditLog(path, self.grounder.codec).events())
        return events

    def http_events(self, **match: Any) -> list[dict[str, Any]]:
        out = []
        for ev in self.audit():
            if ev["kind"] != "http_request":
                continue
            flat = {**ev["data"], "actor": ev["actor"], "tenant": ev["tenant"], "request_id": ev["request_id"]}
            if all(flat.get(k) == v for k, v in match.items()):
                out.append(flat)
        return out


@pytest.fixture
def make_service(tmp_path: Path, issuer: OIDCIssuer) -> Iterator[Callable[..., Service]]:
    started: list[LiveServer] = []

    def _make(core: dict[str, Any] | None = None, files: dict[str, str] | None = None, **server: Any) -> Service:
        """``core`` overrides top-level configuration keys, ``files`` adds corpus files, ``server`` [server]."""
        port = free_port()
        root = tmp_path / f"svc{len(started)}"
        for name, text in (files or {}).items():
            _write(root / "corpus" / name, text)
        data = server_config(root, issuer, port, **server)
        data.update(core or {})
        issuer.clients.setdefault("groundwire-review", set()).add(data["server"]["review"]["redirect_uri"])
        g = Grounder(config_from_dict(data, base_dir=tmp_path))
        g.sync()
        app = create_app(g)
        live = LiveServer(app, port).__enter__()
        started.append(live)
        return Service(live.url, g, issuer, app)

    yield _make
    for live in started:
        live.__exit__(None, None, None)


@pytest.fixture
def service(make_service: Callable[..., Service]) -> Service:
    return make_service()
