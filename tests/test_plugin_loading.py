"""Plugin loading: built-ins, entry points (a failing one is isolated), allow-list, strict mode, typos."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from groundwire import PluginLoadError, hookimpl, make_plugin_manager
from groundwire.pluginmanager import DEFAULT_PLUGINS, plugin_info


@pytest.fixture
def fake_dists(tmp_path: Path, monkeypatch):
    """Two real installed distributions on sys.path: one good plugin, one that raises on import."""
    for name, body in {
        "gw_good": "from groundwire import hookimpl\n\n@hookimpl\ndef screen_prompt(request):\n    return None\n",
        "gw_broken": "raise RuntimeError('boom at import')\n",
    }.items():
        (tmp_path / f"{name}.py").write_text(body)
        di = tmp_path / f"{name}-1.2.3.dist-info"
        di.mkdir()
        (di / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.2.3\n")
        (di / "entry_points.txt").write_text(f"[groundwire]\n{name.split('_')[1]} = {name}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield
    for m in ("gw_good", "gw_broken"):
        sys.modules.pop(m, None)


def test_builtins_are_registered(pm) -> None:
    names = {n for n, _ in pm.list_name_plugin()}
    assert {p.rsplit(".", 1)[1] for p in DEFAULT_PLUGINS} <= names


def test_failing_entry_point_is_isolated_and_logged(fake_dists, caplog, monkeypatch) -> None:
    monkeypatch.delenv("GROUNDWIRE_STRICT_PLUGINS", raising=False)
    monkeypatch.delenv("GROUNDWIRE_LOAD_PLUGINS", raising=False)
    pm = make_plugin_manager()
    assert pm.get_plugin("good") is not None
    assert pm.get_plugin("broken") is None
    assert any("broken" in r.getMessage() and "gw_broken" in r.getMessage() and "boom" in r.getMessage()
               for r in caplog.records)
    info = {i.name: i for i in plugin_info(pm)}
    assert info["good"].version == "1.2.3" and info["good"].hooks == ("screen_prompt",)


def test_strict_mode_raises(fake_dists, monkeypatch) -> None:
    monkeypatch.setenv("GROUNDWIRE_STRICT_PLUGINS", "1")
    monkeypatch.delenv("GROUNDWIRE_LOAD_PLUGINS", raising=False)
    with pytest.raises(PluginLoadError, match="broken"):
        make_plugin_manager()


def test_allow_list(fake_dists, monkeypatch) -> None:
    monkeypatch.setenv("GROUNDWIRE_LOAD_PLUGINS", "good")
    pm = make_plugin_manager()
    assert pm.get_plugin("good") is not None and pm.get_plugin("broken") is None
    monkeypatch.setenv("GROUNDWIRE_LOAD_PLUGINS", "")
    assert make_plugin_manager().get_plugin("good") is None


def test_disabled_plugin_is_not_registered(fake_dists, monkeypatch) -> None:
    monkeypatch.delenv("GROUNDWIRE_LOAD_PLUGINS", raising=False)
    pm = make_plugin_manager(disabled=["good", "citations"])
    assert pm.get_plugin("good") is None and pm.get_plugin("citations") is None


def test_misspelled_hook_is_an_error_at_startup() -> None:
    class Typo:
        @hookimpl
        def screen_promt(self, request):  # noqa: D401 - the typo is the point
            return None

    with pytest.raises(PluginLoadError, match="screen_promt"):
        make_plugin_manager(load_entrypoints=False, extra=[Typo()])


def test_managers_do_not_leak_between_instances() -> None:
    class P:
        @hookimpl
        def screen_prompt(self, request):
            return None

    a = make_plugin_manager(load_entrypoints=False, extra=[P()])
    b = make_plugin_manager(load_entrypoints=False)
    assert len(a.get_plugins()) == len(b.get_plugins()) + 1


def test_example_third_party_plugin_is_discovered(monkeypatch) -> None:
    """examples/plugin (groundwire-shout) is installed by `make venv`: discovered via its entry point."""
    monkeypatch.delenv("GROUNDWIRE_LOAD_PLUGINS", raising=False)
    pm = make_plugin_manager()
    plugin = pm.get_plugin("shout")
    assert plugin is not None, "pip install -e examples/plugin (make venv does this)"
    info = {i.name: i for i in plugin_info(pm)}["shout"]
    assert info.version == "0.1.0" and info.hooks == ("screen_output",) and not info.builtin


def test_discovering_a_connector_plugin_enables_no_source(make_grounder, corpus) -> None:
    """Trust invariant 1: a registered connector type runs only when the configuration names it."""
    g = make_grounder({})
    assert "knowledge_base" in g.connector_types
    assert g.sync() == []


