"""A long-lived Grounder never re-applies a stale start-up configuration: after an administrator narrows an
ACL glob in the file and syncs from the CLI, the app's next ``sync()`` refuses (StaleConfig) and nothing
widens. Real files, real embedded Chroma, the real CLI, hashing embedder."""

from __future__ import annotations

import pytest
from groundwire import Grounder, GroundingRequest, StaleConfig, UserContext
from groundwire.cli import main

from .test_trust_audit import _write_toml
from .trust_helpers import ACME_HR, make_config

SAM = UserContext.of("sam", "acme")
QUESTION = "When do salary increases take effect?"


def _sam_sees_secret(path) -> bool:
    fresh = Grounder.from_config(path)
    return any(ACME_HR in c.text for c in fresh.retrieve(GroundingRequest(user=SAM, prompt=QUESTION, top_k=10)))


def test_app_sync_after_admin_narrowed_the_acl_refuses_and_nothing_widens(tmp_path, capsys):
    cfg = make_config(tmp_path)
    wide = dict(cfg, connectors={name: dict(c, acl={"*": ["everyone"]}) for name, c in cfg["connectors"].items()})
    path = tmp_path / "g.toml"
    _write_toml(path, wide)
    app = Grounder.from_config(path)  # step 1: the app starts with the wide configuration
    app.sync()
    assert _sam_sees_secret(path)

    _write_toml(path, cfg)  # step 2: the administrator narrows hr/* to group:hr and syncs from the CLI
    assert main(["sync", "--config", str(path)]) == 0
    assert not _sam_sees_secret(path)

    with pytest.raises(StaleConfig, match="changed since this Grounder loaded it") as exc:
        app.sync()  # step 3: the app's next sync must not re-apply its in-memory "*" = everyone
    assert str(path) in str(exc.value) and "Grounder.from_config" in str(exc.value)
    with pytest.raises(StaleConfig):
        app.sync(full=True)
    assert not _sam_sees_secret(path)
    assert Grounder.from_config(path).sync()  # a Grounder built from the current file syncs


def test_deleted_config_file_also_refuses_and_dict_configs_are_not_checked(tmp_path, make_grounder):
    path = tmp_path / "g.toml"
    _write_toml(path, make_config(tmp_path))
    app = Grounder.from_config(path)
    path.unlink()
    with pytest.raises(StaleConfig):
        app.sync()
    g = make_grounder({})
    assert g.config.source_hash == "" and g.sync() == []


def test_review_decisions_and_releases_refuse_too_but_requests_keep_serving(tmp_path):
    cfg = make_config(tmp_path, features={"ask": ["*"], "quarantine_admin": ["security-admin"]})
    path = tmp_path / "g.toml"
    _write_toml(path, cfg)
    app = Grounder.from_config(path)
    app.sync()
    draft = app.ground(QUESTION, "hana", groups=["hr"])
    _write_toml(path, dict(cfg, features={"ask": ["*"]}))  # the administrator removes quarantine_admin
    rita = UserContext.of("rita", "acme", groups=["hr"])
    with pytest.raises(StaleConfig):
        app.reviews.approve(draft.id, rita)
    with pytest.raises(StaleConfig):
        app.quarantine.release("acme-docs:payday.md:0", UserContext.of("sec", "acme", roles=["security-admin"]))
    assert app.reviews.get(draft.id, rita).status == "pending_review"
    assert app.ground("When is payday?", "sam").status == "pending_review"
    assert Grounder.from_config(path).reviews.approve(draft.id, rita).status == "approved"
