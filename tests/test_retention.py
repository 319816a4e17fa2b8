"""Retention: old audit lines are replaced by a keyed anchor and the chain still verifies (and still detects
tampering, truncation and forged anchors); old drafts and quarantine entries are deleted; every apply is
audited; concurrent appends from other processes survive the rewrite."""

from __future__ import annotations

import json
import multiprocessing
import time
from datetime import UTC, datetime, timedelta

import pytest
from groundwire.audit import AuditLog, verify_log
from groundwire.audit_anchor import RetentionError, trim_log
from groundwire.cli import main
from groundwire.crypto import AesGcmCodec, parse_keys
from groundwire.retention import apply_retention, self_check
from groundwire.trust import audit_reports, export_audit, rotate_keys
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .test_quarantine import _config as quarantine_config
from .test_trust_audit import _write_toml
from .trust_helpers import grounder, make_config, new_key

NOW = datetime.now(UTC)


def _log(tmp_path, codec=None, ages=(40, 35, 30, 5, 1)):
    log = AuditLog(tmp_path / "audit" / "t.jsonl", codec, fsync=False)
    for i, age in enumerate(ages):
        log.append({"kind": "test", "tenant": "t", "actor": "a", "request_id": f"r{i}",
                    "at": (NOW - timedelta(days=age)).isoformat(), "data": {"i": i}})
    return log


def _ids(log):
    return [e["request_id"] for e in log.events()]


def test_trim_removes_a_prefix_and_the_rest_still_verifies(tmp_path):
    log = _log(tmp_path)
    res = trim_log(log, NOW - timedelta(days=20))
    assert (res.removed, res.first_seq, res.last_seq) == (3, 1, 3)
    assert _ids(log) == ["r3", "r4"]
    rep = verify_log(log.path)
    assert rep.ok, rep.problems
    assert any("retention anchor" in n.problem and "1-3" in n.problem for n in rep.notes)
    # appends continue the chain; a second trim extends the anchor
    log.append({"kind": "test", "tenant": "t", "actor": "a", "request_id": "r5", "at": NOW.isoformat(), "data": {}})
    res = trim_log(log, NOW - timedelta(days=3))
    assert res.removed == 1 and _ids(log) == ["r4", "r5"]
    first = json.loads(log.path.read_text().splitlines()[0])
    assert first["seq"] == 4 and first["anchor"]["first_seq"] == 1 and first["anchor"]["removed"] == 4
    assert verify_log(log.path).ok
    # never the last line, even when everything is old
    trim_log(log, NOW + timedelta(days=1))
    assert _ids(log) == ["r5"] and verify_log(log.path).ok


def _lines(log):
    return log.path.read_text().splitlines()


def _rewrite(log, lines):
    log.path.write_text("\n".join(lines) + "\n")


def test_tampering_truncation_and_forged_anchors_are_still_detected(tmp_path):
    log = _log(tmp_path)
    trim_log(log, NOW - timedelta(days=20))
    good = _lines(log)

    edited = [json.loads(x) for x in good]
    edited[1]["event"]["actor"] = "mallory"
    _rewrite(log, [json.dumps(r) for r in edited])
    assert any("modified" in p.problem for p in verify_log(log.path).problems)

    _rewrite(log, good[:-1])  # truncated from the end
    assert any("removed from the end" in p.problem for p in verify_log(log.path).problems)

    forged = json.loads(good[0])
    forged["anchor"]["removed"] = 1  # hide how much was removed
    _rewrite(log, [json.dumps(forged), *good[1:]])
    assert any("MAC" in p.problem for p in verify_log(log.path).problems)

    _rewrite(log, good[1:])  # the anchor itself deleted
    assert not verify_log(log.path).ok

    # a hand-made anchor without the checkpoint key, hiding lines removed by hand from a fresh log
    log2 = _log(tmp_path / "two")
    lines = _lines(log2)
    rec = json.loads(lines[2])
    fake = {"seq": rec["seq"], "prev": rec["prev"], "hash": rec["hash"],
            "anchor": {"first_seq": 1, "removed": 3, "before": "x", "at": "y", "kid": "local", "mac": "0" * 64}}
    _rewrite(log2, [json.dumps(fake), *lines[3:]])
    assert any("MAC" in p.problem for p in verify_log(log2.path).problems)

    _rewrite(log, good)
    assert verify_log(log.path).ok


def test_a_log_with_chain_problems_is_not_trimmed(tmp_path):
    log = _log(tmp_path)
    lines = _lines(log)
    del lines[1]
    _rewrite(log, lines)
    before = log.path.read_bytes()
    with pytest.raises(RetentionError, match="erase the evidence"):
        trim_log(log, NOW - timedelta(days=20))
    assert log.path.read_bytes() == before


def test_encrypted_log_anchor_survives_key_rotation(tmp_path, monkeypatch):
    k1, k2 = new_key(), new_key()
    log = _log(tmp_path, AesGcmCodec(parse_keys([f"k1:{k1}"], "t")))
    trim_log(log, NOW - timedelta(days=20))
    assert json.loads(_lines(log)[0])["anchor"]["kid"] == "k1"
    rotated = AesGcmCodec(parse_keys([f"k1:{k1}", f"k2:{k2}"], "t"))
    log.codec = rotated
    log.reencrypt(rotated)
    assert json.loads(_lines(log)[0])["anchor"]["kid"] == "k2"
    # k1 can now be retired: the anchor and the checkpoint are both signed with k2
    only_k2 = AesGcmCodec(parse_keys([f"k2:{k2}"], "t"))
    assert verify_log(log.path, only_k2).ok
    assert not verify_log(log.path, AesGcmCodec(parse_keys([f"k3:{new_key()}"], "t"))).ok


def test_apply_on_a_real_grounder_removes_old_rows_and_audits_it(tmp_path, monkeypatch):
    k1 = new_key()
    monkeypatch.setenv("GW_TEST_KEYS", f"k1:{k1}")
    enc = {"enabled": True, "provider": "env", "options": {"variable": "GW_TEST_KEYS"}}
    from groundwire import Grounder, config_from_dict

    g = Grounder(config_from_dict(quarantine_config(tmp_path, encryption=enc,
                                                    retention={"audit_days": 30, "reviews_days": 10,
                                                               "quarantine_days": 20}), base_dir=tmp_path))
    g.sync()
    d1 = g.ground("When is payday?", "alice", tenant="acme")
    g.ground("When is payday?", "bob", tenant="globex")
    assert g.reviews.count("acme") == 1 and g.quarantine.entries("acme")
    n_acme = sum(1 for _ in export_audit(g, None, "acme"))

    # today nothing is due
    assert apply_retention(g, dry_run=True).totals() == {"audit_lines": 0, "drafts": 0, "quarantine_entries": 0}
    # fifteen days on: the drafts are due, not the quarantine nor the audit lines; a dry run changes nothing
    later = datetime.now(UTC) + timedelta(days=15)
    dry = apply_retention(g, dry_run=True, now=later)
    assert dry.reviews == {"acme": {"pending_review": 1}, "globex": {"pending_review": 1}}
    assert dry.quarantine == {} and g.reviews.count("acme") == 1
    # forty days on: everything is due
    far = datetime.now(UTC) + timedelta(days=40)
    rep = apply_retention(g, actor="ops", now=far)
    assert g.reviews.count("acme") == 0 and g.reviews.count("globex") == 0
    assert g.quarantine.entries("acme") == []
    assert rep.audit["acme"].removed == n_acme - 1  # all but the last line
    reports = audit_reports(g)
    assert all(r.ok for r in reports.values()), {p: r.problems for p, r in reports.items()}
    events = list(export_audit(g, None, "acme"))
    rec = events[-1]
    assert rec["kind"] == "retention" and rec["actor"] == "ops"
    assert rec["data"]["reviews"] == {"pending_review": 1} and sum(rec["data"]["quarantine"].values()) >= 1
    assert rec["data"]["audit"]["removed"] == n_acme - 1 and rec["data"]["policy"]["audit_days"] == 30
    assert d1.id not in json.dumps(events[:-2])  # the request line is gone
    # the trimmed logs still rotate to a new key and verify
    monkeypatch.setenv("GW_TEST_KEYS", f"k1:{k1},k2:{new_key()}")
    g2 = Grounder(g.config)
    assert rotate_keys(g2)["audit_lines"] > 0
    assert all(r.ok for r in audit_reports(g2).values())


def test_cli_dry_run_json_and_validation(tmp_path, capsys):
    g = grounder(tmp_path)
    g.sync()
    g.ground("When is payday?", "alice", tenant="acme")
    cfg = tmp_path / "gw.toml"
    _write_toml(cfg, make_config(tmp_path, retention={"audit_days": 7, "reviews_days": 0, "quarantine_days": 0}))
    before = (tmp_path / "data" / "audit" / "acme.jsonl").read_bytes()
    assert main(["retention", "apply", "--dry-run", "--json", "--config", str(cfg)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["dry_run"] is True and out["totals"]["audit_lines"] == 0 and out["reviews"] == {}
    assert (tmp_path / "data" / "audit" / "acme.jsonl").read_bytes() == before
    assert main(["retention", "apply", "--config", str(cfg), "--by", "ops"]) == 0
    assert [e for e in export_audit(g, None, "acme") if e["kind"] == "retention"][-1]["actor"] == "ops"
    _write_toml(cfg, make_config(tmp_path, retention={"audit_days": -1}))
    assert main(["retention", "apply", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "retention.audit_days" in err and "\n" not in err.strip()


def test_self_check(tmp_path):
    g = grounder(tmp_path)
    g.sync()
    g.ground("When is payday?", "alice", tenant="acme")
    ok, detail = self_check(g)
    assert ok, detail
    off = grounder(tmp_path / "off", retention={"audit_days": 0, "reviews_days": 0, "quarantine_days": 0})
    ok, detail = self_check(off)
    assert not ok and "kept forever" in detail


def test_concurrent_appends_from_other_processes_survive_retention(tmp_path):
    from .retention_workers import append_now

    log = _log(tmp_path, ages=tuple(range(400, 100, -1)))  # 300 old lines, one day apart
    ctx = multiprocessing.get_context("spawn")
    n = 400

    def appended():
        return log.path.read_bytes().count(b'"request_id": "w')

    with ctx.Pool(3) as pool:
        jobs = [pool.apply_async(append_now, (str(log.path), f"w{w}", n)) for w in range(3)]
        deadline = time.monotonic() + 120
        while appended() == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        at_start, rewrites = appended(), 0
        for days in range(390, 95, -10):  # thirty rewrites while the workers append
            rewrites += trim_log(log, NOW - timedelta(days=days)).removed > 0
        at_end = appended()
        assert [j.get(timeout=120) for j in jobs] == [n] * 3
    assert at_start < at_end, (at_start, at_end)  # the workers appended while the log was being rewritten
    print(f"worker lines: {at_start} when the rewrites began, {at_end} when they ended, {3 * n} in all")
    trim_log(log, NOW - timedelta(days=50))
    ids = _ids(log)
    assert sorted(i for i in ids if i.startswith("w")) == sorted(f"w{w}-{i}" for w in range(3) for i in range(n))
    assert not any(i.startswith("r") for i in ids)  # every old line went
    rep = verify_log(log.path)
    assert rep.ok, rep.problems
    assert rewrites >= 10


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ages=st.lists(st.integers(min_value=0, max_value=60), min_size=1, max_size=12),
       cutoffs=st.lists(st.integers(min_value=0, max_value=61), min_size=1, max_size=3),
       victim=st.integers(min_value=0, max_value=100))
def test_property_trims_keep_the_chain_and_tampering_stays_visible(tmp_path_factory, ages, cutoffs, victim):
    tmp = tmp_path_factory.mktemp("prop")
    log = _log(tmp, ages=tuple(sorted(ages, reverse=True)))  # oldest first, as a real log
    expected = [f"r{i}" for i in range(len(ages))]
    for days in cutoffs:
        cut = NOW - timedelta(days=days)
        ats = [datetime.fromisoformat(e["at"]) for e in log.events()]
        keep_from = next((i for i, t in enumerate(ats) if t >= cut), len(ats) - 1)
        expected = expected[min(keep_from, len(expected) - 1):]
        trim_log(log, cut)
        assert _ids(log) == expected
        rep = verify_log(log.path)
        assert rep.ok, rep.problems
    # any one line changed after retention (the anchor included) is a problem
    lines = _lines(log)
    i = victim % len(lines)
    rec = json.loads(lines[i])
    if "anchor" in rec:
        rec["anchor"]["removed"] += 1
    else:
        rec["event"]["data"]["i"] = -1
    lines[i] = json.dumps(rec)
    _rewrite(log, lines)
    assert not verify_log(log.path).ok


def test_self_check_fails_when_forged_anchors_pass(tmp_path, monkeypatch):
    import groundwire.audit_anchor as audit_anchor

    g = grounder(tmp_path)
    monkeypatch.setattr(audit_anchor, "anchor_problem", lambda *a: "")  # verification that trusts any anchor
    ok, detail = self_check(g)
    assert not ok and "forged" in detail
