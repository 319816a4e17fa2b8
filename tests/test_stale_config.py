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


def test_review_decisions_releases_and_requests_all_refuse(tmp_path):
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
    for ask in (lambda: app.ground("When is payday?", "sam"), lambda: app.retrieve("When is payday?", "sam")):
        with pytest.raises(StaleConfig):
            ask()  # a request never runs with the rules the administrator has replaced
    assert Grounder.from_config(path).reviews.approve(draft.id, rita).status == "approved"


SERVE = """
import json, sys
from groundwire import Grounder, StaleConfig
app = Grounder.from_config(sys.argv[1])
app.warm_up()
print("ready", flush=True)
for line in sys.stdin:
    q = json.loads(line)
    try:
        chunks = app.retrieve(q["prompt"], q["user"], tenant=q["tenant"], groups=q.get("groups", []), top_k=10)
        out = {"texts": [c.text for c in chunks], "connectors": sorted({c.connector for c in chunks})}
    except StaleConfig as exc:
        out = {"stale": str(exc)}
    watch = getattr(app, "_config_watch", None)
    out["hashes"] = watch.hashes if watch else 0
    print(json.dumps(out), flush=True)
"""


def test_a_long_lived_process_refuses_requests_after_a_cli_edit(tmp_path):
    """A real app process keeps running while the administrator removes a connector in the file and syncs from
    the CLI: the app's next request is refused (StaleConfig), never served from the removed connector; an
    invalid edit is refused the same way. Unchanged, a request costs a stat, not a hash."""
    import json
    import os
    import subprocess
    import sys
    import time

    from groundwire.config_watch import RACY_SECONDS

    cfg = make_config(tmp_path, features={"ask": ["*"]})
    two = dict(cfg, connectors={**cfg["connectors"], "acme-extra": dict(cfg["connectors"]["acme-docs"], acl={
        "*": ["everyone"]})})
    path = tmp_path / "g.toml"
    _write_toml(path, two)
    assert main(["sync", "--config", str(path)]) == 0
    old = os.stat(path).st_mtime - 10
    os.utime(path, (old, old))
    time.sleep(RACY_SECONDS + 0.1)  # ctime too is older than the racy window: the stat is trusted once hashed
    env = {**os.environ, "ANONYMIZED_TELEMETRY": "False", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "-c", SERVE, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, env=env)
    assert proc.stdin is not None and proc.stdout is not None

    def ask() -> dict:
        proc.stdin.write(json.dumps({"prompt": QUESTION, "user": "sam", "tenant": "acme"}) + "\n")
        proc.stdin.flush()
        return json.loads(proc.stdout.readline())

    try:
        assert proc.stdout.readline().strip() == "ready"
        first = [ask() for _ in range(5)]
        assert all("acme-extra" in r["connectors"] for r in first)  # everyone may read hr/ through it
        assert any(ACME_HR in t for t in first[0]["texts"])
        assert first[-1]["hashes"] == first[0]["hashes"] == 1  # four more requests, no more hashing
        _write_toml(path, cfg)  # the administrator removes acme-extra (which widened hr/) ...
        assert main(["sync", "--config", str(path)]) == 0  # ... and syncs from the CLI
        after = ask()
        assert "stale" in after and "changed since this Grounder loaded it" in after["stale"]
        assert "texts" not in after
        path.write_text("this is not = [valid toml")  # an invalid edit: still refused, fail closed
        assert "stale" in ask()
        _write_toml(path, two)  # the old bytes again: the loaded configuration is current once more
        assert "texts" in ask()
    finally:
        proc.stdin.close()
        code = proc.wait(timeout=60)
        proc.stdout.close()
    assert code == 0
