"""A broken installed plugin never breaks the CLI (issue 12): one that fails hook validation (a misspelt
hook) is skipped with its error logged (an error with GROUNDWIRE_STRICT_PLUGINS=1), and the built-in
commands always work. The plugin is a real distribution (a dist-info with an entry point) on PYTHONPATH."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from groundwire import PluginLoadError, make_plugin_manager

from .test_cli_errors import ENV, gw, project


@pytest.fixture
def typo_dist(tmp_path: Path) -> Path:
    site = tmp_path / "site"
    site.mkdir()
    (site / "gw_typo.py").write_text(
        "from groundwire import hookimpl\n\n@hookimpl\ndef screen_promt(request, config):\n    return None\n"
    )
    di = site / "gw_typo-0.1.dist-info"
    di.mkdir()
    (di / "METADATA").write_text("Metadata-Version: 2.1\nName: gw_typo\nVersion: 0.1\n")
    (di / "entry_points.txt").write_text("[groundwire]\ntypo = gw_typo\n")
    yield site
    sys.modules.pop("gw_typo", None)


def test_misspelt_hook_in_an_entry_point_is_skipped(typo_dist, monkeypatch, caplog) -> None:
    monkeypatch.syspath_prepend(str(typo_dist))
    monkeypatch.delenv("GROUNDWIRE_LOAD_PLUGINS", raising=False)
    monkeypatch.delenv("GROUNDWIRE_STRICT_PLUGINS", raising=False)
    pm = make_plugin_manager()
    assert pm.get_plugin("typo") is None and pm.get_plugin("access") is not None
    assert any("typo" in r.getMessage() and "screen_promt" in r.getMessage() for r in caplog.records)
    monkeypatch.setenv("GROUNDWIRE_STRICT_PLUGINS", "1")
    with pytest.raises(PluginLoadError, match="screen_promt"):
        make_plugin_manager()


def _env(site: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in ENV.items() if k != "GROUNDWIRE_LOAD_PLUGINS"}
    return {**env, "PYTHONPATH": str(site), **extra}


@pytest.mark.parametrize("disabled", [False, True])
def test_cli_works_with_a_broken_plugin_installed(tmp_path, typo_dist, disabled) -> None:
    root = project(tmp_path / "p")
    toml = root / "groundwire.toml"
    plugins = "[plugins]\nload_entrypoints = true\n" + ('disabled = ["typo"]\n' if disabled else "")
    toml.write_text(toml.read_text().replace("[plugins]\nload_entrypoints = false\n", plugins))
    env = _env(typo_dist)
    p = gw(root, "ask", "leave?", "--user", "alice", "--json", env=env)
    assert p.returncode == 0, p.stderr
    assert "Traceback" not in p.stderr
    if disabled:
        return
    assert gw(root, "audit", "verify", env=env).returncode == 0  # a built-in plugin's command
    listed = gw(root, "plugins", "--json", env=env)
    assert listed.returncode == 0 and '"access"' in listed.stdout and '"typo"' not in listed.stdout


def test_strict_mode_refuses_in_one_line_but_builtin_commands_remain(tmp_path, typo_dist) -> None:
    root = project(tmp_path / "p")
    toml = root / "groundwire.toml"
    toml.write_text(toml.read_text().replace("load_entrypoints = false", "load_entrypoints = true"))
    env = _env(typo_dist, GROUNDWIRE_STRICT_PLUGINS="1")
    p = gw(root, "ask", "leave?", "--user", "alice", env=env)
    assert p.returncode == 2
    lines = [ln for ln in p.stderr.splitlines() if ln.strip() and not ln.startswith("warning:")]
    assert len(lines) == 1 and "typo" in lines[0] and "screen_promt" in lines[0], p.stderr
    assert "Traceback" not in p.stderr
    h = gw(root, "audit", "-h", env=env)  # a built-in plugin's command group is still there
    assert h.returncode == 0 and "verify" in h.stdout
