"""Secure by default: `groundwire init` and the demo encrypt at rest with a private key file outside data_dir,
and the key provider and the trust report refuse key files that other users could read."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import stat
from pathlib import Path

import pytest
from groundwire import Grounder, load_config
from groundwire.cli import main
from groundwire.crypto import EncryptionError, FileKeyProvider, generate_key
from groundwire.keyfile import add_key, key_file_problem
from groundwire.trust import trust_checks
from groundwire.trustcenter import NOT_AVAILABLE

DELEGATED = {"asset disposal": "purge", "encrypts portable media": "exports", "retention": "retention"}
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _mode(p: Path) -> int:
    return stat.S_IMODE(os.stat(p).st_mode)


def _rows(g: Grounder) -> dict[str, object]:
    return {c.control: c for c in trust_checks(g)}


def test_init_creates_a_private_key_file_and_turns_encryption_on(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("# A\n\nThe office opens at nine.\n")
    assert main(["init", "docs", "--tenant", "acme"]) == 0
    keyfile = tmp_path / "groundwire.keys"
    assert keyfile.is_file() and _mode(keyfile) == 0o600
    key_before = keyfile.read_text()
    text = (tmp_path / "groundwire.toml").read_text().replace('name = "minilm"', 'name = "hashing"')
    (tmp_path / "groundwire.toml").write_text(text)
    cfg = load_config(tmp_path / "groundwire.toml")
    assert cfg.encryption.enabled and cfg.encryption.provider == "file"
    assert not cfg.resolve(cfg.encryption.options["path"]).is_relative_to(cfg.data_path)
    assert main(["sync", "--json"]) == 0
    capsys.readouterr()
    assert main(["ask", "when does the office open", "--user", "x@example.com", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["citations"]
    # nothing of the document's text is stored in clear under data_dir
    for f in cfg.data_path.rglob("*"):
        if f.is_file():
            assert b"opens at nine" not in f.read_bytes(), f
    # a forced re-init keeps the key that encrypted the data
    assert main(["init", "docs", "--tenant", "acme", "--force"]) == 0
    assert keyfile.read_text() == key_before


def test_key_file_readable_by_others_is_refused_and_fails_the_trust_row(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("# A\n\nText.\n")
    assert main(["init", "docs", "--tenant", "acme"]) == 0
    text = (tmp_path / "groundwire.toml").read_text().replace('name = "minilm"', 'name = "hashing"')
    (tmp_path / "groundwire.toml").write_text(text)
    keyfile = tmp_path / "groundwire.keys"
    g = Grounder(load_config(tmp_path / "groundwire.toml"))
    assert _rows(g)["restricts access to encryption keys"].ok
    keyfile.chmod(0o644)
    row = _rows(Grounder(load_config(tmp_path / "groundwire.toml")))["restricts access to encryption keys"]
    assert not row.ok and "chmod 600" in row.detail
    with pytest.raises(EncryptionError, match="chmod 600"):
        FileKeyProvider(path=str(keyfile)).keyring()
    assert main(["sync"]) != 0  # refused, not a traceback
    # a symbolic link to the key file is refused too (its target could be swapped)
    keyfile.chmod(0o600)
    link = tmp_path / "link.keys"
    link.symlink_to(keyfile)
    assert "symbolic link" in (key_file_problem(link) or "")


def test_key_file_inside_data_dir_fails_the_trust_row(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("# A\n\nText.\n")
    assert main(["init", "docs", "--tenant", "acme"]) == 0
    (tmp_path / ".groundwire").mkdir()
    shutil.move(tmp_path / "groundwire.keys", tmp_path / ".groundwire" / "k.keys")
    text = (tmp_path / "groundwire.toml").read_text().replace("groundwire.keys", ".groundwire/k.keys")
    (tmp_path / "groundwire.toml").write_text(text.replace('name = "minilm"', 'name = "hashing"'))
    row = _rows(Grounder(load_config(tmp_path / "groundwire.toml")))["restricts access to encryption keys"]
    assert not row.ok and "inside data_dir" in row.detail


def test_keys_generate_file_appends_a_new_current_key(tmp_path, capsys) -> None:
    keyfile = tmp_path / "keys" / "gw.keys"
    assert main(["keys", "generate", "--id", "k1", "--file", str(keyfile)]) == 0
    assert _mode(keyfile) == 0o600 and _mode(keyfile.parent) == 0o700
    assert main(["keys", "generate", "--id", "k2", "--file", str(keyfile)]) == 0
    out = capsys.readouterr().out
    assert "k2" in out and ":" not in out.split("k2", 1)[1].split()[0]  # no key material printed
    assert FileKeyProvider(path=str(keyfile)).keyring().current == "k2"
    assert main(["keys", "generate", "--id", "k2", "--file", str(keyfile)]) != 0  # duplicate id refused
    keyfile.chmod(0o640)
    with pytest.raises(EncryptionError, match="chmod 600"):
        add_key(keyfile, "k3", generate_key())


def test_provider_create_option_makes_one_private_key_on_first_use(tmp_path) -> None:
    keyfile = tmp_path / "state.keys"
    ring = FileKeyProvider(path=str(keyfile), create=True).keyring()
    assert _mode(keyfile) == 0o600 and len(ring.keys) == 1
    assert FileKeyProvider(path=str(keyfile), create=True).keyring().keys == ring.keys  # never replaced


@pytest.mark.slow
def test_demo_configuration_passes_every_trust_check(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("ANONYMIZED_TELEMETRY", "False")
    shutil.copytree(EXAMPLES / "corpus", tmp_path / "corpus")
    text = (EXAMPLES / "groundwire.toml").read_text().replace("../.groundwire/demo", "state")
    (tmp_path / "groundwire.toml").write_text(text)
    g = Grounder(load_config(tmp_path / "groundwire.toml"))
    assert g.config.encryption.enabled
    assert all(r.ok for r in g.sync())
    g.ground("When are salaries paid?", "sam@example.com")
    # the rows whose self-checks live in modules of other parts (purge, exports, retention) fail with "not
    # available in this version" until those modules are installed; every other row passes
    bad = [c for c in trust_checks(g) if not c.ok and c.detail != NOT_AVAILABLE]
    assert not bad, bad
    for c in trust_checks(g):
        if c.detail == NOT_AVAILABLE:
            assert importlib.util.find_spec(f"groundwire.{DELEGATED[c.control]}") is None, c
    assert _mode(tmp_path / "state.keys") == 0o600
