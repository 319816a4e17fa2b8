"""``[server]`` validation and ``groundwire serve`` as a real process (uvicorn workers, loopback)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from groundwire import ConfigError, Grounder, config_from_dict, load_config
from groundwire.server.settings import load_server_settings

from .conftest import server_config
from .oidc_double import OIDCIssuer, free_port


def _toml(value: Any) -> str:
    return json.dumps(value)  # JSON strings, numbers, booleans and arrays are valid TOML values


def write_toml(path: Path, data: dict[str, Any]) -> Path:
    """A TOML file for ``data`` (nested dicts become tables, lists of dicts arrays of tables)."""
    lines: list[str] = []

    def emit(prefix: str, table: dict[str, Any]) -> None:
        scalars = {k: v for k, v in table.items() if not isinstance(v, dict) and not
                   (isinstance(v, list) and v and isinstance(v[0], dict))}
        if prefix:
            lines.append(f"[{prefix}]")
        for k, v in scalars.items():
            lines.append(f"{_toml(k)} = {_toml(v)}")
        for k, v in table.items():
            key = f"{prefix}.{_toml(k)}" if prefix else _toml(k)
            if isinstance(v, dict):
                emit(key, v)
            elif isinstance(v, list) and v and isinstance(v[0], dict):
                for item in v:
                    lines.append(f"[[{key}]]")
                    lines.extend(f"{_toml(ik)} = {_toml(iv)}" for ik, iv in item.items())

    emit("", data)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize(("server", "key", "problem"), [
    ({"oidc": {"issuer": "https://id.example", "audience": ["a"], "typo": 1}}, "server.oidc.typo", "unknown key"),
    ({"oidc": {"issuer": "http://id.example", "audience": ["a"]}}, "server.oidc.issuer", "https://"),
    ({"api_keys": [{"name": "x", "sha256": "secret-key", "tenant": "acme"}]}, "server.api_keys.0.sha256", "hex"),
    ({"tenants": {"t": "acme"}}, "server", "configure [server.oidc]"),
    ({"oidc": {"issuer": "https://id.example", "audience": ["a"]}}, "server", "client_id and redirect_uri"),
])
def test_server_settings_are_strict(tmp_path: Path, server: dict[str, Any], key: str, problem: str) -> None:
    cfg = config_from_dict({"data_dir": str(tmp_path), "server": server})
    with pytest.raises(ConfigError) as err:
        load_server_settings(cfg)
    assert err.value.key == key and problem in str(err.value)


def test_defaults_bind_loopback(tmp_path: Path) -> None:
    cfg = config_from_dict({"server": {"oidc": {"issuer": "https://id.example", "audience": ["a"]},
                                       "review": {"enabled": False}}})
    s = load_server_settings(cfg)
    assert s.host == "127.0.0.1" and s.port == 8080 and s.oidc is not None
    assert s.oidc.claims.user == ["oid", "preferred_username", "upn"] and s.oidc.claims.tenant == "tid"


@pytest.mark.integration
def test_groundwire_serve_runs_two_workers_on_loopback(tmp_path: Path, issuer: OIDCIssuer) -> None:
    port = free_port()
    data = server_config(tmp_path, issuer, port)
    config = write_toml(tmp_path / "groundwire.toml", data)
    g = Grounder(load_config(config))
    g.sync()
    env = {**os.environ, "GROUNDWIRE_NO_PLUGIN_COMMANDS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "groundwire", "serve", "--config", str(config), "--port", str(port), "--workers", "2"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(f"{url}/healthz", trust_env=False, timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
            assert time.monotonic() < deadline, "groundwire serve did not start"
            time.sleep(0.2)
        headers = {"Authorization": f"Bearer {issuer.mint(issuer.claims('alice'))}"}
        with httpx.Client(base_url=url, headers=headers, trust_env=False, timeout=30) as c:
            ids = {c.post("/v1/drafts", json={"prompt": "annual leave"}).json()["id"] for _ in range(6)}
            assert len(ids) == 6
            assert c.get("/readyz").status_code == 200
            assert c.get("/v1/reviews").status_code == 200
        admin = {"Authorization": f"Bearer {issuer.mint(issuer.claims('admin'))}"}
        metrics = httpx.get(f"{url}/metrics", headers=admin, trust_env=False, timeout=30).text
        # both workers' counts, aggregated (prometheus-client multiprocess mode)
        assert 'groundwire_http_requests_total{method="POST",route="/v1/drafts",status="201"} 6.0' in metrics
        assert httpx.get(f"{url}/v1/reviews", trust_env=False).status_code == 401
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        if proc.stdout:
            proc.stdout.close()
    events = [e for e in _audit(g) if e["kind"] == "http_request"]
    assert len(events) == 11 and sum(e["data"]["route"] == "/v1/drafts" for e in events) == 6


def _audit(g: Grounder) -> list[dict[str, Any]]:
    from groundwire.audit import AuditLog

    out: list[dict[str, Any]] = []
    for p in sorted((g.config.data_path / "audit").glob("*.jsonl")):
        out.extend(AuditLog(p, g.codec).events())
    return out
