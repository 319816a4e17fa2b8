"""Red-team probes of state a careless operator or a crash leaves behind (real files, real Chroma, real CLI,
real processes): a corrupted key file, a connector removed from the configuration, a sync SIGKILLed midway.

Each test names the input; the ones that found a bug failed on the code before its fix.
"""

from __future__ import annotations

import pytest
from groundwire.cli import main

from .test_trust_audit import _write_toml
from .trust_helpers import make_config, new_key

QUESTION = "When is payday?"


@pytest.fixture(autouse=True)
def _no_entrypoint_commands(monkeypatch):
    monkeypatch.setenv("GROUNDWIRE_NO_PLUGIN_COMMANDS", "1")


@pytest.fixture
def encrypted(tmp_path):
    """A synced, encrypted data dir, its config file and its (private) key file."""
    keyfile = tmp_path / "keys" / "g.keys"
    keyfile.parent.mkdir()
    keyfile.write_text(f"k1:{new_key()}\n")
    keyfile.chmod(0o600)
    cfg = tmp_path / "g.toml"
    _write_toml(cfg, make_config(tmp_path, encryption={"enabled": True, "provider": "file",
                                                       "options": {"path": str(keyfile)}}))
    assert main(["sync", "--config", str(cfg)]) == 0
    return cfg, keyfile


@pytest.mark.parametrize("damage", ["not-utf8", "duplicate-id"])
def test_a_corrupted_key_file_fails_closed_with_one_line_naming_it(encrypted, capsys, damage) -> None:
    """Hostile input: the key file overwritten with binary bytes (a disk error, a wrong file copied over it), or
    a second line reusing the current key's id with other key material (a hand edit). Every command must refuse
    with one ``error:`` line naming the key file and what to do, never a traceback or "internal error", and
    write nothing."""
    cfg, keyfile = encrypted
    if damage == "not-utf8":
        keyfile.write_bytes(b"\xff\xfe\x00\x9c" + b"k1:garbage\n")
    else:
        keyfile.write_text(keyfile.read_text() + f"k1:{new_key()}\n")
    audit = cfg.parent / "data" / "audit" / "acme.jsonl"
    before = audit.read_bytes()
    capsys.readouterr()
    for argv in (["ask", QUESTION, "--user", "sam"], ["sync"], ["audit", "verify"]):
        code = main([*argv, "--config", str(cfg)])
        err = capsys.readouterr().err.strip()
        assert code in (1, 2), (argv, code, err)
        assert err.startswith("error:") and "internal error" not in err and "Traceback" not in err, err
        assert len(err.splitlines()) == 1 and str(keyfile) in err, err
        wanted = "UTF-8" if damage == "not-utf8" else "'k1' twice"
        assert wanted in err, err
    assert audit.read_bytes() == before
