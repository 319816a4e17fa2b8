"""The bounded load-and-fault test of issue 12 ("Must show").

Two processes x 4 threads ask while a third process syncs changed files and a fourth rotates keys; the
second asker is SIGKILLed in the middle of an audit write. Afterwards: ``audit verify`` passes; every
draft a caller received has exactly one request record (by draft id); for the surviving asker the
record count equals the drafts returned; the killed asker may have up to one record per thread more
(requests whose record was written when the process died, before the draft reached the caller); no
request failed except the killed ones; and the index equals a clean full sync of the final files.
Real processes, files, Chroma.
The figures are printed (run with ``-s`` to see them).
"""

from __future__ import annotations

import multiprocessing
from collections import Counter
from pathlib import Path

from groundwire.audit import AuditLog
from groundwire.trust import verify_audit

from . import load_workers as w
from .trust_helpers import new_key, write_corpus

SPAWN = multiprocessing.get_context("spawn")
THREADS, PER_THREAD, KILL_AFTER = 4, 3, 5


def _index_state(g, keyed=lambda h: h) -> set[tuple[str, str, str]]:
    """Ids, content hashes (through ``keyed``: an encrypted index stores them HMAC-keyed) and ACL fingerprints."""
    got = g.index.tenant("acme").collection.get(include=["metadatas"])
    return {(i, str(keyed(m["content_hash"])), str(m["acl_fp"]))
            for i, m in zip(got["ids"], got["metadatas"], strict=True)}


def _lines(root: Path, prefix: str) -> list[str]:
    return [ln for p in sorted(root.glob(f"{prefix}*.txt")) for ln in p.read_text().splitlines() if ln.strip()]


def test_load_and_fault(tmp_path: Path) -> None:
    k1, k2 = f"k1:{new_key()}", f"k2:{new_key()}"
    askers_keys, rotator_keys = f"{k2},{k1}", f"{k1},{k2}"  # the last key is the current one
    write_corpus(tmp_path / "corpus")
    g = w._grounder(str(tmp_path), askers_keys)
    assert all(r.ok for r in g.sync())
    procs = [
        SPAWN.Process(target=w.ask, args=(str(tmp_path), askers_keys, "a", THREADS, PER_THREAD)),
        SPAWN.Process(target=w.ask, args=(str(tmp_path), askers_keys, "b", THREADS, PER_THREAD, KILL_AFTER)),
    ]
    with SPAWN.Pool(2) as pool:
        for p in procs:
            p.start()
        syncing = pool.apply_async(w.sync_changes, (str(tmp_path), askers_keys, 3))
        rotating = pool.apply_async(w.rotate, (str(tmp_path), rotator_keys, 2))
        sync_errors = syncing.get(timeout=600)
        rotated = rotating.get(timeout=600)
        for p in procs:
            p.join(600)
    assert procs[0].exitcode == 0
    assert procs[1].exitcode == -9  # really killed (mid-write)
    assert sync_errors == []

    returned, failed = _lines(tmp_path, "returned-"), _lines(tmp_path, "failed-")
    check = w._grounder(str(tmp_path), rotator_keys)
    problems = {p: probs for p, probs in verify_audit(check).items() if probs}
    kinds: Counter[str] = Counter()
    by_actor: Counter[str] = Counter()
    recorded: Counter[str] = Counter()
    for path in sorted((tmp_path / "data" / "audit").glob("*.jsonl")):
        for e in AuditLog(path, check.codec).events():
            kinds[e["kind"]] += 1
            if e["kind"] == "request":
                by_actor[e["actor"].split("-")[0]] += 1
                recorded[e["data"]["draft_id"]] += 1
    got = {name: _lines(tmp_path, f"returned-{name}") for name in ("a", "b")}
    print(f"\nload test: drafts returned a={len(got['a'])} b={len(got['b'])} (asked {THREADS * PER_THREAD} "
          f"each; b SIGKILLed at audit write {KILL_AFTER + 1}), failed {len(failed)}, request records "
          f"a={by_actor['a']} b={by_actor['b']}, sync records {kinds['sync']}, re-encrypted {rotated}, "
          f"audit problems {len(problems)}")
    assert failed == []
    assert problems == {}
    assert all(recorded[d] == 1 for d in returned)  # every delivered draft has exactly one record
    assert by_actor["a"] == len(got["a"]) == THREADS * PER_THREAD
    assert len(got["b"]) <= by_actor["b"] <= len(got["b"]) + THREADS

    clean_root = tmp_path / "clean"
    clean_root.mkdir()
    (clean_root / "corpus").symlink_to(tmp_path / "corpus")
    clean = w._grounder(str(clean_root), "", encrypted=False)
    assert all(r.ok for r in clean.sync())
    assert _index_state(check) == _index_state(clean, check.index.tenant("acme").keyed_hash)
