"""Scale-out: the same index code against a real Chroma server (``chroma run``) via ``HttpClient``."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from groundwire import GroundingRequest, UserContext
from groundwire.index import take_payloads

from .trust_helpers import ACME_HR, grounder, new_key

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def chroma_server(tmp_path_factory):
    exe = Path(sys.executable).parent / "chroma"
    if not exe.exists():
        exe = Path(shutil.which("chroma") or "chroma")
    port = _free_port()
    path = tmp_path_factory.mktemp("chroma-server")
    env = {**os.environ, "ANONYMIZED_TELEMETRY": "False"}
    proc = subprocess.Popen(
        [str(exe), "run", "--host", "127.0.0.1", "--port", str(port), "--path", str(path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/api/v2/heartbeat", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"chroma run did not start (exit code {proc.poll()})")
            time.sleep(0.2)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_sync_query_and_acl_revocation_over_http(chroma_server, tmp_path, monkeypatch):
    monkeypatch.setenv("GW_TEST_KEYS", f"k1:{new_key()}")
    g = grounder(
        tmp_path,
        index={"backend": "http", "host": "127.0.0.1", "port": chroma_server},
        encryption={"enabled": True, "provider": "env", "options": {"variable": "GW_TEST_KEYS"}},
    )
    assert type(g.index.client).__name__ != "PersistentClient"
    assert not (tmp_path / "data" / "chroma").exists()  # nothing stored locally: the server holds it
    reports = g.sync()
    assert all(r.ok for r in reports) and sum(r.chunks for r in reports) == 4

    hana = UserContext.of("hana", "acme", groups=["hr"])
    sam = UserContext.of("sam", "acme")
    got = g.retrieve(GroundingRequest(hana, ACME_HR, top_k=5))
    assert any(c.text == ACME_HR for c in got)
    assert not any(c.text == ACME_HR for c in g.retrieve(GroundingRequest(sam, ACME_HR, top_k=5)))
    stored = take_payloads(g.index.tenant("acme").collection.get(include=["documents", "metadatas"]))["documents"]
    assert all(d.startswith("gw2:") for d in stored)  # under acme's data key (in the local data dir)

    # revoke the HR group's access: gone after the next sync, with no re-embedding needed
    (tmp_path / "corpus" / "acme" / "hr" / "raises.md.acl.toml").write_text('allow = ["user:rita"]\n')
    report = {r.connector: r for r in g.sync()}["acme-docs"]
    assert report.acl_updated == 1
    assert not any(c.text == ACME_HR for c in g.retrieve(GroundingRequest(hana, ACME_HR, top_k=5)))
    rita = UserContext.of("rita", "acme")
    assert any(c.text == ACME_HR for c in g.retrieve(GroundingRequest(rita, ACME_HR, top_k=5)))
    # tenant isolation holds on the server too
    other = UserContext.of("hana", "globex", groups=["hr"])
    assert all(c.tenant == "globex" for c in g.retrieve(GroundingRequest(other, ACME_HR, top_k=10)))
    _close(g)


def _close(g) -> None:
    """Release the HTTP client's connections before the server stops."""
    client = g.index.client
    admin = getattr(client, "_admin_client", None)  # chromadb keeps a second HTTP session for tenants
    client.close()
    session = getattr(getattr(admin, "_server", None), "_session", None)
    if session is not None:
        session.close()
