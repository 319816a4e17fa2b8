"""``groundwire trust-report``: the trust-center table. Every control has a live self-check; switching each
control off (or breaking it) makes that row fail, and the other rows keep passing."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import shutil
import sqlite3
import sys
import types
from pathlib import Path

import pytest
from groundwire import Grounder, config_from_dict
from groundwire.cli import main
from groundwire.keyfile import add_key
from groundwire.models import DraftStatus
from groundwire.trust import trust_checks
from groundwire.trustcenter import CONTROLS, NOT_AVAILABLE

from .test_trust_audit import _write_toml
from .trust_helpers import make_config, new_key

ORDER = [
    "restricts access to encryption keys",
    "unique authentication",
    "tracks and stores all activity",
    "asset disposal",
    "production inventory",
    "encrypts portable media",
    "data encryption at rest",
    "failure detection",
    "prompt shield",
    "external data only when explicitly configured",
    "features enabled per role",
    "data residency",
    "security trimming",
    "tenant isolation",
    "drafts for human review",
    "retention",
    "no data sharing",
]
# rows whose self-check lives in another helper's module (live once that module is installed)
DELEGATED = {"asset disposal": "purge", "encrypts portable media": "exports", "retention": "retention"}
ENC = {"enabled": True, "provider": "env", "options": {"variable": "GW_TEST_KEYS"}}


def _missing(module: str) -> bool:
    return importlib.util.find_spec(f"groundwire.{module}") is None


def _build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sync: bool = True, **extra) -> Grounder:
    monkeypatch.setenv("ANONYMIZED_TELEMETRY", "False")
    if "GW_TEST_KEYS" not in __import__("os").environ:
        monkeypatch.setenv("GW_TEST_KEYS", f"k1:{new_key()}")
    cfg = make_config(tmp_path, **({"encryption": ENC} | extra))
    g = Grounder(config_from_dict(cfg, base_dir=tmp_path))
    if sync:
        g.sync()
        g.ground("When is payday?", "alice", tenant="acme")
    return g


def _failing(g: Grounder) -> dict[str, str]:
    """The failing rows (control -> detail), leaving out the delegated rows whose module is not installed
    (those must fail with NOT_AVAILABLE)."""
    out = {}
    for c in trust_checks(g):
        module = DELEGATED.get(c.control)
        if module and _missing(module):
            assert not c.ok and c.detail == NOT_AVAILABLE, c
            continue
        if not c.ok:
            out[c.control] = c.detail
    return out


def test_rows_come_in_the_trust_center_order_and_pass_when_configured(tmp_path, monkeypatch):
    g = _build(tmp_path, monkeypatch)
    checks = trust_checks(g)
    assert list(CONTROLS) == ORDER == [c.control for c in checks]
    assert _failing(g) == {}
    rows = {c.control: c for c in checks}
    assert "k1" in rows["data encryption at rest"].detail and "0/0 quarantine" in rows["data encryption at rest"].detail
    assert rows["unique authentication"].detail == "not applicable: identity asserted by the embedding app"
    assert "blocked by: prompt_shield" in rows["prompt shield"].detail


def test_key_file_inside_data_dir_fails_only_the_key_row(tmp_path, monkeypatch):
    keyfile = tmp_path / "data" / "gw.keys"
    add_key(keyfile, "k1", new_key())
    g = _build(tmp_path, monkeypatch, encryption={"enabled": True, "provider": "file",
                                                  "options": {"path": str(keyfile)}})
    failing = _failing(g)
    assert list(failing) == ["restricts access to encryption keys"]
    assert "inside data_dir" in failing["restricts access to encryption keys"]


def test_encryption_off_fails_the_key_and_at_rest_rows(tmp_path, monkeypatch):
    g = _build(tmp_path, monkeypatch, encryption={"enabled": False})
    failing = _failing(g)
    assert set(failing) == {"restricts access to encryption keys", "data encryption at rest"}
    assert "in clear" in failing["data encryption at rest"]


def test_a_payload_written_in_clear_fails_only_the_at_rest_row(tmp_path, monkeypatch):
    g = _build(tmp_path, monkeypatch)
    # a writer without the codec (e.g. an older configuration) stored a draft in clear
    with sqlite3.connect(tmp_path / "data" / "reviews.sqlite3") as db:
        db.execute("UPDATE drafts SET payload = ?", (json.dumps({"text": "Acme payday is the 25th"}),))
    failing = _failing(g)
    assert list(failing) == ["data encryption at rest"] and "1 drafts" in failing["data encryption at rest"]


def test_unreachable_identity_provider_fails_only_the_authentication_row(tmp_path, monkeypatch):
    from .server.oidc_double import free_port

    server = {"oidc": {"issuer": f"http://127.0.0.1:{free_port()}", "audience": ["api://groundwire"],
                       "http_timeout_seconds": 2.0},
              "review": {"enabled": False}}
    g = _build(tmp_path, monkeypatch, server=server)
    failing = _failing(g)
    assert list(failing) == ["unique authentication"]
    assert "could not be reached" in failing["unique authentication"]


def test_live_identity_provider_rejects_forged_expired_and_unsigned_tokens(tmp_path, monkeypatch):
    pytest.importorskip("uvicorn")
    from .server.oidc_double import OIDCIssuer

    iss = OIDCIssuer()
    with iss.serve():
        server = {"oidc": {"issuer": iss.url, "audience": ["api://groundwire"]}, "review": {"enabled": False},
                  "api_keys": [{"name": "bot", "sha256": "ab" * 32, "tenant": "acme"}]}
        g = _build(tmp_path, monkeypatch, sync=False, server=server)
        row = {c.control: c for c in trust_checks(g)}["unique authentication"]
    assert row.ok, row
    for probe in ("forged signature (bad_signature)", "alg none (alg_not_allowed)", "HS256 (alg_not_allowed)",
                  "expired (expired)", "wrong audience (wrong_audience)", "wrong issuer (wrong_issuer)"):
        assert probe in row.detail
    assert "a random key is refused" in row.detail and iss.url in row.config


def test_audit_plugin_disabled_fails_only_the_activity_row(tmp_path, monkeypatch):
    g = _build(tmp_path, monkeypatch, plugins={"load_entrypoints": False, "disabled": ["audit"]})
    failing = _failing(g)
    assert list(failing) == ["tracks and stores all activity"]
    assert "audit plugin OFF" in {c.control: c for c in trust_checks(g)}["tracks and stores all activity"].config


def test_removed_head_checkpoint_fails_the_activity_row_and_doctor(tmp_path, monkeypatch):
    g = _build(tmp_path, monkeypatch)
    (tmp_path / "data" / "audit" / ".checkpoints" / "acme.json").unlink()
    failing = _failing(g)
    assert set(failing) == {"tracks and stores all activity", "failure detection"}
    assert "no checkpoint" in failing["tracks and stores all activity"]


@pytest.mark.parametrize("control", sorted(DELEGATED))
def test_delegated_rows_call_the_modules_self_check(tmp_path, monkeypatch, control):
    g = _build(tmp_path, monkeypatch)
    name = f"groundwire.{DELEGATED[control]}"
    fake = types.ModuleType(name)
    fake.__spec__ = importlib.machinery.ModuleSpec(name, None)
    seen = []

    def self_check(grounder):
        seen.append(grounder)
        return fake.answer

    fake.self_check = self_check
    monkeypatch.setitem(sys.modules, name, fake)
    fake.answer = (False, "broken on purpose")
    failing = {c.control: c.detail for c in trust_checks(g) if not c.ok}
    assert failing.get(control) == "broken on purpose" and seen == [g]
    fake.answer = (True, "works")
    assert {c.control: c for c in trust_checks(g)}[control].ok


def test_a_stray_file_in_data_dir_fails_only_the_inventory_row(tmp_path, monkeypatch):
    g = _build(tmp_path, monkeypatch)
    (tmp_path / "data" / "export-2026.csv").write_text("name,salary\n")
    failing = _failing(g)
    assert list(failing) == ["production inventory"] and "export-2026.csv" in failing["production inventory"]


def test_missing_source_folder_fails_only_failure_detection(tmp_path, monkeypatch):
    g = _build(tmp_path, monkeypatch)
    shutil.rmtree(tmp_path / "corpus" / "globex")
    failing = _failing(g)
    assert list(failing) == ["failure detection"] and "connector globex-docs" in failing["failure detection"]


def test_shield_disabled_fails_only_the_shield_row_though_unconfigured_api_hooks_exist(tmp_path, monkeypatch):
    """Issue 13: with only the prompt shield disabled, the unconfigured Azure plugin still implements the
    hooks; the row sends a canary attack and a canary injected chunk through them."""
    g = _build(tmp_path, monkeypatch, plugins={"load_entrypoints": False, "disabled": ["prompt_shield"]})
    assert "content_safety_api" in {n for n, p in g.pm.list_name_plugin() if p is not None}
    failing = _failing(g)
    assert list(failing) == ["prompt shield"]
    assert "blocked by: nothing" in failing["prompt shield"] and "withheld by: nothing" in failing["prompt shield"]


def test_a_widened_connector_search_fails_only_the_external_data_row(tmp_path, monkeypatch):
    g = _build(tmp_path, monkeypatch)
    monkeypatch.setattr(g, "allowed_connectors", lambda request: list(request.connectors or ["globex-docs"]))
    assert list(_failing(g)) == ["external data only when explicitly configured"]


def test_features_plugin_disabled_fails_only_the_features_row(tmp_path, monkeypatch):
    g = _build(tmp_path, monkeypatch, features={"ask": ["*"], "trust_report": ["security-admin"]})
    assert _failing(g) == {}
    off = _build(tmp_path / "off", monkeypatch, sync=False, features={"ask": ["*"]},
                 plugins={"load_entrypoints": False, "disabled": ["features"]})
    failing = _failing(off)
    assert list(failing) == ["features enabled per role"] and "denied to a signed-in user" in failing[
        "features enabled per role"]


def test_a_model_endpoint_outside_the_tenants_regions_fails_only_the_residency_row(tmp_path, monkeypatch):
    pytest.importorskip("openai")
    gen = {"name": "openai", "options": {"base_url": "http://127.0.0.1:9/v1", "api_key": "k", "region": "eastus"}}
    ok = _build(tmp_path / "ok", monkeypatch, sync=False, generator=gen, tenant_regions={"*": ["eastus"]})
    assert _failing(ok) == {}
    bad = _build(tmp_path / "bad", monkeypatch, sync=False, generator=gen, tenant_regions={"*": ["westeurope"]})
    failing = _failing(bad)
    assert list(failing) == ["data residency"] and "eastus" in failing["data residency"]
    unset = _build(tmp_path / "unset", monkeypatch, sync=False, generator=gen)
    assert list(_failing(unset)) == ["data residency"]


def test_access_plugin_removed_fails_trimming_and_isolation(tmp_path, monkeypatch):
    # configuration cannot disable the access plugin (it is required); remove it from the running manager. Its
    # re-check enforces both: a chunk not granted and a chunk of another tenant are removed by it
    g = _build(tmp_path, monkeypatch)
    g.pm.unregister(name="access")
    assert set(_failing(g)) == {"security trimming", "tenant isolation"}


def test_a_collection_relabelled_to_another_tenant_fails_the_isolation_row(tmp_path, monkeypatch):
    g = _build(tmp_path, monkeypatch)
    col = g.index.client.get_collection("gw-acme")
    col.modify(metadata={k: v for k, v in (col.metadata or {}).items() if not k.startswith("hnsw:")}
               | {"gw_tenant": "globex"})
    fresh = Grounder(g.config)
    failing = _failing(fresh)
    assert "tenant isolation" in failing and "does not belong to tenant 'acme'" in failing["tenant isolation"]


def test_auto_approved_drafts_fail_only_the_drafts_row(tmp_path, monkeypatch):
    g = _build(tmp_path, monkeypatch)
    compose = g._compose

    def auto_approve(*args):
        d = compose(*args)
        d.status = DraftStatus.APPROVED
        return d

    monkeypatch.setattr(g, "_compose", auto_approve)
    assert list(_failing(g)) == ["drafts for human review"]


def test_telemetry_on_fails_only_the_sharing_row(tmp_path, monkeypatch):
    g = _build(tmp_path, monkeypatch)
    monkeypatch.setenv("ANONYMIZED_TELEMETRY", "True")
    assert list(_failing(g)) == ["no data sharing"]


def test_cli_trust_report_json_rows_and_exit_code(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("GROUNDWIRE_NO_PLUGIN_COMMANDS", "1")
    monkeypatch.setenv("ANONYMIZED_TELEMETRY", "False")
    monkeypatch.setenv("GW_TEST_KEYS", f"k1:{new_key()}")
    cfg = tmp_path / "gw.toml"
    _write_toml(cfg, make_config(tmp_path, encryption=ENC,
                                 plugins={"load_entrypoints": False, "disabled": ["prompt_shield"]}))
    assert main(["trust-report", "--json", "--config", str(cfg)]) == 1
    rows = json.loads(capsys.readouterr().out)
    assert [r["control"] for r in rows] == ORDER
    assert all(set(r) == {"control", "config", "ok", "detail"} for r in rows)
    failing = {r["control"] for r in rows if not r["ok"]}
    assert failing - {c for c, m in DELEGATED.items() if _missing(m)} == {"prompt shield"}
    if not any(_missing(m) for m in DELEGATED.values()):
        _write_toml(cfg, make_config(tmp_path, encryption=ENC))
        assert main(["trust-report", "--config", str(cfg)]) == 0
