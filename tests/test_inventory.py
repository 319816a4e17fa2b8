"""``groundwire inventory`` on a real synced data dir: every collection, file, key, connector and plugin."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from pathlib import Path

from groundwire import Grounder, config_from_dict
from groundwire.cli import main
from groundwire.crypto import PREFIX
from groundwire.inventory import ENCRYPTED, MIXED, NA, PLAINTEXT, build_inventory, status_of
from groundwire.keyfile import add_key, new_key_id
from hypothesis import given, settings
from hypothesis import strategies as st

from .test_trust_audit import _write_toml
from .trust_helpers import ACME_PUBLIC, make_config, new_key


def _synced(tmp_path: Path, keyfile: Path | None = None, **extra) -> Grounder:
    if keyfile is not None:
        extra["encryption"] = {"enabled": True, "provider": "file", "options": {"path": str(keyfile)}}
    g = Grounder(config_from_dict(make_config(tmp_path, **extra), base_dir=tmp_path))
    g.sync()
    g.ground("When is payday?", "alice", tenant="acme")
    return g


def _walk(root: Path) -> dict[str, int]:
    return {p.relative_to(root).as_posix(): p.stat().st_size for p in root.rglob("*") if p.is_file()}


def test_inventory_lists_every_store_of_an_encrypted_data_dir(tmp_path):
    keyfile = tmp_path / "keys" / "gw.keys"
    add_key(keyfile, "legacy", new_key())
    generated = new_key_id()
    add_key(keyfile, generated, new_key())
    g = _synced(tmp_path, keyfile)
    build_inventory(g)  # reading a WAL database read-only may leave its -wal / -shm side files
    inv = build_inventory(g)
    assert inv["problems"] == []

    # collections: one per tenant, live, with the index's own counts and the size of its vector segments
    cols = {c["tenant"]: c for c in inv["collections"]}
    assert set(cols) == {"acme", "globex"}
    for tenant, c in cols.items():
        assert c["live"] and c["chunks"] == g.index.tenant(tenant).count() > 0
        assert c["payloads"] == ENCRYPTED and c["encrypted_payloads"] == c["chunks"]
    files = {f["path"]: f for f in inv["files"]}
    segment_bytes = sum(f["bytes"] for p, f in files.items() if p.startswith("chroma/") and p.count("/") == 2
                        and not p.startswith("chroma/snapshots/"))
    assert sum(c["vector_bytes"] for c in cols.values()) == segment_bytes > 0

    # files: exactly what is on disk, with sizes; payload stores encrypted, vectors and state in clear
    assert {p: f["bytes"] for p, f in files.items()} == _walk(tmp_path / "data")
    assert files["audit/acme.jsonl"]["encryption"] == ENCRYPTED
    assert files["reviews.sqlite3"]["encryption"] == ENCRYPTED
    assert files["chroma/chroma.sqlite3"]["encryption"] == ENCRYPTED
    assert files["state/acme/acme-docs.json"]["encryption"] == PLAINTEXT
    assert files["sync.lock"]["encryption"] == NA
    secret = ACME_PUBLIC.split(".")[0].encode()
    for path, f in files.items():
        if f["encryption"] == ENCRYPTED and not path.startswith("chroma/"):
            assert secret not in (tmp_path / "data" / path).read_bytes(), path

    # keys: ids and ages, never key material
    keys = {k["id"]: k for k in inv["keys"]}
    assert keys[generated]["current"] and keys[generated]["created_from"] == "key id"
    assert keys[generated]["age_days"] is not None and keys[generated]["age_days"] < 1
    assert not keys["legacy"]["current"] and keys["legacy"]["created_from"] == "key file modified"
    for line in keyfile.read_text().splitlines():
        assert line.split(":", 1)[1] not in json.dumps(inv)

    # connectors: last sync and the documents each one has in the index
    conns = {c["name"]: c for c in inv["connectors"]}
    assert set(conns) == {"acme-docs", "globex-docs"}
    assert all(c["last_sync"] and c["items"] == 2 for c in conns.values())

    # plugins: versions and the SHA-256 of the module file
    plugins = {p["name"]: p for p in inv["plugins"]}
    assert {"access", "audit", "prompt_shield"} <= set(plugins)
    for p in plugins.values():
        assert p["version"] and p["sha256"] == hashlib.sha256(Path(p["file"]).read_bytes()).hexdigest()


def test_inventory_of_a_clear_data_dir_and_before_any_sync(tmp_path):
    g = Grounder(config_from_dict(make_config(tmp_path), base_dir=tmp_path))
    before = build_inventory(g)
    assert before["collections"] == [] and all(c["last_sync"] is None for c in before["connectors"])
    assert not any(str(c.name).startswith("gw-") for c in g.index.client.list_collections())  # created nothing
    g.sync()
    g.ground("When is payday?", "alice", tenant="acme")
    inv = build_inventory(g)
    files = {f["path"]: f for f in inv["files"]}
    assert files["audit/acme.jsonl"]["encryption"] == PLAINTEXT
    assert files["reviews.sqlite3"]["encryption"] == PLAINTEXT
    assert {c["payloads"] for c in inv["collections"]} == {PLAINTEXT}
    assert inv["keys"] == [] or all(k["id"].startswith("local") for k in inv["keys"])


def test_cli_inventory_json_and_table(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("GROUNDWIRE_NO_PLUGIN_COMMANDS", "1")
    monkeypatch.setenv("GW_INV_KEYS", f"k1:{new_key()}")
    cfg = tmp_path / "gw.toml"
    _write_toml(cfg, make_config(tmp_path, encryption={"enabled": True, "provider": "env",
                                                         "options": {"variable": "GW_INV_KEYS"}}))
    assert main(["sync", "--config", str(cfg)]) == 0
    capsys.readouterr()
    assert main(["inventory", "--json", "--config", str(cfg)]) == 0
    inv = json.loads(capsys.readouterr().out)
    assert {k["id"] for k in inv["keys"]} == {"k1"} and inv["keys"][0]["created_from"].startswith("unknown")
    assert main(["inventory", "--config", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert "gw-acme" in out and "acme-docs" in out and os.environ["GW_INV_KEYS"].split(":")[1] not in out


@settings(max_examples=40, deadline=None)
@given(st.lists(st.booleans(), max_size=12))
def test_a_store_is_reported_encrypted_only_when_every_payload_is(tmp_path_factory, encrypted):
    """Property: one payload in clear among any number of ciphertexts never reads as 'encrypted payloads'
    (the at-rest row and the inventory rely on it), for audit logs and SQLite payload stores alike."""
    folder = tmp_path_factory.mktemp("status")
    log = folder / "audit" / "t.jsonl"
    log.parent.mkdir()
    log.write_text("".join(
        json.dumps({"seq": i, "prev": "", "hash": "", **({"enc": f"{PREFIX}:k1:AAAA"} if e else {"event": {}})}) + "\n"
        for i, e in enumerate(encrypted)))
    db_path = folder / "reviews.sqlite3"
    with sqlite3.connect(db_path) as db:
        db.execute("CREATE TABLE drafts (id TEXT, payload TEXT)")
        db.executemany("INSERT INTO drafts VALUES (?, ?)",
                       [(str(i), f"{PREFIX}:k1:AAAA" if e else '{"text": "clear"}') for i, e in enumerate(encrypted)])
    db.close()
    expected = NA if not encrypted else ENCRYPTED if all(encrypted) else PLAINTEXT if not any(encrypted) else MIXED
    assert status_of("audit/t.jsonl", log) == expected
    assert status_of("reviews.sqlite3", db_path) == expected
