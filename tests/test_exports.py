"""Encrypted exports: the stream format (round trip, wrong keys, truncation and tampering anywhere), and the
``audit export`` / ``review export`` / ``keys recipient`` / ``export decrypt`` commands on a real data dir."""

from __future__ import annotations

import io
import json
import struct
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from groundwire.cli import main
from groundwire.crypto import DecryptionError
from groundwire.exports import (
    MAGIC,
    ExportError,
    ExportKey,
    Kdf,
    encrypt_lines,
    iter_plaintext,
    read_header,
    self_check,
)
from groundwire.trust import export_audit
from hypothesis import given, settings
from hypothesis import strategies as st

from .test_trust_audit import _write_toml
from .trust_helpers import grounder, make_config

CHEAP = Kdf(memory_kib=8, iterations=1, lanes=1)  # the format, not the cost, is under test here
IDENT = X25519PrivateKey.generate()


def _encrypt(lines, key=None, chunk=64):
    buf = io.BytesIO()
    encrypt_lines(buf, key or ExportKey(recipient=IDENT.public_key()), "test", lines, chunk=chunk)
    return buf.getvalue()


def _decrypt(blob, identity=IDENT, passphrase=None):
    return b"".join(iter_plaintext(io.BytesIO(blob), identity, passphrase)).decode()


@settings(max_examples=40, deadline=None)
@given(st.lists(st.text(max_size=200), max_size=20), st.integers(min_value=1, max_value=300))
def test_round_trip_any_content_any_chunk_size(lines, chunk):
    blob = _encrypt(lines, chunk=chunk)
    assert _decrypt(blob) == "".join(x + "\n" for x in lines)


def test_passphrase_round_trip_and_wrong_passphrase():
    key = ExportKey(passphrase="correct horse battery", kdf=CHEAP)
    blob = _encrypt(["alpha", "beta"], key)
    header, _ = read_header(io.BytesIO(blob))
    assert header["kdf"]["name"] == "argon2id" and "correct horse" not in blob.decode("latin-1")
    assert _decrypt(blob, None, "correct horse battery") == "alpha\nbeta\n"
    with pytest.raises(DecryptionError, match="wrong passphrase"):
        _decrypt(blob, None, "correct horse battery!")
    with pytest.raises(ExportError, match="--passphrase-env"):
        _decrypt(blob, IDENT, None)


def test_wrong_identity_is_named_and_refused():
    blob = _encrypt(["secret line"])
    with pytest.raises(DecryptionError, match="not for the identity given"):
        _decrypt(blob, X25519PrivateKey.generate())
    with pytest.raises(ExportError, match="--identity"):
        _decrypt(blob, None, "some passphrase")


def test_short_passphrase_and_no_key_are_refused():
    with pytest.raises(ExportError, match="shorter"):
        ExportKey(passphrase="short")
    with pytest.raises(ExportError, match="exactly one"):
        ExportKey()


_BLOB = _encrypt([f"line {i} of the export" for i in range(20)], chunk=50)


@settings(max_examples=80, deadline=None)
@given(st.integers(min_value=0, max_value=len(_BLOB) - 1))
def test_any_truncation_fails(cut):
    with pytest.raises((ExportError, DecryptionError)):
        _decrypt(_BLOB[:cut])


@settings(max_examples=80, deadline=None)
@given(st.integers(min_value=0, max_value=len(_BLOB) - 1), st.integers(min_value=1, max_value=255))
def test_any_flipped_byte_fails(pos, bit):
    data = bytearray(_BLOB)
    data[pos] ^= bit
    with pytest.raises((ExportError, DecryptionError)):
        _decrypt(bytes(data))


def test_truncation_at_a_chunk_boundary_and_trailing_bytes_are_named():
    chunk = 50
    blob = _encrypt(["x" * 400], chunk=chunk)
    body_start = 13 + struct.unpack(">I", blob[9:13])[0]  # magic, version, header length, header
    whole_chunks = blob[: body_start + 3 * (chunk + 16)]  # cut exactly after chunk 2
    with pytest.raises(ExportError, match="truncated"):
        _decrypt(whole_chunks)
    with pytest.raises(ExportError, match="modified"):  # trailing bytes
        _decrypt(blob + b"\x00" * 20)
    full = _encrypt(["y" * 99], chunk=chunk)  # 100 bytes: the final chunk is a full one
    with pytest.raises(ExportError, match="after its final chunk"):
        _decrypt(full + b"\x00" * 20)
    assert blob.startswith(MAGIC)


def test_self_check_passes():
    ok, detail = self_check(None)
    assert ok, detail


# --- the commands -------------------------------------------------------------------------------------------


@pytest.fixture
def env(tmp_path):
    g = grounder(tmp_path)
    g.sync()
    d_public = g.ground("When is payday?", "alice", tenant="acme")
    d_hr = g.ground("When do salary increases take effect?", "hana", tenant="acme", groups=["hr"])
    cfg = tmp_path / "gw.toml"
    _write_toml(cfg, make_config(tmp_path))
    return g, cfg, d_public, d_hr


SINCE = (datetime.now(UTC) - timedelta(days=1)).isoformat()


def test_audit_export_for_a_recipient_round_trips_and_hides_everything(env, tmp_path, capsys):
    g, cfg, d_public, d_hr = env
    ident = tmp_path / "keys" / "id.key"
    assert main(["keys", "recipient", "--out", str(ident)]) == 0
    assert oct(ident.stat().st_mode & 0o777) == "0o600"
    out = tmp_path / "audit.gwx"
    assert main(["audit", "export", "--since", SINCE, "--config", str(cfg), "--recipient", f"{ident}.pub",
                 "--out", str(out), "--by", "auditor"]) == 0
    blob = out.read_bytes()
    plain_out = tmp_path / "audit.jsonl"
    capsys.readouterr()
    assert main(["export", "decrypt", str(out), "--identity", str(ident), "--out", str(plain_out)]) == 0
    rows = [json.loads(x) for x in plain_out.read_text().splitlines()]
    assert {d_public.id, d_hr.id} <= {r["data"].get("draft_id") for r in rows}
    # nothing of what was exported is readable in the ciphertext: ids, actors, documents, kinds
    for needle in (d_public.id, d_hr.id, "alice", "hana", "hr/raises.md", "acme-docs", '"request"'):
        assert needle.encode() not in blob
    # the export itself was audited before it was written, naming who and how
    ev = [e for e in export_audit(g, None, "acme") if e["kind"] == "export"][-1]
    assert ev["actor"] == "auditor" and ev["data"]["plaintext"] is False
    assert ev["data"]["encryption"].startswith("recipient x25519:")
    # an identity is never overwritten
    assert main(["keys", "recipient", "--out", str(ident)]) == 1
    assert "already exists" in capsys.readouterr().err


def test_no_key_option_is_a_one_line_error_naming_the_options(env, capsys):
    _, cfg, _, _ = env
    assert main(["audit", "export", "--since", SINCE, "--config", str(cfg), "--out", "x.gwx"]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("error:")
    assert "--recipient" in err and "--passphrase-env" in err and "--plaintext" in err
    assert main(["audit", "export", "--since", SINCE, "--config", str(cfg), "--passphrase-env", "NOPE_UNSET",
                 "--out", "x.gwx"]) == 1
    assert "NOPE_UNSET" in capsys.readouterr().err
    assert main(["audit", "export", "--since", SINCE, "--config", str(cfg), "--plaintext",
                 "--passphrase-env", "X", "--out", "x.gwx"]) == 1
    assert "only one" in capsys.readouterr().err


def test_plaintext_export_is_audited_before_it_is_written(env, tmp_path, capsys):
    g, cfg, _, _ = env
    out = tmp_path / "clear.jsonl"
    assert main(["audit", "export", "--since", SINCE, "--tenant", "acme", "--config", str(cfg), "--plaintext",
                 "--out", str(out), "--by", "carol"]) == 0
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    # the record is in the export itself: it was written first
    rec = [r for r in rows if r["kind"] == "export"]
    assert rec and rec[-1]["actor"] == "carol" and rec[-1]["data"]["plaintext"] is True
    assert rec[-1]["data"]["destination"] == str(out.resolve()) and rec[-1]["data"]["content"] == "audit"
    assert rec[-1]["at"]  # when


def test_review_export_is_trimmed_and_passphrase_encrypted(env, tmp_path, monkeypatch, capsys):
    g, cfg, d_public, d_hr = env
    monkeypatch.setenv("GW_EXPORT_PASS", "a long enough passphrase")
    out = tmp_path / "reviews.gwx"
    # rita is not in hr: the HR draft is not hers to review, so it is not exported
    assert main(["review", "export", "--reviewer", "rita", "--out", str(out), "--passphrase-env", "GW_EXPORT_PASS",
                 "--config", str(cfg)]) == 0
    blob = out.read_bytes()
    assert d_public.id.encode() not in blob and b"payday" not in blob.lower()
    capsys.readouterr()
    assert main(["export", "decrypt", str(out), "--passphrase-env", "GW_EXPORT_PASS"]) == 0
    items = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [i["id"] for i in items] == [d_public.id] and items[0]["draft"]["text"]
    monkeypatch.setenv("GW_EXPORT_PASS", "another long passphrase")
    dest = tmp_path / "should-not-exist.jsonl"
    assert main(["export", "decrypt", str(out), "--passphrase-env", "GW_EXPORT_PASS", "--out", str(dest)]) == 1
    assert "wrong passphrase" in capsys.readouterr().err and not dest.exists()
    ev = [e for e in export_audit(g, None, "acme") if e["kind"] == "export"][-1]
    assert ev["actor"] == "rita" and ev["data"]["content"] == "reviews" and ev["data"]["drafts"] == 1


def test_truncated_file_leaves_no_plaintext_behind(env, tmp_path, capsys):
    _, cfg, _, _ = env
    ident = tmp_path / "id.key"
    assert main(["keys", "recipient", "--out", str(ident)]) == 0
    out = tmp_path / "a.gwx"
    assert main(["audit", "export", "--since", SINCE, "--config", str(cfg), "--recipient", f"{ident}.pub",
                 "--out", str(out)]) == 0
    out.write_bytes(out.read_bytes()[:-7])
    dest = tmp_path / "plain.jsonl"
    capsys.readouterr()
    assert main(["export", "decrypt", str(out), "--identity", str(ident), "--out", str(dest)]) == 1
    err = capsys.readouterr().err
    assert "truncated" in err and not dest.exists() and not list(tmp_path.glob(".plain.jsonl.*"))
    # a private key given as the recipient is refused with the fix
    assert main(["audit", "export", "--since", SINCE, "--config", str(cfg), "--recipient", str(ident),
                 "--out", str(out)]) == 1
    assert ".pub" in capsys.readouterr().err


def test_export_benchmark_runs(capsys):
    from benchmarks import export_stream

    export_stream.main(["--mb", "1", "--lines", "40"])
    out = capsys.readouterr().out
    assert "MiB/s" in out and "removed 20 of 40" in out and "verify after: ok" in out


def test_self_check_fails_when_the_control_is_broken(monkeypatch):
    import groundwire.cli_exports as cli_exports
    import groundwire.exports as exports

    monkeypatch.setattr(cli_exports, "export_key", lambda *a: None)  # a default that writes clear text
    ok, detail = self_check(None)
    assert not ok and "in clear" in detail
    monkeypatch.undo()

    def clear_emit(self, data, last):  # "encryption" that writes the plaintext
        self._out.write(data + b"\0" * 16)
        self._n += 1

    monkeypatch.setattr(exports.ExportWriter, "_emit", clear_emit)
    ok, detail = self_check(None)
    assert not ok and "readable in the ciphertext" in detail
