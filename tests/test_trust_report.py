"""``groundwire trust-report``: every control of DESIGN.md with real self-checks that fail when broken."""

from __future__ import annotations

import json

from groundwire import Action, Grounder, Verdict, config_from_dict, hookimpl
from groundwire.cli import main
from groundwire.trust import trust_checks

from .test_trust_audit import _write_toml
from .trust_helpers import make_config, new_key

CONTROLS = [
    "explicit sources",
    "security trimming",
    "tenant isolation",
    "per-role features",
    "prompt shield",
    "draft, not answer",
    "audit",
    "restricts access to encryption keys",
    "encryption at rest",
    "no data sharing",
]
ENC = {"enabled": True, "provider": "env", "options": {"variable": "GW_TEST_KEYS"}}


class Shield:
    @hookimpl
    def screen_prompt(self, request, config):
        return Verdict("prompt", "test-shield", Action.ALLOW)


def _g(tmp_path, **extra):
    return Grounder(
        config_from_dict(make_config(tmp_path, **extra), base_dir=tmp_path), extra_plugins=[Shield()]
    )


def test_all_controls_pass_when_configured(tmp_path, monkeypatch):
    monkeypatch.setenv("GW_TEST_KEYS", f"k1:{new_key()}")
    g = _g(tmp_path, encryption=ENC)
    g.sync()
    g.ground("When is payday?", "alice", tenant="acme")
    checks = {c.control: c for c in trust_checks(g)}
    assert list(checks) == CONTROLS
    assert all(c.ok for c in checks.values()), [c for c in checks.values() if not c.ok]
    assert "k1" in checks["encryption at rest"].detail
    assert "0 chunk(s) held in quarantine" in checks["prompt shield"].detail


NO_SHIELD = {"load_entrypoints": False, "disabled": ["prompt_shield", "content_safety_api"]}


def test_checks_fail_when_controls_are_broken(tmp_path):
    cfg = make_config(tmp_path) | {"plugins": NO_SHIELD}  # no shield, no encryption
    g = Grounder(config_from_dict(cfg, base_dir=tmp_path))
    g.sync()
    g.ground("When is payday?", "alice", tenant="acme")
    path = tmp_path / "data" / "audit" / "acme.jsonl"
    lines = path.read_text().splitlines()
    rec = json.loads(lines[-1])
    rec["event"]["actor"] = "mallory"
    path.write_text("\n".join([*lines[:-1], json.dumps(rec)]) + "\n")
    checks = {c.control: c for c in trust_checks(g)}
    assert not checks["encryption at rest"].ok and "disabled" in checks["encryption at rest"].detail
    assert not checks["audit"].ok and "acme.jsonl" in checks["audit"].detail
    assert not checks["prompt shield"].ok
    assert checks["security trimming"].ok and checks["tenant isolation"].ok and checks["no data sharing"].ok


def test_explicit_sources_check_detects_a_widened_search(tmp_path, monkeypatch):
    g = Grounder(config_from_dict(make_config(tmp_path), base_dir=tmp_path))
    assert {c.control: c.ok for c in trust_checks(g)}["explicit sources"]
    monkeypatch.setattr(g, "allowed_connectors", lambda request: list(request.connectors or ()))
    assert not {c.control: c.ok for c in trust_checks(g)}["explicit sources"]


def test_cli_trust_report(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("GROUNDWIRE_NO_PLUGIN_COMMANDS", "1")
    cfg = tmp_path / "gw.toml"
    _write_toml(cfg, make_config(tmp_path) | {"plugins": NO_SHIELD})
    assert main(["trust-report", "--json", "--config", str(cfg)]) == 1  # encryption off, no shield
    rows = json.loads(capsys.readouterr().out)
    assert [r["control"] for r in rows] == CONTROLS
    assert {r["control"] for r in rows if not r["ok"]} == {
        "restricts access to encryption keys", "encryption at rest", "prompt shield"}


def test_shield_check_sends_probes_and_fails_without_the_shield(tmp_path):
    """Issue 13: with only the prompt shield disabled, the unconfigured Azure plugin still implements the
    hooks; the check must not count hooks but send a known attack and a known injected chunk through them."""
    on = Grounder(config_from_dict(make_config(tmp_path, plugins={"load_entrypoints": False}), base_dir=tmp_path))
    check = {c.control: c for c in trust_checks(on)}["prompt shield"]
    assert check.ok and "blocked by: prompt_shield" in check.detail and "withheld by: prompt_shield" in check.detail
    off_cfg = make_config(tmp_path, plugins={"load_entrypoints": False, "disabled": ["prompt_shield"]})
    off = Grounder(config_from_dict(off_cfg, base_dir=tmp_path))
    check = {c.control: c for c in trust_checks(off)}["prompt shield"]
    assert not check.ok and "blocked by: nothing" in check.detail and "withheld by: nothing" in check.detail
