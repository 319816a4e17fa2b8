"""Every user-causable error is one line on stderr with the right exit code, never a traceback (issue 12).

Runs the real CLI in a subprocess (``python -m groundwire``) against a real data dir. Exit codes: 2 for
usage and configuration errors, 1 for refusals and failures. The disk tests mount a small tmpfs (skipped
where mounting is not allowed).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import write

ENV = {**os.environ, "ANONYMIZED_TELEMETRY": "False", "HF_HUB_OFFLINE": "1", "COLUMNS": "80",
       "GROUNDWIRE_LOAD_PLUGINS": ""}

CONFIG = """\
data_dir = "{data}"
default_tenant = "acme"
[embedder]
name = "hashing"
{embedder_extra}
[plugins]
load_entrypoints = false
[connectors.docs]
type = "knowledge_base"
tenant = "acme"
path = "corpus"
[connectors.docs.acl]
"*" = ["everyone"]
"""


def gw(
    cwd: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "groundwire", *args], cwd=cwd, env=env or ENV,
                          capture_output=True, text=True, timeout=timeout)


def one_line(p: subprocess.CompletedProcess[str]) -> str:
    """The single stderr line of a failed command (asserts there is exactly one and no traceback)."""
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert "Traceback" not in p.stderr, p.stderr
    assert len(lines) == 1, p.stderr
    return lines[0]


def project(tmp_path: Path, data: str = ".groundwire", embedder_extra: str = "", docs: int = 2) -> Path:
    for i in range(docs):
        write(tmp_path / "corpus" / f"d{i}.md", f"# Doc {i}\n\nEvery employee receives {20 + i} days of leave.\n")
    write(tmp_path / "groundwire.toml", CONFIG.format(data=data, embedder_extra=embedder_extra))
    return tmp_path


@pytest.fixture(scope="module")
def synced(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = project(tmp_path_factory.mktemp("cli"))
    p = gw(root, "sync")
    assert p.returncode == 0, p.stderr
    return root


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (["ask", "", "--user", "alice"], 2, "the prompt is empty"),
        (["ask", "   ", "--user", "alice"], 2, "the prompt is empty"),
        (["ask", "leave?", "--user", ""], 2, "the user id is empty"),
        (["ask", "leave?", "--user", "alice", "--tenant", "ACME"], 2, "tenant ids are lower case -> use 'acme'"),
        (["ask", "leave?", "--user", "alice", "--tenant", "no such!"], 2, "invalid tenant id"),
        (["ask", "leave?", "--user", "alice", "--tenant", "globex"], 1, "this tenant is not configured"),
        (["ask", "leave?"], 2, "Missing option '--user'"),
        (["ask", "leave?", "-u", "alice", "-c", "missing.toml"], 2, "file not found"),
        (["nosuchcommand"], 2, "No such command"),
    ],
)
def test_input_errors_are_one_line(synced: Path, args: list[str], code: int, needle: str) -> None:
    p = gw(synced, *args)
    assert p.returncode == code, p.stderr
    assert needle in one_line(p)


def test_version_and_short_help(synced: Path) -> None:
    p = gw(synced, "--version")
    assert p.returncode == 0 and p.stdout.startswith("groundwire ")
    for args in (["-h"], ["ask", "-h"], ["audit", "-h"]):
        p = gw(synced, *args)
        assert p.returncode == 0 and "Usage" in p.stdout, (args, p.stderr)


def test_wrong_type_embedder_option(tmp_path: Path) -> None:
    root = project(tmp_path, embedder_extra='options = { dimension = "big" }')
    p = gw(root, "ask", "leave?", "--user", "alice")
    assert p.returncode == 2
    line = one_line(p)
    assert "embedder.options.dimension" in line and "groundwire.toml" in line


def test_corrupt_chroma_store_names_the_recovery_command(tmp_path: Path, synced: Path) -> None:
    root = tmp_path / "p"
    shutil.copytree(synced, root)
    sqlite = root / ".groundwire" / "chroma" / "chroma.sqlite3"
    sqlite.write_bytes(b"this is not a database" * 100)
    p = gw(root, "ask", "leave?", "--user", "alice")
    assert p.returncode == 1
    line = one_line(p)
    assert "corrupt" in line and "groundwire sync --full" in line


def _mount_tmpfs(where: Path, size: str) -> None:
    where.mkdir(parents=True, exist_ok=True)
    if shutil.which("mount") is None or os.geteuid() != 0:
        pytest.skip("needs root to mount a tmpfs")
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True)
    if p.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {p.stderr.decode().strip()}")


@pytest.fixture
def tmpfs(tmp_path: Path):
    mnt = tmp_path / "mnt"
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_read_only_data_dir(tmp_path: Path, synced: Path, tmpfs: Path) -> None:
    _mount_tmpfs(tmpfs, "64m")
    shutil.copytree(synced / ".groundwire", tmpfs / "data")
    root = project(tmp_path / "p", data=str(tmpfs / "data"))
    subprocess.run(["mount", "-o", "remount,ro", str(tmpfs)], check=True)
    for args in (["ask", "leave?", "--user", "alice"], ["sync"]):
        p = gw(root, *args)
        assert p.returncode == 1, (args, p.stderr)
        line = one_line(p)
        assert "read-only" in line and "data_dir" in line, line


def test_full_disk_names_disk_space(tmp_path: Path, tmpfs: Path) -> None:
    _mount_tmpfs(tmpfs, "4m")
    root = project(tmp_path / "p", data=str(tmpfs / "data"))
    filler = tmpfs / "filler"
    with filler.open("wb") as f:  # fill the disk, leaving a few KB
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass
    filler.write_bytes(filler.read_bytes()[: -48 * 1024])
    p = gw(root, "sync")
    assert p.returncode == 1
    assert "Traceback" not in p.stderr, p.stderr
    assert "no space left on the disk" in p.stderr, p.stderr
