"""The audit log under concurrent processes, key rotation, crashes, truncation and full disks (issue 12).

Real processes (multiprocessing spawn), real files; the full disk is an injected ENOSPC at ``os.write``
(the lowest Python-level write) and, when the tests run as root, a real tiny tmpfs.
"""

from __future__ import annotations

import errno
import json
import multiprocessing
import os
from collections import Counter
from pathlib import Path

import pytest
from groundwire.audit import AuditLog, verify_log
from groundwire.cli import main
from groundwire.errors import AuditWriteError, GroundwireError, StorageError

from . import durable_workers as w
from .test_trust_audit import _write_toml
from .trust_helpers import grounder, make_config, new_key

SPAWN = multiprocessing.get_context("spawn")


@pytest.fixture(autouse=True)
def _no_entrypoint_commands(monkeypatch):
    monkeypatch.setenv("GROUNDWIRE_NO_PLUGIN_COMMANDS", "1")


def _kinds(log: AuditLog) -> Counter[str]:
    return Counter(e["kind"] for e in log.events())


def test_processes_and_threads_append_while_keys_rotate_no_line_lost(tmp_path):
    path = tmp_path / "audit" / "t.jsonl"
    keys = [f"k1:{new_key()}", f"k2:{new_key()}"]
    n, threads, procs = 40, 2, 3
    with SPAWN.Pool(procs + 1) as pool:
        appends = [pool.apply_async(w.append_many, (str(path), keys, "k1", f"p{i}", n, threads))
                   for i in range(procs)]
        rotation = pool.apply_async(w.rotate_many, (str(path), keys, "k2", 6))
        appended = sum(r.get(timeout=300) for r in appends)
        assert rotation.get(timeout=300) > 0  # the rotations overlapped with appends
    codec = w.codec(keys, "k2")
    report = verify_log(path, codec)
    assert report.ok, report.problems
    assert report.notes == []
    log = AuditLog(path, codec)
    assert _kinds(log) == Counter({"test": appended})
    ids = [e["request_id"] for e in log.events()]
    assert len(set(ids)) == appended == procs * threads * n
    assert [r["seq"] for r in log.records()] == list(range(1, appended + 1))


def test_removing_lines_from_the_end_is_detected_and_stays_detected(tmp_path):
    path = tmp_path / "t.jsonl"
    log = AuditLog(path)
    for i in range(5):
        log.append({"kind": "test", "i": i})
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:3]))  # two whole lines removed: the chain alone is still valid
    problems = verify_log(path).problems
    assert len(problems) == 1 and "2 line(s) were removed from the end" in problems[0].problem
    # a later append does not hide it: the mismatch is chained into the log
    AuditLog(path).append({"kind": "test", "i": 99})
    problems = verify_log(path).problems
    assert any("recorded at append time" in p.problem and "lines were removed" in p.problem for p in problems)


def test_deleting_the_checkpoint_or_forging_it_is_reported(tmp_path):
    path = tmp_path / "t.jsonl"
    log = AuditLog(path)
    for i in range(3):
        log.append({"kind": "test", "i": i})
    head = tmp_path / ".checkpoints" / "t.json"
    forged = json.loads(head.read_text())
    forged["seq"] = 2
    head.write_text(json.dumps(forged))
    assert "MAC does not match" in verify_log(path).problems[0].problem
    head.unlink()
    assert "no checkpoint" in verify_log(path).problems[0].problem


def test_torn_write_from_a_killed_process_is_quarantined_and_later_requests_work(tmp_path, capsys):
    g = grounder(tmp_path)
    g.sync()
    g.ground("When is payday?", "alice", tenant="acme")
    path = tmp_path / "data" / "audit" / "acme.jsonl"
    before = path.read_bytes()
    p = SPAWN.Process(target=w.die_mid_write, args=(str(path),))
    p.start()
    p.join(60)
    assert p.exitcode == -9  # really killed mid-write
    torn = path.read_bytes()[len(before):]
    assert torn and not torn.endswith(b"\n")  # half a line on disk
    report = verify_log(path)
    assert report.ok and any("torn write at the end" in n.problem for n in report.notes)

    # the next request (a fresh process would do the same) repairs under the lock and succeeds
    g2 = grounder(tmp_path)
    draft = g2.ground("How are salaries paid?", "alice", tenant="acme")
    assert draft.text
    report = verify_log(path)
    assert report.ok, report.problems
    assert any("quarantined to acme.jsonl.torn" in n.problem for n in report.notes)
    kept = [json.loads(x) for x in (path.parent / "acme.jsonl.torn").read_text().splitlines()]
    assert kept[0]["bytes"] == len(torn) and kept[0]["data"].encode() == torn
    assert Counter(e["kind"] for e in AuditLog(path).events())["audit_repair"] == 1
    g2.sync()  # syncs keep working too

    cfg = tmp_path / "gw.toml"
    _write_toml(cfg, make_config(tmp_path))
    assert main(["audit", "verify", "--config", str(cfg)]) == 0
    assert "quarantined" in capsys.readouterr().out


def _enospc_on(path: Path, monkeypatch, after: int = 0):
    """Make ``os.write`` on ``path`` write ``after`` bytes, then fail with ENOSPC, until undone."""
    real = os.write
    target = os.path.realpath(path)

    def write(fd, data):
        try:
            name = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            name = ""
        if name == target:
            if after:
                real(fd, bytes(data[:after]))
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd, data)

    monkeypatch.setattr(os, "write", write)


@pytest.mark.parametrize("partial", [0, 17], ids=["nothing-written", "short-write"])
def test_full_disk_fails_the_request_not_the_audit(tmp_path, monkeypatch, partial):
    g = grounder(tmp_path)
    g.sync()
    g.ground("When is payday?", "alice", tenant="acme")
    path = tmp_path / "data" / "audit" / "acme.jsonl"
    size, drafts = path.stat().st_size, g.reviews.count("acme")
    _enospc_on(path, monkeypatch, partial)
    with pytest.raises(AuditWriteError, match="no space left on the disk") as err:
        g.ground("How are salaries paid?", "alice", tenant="acme")
    assert isinstance(err.value, GroundwireError) and err.value.disk_full
    assert path.stat().st_size == size  # no torn bytes left behind
    assert g.reviews.count("acme") == drafts  # no draft without its audit record
    monkeypatch.undo()  # space is back
    g.ground("How are salaries paid?", "alice", tenant="acme")
    report = verify_log(path)
    assert report.ok and report.notes == []
    requests = [e for e in AuditLog(path).events() if e["kind"] == "request"]
    assert len(requests) == g.reviews.count("acme") == drafts + 1


def test_cli_ask_on_a_full_disk_says_so_in_one_line(tmp_path, monkeypatch, capsys):
    cfg = tmp_path / "gw.toml"
    _write_toml(cfg, make_config(tmp_path))
    assert main(["sync", "--config", str(cfg)]) == 0
    path = tmp_path / "data" / "audit" / "acme.jsonl"
    _enospc_on(path, monkeypatch)
    code = main(["ask", "When is payday?", "--user", "alice", "--tenant", "acme", "--config", str(cfg)])
    out = capsys.readouterr()
    assert code != 0
    assert "no space left on the disk" in out.err and "Traceback" not in out.err
    assert "payday is the 25th" not in out.out  # no draft printed


def test_rotation_with_a_torn_tail_repairs_first_and_loses_nothing(tmp_path):
    keys = [f"k1:{new_key()}", f"k2:{new_key()}"]
    path = tmp_path / "t.jsonl"
    log = AuditLog(path, w.codec(keys, "k1"))
    for i in range(4):
        log.append({"kind": "test", "i": i})
    with path.open("ab") as f:
        f.write(b'{"seq": 5, "prev": "ab')
    c2 = w.codec(keys, "k2")
    assert AuditLog(path, c2).reencrypt(c2) == 5  # 4 events + the repair record
    report = verify_log(path, c2)
    assert report.ok and {r["enc"].split(":")[1] for r in AuditLog(path, c2).records()} == {"k2"}
    assert _kinds(AuditLog(path, c2)) == Counter({"test": 4, "audit_repair": 1})


def _mount_tmpfs(where: Path, size: str) -> bool:
    where.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        return False
    return os.system(f"mount -t tmpfs -o size={size} tmpfs {where} 2>/dev/null") == 0


@pytest.fixture
def small_disk(tmp_path):
    mnt = tmp_path / "disk"
    if not _mount_tmpfs(mnt, "24m"):
        pytest.skip("needs root to mount a tmpfs")
    yield mnt
    os.system(f"umount -l {mnt}")


@pytest.mark.skipif(
    os.environ.get("GROUNDWIRE_TMPFS_TESTS") != "1",
    reason="opt-in (GROUNDWIRE_TMPFS_TESTS=1): embedded Chroma sometimes wedges after ENOSPC on a real full disk "
    "(2 of 7 runs here hung past 400 s; the child writes a traceback dump to <tmp>/hang.txt)",
)
def test_real_full_disk_audit_index_and_stores_then_recovery(small_disk, tmp_path):
    # in a child process (as an app would be), bounded: a wedged native library fails the test, not the suite
    with SPAWN.Pool(1) as pool:
        got = pool.apply_async(w.full_disk_scenario, (str(tmp_path), str(small_disk))).get(timeout=400)
    assert got["first_sync"] == ["", ""] and got["filled"]
    full = "no space left on the disk"
    # the request fails where its first write is refused (a SQLite store's WAL index or the audit log)
    assert got["ask"].startswith(("StorageError", "AuditWriteError")) and full in got["ask"], got["ask"]
    assert full in got["sync"], got["sync"]  # the sync's own audit record cannot be written either
    assert full in got["index"][0], got["index"]  # the index write: named, not a raw Chroma error
    assert got["store"].startswith("StorageError") and full in got["store"], got["store"]
    assert got["resync"] == ["", ""] and got["cited"]  # space is back: everything works
    assert got["verify"] and all(v == [] for v in got["verify"].values()), got["verify"]


def test_app_processes_asking_while_the_cli_rotates_keys(tmp_path, monkeypatch):
    """Two app processes ask while ``groundwire keys rotate`` runs twice: every draft has its audit record,
    the log verifies with the new key, and nothing was lost."""
    import subprocess
    import sys

    k1, k2 = f"k1:{new_key()}", f"k2:{new_key()}"
    enc = {"enabled": True, "provider": "env", "options": {"variable": "GW_TEST_KEYS"}}
    monkeypatch.setenv("GW_TEST_KEYS", f"{k2},{k1}")  # apps: both keys, current k1
    grounder(tmp_path, encryption=enc).sync()
    cfg = tmp_path / "gw.toml"
    _write_toml(cfg, make_config(tmp_path, encryption=enc))
    env = {**os.environ, "GW_TEST_KEYS": f"{k1},{k2}"}  # the operator: current k2
    with SPAWN.Pool(2) as pool:
        asks = [pool.apply_async(w.ask_many, (str(tmp_path), 12, f"app{i}")) for i in range(2)]
        rotations = [
            subprocess.run([sys.executable, "-m", "groundwire", "keys", "rotate", "--config", str(cfg)],
                           env=env, capture_output=True, text=True, timeout=300)
            for _ in range(2)
        ]
        drafts = sum(a.get(timeout=300) for a in asks)
    assert all(r.returncode == 0 for r in rotations), [r.stderr for r in rotations]
    path = tmp_path / "data" / "audit" / "acme.jsonl"
    codec = w.codec([k1, k2], "k2")
    report = verify_log(path, codec)
    assert report.ok, report.problems
    requests = [e for e in AuditLog(path, codec).events() if e["kind"] == "request"]
    assert len(requests) == drafts == 24


def test_read_only_data_dir_fails_with_a_message(small_disk, tmp_path):
    import subprocess
    import sys

    cfg = make_config(tmp_path, data_dir=str(small_disk / "data"))
    toml = tmp_path / "gw.toml"
    _write_toml(toml, cfg)
    subprocess.run([sys.executable, "-m", "groundwire", "sync", "--config", str(toml)], check=True,
                   capture_output=True, timeout=300)  # in another process: no open files on the disk here
    assert os.system(f"mount -o remount,ro {small_disk}") == 0
    # the audit log and the stores (opening the Chroma index read-only is the index's own error)
    with pytest.raises(AuditWriteError, match="read-only") as err:
        AuditLog(small_disk / "data" / "audit" / "acme.jsonl").append({"kind": "test"})
    assert "data_dir" in str(err.value)
    from groundwire.stores import DraftRow, DraftStore

    with pytest.raises(StorageError, match="read-only"):
        store = DraftStore(small_disk / "data" / "reviews.sqlite3", lambda: None)
        store.insert(DraftRow("x", "acme", "a", "pending_review", "t", "t", {}), "r")


def test_a_deleted_log_is_reported_by_its_orphan_checkpoint(tmp_path):
    from groundwire.trust import verify_audit

    g = grounder(tmp_path)
    g.sync()
    g.ground("When is payday?", "alice", tenant="acme")
    (tmp_path / "data" / "audit" / "acme.jsonl").unlink()
    bad = {p.name: v for p, v in verify_audit(g).items() if v}
    assert list(bad) == ["acme.jsonl"] and "whole log was deleted" in bad["acme.jsonl"][0].problem
