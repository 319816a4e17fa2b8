"""Worker functions run in separate processes (multiprocessing ``spawn``) by the durability tests."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

from groundwire.audit import AuditLog
from groundwire.crypto import AesGcmCodec, parse_keys


def codec(keys: list[str], current: str) -> AesGcmCodec:
    return AesGcmCodec(parse_keys(keys, "test keys", current))


def append_many(path: str, keys: list[str], current: str, worker: str, n: int, threads: int) -> int:
    """Append ``n`` events from each of ``threads`` threads, sharing one :class:`AuditLog` per process."""
    log = AuditLog(Path(path), codec(keys, current) if keys else None)

    def run(t: int) -> None:
        for i in range(n):
            log.append({"kind": "test", "tenant": "t", "actor": worker, "request_id": f"{worker}-{t}-{i}",
                        "at": "", "data": {"i": i}})

    ts = [threading.Thread(target=run, args=(t,)) for t in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return n * threads


def rotate_many(path: str, keys: list[str], current: str, rounds: int) -> int:
    """Re-encrypt the whole log ``rounds`` times (what ``groundwire keys rotate`` does to each log)."""
    c = codec(keys, current)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (os.path.exists(path) and os.path.getsize(path) > 0):
        time.sleep(0.005)  # start once the appenders have written (a spawned rotator can start first)
    done = 0
    for _ in range(rounds):
        done += AuditLog(Path(path), c).reencrypt(c)
    return done


def die_mid_write(path: str) -> None:
    """Append one line but write only its first half, then SIGKILL this process (a crash mid-write)."""
    import groundwire.audit as audit_mod

    real_write = os.write

    def half_then_die(fd: int, data: bytes) -> int:
        if os.readlink(f"/proc/self/fd/{fd}") == os.path.realpath(path):
            real_write(fd, bytes(data[: len(data) // 2]))
            os.kill(os.getpid(), signal.SIGKILL)
        return real_write(fd, data)

    audit_mod.os.write = half_then_die  # type: ignore[assignment]
    AuditLog(Path(path)).append({"kind": "test", "tenant": "t", "actor": "victim", "request_id": "killed",
                                 "at": "", "data": {}})


def sync_and_ask(root: str) -> tuple[list[tuple[str, bool, int, str]], int]:
    """In a fresh process: sync the trust-helpers corpus under ``root`` and ask once; returns
    ``[(connector, ok, added, error)]`` and the number of citations."""
    from .trust_helpers import grounder

    g = grounder(Path(root))
    reports = [(r.connector, r.ok, r.added, r.error) for r in g.sync()]
    return reports, len(g.ground("When is payday?", "alice", tenant="acme").citations)


def ask_many(root: str, n: int, worker: str) -> int:
    """In a fresh process: ask ``n`` questions through a Grounder over the trust-helpers corpus (encrypted
    with the keys in ``GW_TEST_KEYS``); returns the number of drafts returned."""
    from .trust_helpers import grounder

    enc = {"enabled": True, "provider": "env", "options": {"variable": "GW_TEST_KEYS"}}
    g = grounder(Path(root), encryption=enc)
    got = 0
    for i in range(n):
        draft = g.ground(f"When is payday? ({worker} {i})", f"{worker}@example.com", tenant="acme")
        got += bool(draft.id)
    return got


def _error_of(fn) -> str:  # noqa: ANN001 - a zero-argument callable
    try:
        fn()
    except Exception as exc:  # noqa: BLE001 - the test asserts on the type and message
        return f"{type(exc).__name__}: {exc}"
    return ""


def full_disk_scenario(root: str, disk: str) -> dict[str, object]:
    """On the small file system ``disk``: sync, fill the disk, try to ask / sync / write a store, free the
    space, and sync and ask again. Returns what happened at each step (errors as ``Type: message``)."""
    import errno
    import faulthandler

    from groundwire import Grounder, config_from_dict
    from groundwire.audit import verify_log
    from groundwire.ingest import Ingester
    from groundwire.stores import DraftRow, DraftStore

    from .trust_helpers import make_config

    base, mnt = Path(root), Path(disk)
    dump = (base / "hang.txt").open("w")
    faulthandler.dump_traceback_later(300, file=dump)  # where it hangs, if it does
    g = Grounder(config_from_dict(make_config(base, data_dir=str(mnt / "data")), base_dir=base))
    out: dict[str, object] = {"first_sync": [r.error for r in g.sync()]}
    g.ground("When is payday?", "alice", tenant="acme")
    filler = mnt / "filler"
    with filler.open("wb") as f:
        try:
            while True:
                f.write(b"\0" * (1 << 16))
                f.flush()
        except OSError as exc:
            out["filled"] = exc.errno == errno.ENOSPC
    out["ask"] = _error_of(lambda: g.ground("How are salaries paid?", "alice", tenant="acme"))
    doc = base / "corpus" / "acme" / "payday.md"
    doc.write_text(doc.read_text() + "\n" + "Payday moves to the 26th in December. " * 2000)
    out["sync"] = _error_of(g.sync)
    out["index"] = [r.error for r in Ingester(g.config, g.index, g.embedder, g.connector_types).sync(["acme-docs"])]

    def store_write() -> None:
        store = DraftStore(mnt / "data" / "reviews.sqlite3", lambda: g.codec)
        store.insert(DraftRow("x", "acme", "a", "pending_review", "t", "t", {"big": "x" * 4_000_000}), "r")

    out["store"] = _error_of(store_write)
    filler.unlink()  # space is back
    out["resync"] = [r.error for r in g.sync()]
    out["cited"] = len(g.ground("When is payday?", "alice", tenant="acme").citations)
    logs = (mnt / "data" / "audit").glob("*.jsonl")
    out["verify"] = {p.name: [x.problem for x in verify_log(p).problems] for p in logs}
    return out
