"""Per-tenant data keys: wrapped by the master key, one per tenant even when processes race to make it, old
master-key data still read and migrated by rotation, keyed content hashes, keyring mismatch still refused."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from groundwire import Grounder, config_from_dict
from groundwire.crypto import KeyringMismatch, parse_keys
from groundwire.datakeys import MasterCodec
from groundwire.index import take_payloads
from groundwire.trust import rotate_keys, verify_audit
from hypothesis import given, settings
from hypothesis import strategies as st

from .trust_helpers import ACME_PUBLIC, make_config, new_key, wrapped_by

ENC = {"enabled": True, "provider": "env", "options": {"variable": "GW_TK_KEYS"}}

_RACER = """
import sys, time
from pathlib import Path
from groundwire.crypto import parse_keys
from groundwire.datakeys import MasterCodec
folder, key, go = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
codec = MasterCodec(parse_keys([f"k1:{key}"], "test"), folder)
print("ready", flush=True)
while not go.exists():
    time.sleep(0.001)
print(codec.data_keys.get("acme", create=True).id, flush=True)
"""


def test_racing_processes_create_one_data_key(tmp_path):
    key, go, folder = new_key(), tmp_path / "go", tmp_path / "keys"
    procs = [subprocess.Popen([sys.executable, "-c", _RACER, str(folder), key, str(go)], stdout=subprocess.PIPE,
                              text=True) for _ in range(4)]
    for p in procs:  # every racer has imported and waits for the start signal
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    go.touch()
    ids = set()
    for p in procs:
        out, _ = p.communicate(timeout=60)
        assert p.returncode == 0
        ids.add(out.strip())
    assert len(ids) == 1
    assert sorted(x.name for x in folder.iterdir()) == ["acme.dek"]  # no temporary file left behind
    assert stat.S_IMODE(os.stat(folder / "acme.dek").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700
    doc = json.loads((folder / "acme.dek").read_text())
    assert doc["id"] in ids and doc["wrapped"].startswith("gw1:k1:")  # only the wrapped key is on disk
    # the key unwraps with the master key and reads what the racers' codec would write
    codec = MasterCodec(parse_keys([f"k1:{key}"], "test"), folder)
    stored = codec.for_tenant("acme").encode("hello", "c1")
    assert stored.startswith(f"gw2:{doc['id']}:") and codec.decode(stored, "c1") == "hello"


@settings(max_examples=25, deadline=None)
@given(text=st.text(min_size=1, max_size=200), aad=st.text(min_size=1, max_size=40))
def test_a_tenant_reads_only_its_own_payloads(tmp_path_factory, text, aad):
    folder = tmp_path_factory.mktemp("keys")
    codec = MasterCodec(parse_keys([f"k1:{new_key()}"], "test"), folder)
    a, b = codec.for_tenant("acme"), codec.for_tenant("globex")
    stored = a.encode(text, aad)
    assert a.decode(stored, aad) == text
    with pytest.raises(Exception, match="not this tenant's data key"):
        b.decode(stored, aad)
    assert a.mac(text) != b.mac(text)  # keyed per tenant: equal content does not link tenants


def _legacy(monkeypatch):
    """Write the way Groundwire did before data keys: payloads under the master key, unkeyed hashes."""
    import groundwire.index.client as index_mod  # where Index looks tenant_codec up
    import groundwire.stores.drafts as drafts_mod
    import groundwire.stores.quarantine_rows as qrows_mod

    for mod in (index_mod, drafts_mod, qrows_mod):
        monkeypatch.setattr(mod, "tenant_codec", lambda codec, tenant: codec)


def test_old_master_key_data_reads_and_migrates_on_rotate(tmp_path, monkeypatch):
    k1, k2 = new_key(), new_key()
    monkeypatch.setenv("GW_TK_KEYS", f"k1:{k1}")
    with monkeypatch.context() as m:
        _legacy(m)
        old = Grounder(config_from_dict(make_config(tmp_path, encryption=ENC), base_dir=tmp_path))
        old.sync()
        draft = old.ground("When is payday?", "alice", tenant="acme")
    data = tmp_path / "data"
    col = take_payloads(old.index.tenant("acme").collection.get(include=["documents", "metadatas"]))
    assert all(d.startswith("gw1:k1:") for d in col["documents"])
    assert not any(str(m["content_hash"]).startswith("h1:") for m in col["metadatas"])

    # dual read: the new code reads the old store as it is
    g = Grounder(config_from_dict(make_config(tmp_path, encryption=ENC), base_dir=tmp_path))
    assert "25th" in g.ground("When is payday?", "alice", tenant="acme").text
    assert "25th" in g.reviews.get(draft.id, g.make_user("alice", "acme")).text

    # rotation moves every payload under the tenant's data key, wrapped by the new master key
    monkeypatch.setenv("GW_TK_KEYS", f"k1:{k1},k2:{k2}")
    counts = rotate_keys(Grounder(config_from_dict(make_config(tmp_path, encryption=ENC), base_dir=tmp_path)))
    # acme's key (made for the new draft above) is re-wrapped; globex's is made, under k2, by the re-encryption
    assert counts["data_keys"] == 1 and counts["drafts"] == 2
    monkeypatch.setenv("GW_TK_KEYS", f"k2:{k2}")  # k1 retired
    g = Grounder(config_from_dict(make_config(tmp_path, encryption=ENC), base_dir=tmp_path))
    docs = take_payloads(g.index.tenant("acme").collection.get(include=["documents", "metadatas"]))["documents"]
    assert docs and all(d.startswith("gw2:") for d in docs) and wrapped_by(data, "acme") == "k2"
    assert wrapped_by(data, "globex") == "k2"
    assert "25th" in g.reviews.get(draft.id, g.make_user("alice", "acme")).text
    assert all(not p for p in verify_audit(g).values())

    # the unkeyed content hashes count as changed once (re-indexed with keyed hashes), then nothing is redone
    first = g.sync()
    assert sum(r.updated for r in first) == 4 and sum(r.unchanged for r in first) == 0
    metas = g.index.tenant("acme").collection.get(include=["metadatas"])["metadatas"]
    assert metas and all(str(m["content_hash"]).startswith("h1:") for m in metas)
    second = g.sync()
    assert sum(r.unchanged for r in second) == 4 and sum(r.updated + r.added for r in second) == 0
    assert "25th" in g.ground("When is payday?", "alice", tenant="acme").text


def test_content_hashes_are_keyed_and_a_foreign_keyring_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("GW_TK_KEYS", f"k1:{new_key()}")
    g = Grounder(config_from_dict(make_config(tmp_path, encryption=ENC), base_dir=tmp_path))
    g.sync()
    acme = g.index.tenant("acme")
    docs = g.index.tenant("acme").collection.get(include=["metadatas"])["metadatas"]
    import hashlib

    plain = {hashlib.sha256(ACME_PUBLIC.encode()).hexdigest()}
    assert all(str(m["content_hash"]).startswith("h1:") and m["content_hash"] not in plain for m in docs)
    assert acme.keyed_hash("x") != g.index.tenant("globex").keyed_hash("x")
    # the data key's wrap is checked like every store: another master key is refused before any write
    monkeypatch.setenv("GW_TK_KEYS", f"k1:{new_key()}")
    before = {p: p.read_bytes() for p in (tmp_path / "data" / "keys").iterdir()}
    with pytest.raises(KeyringMismatch, match="data key of tenant 'acme'"):
        _ = Grounder(config_from_dict(make_config(tmp_path, encryption=ENC), base_dir=tmp_path)).codec
    assert {p: p.read_bytes() for p in (tmp_path / "data" / "keys").iterdir()} == before


def test_a_purge_in_another_process_is_noticed(tmp_path):
    folder = tmp_path / "keys"
    ring = parse_keys([f"k1:{new_key()}"], "test")
    writer, purger = MasterCodec(ring, folder), MasterCodec(ring, folder)
    first = writer.for_tenant("acme").encode("a", "x")
    purger.destroy_tenant("acme")
    time.sleep(1.1)  # the writer re-checks its cached key at most every second
    second = writer.for_tenant("acme").encode("b", "x")
    assert first.split(":")[1] != second.split(":")[1]  # a new key, not the destroyed one
    assert purger.for_tenant("acme").decode(second, "x") == "b"
    assert Path(folder / "acme.dek").exists()
