"""Stores, connector state and keys under faults (issue 12): SQLite WAL/busy timeout/schema versions,
connector state reset when its index data is gone, a keyring that cannot read the data refused before any
write. Real SQLite files, real Chroma, real processes."""

from __future__ import annotations

import json
import multiprocessing
import shutil
import sqlite3

import pytest
from groundwire.audit import verify_log
from groundwire.cli import main
from groundwire.crypto import KeyringMismatch
from groundwire.errors import StorageError
from groundwire.ingest import StateStore
from groundwire.stores import DraftRow, DraftStore, QuarantineRows
from groundwire.trust import verify_audit

from . import durable_workers as w
from .test_trust_audit import _write_toml
from .trust_helpers import grounder, make_config, new_key

ENC = {"enabled": True, "provider": "env", "options": {"variable": "GW_TEST_KEYS"}}
SPAWN = multiprocessing.get_context("spawn")


@pytest.fixture(autouse=True)
def _no_entrypoint_commands(monkeypatch):
    monkeypatch.setenv("GROUNDWIRE_NO_PLUGIN_COMMANDS", "1")


class Identity:
    name = "identity"

    def encode(self, plaintext, aad):
        return plaintext

    def decode(self, stored, aad):
        return stored


def _insert_drafts(path: str, worker: int, n: int) -> int:
    store = DraftStore(__import__("pathlib").Path(path), Identity)
    for i in range(n):
        store.insert(DraftRow(f"{worker}-{i}", "acme", "u", "pending_review", f"{i:04}", f"{i:04}", {"i": i}), "r")
    return n


def test_stores_are_wal_versioned_and_shared_by_processes(tmp_path):
    path = tmp_path / "reviews.sqlite3"
    DraftStore(path, Identity)
    QuarantineRows(tmp_path / "quarantine.sqlite", Identity)
    for p in (path, tmp_path / "quarantine.sqlite"):
        db = sqlite3.connect(p)
        try:
            assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            assert db.execute("PRAGMA user_version").fetchone()[0] == 1
        finally:
            db.close()
    with SPAWN.Pool(3) as pool:
        done = sum(pool.starmap(_insert_drafts, [(str(path), w, 30) for w in range(3)]))
    assert len(DraftStore(path, Identity).list("acme")) == done == 90


def test_a_legacy_store_is_migrated_in_place_and_a_newer_one_refused(tmp_path):
    path = tmp_path / "reviews.sqlite3"
    db = sqlite3.connect(path)  # the layout written before schema versions existed (user_version 0)
    db.execute("CREATE TABLE drafts (id TEXT PRIMARY KEY, tenant TEXT NOT NULL, request_id TEXT NOT NULL, "
               "author TEXT NOT NULL, status TEXT NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL, "
               "payload TEXT NOT NULL)")
    db.execute("INSERT INTO drafts VALUES ('d1', 'acme', 'r', 'alice', 'pending_review', 't', 't', ?)",
               (json.dumps({"x": 1}),))
    db.commit()
    db.close()
    store = DraftStore(path, Identity)
    assert store.load("d1").body == {"x": 1}
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version = 99")
    db.close()
    with pytest.raises(StorageError, match="schema version 99 is newer"):
        DraftStore(path, Identity)


def test_a_corrupt_store_names_the_file_and_the_recovery(tmp_path):
    path = tmp_path / "quarantine.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StorageError, match="corrupt.*quarantine.sqlite.corrupt"):
        QuarantineRows(path, Identity)


def test_connector_state_is_reset_when_the_index_is_gone(tmp_path):
    g = grounder(tmp_path)
    [acme, _] = g.sync()
    assert acme.added == 2
    state = StateStore(tmp_path / "data" / "state")
    st = json.loads(state.path("acme", "acme-docs").read_text())
    assert st["format"] == 2 and st["index"]["documents"] == 2
    shutil.rmtree(tmp_path / "data" / "chroma")  # the index is deleted; the state files remain
    with SPAWN.Pool(1) as pool:  # the next sync (not --full) runs in a new process, as the CLI would
        reports, cited = pool.apply(w.sync_and_ask, (str(tmp_path),))
    assert [(c, ok, added) for c, ok, added, _ in reports] == [("acme-docs", True, 2), ("globex-docs", True, 2)]
    assert cited


def test_state_of_a_recreated_collection_is_not_trusted(tmp_path):
    store = StateStore(tmp_path)
    store.save("acme", "c", {"token": "t"}, collection="old-id", documents=5)
    assert store.load_for("acme", "c", "old-id", 5) == {"token": "t"}
    assert store.load_for("acme", "c", "new-id", 5) == {}  # a new collection: full sync
    assert not store.path("acme", "c").exists()
    store.save("acme", "c", {"token": "t"}, collection="id", documents=5)
    assert store.load_for("acme", "c", "id", 0) == {}  # the connector's documents are gone
    store.path("acme", "c").parent.mkdir(parents=True, exist_ok=True)
    store.path("acme", "c").write_text(json.dumps({"token": "legacy"}))  # format 1
    assert store.load_for("acme", "c", "id", 3) == {"token": "legacy"}
    assert store.load_for("acme", "c", "id", 0) == {}


def test_sync_with_a_keyring_that_cannot_read_the_store_writes_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GW_TEST_KEYS", f"k1:{new_key()}")
    g = grounder(tmp_path, encryption=ENC)
    g.sync()
    g.ground("When is payday?", "alice", tenant="acme")
    right = g.codec
    data = tmp_path / "data"
    before = {p: p.read_bytes() for p in (data / "audit").glob("*.jsonl")}
    doc = tmp_path / "corpus" / "acme" / "payday.md"
    doc.write_text(doc.read_text() + "\nPayday moves in December.\n")

    monkeypatch.setenv("GW_TEST_KEYS", f"k2:{new_key()}")  # another key: refused, naming both ids
    with pytest.raises(KeyringMismatch, match=r"key ids 'k2'.*encrypted with key id 'k1'") as err:
        grounder(tmp_path, encryption=ENC).sync()
    assert "Nothing was written" in str(err.value)
    monkeypatch.setenv("GW_TEST_KEYS", f"k1:{new_key()}")  # same id, other key material
    with pytest.raises(KeyringMismatch, match="right id but not the key material"):
        grounder(tmp_path, encryption=ENC).sync()
    cfg = tmp_path / "gw.toml"
    _write_toml(cfg, make_config(tmp_path, encryption=ENC))
    assert main(["sync", "--config", str(cfg)]) != 0
    assert "cannot decrypt the existing data" in " ".join(capsys.readouterr().err.split())
    assert {p: p.read_bytes() for p in (data / "audit").glob("*.jsonl")} == before
    for p in before:
        assert verify_log(p, right).ok


def test_index_only_data_with_the_wrong_key_is_refused_by_sync(tmp_path, monkeypatch):
    monkeypatch.setenv("GW_TEST_KEYS", f"k1:{new_key()}")
    g = grounder(tmp_path, encryption=ENC)
    g.sync()
    count = g.index.tenant("acme").count()
    shutil.rmtree(tmp_path / "data" / "audit")  # only the index holds encrypted data now
    monkeypatch.setenv("GW_TEST_KEYS", f"k9:{new_key()}")
    g2 = grounder(tmp_path, encryption=ENC)
    doc = tmp_path / "corpus" / "acme" / "payday.md"
    doc.write_text(doc.read_text() + "\nPayday moves in December.\n")
    reports = g2.sync()
    assert all("index of tenant" in r.error and "'k1'" in r.error for r in reports), [r.error for r in reports]
    assert g2.index.tenant("acme").count() == count
    assert all(not p for p in verify_audit(g2).values())  # the refusals themselves are not audited as writes


def _count_drafts(path: str) -> int:
    db = sqlite3.connect(path)
    try:
        return int(db.execute("SELECT COUNT(*) FROM drafts").fetchone()[0])
    finally:
        db.close()


def test_a_write_does_not_checkpoint_the_wal_on_close_and_is_durable(tmp_path):
    """Closing the last connection makes SQLite checkpoint the WAL and fsync the database (a second fsync per
    write); the store's idle keeper connection prevents that. The row is committed all the same: another
    process reads it, and closing the keeper checkpoints the WAL into the database."""
    path = tmp_path / "reviews.sqlite3"
    store = DraftStore(path, Identity)
    wal = tmp_path / "reviews.sqlite3-wal"
    for i in range(3):
        store.insert(DraftRow(f"d{i}", "acme", "u", "pending_review", "t", "t", {"i": i}), "r")
        assert wal.is_file() and wal.stat().st_size > 0  # the commit is in the WAL, not checkpointed on close
    with SPAWN.Pool(1) as pool:
        assert pool.apply(_count_drafts, (str(path),)) == 3
    store.close()
    assert not wal.exists() or wal.stat().st_size == 0  # the last connection closed: checkpointed
    assert _count_drafts(str(path)) == 3
    store.insert(DraftRow("d3", "acme", "u", "pending_review", "t", "t", {}), "r")  # usable after close()
    assert store.count("acme") == 4
