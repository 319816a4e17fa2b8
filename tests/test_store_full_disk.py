"""The SQLite stores on a real full disk (a small tmpfs): a write fails with a StorageError that names disk
space, what was stored before stays intact, and writes work again once space is back."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest
from groundwire.errors import StorageError
from groundwire.index import IdentityCodec
from groundwire.stores.drafts import DraftRow, DraftStore


@pytest.fixture
def small_disk(tmp_path: Path):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    if shutil.which("mount") is None or os.geteuid() != 0:
        pytest.skip("needs root to mount a tmpfs")
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)], capture_output=True)
    if p.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {p.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def _row(i: int, size: int) -> DraftRow:
    return DraftRow(f"d{i}", "acme", "sam", "pending_review", "2026-12-01T00:00:00+00:00",
                    "2026-12-01T00:00:00+00:00", {"text": "x" * size, "n": i})


def test_review_store_on_a_full_disk(small_disk: Path) -> None:
    store = DraftStore(small_disk / "reviews.sqlite3", IdentityCodec)
    for i in range(5):
        store.insert(_row(i, 1000), f"r{i}")
    filler = small_disk / "filler"
    with filler.open("wb") as f:  # fill the disk
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass
    with pytest.raises(StorageError) as err:
        for i in range(5, 60):
            store.insert(_row(i, 200_000), f"r{i}")
    assert "disk space" in str(err.value) or "no space" in str(err.value).lower(), err.value
    assert "reviews.sqlite3" in str(err.value)
    filler.unlink()  # space is back
    store.insert(_row(99, 1000), "r99")
    assert store.load("d99") is not None
    assert [store.load(f"d{i}").body["n"] for i in range(5)] == list(range(5))
    with sqlite3.connect(small_disk / "reviews.sqlite3") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
