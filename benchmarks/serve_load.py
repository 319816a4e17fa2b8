"""A bounded load test of ``groundwire serve`` on loopback.

Starts the OIDC issuer double (tests/server/oidc_double.py) and ``groundwire serve --workers N`` over the
demo corpus (examples/corpus) in a temporary data dir shared by the workers, then runs ``--clients``
concurrent clients posting ``/v1/drafts`` with bearer tokens for ``--seconds`` (and at most ``--max-requests``
requests). Prints p50 / p95 / p99 latency, throughput and errors, then stops the service and checks that
the audit log holds one ``http_request`` record per request sent and that ``groundwire audit verify``
passes. Every target is 127.0.0.1.

    .venv/bin/python -m benchmarks.serve_load --clients 16 --seconds 30 --workers 2
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
PROMPTS = [
    "When do salary increases take effect?",
    "How many days of annual leave do employees get?",
    "How big is the salary review budget?",
    "Who approves leave requests?",
    "What happens to unused leave at the end of the year?",
]


def _config(tmp: Path, issuer_url: str, port: int, embedder: str, workers: int) -> Path:
    text = f"""
data_dir = "{(tmp / 'data').as_posix()}"
default_tenant = "acme"

[embedder]
name = "{embedder}"

[features]
ask = ["*"]

[connectors.handbook]
type = "knowledge_base"
tenant = "acme"
path = "{(ROOT / 'examples' / 'corpus').as_posix()}"
uri_prefix = "https://intranet.acme.example/kb"

[server]
host = "127.0.0.1"
port = {port}
workers = {workers}

[server.oidc]
issuer = "{issuer_url}"
audience = ["api://groundwire"]

[server.tenants]
"{TENANT_ID}" = "acme"

[server.limits]
rate_per_minute = 1000000
burst = 1000000

[server.review]
enabled = false
"""
    path = tmp / "groundwire.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


async def _load(url: str, tokens: list[str], clients: int, seconds: float, max_requests: int) -> dict[str, Any]:
    latencies: list[float] = []
    errors: dict[str, int] = {}
    sent = 0
    deadline = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)

    async with httpx.AsyncClient(base_url=url, timeout=60, trust_env=False, limits=limits) as http:

        async def client(i: int) -> None:
            nonlocal sent
            n = 0
            while time.monotonic() < deadline and sent < max_requests:
                sent += 1
                n += 1
                headers = {"Authorization": f"Bearer {tokens[(i + n) % len(tokens)]}"}
                t0 = time.perf_counter()
                try:
                    r = await http.post("/v1/drafts", json={"prompt": PROMPTS[(i + n) % len(PROMPTS)]},
                                        headers=headers)
                    key = "" if r.status_code == 201 else str(r.status_code)
                except httpx.HTTPError as exc:
                    key = type(exc).__name__
                latencies.append(time.perf_counter() - t0)
                if key:
                    errors[key] = errors.get(key, 0) + 1

        t0 = time.perf_counter()
        await asyncio.gather(*(client(i) for i in range(clients)))
        wall = time.perf_counter() - t0
    return {"sent": sent, "latencies": latencies, "errors": errors, "wall": wall}


def _audit_counts(config: Path) -> tuple[int, int]:
    sys.path.insert(0, str(ROOT))
    from groundwire import Grounder
    from groundwire.trust import export_audit

    g = Grounder.from_config(config)
    drafts = total = 0
    for ev in export_audit(g):
        if ev["kind"] == "http_request":
            total += 1
            drafts += ev["data"].get("route") == "/v1/drafts"
    return drafts, total


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--max-requests", type=int, default=50_000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--embedder", default="minilm", choices=["minilm", "hashing"])
    args = ap.parse_args(argv)

    sys.path.insert(0, str(ROOT))
    from tests.server.oidc_double import OIDCIssuer, free_port

    tmp = Path(tempfile.mkdtemp(prefix="groundwire-serve-load-"))
    issuer = OIDCIssuer()
    port = free_port()
    env = {**os.environ, "ANONYMIZED_TELEMETRY": "False", "HF_HUB_OFFLINE": "1",
           "GROUNDWIRE_NO_PLUGIN_COMMANDS": "1"}
    gw = [sys.executable, "-m", "groundwire"]
    proc: subprocess.Popen[bytes] | None = None
    try:
        with issuer.serve():
            config = _config(tmp, issuer.url, port, args.embedder, args.workers)
            subprocess.run([*gw, "sync", "--config", str(config), "--json"], env=env, check=True,
                           stdout=subprocess.DEVNULL)
            log = (tmp / "serve.log").open("wb")
            proc = subprocess.Popen([*gw, "serve", "--config", str(config)], env=env, stdout=log,
                                    stderr=subprocess.STDOUT)
            url = f"http://127.0.0.1:{port}"
            start = time.monotonic()
            health = 0
            while True:
                try:
                    health += 1
                    if httpx.get(f"{url}/healthz", trust_env=False, timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    health -= 1  # never reached the app: not audited
                if proc.poll() is not None or time.monotonic() - start > 180:
                    raise SystemExit(f"groundwire serve did not start; see {tmp / 'serve.log'}")
                time.sleep(0.25)
            tokens = [issuer.mint(issuer.claims(u, exp=int(time.time()) + 3600,
                                                groups=["hr"] if u == "hana" else []))
                      for u in ("sam", "hana", "lee", "kim")]
            # warm every worker (model load, retrieval snapshot) before measuring
            warm = asyncio.run(_load(url, tokens, args.workers * 2, 5.0, args.workers * 4))["sent"]
            result = asyncio.run(_load(url, tokens, args.clients, args.seconds, args.max_requests))
            proc.terminate()
            proc.wait(timeout=60)
            proc = None
        lat = [x * 1000 for x in result["latencies"]]
        drafts, total = _audit_counts(config)
        expected = result["sent"] + warm
        verify = subprocess.run([*gw, "audit", "verify", "--config", str(config)], env=env,
                                capture_output=True, text=True)
        report = {
            "clients": args.clients, "workers": args.workers, "seconds": round(result["wall"], 1),
            "embedder": args.embedder, "requests": result["sent"],
            "throughput_rps": round(result["sent"] / result["wall"], 1),
            "p50_ms": round(statistics.median(lat), 1), "p95_ms": round(_pct(lat, 0.95), 1),
            "p99_ms": round(_pct(lat, 0.99), 1), "errors": result["errors"],
            "audit_draft_records": drafts, "draft_requests_sent": expected,
            "audit_http_records": total, "http_requests_sent": expected + health,
            "audit_verify_exit": verify.returncode,
        }
        print(json.dumps(report, indent=2))
        print(f"serve_load: {report['requests']} requests, {args.clients} clients, {args.workers} workers, "
              f"{report['seconds']} s: p50 {report['p50_ms']} ms, p95 {report['p95_ms']} ms, "
              f"p99 {report['p99_ms']} ms, {report['throughput_rps']} req/s, errors {sum(result['errors'].values())}; "
              f"audit records {total} for {expected + health} requests; audit verify "
              f"{'passed' if verify.returncode == 0 else 'FAILED'}")
        if verify.returncode != 0:
            print(verify.stdout[-2000:], verify.stderr[-2000:])
        ok = not result["errors"] and drafts == expected and total == expected + health and verify.returncode == 0
        return 0 if ok else 1
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=60)
        shutil.rmtree(tmp, ignore_errors=True)


TENANT_ID = "9188040d-6c67-4c5b-b112-36a304b66dad"

if __name__ == "__main__":
    sys.exit(main())
