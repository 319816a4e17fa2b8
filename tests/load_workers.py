"""Worker processes (multiprocessing ``spawn``) of the bounded load-and-fault test (tests/test_load_fault.py)."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from typing import Any

QUESTIONS = ("When is payday?", "How are salaries paid?", "What is the raise budget?", "When do raises start?")


def config(root: Path, encrypted: bool = True) -> dict[str, Any]:
    """The trust helpers' two-tenant configuration over ``root/corpus`` (which it does not rewrite)."""
    acl = {"hr/*": ["group:hr"], "*": ["everyone"]}
    cfg: dict[str, Any] = {
        "data_dir": str(root / "data"), "default_tenant": "acme", "embedder": {"name": "hashing"},
        "generator": {"name": "extractive", "options": {"min_similarity": 0.0}},
        "plugins": {"load_entrypoints": False},
        "connectors": {f"{t}-docs": {"type": "knowledge_base", "tenant": t, "path": str(root / "corpus" / t),
                                     "acl": acl} for t in ("acme", "globex")},
    }
    if encrypted:
        cfg["encryption"] = {"enabled": True, "provider": "env", "options": {"variable": "GW_LOAD_KEYS"}}
    return cfg


def _grounder(root: str, keys: str, encrypted: bool = True) -> Any:
    from groundwire import Grounder, config_from_dict

    os.environ["GW_LOAD_KEYS"] = keys
    return Grounder(config_from_dict(config(Path(root), encrypted), base_dir=Path(root)))


def ask(root: str, keys: str, name: str, threads: int, per_thread: int, kill_after: int | None = None) -> None:
    """``threads`` threads sharing one Grounder each ask ``per_thread`` questions; every returned draft
    is appended (one line, flushed) to ``<root>/returned-<name>.txt``, every failure to ``failed-<name>``.
    With ``kill_after``: once that many audit lines were written, the next audit write puts half a line
    on disk and SIGKILLs this process (a crash mid-write)."""
    g = _grounder(root, keys)
    out = open(Path(root) / f"returned-{name}.txt", "a", buffering=1, encoding="utf-8")  # noqa: SIM115
    bad = open(Path(root) / f"failed-{name}.txt", "a", buffering=1, encoding="utf-8")  # noqa: SIM115
    if kill_after is not None:
        audit_dir = os.path.realpath(Path(root) / "data" / "audit")
        real_write, seen, lock = os.write, [0], threading.Lock()

        def write(fd: int, data: bytes) -> int:
            try:
                target = os.readlink(f"/proc/self/fd/{fd}")
            except OSError:
                target = ""
            if target.startswith(audit_dir) and target.endswith(".jsonl"):
                with lock:
                    seen[0] += 1
                    if seen[0] > kill_after:
                        real_write(fd, bytes(data[: len(data) // 2]))
                        os.kill(os.getpid(), signal.SIGKILL)
            return real_write(fd, data)

        os.write = write  # type: ignore[assignment]

    def run(t: int) -> None:
        for i in range(per_thread):
            try:
                draft = g.ground(QUESTIONS[(t + i) % len(QUESTIONS)], f"{name}-user{t}", tenant="acme",
                                 groups=["hr"])
                out.write(f"{draft.id}\n")
            except Exception as exc:  # noqa: BLE001 - every failure is recorded and asserted on
                bad.write(f"{type(exc).__name__}: {exc}\n")

    workers = [threading.Thread(target=run, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()


def sync_changes(root: str, keys: str, rounds: int) -> list[str]:
    """Change a file, sync, ``rounds`` times; returns the errors of the reports (none expected)."""
    g = _grounder(root, keys)
    errors = []
    for r in range(rounds):
        page = Path(root) / "corpus" / "acme" / "payday.md"
        page.write_text(f"# Payday\n\nAcme payday is the 25th of every month (revision {r}). Acme salaries "
                        "are paid by bank transfer.\n", encoding="utf-8")
        (Path(root) / "corpus" / "acme" / f"notice{r}.md").write_text(
            f"# Notice {r}\n\nPayday notice number {r}: salaries are paid on time.\n", encoding="utf-8")
        errors += [r.error for r in g.sync(wait=True) if not r.ok]
    return errors


def rotate(root: str, keys: str, rounds: int) -> int:
    """``groundwire keys rotate`` ``rounds`` times (the sync lock, then re-encrypt every store)."""
    from groundwire.synclock import sync_lock
    from groundwire.trust import rotate_keys

    g = _grounder(root, keys)
    done = 0
    for _ in range(rounds):
        with sync_lock(g.config.data_path, wait=True):
            done += sum(rotate_keys(g).values())
    return done
