"""Append-only, hash-chained JSON-lines logs (the audit trail), and their verification.

Each line: ``{"seq": n, "prev": <hash of line n-1>, "hash": sha256(prev || canonical(event)), "event": {...}}``.
Appends are serialised by a lock and an ``O_APPEND`` write, and ``fsync``-ed: a crash loses at most
the line being written, never an earlier one.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["GENESIS", "AuditLog", "ChainProblem", "verify_chain"]

GENESIS = "0" * 64


def _canonical(event: dict[str, Any]) -> bytes:
    return json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def chain_hash(prev: str, event: dict[str, Any]) -> str:
    return hashlib.sha256(prev.encode() + _canonical(event)).hexdigest()


@dataclass(frozen=True, slots=True)
class ChainProblem:
    line: int
    problem: str


class AuditLog:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._seq, self._prev = self._tail()

    def _tail(self) -> tuple[int, str]:
        if not self.path.exists():
            return 0, GENESIS
        last = None
        with self.path.open("rb") as f:
            for raw in f:
                if raw.strip():
                    last = raw
        if last is None:
            return 0, GENESIS
        rec = json.loads(last)
        return int(rec["seq"]), str(rec["hash"])

    def append(self, event: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            seq = self._seq + 1
            digest = chain_hash(self._prev, event)
            rec = {"seq": seq, "prev": self._prev, "hash": digest, "event": event}
            line = json.dumps(rec, ensure_ascii=False, default=str) + "\n"
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line.encode())
                os.fsync(fd)
            finally:
                os.close(fd)
            self._seq, self._prev = seq, digest
            return rec

    def records(self) -> Iterator[dict[str, Any]]:
        if not self.path.exists():
            return
        with self.path.open(encoding="utf-8") as f:
            for raw in f:
                if raw.strip():
                    yield json.loads(raw)


def verify_chain(path: Path) -> list[ChainProblem]:
    """Every break in the chain of ``path`` (empty list: intact)."""
    problems: list[ChainProblem] = []
    prev, expected_seq = GENESIS, 1
    with path.open(encoding="utf-8") as f:
        for lineno, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            try:
                rec = json.loads(raw)
                seq, rprev, rhash, event = rec["seq"], rec["prev"], rec["hash"], rec["event"]
            except (json.JSONDecodeError, KeyError, TypeError):
                problems.append(ChainProblem(lineno, "not a valid audit record"))
                prev, expected_seq = GENESIS, expected_seq + 1
                continue
            if seq != expected_seq:
                problems.append(ChainProblem(lineno, f"sequence {seq}, expected {expected_seq} (line missing or moved)"))
            if rprev != prev:
                problems.append(ChainProblem(lineno, "does not chain to the previous line"))
            if chain_hash(rprev, event) != rhash:
                problems.append(ChainProblem(lineno, "content was modified (hash mismatch)"))
            prev, expected_seq = rhash, seq + 1
    return problems
