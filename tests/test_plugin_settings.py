"""Strict plugin settings (issue 12): each built-in plugin declares a pydantic model; unknown keys and
wrong types under ``[plugins.settings.*]`` and its per-tenant overrides are ConfigErrors at start-up,
naming the file and the key; per-tenant overrides apply."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from groundwire import ConfigError, Draft, Grounder, GroundingRequest, UserContext, config_from_dict
from groundwire.plugins import groundedness, pii

from .conftest import kb, make_chunk
from .test_cli_errors import gw, one_line, project


def _grounder(tmp_path: Path, corpus: Path, settings: dict[str, Any]) -> Grounder:
    data = {
        "data_dir": str(tmp_path / "data"), "default_tenant": "acme", "embedder": {"name": "hashing"},
        "plugins": {"load_entrypoints": False, "settings": settings},
        "connectors": {"kb": kb(corpus), "g": kb(corpus, tenant="globex")},
    }
    return Grounder(config_from_dict(data, source="gw.toml", base_dir=tmp_path))


@pytest.mark.parametrize(
    ("settings", "key"),
    [
        ({"groundedness": {"treshold": 0.3}}, "plugins.settings.groundedness.treshold"),
        ({"pii": {"enabled": "false"}}, "plugins.settings.pii.enabled"),
        ({"groundedness": {"min_words": "3"}}, "plugins.settings.groundedness.min_words"),
        ({"pii": {"action": "shout"}}, "plugins.settings.pii.action"),
        ({"pii": {"tenants": {"acme": {"enabled": "no"}}}}, "plugins.settings.pii.tenants.acme.enabled"),
        (
            {"content_safety": {"tenants": {"acme": {"blok_at": 4}}}},
            "plugins.settings.content_safety.tenants.acme.blok_at",
        ),
        ({"presidio": {"score_threshold": 2.0}}, "plugins.settings.presidio.score_threshold"),
        ({"azure_content_safety": {"fail_closed": "yes"}}, "plugins.settings.azure_content_safety.fail_closed"),
    ],
)
def test_bad_settings_are_config_errors_at_start_up(tmp_path, corpus, settings, key) -> None:
    with pytest.raises(ConfigError) as err:
        _grounder(tmp_path, corpus, settings)
    assert err.value.key == key and err.value.file == "gw.toml"


def test_per_tenant_overrides_apply(tmp_path, corpus) -> None:
    g = _grounder(tmp_path, corpus, {"groundedness": {"tenants": {"acme": {"enabled": False}}},
                                     "pii": {"tenants": {"globex": {"action": "flag"}}}})
    source = make_chunk("c1", "Leave is 25 days.")
    draft = Draft(request_id="r", text="The moon is made of cheese and nobody checks it.")
    verdicts = {}
    for tenant in ("acme", "globex"):
        req = GroundingRequest(UserContext.of("alice", tenant), "q")
        verdicts[tenant] = groundedness.screen_output(request=req, draft=draft, sources=[source], config=g.config)
    assert verdicts["acme"] is None and verdicts["globex"] is not None
    mail = Draft(request_id="r", text="Write to dana@example.com today.")
    actions = {t: pii.screen_output(request=GroundingRequest(UserContext.of("a", t), "q"), draft=mail,
                                    sources=[], config=g.config).action for t in ("acme", "globex")}
    assert str(actions["acme"]) == "redact" and str(actions["globex"]) == "flag"


def test_cli_names_file_and_key(tmp_path: Path) -> None:
    root = project(tmp_path, embedder_extra="[plugins.settings.groundedness]\ntreshold = 0.3")
    p = gw(root, "ask", "leave?", "--user", "alice")
    assert p.returncode == 2
    line = one_line(p)
    assert "groundwire.toml" in line and "plugins.settings.groundedness.treshold" in line and "unknown key" in line


@pytest.mark.parametrize(("bad", "key"), [
    ({"treshold": 0.5}, "prompt_shield.treshold"),
    ({"use_model": "false"}, "prompt_shield.use_model"),
    ({"tenants": {"acme": {"threshold": "high"}}}, "prompt_shield.tenants.acme.threshold"),
])
def test_prompt_shield_settings_are_checked_at_start_up(tmp_path, bad, key) -> None:
    cfg = config_from_dict({"data_dir": str(tmp_path / "d"), "embedder": {"name": "hashing"},
                            "plugins": {"load_entrypoints": False, "settings": {"prompt_shield": bad}}})
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        Grounder(cfg)
