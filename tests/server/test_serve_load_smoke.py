"""benchmarks.serve_load still runs end to end (tiny and short: it is a documented command)."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.slow


def test_serve_load_runs_and_accounts_for_every_request(capsys: pytest.CaptureFixture[str]) -> None:
    from benchmarks import serve_load

    rc = serve_load.main(["--clients", "2", "--seconds", "1", "--workers", "1", "--embedder", "hashing"])
    out = capsys.readouterr().out
    report = json.loads(out[: out.index("\n}") + 2])
    assert rc == 0, out
    assert report["requests"] > 0 and report["errors"] == {}
    assert report["audit_http_records"] == report["http_requests_sent"] and report["audit_verify_exit"] == 0
