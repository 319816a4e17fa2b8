"""``groundwire init`` killed while it writes: no half-written configuration or key file is left behind.

The kill is real: a child process runs ``init`` with a file-size limit (``RLIMIT_FSIZE``) below the
configuration's size and the default action for ``SIGXFSZ``, so the kernel kills it in the middle of writing
the configuration (after the small key file is complete)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from groundwire.cli import INIT_TEMPLATE, main
from groundwire.config import load_config

resource = pytest.importorskip("resource", reason="needs POSIX resource limits")

LIMIT = 512  # bytes: above the key file (~50), below the configuration (INIT_TEMPLATE alone is ~1.6 kB)

_CHILD = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_DFL)  # CPython ignores it; the kernel's default kills
resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))
from groundwire.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _killed_init(cwd: Path, *args: str, limit: int = LIMIT) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}  # no .pyc write may hit the limit first
    return subprocess.run([sys.executable, "-c", _CHILD.format(limit=limit), "init", *args], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=120)


def test_a_killed_init_leaves_no_partial_config_and_can_be_run_again(tmp_path: Path, monkeypatch, capsys) -> None:
    assert len(INIT_TEMPLATE) > LIMIT
    (tmp_path / "docs").mkdir()
    run = _killed_init(tmp_path, "docs", "--tenant", "acme")
    assert run.returncode == -signal.SIGXFSZ, run.stderr  # killed while writing, not a clean exit
    config, keyfile = tmp_path / "groundwire.toml", tmp_path / "groundwire.keys"
    assert not config.exists()  # not a truncated file that a re-run would refuse to overwrite
    key = keyfile.read_text()
    assert key.endswith("\n") and len(key.strip().split(":", 1)[1]) >= 43  # the whole key line
    monkeypatch.chdir(tmp_path)
    assert main(["init", "docs", "--tenant", "acme"]) == 0
    capsys.readouterr()
    cfg = load_config(config)
    assert cfg.default_tenant == "acme" and cfg.encryption.enabled
    assert keyfile.read_text() == key  # the key the killed run wrote is the one kept


def test_a_killed_forced_reinit_keeps_the_old_config(tmp_path: Path, monkeypatch, capsys) -> None:
    (tmp_path / "docs").mkdir()
    monkeypatch.chdir(tmp_path)
    assert main(["init", "docs", "--tenant", "acme"]) == 0
    capsys.readouterr()
    config = tmp_path / "groundwire.toml"
    before = config.read_bytes()
    run = _killed_init(tmp_path, "docs", "--tenant", "globex", "--force")
    assert run.returncode == -signal.SIGXFSZ, run.stderr
    assert config.read_bytes() == before
    assert load_config(config).default_tenant == "acme"


def test_an_init_killed_writing_the_key_file_leaves_none(tmp_path: Path, monkeypatch, capsys) -> None:
    (tmp_path / "docs").mkdir()
    run = _killed_init(tmp_path, "docs", limit=20)  # below the key line's size
    assert run.returncode == -signal.SIGXFSZ, run.stderr
    keyfile = tmp_path / "groundwire.keys"
    assert not keyfile.exists()  # not a truncated key that a re-run would keep and fail to read
    monkeypatch.chdir(tmp_path)
    assert main(["init", "docs"]) == 0
    capsys.readouterr()
    assert load_config(tmp_path / "groundwire.toml").encryption.enabled
    assert len(keyfile.read_text().strip().split(":", 1)[1]) >= 43
