"""Append-only, hash-chained JSON-lines logs (the audit trail), and their verification.

Each line: ``{"seq": n, "prev": <hash of line n-1>, "hash": sha256(prev || canonical(event)), "event": {...}}``.
Appends are serialised by a lock and an ``O_APPEND`` write, and ``fsync``-ed: a crash loses at most
the line being written, never an earlier one.

Encrypted logs (``[encryption] enabled``): the line is ``{"seq", "prev", "hash", "enc"}`` where ``enc`` is
the AES-GCM ciphertext of the event JSON with associated data ``audit:<log name>:<seq>``; ``hash`` is still
computed over the *plaintext* event, so key rotation can re-encrypt lines without breaking the chain,
and verifying the chain needs the key (a modified ciphertext fails to decrypt and is reported).
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

from .errors import GroundwireError

__all__ = ["GENESIS", "AuditLog", "ChainProblem", "decode_record", "verify_chain"]

GENESIS = "0" * 64


def _canonical(event: dict[str, Any]) -> bytes:
    return json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def chain_hash(prev: str, event: dict[str, Any]) -> str:
    return hashlib.sha256(prev.encode() + _canonical(event)).hexdigest()


@dataclass(frozen=True, slots=True)
class ChainProblem:
    line: int
    problem: str


def _aad(seq: int, log: str) -> str:
    return f"audit:{log}:{seq}"


def decode_record(rec: dict[str, Any], codec: Any = None, log: str = "") -> dict[str, Any]:
    """The event of a record, decrypting it if it is encrypted (needs ``codec``)."""
    if "event" in rec:
        return dict(rec["event"])
    if codec is None or getattr(codec, "name", "identity") == "identity":
        from .crypto import DecryptionError

        raise DecryptionError(
            "the audit log is encrypted: enable [encryption] with the key provider holding its key"
        )
    return dict(json.loads(codec.decode(rec["enc"], _aad(int(rec["seq"]), log))))


class AuditLog:
    def __init__(self, path: Path, codec: Any = None) -> None:
        self.path = path
        self.codec = codec if codec is not None and getattr(codec, "name", "identity") != "identity" else None
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
            rec: dict[str, Any] = {"seq": seq, "prev": self._prev, "hash": digest}
            if self.codec is None:
                rec["event"] = event
            else:
                rec["enc"] = self.codec.encode(_canonical(event).decode(), _aad(seq, self.path.stem))
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
        """Raw records as stored (``event`` in clear, or ``enc`` when encrypted)."""
        if not self.path.exists():
            return
        with self.path.open(encoding="utf-8") as f:
            for raw in f:
                if raw.strip():
                    yield json.loads(raw)

    def events(self) -> Iterator[dict[str, Any]]:
        """The decrypted events, in order."""
        for rec in self.records():
            yield decode_record(rec, self.codec, self.path.stem)

    def reencrypt(self, codec: Any) -> int:
        """Rewrite every encrypted line with ``codec``'s current key (hashes unchanged). Returns lines."""
        with self._lock:
            out, n = [], 0
            for rec in self.records():
                if "enc" in rec:
                    aad = _aad(int(rec["seq"]), self.path.stem)
                    event = json.loads(codec.decode(rec["enc"], aad))
                    rec["enc"] = codec.encode(_canonical(event).decode(), aad)
                    n += 1
                out.append(json.dumps(rec, ensure_ascii=False) + "\n")
            tmp = self.path.with_suffix(".rotating")
            tmp.write_text("".join(out), encoding="utf-8")
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
            return n


def verify_chain(path: Path, codec: Any = None) -> list[ChainProblem]:
    """Every break in the chain of ``path`` (empty list: intact); encrypted lines need ``codec``."""
    problems: list[ChainProblem] = []
    prev, expected_seq = GENESIS, 1
    with path.open(encoding="utf-8") as f:
        for lineno, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            try:
                rec = json.loads(raw)
                seq, rprev, rhash = rec["seq"], rec["prev"], rec["hash"]
                event = decode_record(rec, codec, path.stem)
            except GroundwireError as exc:
                problems.append(ChainProblem(lineno, f"cannot be decrypted ({exc})"))
                prev, expected_seq = rec["hash"], rec["seq"] + 1
                continue
            except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                problems.append(ChainProblem(lineno, "not a valid audit record"))
                prev, expected_seq = GENESIS, expected_seq + 1
                continue
            if seq != expected_seq:
                problems.append(
                    ChainProblem(lineno, f"sequence {seq}, expected {expected_seq} (line missing or moved)")
                )
            if rprev != prev:
                problems.append(ChainProblem(lineno, "does not chain to the previous line"))
            if chain_hash(rprev, event) != rhash:
                problems.append(ChainProblem(lineno, "content was modified (hash mismatch)"))
            prev, expected_seq = rhash, seq + 1
    return problems
