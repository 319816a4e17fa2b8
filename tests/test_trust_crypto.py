"""Encryption at rest: AES-GCM codec, key providers, wrong keys, swapped ciphertexts, key rotation."""

from __future__ import annotations

import base64
import json
import shutil
import sqlite3

import pytest
from groundwire import Grounder, PluginLoadError, config_from_dict, hookimpl
from groundwire.cli import main
from groundwire.crypto import (
    AesGcmCodec,
    DecryptionError,
    EncryptionError,
    EnvKeyProvider,
    FileKeyProvider,
    KeyProvider,
    KeyringMismatch,
    codec_for,
    parse_keys,
)
from groundwire.errors import IndexError_
from groundwire.index import PAYLOAD_KEY, take_payloads
from groundwire.trust import rotate_keys

from .test_trust_audit import _write_toml
from .trust_helpers import ACME_HR, ACME_PUBLIC, grounder, make_config, new_key, plaintext_in_files, wrapped_by


def _enc(var: str = "GW_TEST_KEYS") -> dict:
    return {"enabled": True, "provider": "env", "options": {"variable": var}}


def test_roundtrip_random_nonce_and_key_id():
    codec = AesGcmCodec(parse_keys([f"k1:{new_key()}"], "test"))
    a, b = codec.encode("secret text", "c1"), codec.encode("secret text", "c1")
    assert a != b  # fresh nonce per value
    assert a.startswith("gw1:k1:") and "secret" not in a
    assert codec.decode(a, "c1") == "secret text"


def test_ciphertext_swapped_between_chunks_does_not_decrypt():
    codec = AesGcmCodec(parse_keys([f"k1:{new_key()}"], "test"))
    stored = codec.encode("chunk one", "chunk-1")
    with pytest.raises(DecryptionError, match="tampered"):
        codec.decode(stored, "chunk-2")


def test_tampered_ciphertext_is_detected():
    codec = AesGcmCodec(parse_keys([f"k1:{new_key()}"], "test"))
    stored = codec.encode("x" * 40, "c")
    head, body = stored.rsplit(":", 1)
    flipped = body[:20] + ("A" if body[20] != "A" else "B") + body[21:]
    with pytest.raises(DecryptionError):
        codec.decode(f"{head}:{flipped}", "c")


def test_wrong_key_with_same_id_is_refused():
    stored = AesGcmCodec(parse_keys([f"k1:{new_key()}"], "t")).encode("hello", "c")
    with pytest.raises(DecryptionError, match="key is wrong"):
        AesGcmCodec(parse_keys([f"k1:{new_key()}"], "t")).decode(stored, "c")


def test_unknown_key_id_names_what_to_configure():
    stored = AesGcmCodec(parse_keys([f"old:{new_key()}"], "t")).encode("hello", "c")
    with pytest.raises(DecryptionError, match=r"key id 'old'.*\[encryption\]"):
        AesGcmCodec(parse_keys([f"new:{new_key()}"], "t")).decode(stored, "c")


def test_rotation_keyring_decrypts_old_encrypts_with_current():
    old, new = new_key(), new_key()
    stored = AesGcmCodec(parse_keys([f"k1:{old}"], "t")).encode("hello", "c")
    both = AesGcmCodec(parse_keys([f"k1:{old}", f"k2:{new}"], "t"))
    assert both.decode(stored, "c") == "hello"
    assert both.encode("hello", "c").startswith("gw1:k2:")


def test_env_provider_missing_variable_and_bad_base64(monkeypatch):
    monkeypatch.delenv("GW_TEST_KEYS", raising=False)
    with pytest.raises(EncryptionError, match="GW_TEST_KEYS is not set"):
        EnvKeyProvider(variable="GW_TEST_KEYS").keyring()
    monkeypatch.setenv("GW_TEST_KEYS", "k1:not base64!")
    with pytest.raises(EncryptionError, match="not valid base64"):
        EnvKeyProvider(variable="GW_TEST_KEYS").keyring()
    monkeypatch.setenv("GW_TEST_KEYS", "k1:" + new_key()[:8])
    with pytest.raises(EncryptionError, match="32 bytes"):
        EnvKeyProvider(variable="GW_TEST_KEYS").keyring()


def test_file_provider_and_config(tmp_path):
    keyfile = tmp_path / "keys.txt"
    keyfile.write_text(f"# keys\na:{new_key()}\nb:{new_key()}\n", encoding="utf-8")
    keyfile.chmod(0o600)  # the provider refuses key files other users can read
    ring = FileKeyProvider(path=str(keyfile)).keyring()
    assert ring.current == "b" and set(ring.keys) == {"a", "b"}
    cfg = config_from_dict(
        {
            "encryption": {
                "enabled": True,
                "provider": "file",
                "options": {"path": "keys.txt", "current": "a"},
            }
        },
        base_dir=tmp_path,
    )
    assert codec_for(cfg).current == "a"
    with pytest.raises(EncryptionError, match="does not exist"):
        FileKeyProvider(path=str(tmp_path / "missing")).keyring()


def test_unknown_provider_is_a_config_error(tmp_path):
    cfg = config_from_dict(
        {"encryption": {"enabled": True, "provider": "vault"}, "plugins": {"load_entrypoints": False}}
    )
    with pytest.raises(Exception, match="encryption.provider"):
        codec_for(cfg)


def test_index_payloads_and_audit_are_encrypted_and_unreadable_without_key(tmp_path, monkeypatch):
    monkeypatch.setenv("GW_TEST_KEYS", f"k1:{new_key()}")
    g = grounder(tmp_path, encryption=_enc())
    g.sync()
    draft = g.ground("When is payday?", "alice", tenant="acme")
    assert "25th" in draft.text
    stored = take_payloads(g.index.tenant("acme").collection.get(include=["documents", "metadatas"]))["documents"]
    assert stored and all(d.startswith("gw2:") for d in stored)  # under acme's data key, wrapped by k1
    assert wrapped_by(tmp_path / "data", "acme") == "k1"
    assert not any("payday" in d.lower() for d in stored)
    audit_text = (tmp_path / "data" / "audit" / "acme.jsonl").read_text()
    assert '"enc"' in audit_text and draft.id not in audit_text
    db = sqlite3.connect(tmp_path / "data" / "reviews.sqlite3")
    (payload,) = db.execute("SELECT payload FROM drafts WHERE id = ?", (draft.id,)).fetchone()
    db.close()
    assert payload.startswith("gw2:") and "25th" not in payload
    # the raw Chroma files hold no plaintext chunk text either
    leaks = plaintext_in_files(tmp_path / "data" / "chroma", [ACME_PUBLIC, ACME_HR])
    assert not leaks, "plaintext chunk text in Chroma's files:\n" + "\n".join(leaks)

    # a different key: refused, naming what to configure
    monkeypatch.setenv("GW_TEST_KEYS", f"k1:{new_key()}")
    with pytest.raises(DecryptionError, match=r"\[encryption\]"):
        grounder(tmp_path, encryption=_enc()).ground("When is payday?", "alice", tenant="acme")
    # encryption switched off: refused before anything is written (the audit log and the drafts are
    # encrypted), naming the key id found; not silently returning ciphertext
    with pytest.raises(KeyringMismatch, match="encrypted with key id 'k1'.*not enabled"):
        grounder(tmp_path).ground("When is payday?", "alice", tenant="acme")
    # the wrapped data keys alone are enough to refuse (they name the master key that wraps them)
    shutil.rmtree(tmp_path / "data" / "audit")
    (tmp_path / "data" / "reviews.sqlite3").unlink()
    with pytest.raises(KeyringMismatch, match="data key of tenant 'acme'.*key id 'k1'.*not enabled"):
        grounder(tmp_path).ground("When is payday?", "alice", tenant="acme")
    # with only the index encrypted, the index itself refuses
    shutil.rmtree(tmp_path / "data" / "keys")
    with pytest.raises(IndexError_, match="codec 'aes-gcm'"):
        grounder(tmp_path).ground("When is payday?", "alice", tenant="acme")


def test_rotate_keys_reencrypts_everything(tmp_path, monkeypatch):
    k1, k2 = new_key(), new_key()
    monkeypatch.setenv("GW_TEST_KEYS", f"k1:{k1}")
    g = grounder(tmp_path, encryption=_enc())
    g.sync()
    draft = g.ground("When is payday?", "alice", tenant="acme")

    monkeypatch.setenv("GW_TEST_KEYS", f"k1:{k1},k2:{k2}")
    g2 = grounder(tmp_path, encryption=_enc())
    counts = rotate_keys(g2)
    assert counts["chunks"] == g2.index.tenant("acme").count() + g2.index.tenant("globex").count()
    assert counts["audit_lines"] > 0 and counts["drafts"] == 1

    # the old key can be retired: everything reads with k2 alone
    monkeypatch.setenv("GW_TEST_KEYS", f"k2:{k2}")
    g3 = grounder(tmp_path, encryption=_enc())
    stored = take_payloads(g3.index.tenant("acme").collection.get(include=["documents", "metadatas"]))["documents"]
    assert all(d.startswith("gw2:") for d in stored) and wrapped_by(tmp_path / "data", "acme") == "k2"
    assert "25th" in g3.ground("When is payday?", "alice", tenant="acme").text
    from groundwire.trust import verify_audit

    assert all(not p for p in verify_audit(g3).values())
    item = g3.reviews.get(draft.id, g3.make_user("alice", "acme"))
    assert "25th" in item.text
    lines = [json.loads(x) for x in (tmp_path / "data" / "audit" / "acme.jsonl").read_text().splitlines()]
    assert all(rec["enc"].startswith("gw1:k2:") for rec in lines)


def _to_layout_1(col) -> dict[str, str]:
    """Rewrite every row of ``col`` the way indexes were written before the payload moved out of Chroma's
    full-text-indexed ``documents`` (layout 1: payload in ``documents``, no metadata key); returns id -> payload."""
    got = take_payloads(col.get(include=["documents", "embeddings", "metadatas"]))
    col.delete(ids=got["ids"])
    col.add(ids=got["ids"], embeddings=got["embeddings"], documents=got["documents"], metadatas=got["metadatas"])
    return dict(zip(got["ids"], got["documents"], strict=True))


def test_payloads_live_in_metadata_and_an_index_of_the_old_layout_keeps_working(tmp_path, monkeypatch):
    k1, k2 = new_key(), new_key()
    monkeypatch.setenv("GW_TEST_KEYS", f"k1:{k1}")
    g = grounder(tmp_path, encryption=_enc())
    g.sync()
    raw = g.index.tenant("acme").collection.get(include=["documents", "metadatas"])
    # layout 2: the ciphertext is a metadata key; Chroma's full-text-indexed documents field is blank
    assert raw["ids"] and all(d == "" for d in raw["documents"])
    assert all(m[PAYLOAD_KEY].startswith("gw2:") for m in raw["metadatas"])

    old = {}
    for tenant in ("acme", "globex"):
        old.update(_to_layout_1(g.index.tenant(tenant).collection))
    before = g.index.tenant("acme").collection.get(include=["documents", "metadatas"])
    assert all(PAYLOAD_KEY not in m for m in before["metadatas"])
    assert all(d.startswith("gw2:") for d in before["documents"])
    # a data dir of the old layout reads as it is: drafts, key checks, inventory counts
    g = grounder(tmp_path, encryption=_enc())
    assert "25th" in g.ground("When is payday?", "alice", tenant="acme").text
    from groundwire.inventory import collection_payloads

    col = g.index.tenant("acme").collection
    assert collection_payloads(col) == (col.count(), col.count())
    # an edit rewrites that document's rows in layout 2 (and blanks the old ciphertext)
    (tmp_path / "corpus" / "acme" / "payday.md").write_text(f"# Payday\n\n{ACME_PUBLIC} Payslips are emailed.\n")
    g.sync()
    rows = col.get(where={"doc_id": "payday.md"}, include=["documents", "metadatas"])
    assert rows["ids"] and all(d == "" and PAYLOAD_KEY in m for d, m in zip(rows["documents"], rows["metadatas"],
                                                                                     strict=True))
    assert "emailed" in g.ground("When is payday?", "alice", tenant="acme").text

    # rotation rewrites every row in layout 2: no ciphertext of the retired key stays in documents
    monkeypatch.setenv("GW_TEST_KEYS", f"k1:{k1},k2:{k2}")
    rotate_keys(grounder(tmp_path, encryption=_enc()))
    monkeypatch.setenv("GW_TEST_KEYS", f"k2:{k2}")
    g = grounder(tmp_path, encryption=_enc())
    for tenant in ("acme", "globex"):
        after = g.index.tenant(tenant).collection.get(include=["documents", "metadatas"])
        assert all(d == "" for d in after["documents"])
        assert all(m[PAYLOAD_KEY] not in old.values() for m in after["metadatas"])
    assert "emailed" in g.ground("When is payday?", "alice", tenant="acme").text
    leaks = plaintext_in_files(tmp_path / "data" / "chroma", [ACME_PUBLIC, ACME_HR, "Payslips are emailed"])
    assert not leaks, "plaintext chunk text in Chroma's files:\n" + "\n".join(leaks)


class VaultProvider(KeyProvider):
    """A third-party provider registered through the hook (keys from an in-memory 'vault')."""

    name = "test-vault"
    VAULT: dict[str, str] = {}

    def keyring(self):
        return parse_keys(
            [f"{k}:{v}" for k, v in self.VAULT.items()], "test vault", self.options.get("current")
        )


class VaultPlugin:
    @hookimpl
    def register_key_providers(self, register):
        register(VaultProvider)


def test_third_party_key_provider_via_hook(tmp_path):
    VaultProvider.VAULT = {"v1": new_key()}
    cfg = config_from_dict(
        make_config(tmp_path, encryption={"enabled": True, "provider": "test-vault"}), base_dir=tmp_path
    )
    g = Grounder(cfg, extra_plugins=[VaultPlugin()])
    assert g.codec.name == "aes-gcm" and g.codec.current == "v1"
    g.sync()
    assert "25th" in g.ground("When is payday?", "alice", tenant="acme").text
    lines = (tmp_path / "data" / "audit" / "acme.jsonl").read_text().splitlines()
    assert all(json.loads(x)["enc"].startswith("gw1:v1:") for x in lines)


def test_duplicate_key_provider_name_is_an_error(tmp_path):
    class Dup(KeyProvider):
        name = "env"

    class DupPlugin:
        @hookimpl
        def register_key_providers(self, register):
            register(Dup)

    g = Grounder(config_from_dict(make_config(tmp_path), base_dir=tmp_path), extra_plugins=[DupPlugin()])
    with pytest.raises(PluginLoadError, match="'env'"):
        _ = g.codec


def test_cli_keys_generate_and_rotate(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GROUNDWIRE_NO_PLUGIN_COMMANDS", "1")
    assert main(["keys", "generate", "--id", "k2"]) == 0
    line = capsys.readouterr().out.strip()
    kid, _, b64 = line.partition(":")
    assert kid == "k2" and len(base64.b64decode(b64)) == 32
    k1 = new_key()
    keyfile = tmp_path / "keys.txt"
    keyfile.write_text(f"k1:{k1}\n")
    keyfile.chmod(0o600)  # the provider refuses key files other users can read
    enc = {"enabled": True, "provider": "file", "options": {"path": str(keyfile)}}
    g = grounder(tmp_path, encryption=enc)
    g.sync()
    g.ground("When is payday?", "alice", tenant="acme")
    keyfile.write_text(f"k1:{k1}\n{line}\n")
    cfg = tmp_path / "gw.toml"
    _write_toml(cfg, make_config(tmp_path, encryption=enc))
    assert main(["keys", "rotate", "--config", str(cfg)]) == 0
    assert "re-encrypted with key 'k2'" in capsys.readouterr().out
    keyfile.write_text(f"{line}\n")  # retire k1
    assert main(["audit", "verify", "--config", str(cfg)]) == 0
    g2 = grounder(tmp_path, encryption=enc)
    docs = take_payloads(g2.index.tenant("globex").collection.get(include=["documents", "metadatas"]))["documents"]
    assert docs and all(d.startswith("gw2:") for d in docs) and wrapped_by(tmp_path / "data", "globex") == "k2"
