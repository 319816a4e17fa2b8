"""groundwire.atomic, the one temp-file-beside-the-target helper every framework writer uses: a reader sees the
old or the whole new content, a failure leaves the target as it was and no temporary file behind, permissions
are the caller's, and create_once lets exactly one of several real processes create a file."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from groundwire.atomic import atomic_output, atomic_write, create_once


def _entries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_replace_keeps_the_mode_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "state.json"
    atomic_write(target, "one")  # creates the folder
    atomic_write(target, b"two")
    assert target.read_bytes() == b"two"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert _entries(target.parent) == ["state.json"]
    shared = tmp_path / "shared.generation"
    atomic_write(shared, "1", fsync=False, mode=0o666)
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(shared.stat().st_mode) == 0o666 & ~umask


def test_a_failing_block_leaves_the_target_and_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "audit.jsonl"
    target.write_bytes(b"old\n")
    with pytest.raises(RuntimeError, match="half-way"), atomic_output(target, suffix=".part") as out:
        out.write(b"new, but only part of it")
        raise RuntimeError("half-way")
    assert target.read_bytes() == b"old\n"
    assert _entries(tmp_path) == ["audit.jsonl"]


def test_a_full_disk_raises_oserror_and_keeps_the_old_content(tmp_path: Path) -> None:
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)],
                                           capture_output=True).returncode != 0:
        pytest.skip("needs root and a mountable tmpfs")
    try:
        target = mnt / "state.json"
        atomic_write(target, "old")
        with pytest.raises(OSError) as err:
            atomic_write(target, b"x" * (1 << 20))
        assert err.value.errno == 28  # ENOSPC
        assert target.read_text() == "old"
        assert _entries(mnt) == ["state.json"]
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_readers_never_see_a_partial_file(tmp_path: Path) -> None:
    target = tmp_path / "current.json"
    versions = [bytes([65 + i]) * 200_000 for i in range(8)]
    atomic_write(target, versions[0], fsync=False)
    seen: set[bytes] = set()
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            seen.add(target.read_bytes())

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for i in range(200):
            atomic_write(target, versions[i % len(versions)], fsync=False)
    finally:
        stop.set()
        reader.join()
    assert seen and seen <= set(versions)


_CREATOR = """
import sys, time
from pathlib import Path
from groundwire.atomic import create_once
go = Path(sys.argv[2])
go.with_name("ready-" + sys.argv[3]).touch()
while not go.exists():
    time.sleep(0.001)
print(create_once(Path(sys.argv[1]), sys.argv[3]))
"""


def test_create_once_exactly_one_process_wins(tmp_path: Path) -> None:
    target, go = tmp_path / "keys" / "acme.dek", tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", _CREATOR, str(target), str(go), f"secret-{i}"],
                              stdout=subprocess.PIPE, text=True) for i in range(4)]
    deadline = time.monotonic() + 60
    while len(list(tmp_path.glob("ready-*"))) < len(procs) and time.monotonic() < deadline:
        time.sleep(0.01)  # all four imported and waiting: then they race
    go.touch()
    results = [p.communicate(timeout=60)[0].strip() for p in procs]
    assert sorted(results) == ["False", "False", "False", "True"]
    winner = results.index("True")
    assert target.read_text() == f"secret-{winner}"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert _entries(target.parent) == ["acme.dek"]
    assert create_once(target, "later") is False and target.read_text() == f"secret-{winner}"
