"""Red team, round 4: ``kill -9`` of ``groundwire keys rotate`` and ``groundwire tenant purge`` at named points
of their durable writes (real CLI processes, real files, real Chroma, encryption on).

The child process runs the real CLI with ``os.replace`` / ``os.unlink`` wrapped so that it SIGKILLs itself at
the first call on a chosen path (before or after it). Afterwards the data dir must stay consistent: the audit
chain verifies, the other tenant is untouched, a reader never gets another tenant's or a wider audience's text
(it may fail closed, naming the file), and running the same command again completes and repairs.

A sweep over such points (``os.fsync`` / ``os.replace`` / ``os.unlink`` / index write; every second one of a
rotate's 24 and a purge's 24, every fourth of a two-tenant sync's 86) found no failure; these two cases keep
two of the riskiest (each costs ~5 s of CLI start-ups).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from groundwire import Grounder, GroundingRequest, UserContext
from groundwire.cli import main

from .test_redteam_state import synced_encrypted
from .trust_helpers import ACME_HR, ACME_PUBLIC, GLOBEX_HR, GLOBEX_PUBLIC, new_key

_CHILD = r"""
import os, signal, sys
target, when, argv = sys.argv[1], sys.argv[2], sys.argv[3:]
def wrap(name):
    real = getattr(os, name)
    def f(*a, **k):
        path = str(a[-1] if name == "replace" else a[0])
        hit = path.endswith(target)
        if hit and when == "before":
            os.kill(os.getpid(), signal.SIGKILL)
        out = real(*a, **k)
        if hit:
            os.kill(os.getpid(), signal.SIGKILL)
        return out
    setattr(os, name, f)
wrap("replace"); wrap("unlink")
from groundwire.cli import main
sys.exit(main(argv))
"""


@pytest.fixture(autouse=True)
def _no_entrypoint_commands(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GROUNDWIRE_NO_PLUGIN_COMMANDS", "1")


@pytest.fixture
def synced(tmp_path: Path) -> tuple[Path, Path]:
    """Two synced, encrypted tenants with an audit trail; the key file has a second key ready to rotate to."""
    cfg, keyfile = synced_encrypted(tmp_path)
    for tenant in ("acme", "globex"):
        assert main(["ask", "When is payday?", "--user", "sam", "--tenant", tenant, "--config", str(cfg)]) == 0
    with keyfile.open("a") as f:
        f.write(f"k2:{new_key()}\n")
    return cfg, keyfile


def _killed(cfg: Path, target: str, when: str, *argv: str) -> None:
    run = subprocess.run([sys.executable, "-c", _CHILD, target, when, *argv, "--config", str(cfg)],
                         capture_output=True, text=True, timeout=300, env=os.environ.copy())
    assert run.returncode == -signal.SIGKILL, f"the kill point {when} {target} was never reached: {run.stderr[-800:]}"


def _texts(cfg: Path, tenant: str, groups: tuple[str, ...] = ()) -> str:
    g = Grounder.from_config(cfg)
    user = UserContext.of("sam", tenant, groups=list(groups))
    return " ".join(c.text for c in g.retrieve(GroundingRequest(user=user, prompt="salary payday raise", top_k=20)))


def _assert_tenants_intact(cfg: Path, skip: str = "") -> None:
    for tenant, public, hr, other in (("acme", ACME_PUBLIC, ACME_HR, "Globex"), ("globex", GLOBEX_PUBLIC, GLOBEX_HR,
                                                                                 "Acme")):
        if tenant == skip:
            continue
        plain, staff = _texts(cfg, tenant), _texts(cfg, tenant, ("hr",))
        assert public[:30] in plain and hr[:30] not in plain and other not in plain, (tenant, plain)
        assert hr[:30] in staff and other not in staff, (tenant, staff)


def _verify(cfg: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    code = main(["audit", "verify", "--config", str(cfg)])
    assert code == 0, capsys.readouterr()


@pytest.mark.parametrize("target, when", [("audit/acme.jsonl", "after")], ids=["log-reencrypted-checkpoint-not"])
def test_a_rotation_killed_midway_leaves_everything_readable_and_a_rerun_finishes(
    synced: tuple[Path, Path], capsys: pytest.CaptureFixture[str], target: str, when: str
) -> None:
    cfg, _ = synced
    _killed(cfg, target, when, "keys", "rotate")
    _verify(cfg, capsys)
    _assert_tenants_intact(cfg)
    assert main(["keys", "rotate", "--config", str(cfg)]) == 0
    _verify(cfg, capsys)
    _assert_tenants_intact(cfg)
    assert main(["ask", "When is payday?", "--user", "sam", "--config", str(cfg)]) == 0


@pytest.mark.parametrize("target, when", [("keys/globex.dek", "before")], ids=["data-key-overwritten-not-unlinked"])
def test_a_purge_killed_midway_never_exposes_a_tenant_and_a_rerun_finishes(
    synced: tuple[Path, Path], capsys: pytest.CaptureFixture[str], target: str, when: str
) -> None:
    cfg, _ = synced
    _killed(cfg, target, when, "tenant", "purge", "globex", "--by", "ops", "--yes")
    _verify(cfg, capsys)
    _assert_tenants_intact(cfg, skip="globex")
    try:  # the half-purged tenant: nothing of it, or a refusal naming the damaged key file
        leftover = _texts(cfg, "globex", ("hr",))
    except Exception as exc:  # noqa: BLE001 - fail closed is allowed; it must name the cause
        assert "globex.dek" in str(exc) and "Acme" not in str(exc), exc
    else:
        assert "Acme" not in leftover and GLOBEX_HR[:30] not in leftover, leftover
    assert main(["tenant", "purge", "globex", "--by", "ops", "--yes", "--config", str(cfg)]) == 0
    _verify(cfg, capsys)
    _assert_tenants_intact(cfg, skip="globex")
    assert _texts(cfg, "globex", ("hr",)) == ""
    assert not (cfg.parent / "data" / "keys" / "globex.dek").exists()
