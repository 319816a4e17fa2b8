"""The sync lock and readers during a sync, with real processes (issue 12).

A second ``groundwire sync`` on the same data dir exits 1 with one line naming the running one; with
``--wait`` it waits (printing one "waiting" line) and then succeeds. ``groundwire ask`` while a sync
rewrites every document never fails (before: Chroma's "Error finding id" traceback in 4 of 5 asks).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from .conftest import write
from .test_cli_errors import ENV, gw, one_line, project

DOCS = 12


def _text(i: int, version: int) -> str:
    body = " ".join(f"annual leave policy clause{j} revision{version}" for j in range(150))
    return f"# Doc {i}\n\n{body}\n"


def _owner_pid(data: Path) -> int | None:
    try:
        return int(json.loads((data / "sync.lock.owner").read_text())["pid"])
    except (OSError, ValueError, KeyError):
        return None


def test_second_sync_and_readers_during_a_sync(tmp_path: Path) -> None:
    root = project(tmp_path, docs=0)
    for i in range(DOCS):
        write(root / "corpus" / f"d{i}.md", _text(i, 1))
    assert gw(root, "sync", timeout=300).returncode == 0
    for i in range(DOCS):
        write(root / "corpus" / f"d{i}.md", _text(i, 2))
    data = root / ".groundwire"
    first = subprocess.Popen([sys.executable, "-m", "groundwire", "sync", "--json"], cwd=root, env=ENV,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while _owner_pid(data) != first.pid and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _owner_pid(data) == first.pid, "the first sync never took the lock"
        busy_p = subprocess.Popen([sys.executable, "-m", "groundwire", "sync"], cwd=root, env=ENV,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        waiter = subprocess.Popen([sys.executable, "-m", "groundwire", "sync", "--wait", "--json"], cwd=root,
                                  env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        asks, during = [], 0
        while first.poll() is None and len(asks) < 6:
            p = gw(root, "ask", "annual leave policy", "--user", "alice", "--json")
            during += first.poll() is None  # this ask finished while the sync was still writing
            asks.append(p)
        b_out, b_err = busy_p.communicate(timeout=300)
        busy = subprocess.CompletedProcess(busy_p.args, busy_p.returncode, b_out, b_err)
        out, err = first.communicate(timeout=300)
        w_out, w_err = waiter.communicate(timeout=300)
    finally:
        first.kill()
    assert first.returncode == 0, err
    assert busy.returncode == 1 and "another sync is running" in one_line(busy)
    assert f"pid {first.pid}" in busy.stderr
    assert waiter.returncode == 0, w_err
    assert "waiting" in w_err
    assert during >= 1, "no ask overlapped the sync; make the corpus larger"
    for p in asks:
        assert p.returncode == 0, p.stderr
        assert "Traceback" not in p.stderr and "Error finding id" not in p.stderr
        assert json.loads(p.stdout)["citations"]
    assert json.loads(out)[0]["updated"] == DOCS
