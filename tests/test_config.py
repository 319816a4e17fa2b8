"""Configuration errors name the file, the key and what to do."""

from __future__ import annotations

from pathlib import Path

import pytest
from groundwire import ConfigError, Grounder, PluginLoadError, config_from_dict, load_config


def test_missing_file_says_how_to_create_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="groundwire init") as e:
        load_config(tmp_path / "nope.toml")
    assert "nope.toml" in str(e.value)


def test_bad_toml_names_the_file(tmp_path: Path) -> None:
    p = tmp_path / "g.toml"
    p.write_text("data_dir = \n")
    with pytest.raises(ConfigError, match="not valid TOML") as e:
        load_config(p)
    assert str(p) in str(e.value)


def test_unknown_key_is_an_error_not_ignored(tmp_path: Path) -> None:
    p = tmp_path / "g.toml"
    p.write_text('[retrieval]\ntop_kk = 3\n')
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert e.value.key == "retrieval.top_kk" and "unknown key" in str(e.value)


def test_out_of_range_value_names_key_and_value() -> None:
    with pytest.raises(ConfigError) as e:
        config_from_dict({"retrieval": {"top_k": 0}}, source="x.toml")
    assert e.value.file == "x.toml" and e.value.key == "retrieval.top_k" and "0" in str(e.value)


def test_connector_needs_type_and_tenant() -> None:
    with pytest.raises(ConfigError) as e:
        config_from_dict({"connectors": {"kb": {"tenant": "acme"}}})
    assert e.value.key == "connectors.kb.type" and "required" in str(e.value)


def test_bad_tenant_id() -> None:
    with pytest.raises(ConfigError) as e:
        config_from_dict({"connectors": {"kb": {"type": "knowledge_base", "tenant": "Acme Corp"}}})
    assert "connectors.kb.tenant" in str(e.value) and "lower-case" in str(e.value)


def test_unknown_connector_type_lists_installed(tmp_path: Path) -> None:
    cfg = config_from_dict({"connectors": {"x": {"type": "ftp", "tenant": "acme"}},
                            "plugins": {"load_entrypoints": False}}, source="g.toml")
    with pytest.raises(ConfigError, match="knowledge_base") as e:
        Grounder(cfg)
    assert e.value.key == "connectors.x.type"


def test_unknown_generator(tmp_path: Path) -> None:
    cfg = config_from_dict({"generator": {"name": "gpt-99"}, "plugins": {"load_entrypoints": False}})
    with pytest.raises(ConfigError, match="generator.name"):
        Grounder(cfg)


def test_connector_setting_errors_name_the_connector_key(make_grounder, corpus) -> None:
    g = make_grounder({"kb": {"type": "knowledge_base", "tenant": "acme", "path": str(corpus), "colour": "red"}})
    report = g.sync()[0]
    assert not report.ok and "connectors.kb.colour" in report.error and "unknown key" in report.error


def test_missing_folder_is_a_clear_connector_error(make_grounder, tmp_path: Path) -> None:
    g = make_grounder({"kb": {"type": "knowledge_base", "tenant": "acme", "path": str(tmp_path / "missing")}})
    report = g.sync()[0]
    assert "does not exist" in report.error and "path" in report.error


def test_access_plugin_cannot_be_disabled() -> None:
    cfg = config_from_dict({"plugins": {"disabled": ["access"], "load_entrypoints": False}})
    with pytest.raises(PluginLoadError, match="required"):
        Grounder(cfg)


def test_relative_paths_resolve_against_the_config_file(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    p = tmp_path / "sub" / "g.toml"
    p.write_text('data_dir = "state"\n')
    assert load_config(p).data_path == (tmp_path / "sub" / "state").resolve()
