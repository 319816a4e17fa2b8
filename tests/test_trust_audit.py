"""Audit: what is recorded, tamper detection (clear and encrypted logs), CLI verify and export."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from groundwire.audit import verify_chain
from groundwire.cli import main
from groundwire.trust import export_audit, verify_audit

from .trust_helpers import grounder, make_config, new_key

ENC = {"enabled": True, "provider": "env", "options": {"variable": "GW_TEST_KEYS"}}


def _events(g, tenant="acme"):
    return list(export_audit(g, None, tenant))


def test_request_event_records_ids_verdicts_latency_but_no_text_by_default(tmp_path):
    g = grounder(tmp_path)
    g.sync()
    draft = g.ground("When is payday?", "alice", tenant="acme")
    ev = [e for e in _events(g) if e["kind"] == "request"][-1]
    d = ev["data"]
    assert ev["actor"] == "alice" and ev["tenant"] == "acme"
    assert d["draft_id"] == draft.id and d["feature"] == "ask" and d["connectors"] == ["acme-docs"]
    assert d["sources"] and all(s["connector"] == "acme-docs" for s in d["sources"])
    assert d["latency_ms"] > 0 and "verdicts" in d
    raw = (tmp_path / "data" / "audit" / "acme.jsonl").read_text()
    assert "When is payday" not in raw and "25th" not in raw


def test_prompts_and_drafts_stored_only_when_configured(tmp_path):
    g = grounder(tmp_path, audit={"store_prompts": True, "store_drafts": True})
    g.sync()
    draft = g.ground("When is payday?", "alice", tenant="acme")
    d = [e for e in _events(g) if e["kind"] == "request"][-1]["data"]
    assert d["prompt"] == "When is payday?" and d["draft_text"] == draft.text


def _tamper(path, lineno, fn):
    lines = path.read_text().splitlines()
    rec = json.loads(lines[lineno - 1])
    fn(rec)
    lines[lineno - 1] = json.dumps(rec)
    path.write_text("\n".join(lines) + "\n")


def test_tampered_clear_line_is_named(tmp_path, capsys):
    g = grounder(tmp_path)
    g.sync()
    for q in ("When is payday?", "How are salaries paid?"):
        g.ground(q, "alice", tenant="acme")
    path = tmp_path / "data" / "audit" / "acme.jsonl"
    assert verify_chain(path) == []
    n = len(path.read_text().splitlines())
    _tamper(path, n, lambda r: r["event"]["data"].update(latency_ms=0.001))
    problems = verify_chain(path)
    assert [p.line for p in problems] == [n] and "modified" in problems[0].problem

    cfg = tmp_path / "gw.toml"
    _write_toml(cfg, make_config(tmp_path))
    assert main(["audit", "verify", "--config", str(cfg)]) == 1
    err = capsys.readouterr().err
    assert f"acme.jsonl:{n}" in err


def test_deleted_line_breaks_the_chain(tmp_path):
    g = grounder(tmp_path)
    g.sync()
    for q in ("When is payday?", "How are salaries paid?", "raises?"):
        g.ground(q, "alice", tenant="acme")
    path = tmp_path / "data" / "audit" / "acme.jsonl"
    lines = path.read_text().splitlines()
    del lines[1]
    path.write_text("\n".join(lines) + "\n")
    assert [p.line for p in verify_chain(path)][:1] == [2]


def test_encrypted_log_tampering_and_wrong_key(tmp_path, monkeypatch):
    monkeypatch.setenv("GW_TEST_KEYS", f"k1:{new_key()}")
    g = grounder(tmp_path, encryption=ENC)
    g.sync()
    g.ground("When is payday?", "alice", tenant="acme")
    g.ground("How are salaries paid?", "alice", tenant="acme")
    path = tmp_path / "data" / "audit" / "acme.jsonl"
    assert verify_chain(path, g.codec) == []
    # swap the ciphertexts of two lines: each fails to decrypt (associated data = seq)
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    lines[0]["enc"], lines[1]["enc"] = lines[1]["enc"], lines[0]["enc"]
    path.write_text("".join(json.dumps(r) + "\n" for r in lines))
    problems = verify_chain(path, g.codec)
    assert {p.line for p in problems} >= {1, 2} and "decrypted" in problems[0].problem
    # without the key the log cannot be verified or read
    assert verify_chain(path) and "encrypted" in verify_chain(path)[0].problem


def test_export_since_and_tenant(tmp_path, capsys):
    g = grounder(tmp_path)
    g.sync()
    g.ground("When is payday?", "alice", tenant="acme")
    g.ground("When is payday?", "bob", tenant="globex")
    cfg = tmp_path / "gw.toml"
    _write_toml(cfg, make_config(tmp_path))
    since = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    assert main(["audit", "export", "--since", since, "--tenant", "globex", "--plaintext", "--config", str(cfg)]) == 0
    rows = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.strip()]
    assert rows and {r["tenant"] for r in rows} == {"globex"}
    assert any(r["kind"] == "request" and r["actor"] == "bob" for r in rows)
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    assert main(["audit", "export", "--since", future, "--plaintext", "--config", str(cfg)]) == 0
    assert capsys.readouterr().out.strip() == ""
    assert all(not p for p in verify_audit(g).values())


def _write_toml(path, cfg):
    def val(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, list):
            return "[" + ", ".join(val(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{" + ", ".join(f"{json.dumps(k)} = {val(x)}" for k, x in v.items()) + "}"
        return str(v)

    path.write_text("\n".join(f"{k} = {val(v)}" for k, v in cfg.items()) + "\n")


@pytest.fixture(autouse=True)
def _no_entrypoint_commands(monkeypatch):
    monkeypatch.setenv("GROUNDWIRE_NO_PLUGIN_COMMANDS", "1")


def test_encrypted_line_moved_to_another_tenants_log_is_detected(tmp_path, monkeypatch):
    monkeypatch.setenv("GW_TEST_KEYS", f"k1:{new_key()}")
    g = grounder(tmp_path, encryption=ENC)
    g.sync()
    g.ground("When is payday?", "alice", tenant="acme")
    g.ground("When is payday?", "bob", tenant="globex")
    folder = tmp_path / "data" / "audit"
    acme = [json.loads(x) for x in (folder / "acme.jsonl").read_text().splitlines()]
    globex = [json.loads(x) for x in (folder / "globex.jsonl").read_text().splitlines()]
    # same seq, ciphertext copied across logs: associated data names the log, so it fails to decrypt
    globex[-1]["enc"] = next(r["enc"] for r in acme if r["seq"] == globex[-1]["seq"])
    (folder / "globex.jsonl").write_text("".join(json.dumps(r) + "\n" for r in globex))
    problems = verify_chain(folder / "globex.jsonl", g.codec)
    assert [p.line for p in problems] == [len(globex)]
    assert verify_chain(folder / "acme.jsonl", g.codec) == []
