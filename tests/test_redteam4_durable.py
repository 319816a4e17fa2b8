"""Red team, round 4: key files written on a full disk (``ulimit -f``: RLIMIT_FSIZE in a real subprocess,
SIGXFSZ ignored so writes fail with EFBIG), and key files written by several processes at once.

- ``groundwire keys generate --file`` appended the new line in place with one unchecked ``os.write``: a
  size limit left ``k2:73EkKFg`` (a torn key) as the file's last line, the command printed "Added key" and
  exited 0, and every later use of the key file failed ("key 'k2' is not valid base64").
- ``groundwire keys recipient --out id.key`` wrote the private key in place: a size limit left a torn PEM,
  the error blamed "the data dir", and a re-run refused ("id.key already exists").
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from groundwire.crypto import FileKeyProvider, generate_key

_LIMITED = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[1]), int(sys.argv[1])))
from groundwire.cli import main
sys.exit(main(sys.argv[2:]))
"""

_ADD_MANY = """
import sys
from pathlib import Path
from groundwire.crypto import generate_key
from groundwire.keyfile import add_key
for n in range(int(sys.argv[3])):
    add_key(Path(sys.argv[1]), f"{sys.argv[2]}-{n}", generate_key())
"""


def _env() -> dict[str, str]:
    return {**os.environ, "GROUNDWIRE_NO_PLUGIN_COMMANDS": "1", "COLUMNS": "300"}


def _limited(cwd: Path, limit: int, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", _LIMITED, str(limit), *argv], cwd=cwd, capture_output=True,
                          text=True, timeout=120, env=_env())


def _keyring(path: Path):  # noqa: ANN202
    return FileKeyProvider(path=str(path)).keyring()


def test_keys_generate_on_a_full_disk_leaves_the_key_file_whole(tmp_path: Path) -> None:
    keys = tmp_path / "g.keys"
    keys.write_text(f"k1:{generate_key()}\n")
    keys.chmod(0o600)
    before = keys.read_bytes()
    run = _limited(tmp_path, len(before) + 10, "keys", "generate", "--id", "k2", "--file", str(keys))
    assert run.returncode == 1, (run.returncode, run.stdout, run.stderr)
    assert "Added key" not in run.stdout
    err = " ".join(run.stderr.split())
    assert "Traceback" not in err and str(keys) in err and "ulimit -f" in err and "unchanged" in err, err
    assert keys.read_bytes() == before, "a torn key line was left in the key file"
    assert _keyring(keys).current == "k1"
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    # with room again the same command works and its key is the current one
    ok = subprocess.run([sys.executable, "-m", "groundwire", "keys", "generate", "--id", "k2", "--file", str(keys)],
                        capture_output=True, text=True, timeout=120, env=_env())
    assert ok.returncode == 0, ok.stderr
    ring = _keyring(keys)
    assert ring.current == "k2" and set(ring.keys) == {"k1", "k2"}
    assert (keys.stat().st_mode & 0o777) == 0o600


def test_processes_adding_keys_at_once_keep_every_key(tmp_path: Path) -> None:
    keys = tmp_path / "shared.keys"
    procs = [subprocess.Popen([sys.executable, "-c", _ADD_MANY, str(keys), f"p{i}", "6"], env=_env())
             for i in range(4)]
    assert [p.wait(120) for p in procs] == [0, 0, 0, 0]
    ring = _keyring(keys)
    assert set(ring.keys) == {f"p{i}-{n}" for i in range(4) for n in range(6)}
    assert len(keys.read_text().splitlines()) == 24
    assert (keys.stat().st_mode & 0o777) == 0o600


def test_keys_recipient_on_a_full_disk_writes_nothing_and_can_be_rerun(tmp_path: Path) -> None:
    run = _limited(tmp_path, 100, "keys", "recipient", "--out", "id.key")
    assert run.returncode == 1, (run.returncode, run.stdout, run.stderr)
    err = " ".join(run.stderr.split())
    assert "Traceback" not in err and "id.key" in err and "ulimit -f" in err and "data dir" not in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == [], "a torn identity was left behind"
    ok = subprocess.run([sys.executable, "-m", "groundwire", "keys", "recipient", "--out", "id.key"], cwd=tmp_path,
                        capture_output=True, text=True, timeout=120, env=_env())
    assert ok.returncode == 0, ok.stderr
    from groundwire.exports import load_recipient

    load_recipient(tmp_path / "id.key.pub")
    assert b"PRIVATE KEY-----\n" in (tmp_path / "id.key").read_bytes()
    assert ((tmp_path / "id.key").stat().st_mode & 0o777) == 0o600
