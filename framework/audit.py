"""Append-only, hash-chained JSON-lines logs (the audit trail), and their verification.

Each line: ``{"seq": n, "prev": <hash of line n-1>, "hash": sha256(prev || canonical(event)), "event": {...}}``.

Encrypted logs (``[encryption] enabled``): the line is ``{"seq", "prev", "hash", "enc"}`` where ``enc`` is
the AES-GCM ciphertext of the event JSON with associated data ``audit:<log name>:<seq>``; ``hash`` is still
computed over the *plaintext* event, so key rotation can re-encrypt lines without breaking the chain,
and verifying the chain needs the key (a modified ciphertext fails to decrypt and is reported).

Invariants (any number of processes and threads may share one log):
- One writer at a time: every append and every rewrite (key rotation) holds an exclusive OS lock
  (``fcntl.flock``) on ``<log>.lock`` and opens the log only once it holds it. The sequence number and the
  previous hash are read from the file's tail under that lock, never from an in-process counter.
- Tail checks under the lock, before writing: bytes after the last valid record (a torn write left by a
  crash or a full disk, or a damaged last line) are copied to ``<log>.torn``, cut off, and recorded in the
  chain as an ``audit_repair`` event (size and SHA-256 of what was cut). The keyed checkpoint
  (:mod:`groundwire.audit_head`) must match the last line (or the one before it, after a crash between
  writing a line and its checkpoint); otherwise an ``audit_checkpoint_mismatch`` event is chained, so the
  evidence that lines were removed survives later appends.
- Fail closed: a line is written whole (looping over short writes), ``fsync``-ed (``[audit] fsync``,
  default on), then the checkpoint is replaced atomically. If any step fails the file is cut back to its
  previous length and :class:`~groundwire.errors.AuditWriteError` is raised (naming disk space when the disk
  is full): the caller must not return what it was recording.
- Reading never raises on a torn or invalid line: :meth:`AuditLog.records` skips them and
  :func:`verify_log` reports them.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .atomic import atomic_write
from .audit_head import Head, HeadKeyError, head_path, read_head, sign_head, write_head
from .errors import AuditWriteError, GroundwireError, storage_error
from .models import utcnow

__all__ = [
    "GENESIS",
    "AuditLog",
    "ChainProblem",
    "LogReport",
    "chain_hash",
    "decode_record",
    "verify_chain",
    "verify_log",
]

GENESIS = "0" * 64
_BLOCK = 64 * 1024
REPAIR, CREATED, MISMATCH = "audit_repair", "audit_checkpoint_created", "audit_checkpoint_mismatch"


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


def _parse(line: bytes) -> dict[str, Any] | None:
    """A record if ``line`` is one (right fields and types), else None."""
    try:
        rec = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        return None
    if (
        isinstance(rec, dict)
        and isinstance(rec.get("seq"), int)
        and isinstance(rec.get("hash"), str)
        and isinstance(rec.get("prev"), str)
        and ("event" in rec or "enc" in rec or isinstance(rec.get("anchor"), dict))
    ):
        return rec
    return None


def _last_record(fd: int, size: int) -> tuple[int, dict[str, Any] | None]:
    """``(end, record)``: the end offset of the last valid record line and that record (``(0, None)`` if
    there is none). Everything from ``end`` to ``size`` is garbage: a torn write or damaged lines."""
    block = _BLOCK
    while True:
        start = max(0, size - block)
        data = os.pread(fd, size - start, start)
        pos = data.rfind(b"\n") + 1  # a valid line ends at data[pos - 1] == "\n"
        while pos > 0:
            nl = data.rfind(b"\n", 0, pos - 1)
            if nl == -1 and start > 0:
                break  # the line starts before this block: read more
            rec = _parse(data[nl + 1 : pos - 1])
            if rec is not None:
                return start + pos, rec
            pos = nl + 1
        if start == 0:
            return 0, None
        block *= 2


class AuditLog:
    """One hash-chained log file. Safe to share between threads and processes (see the module docstring).

    :param path: the ``.jsonl`` file
    :param codec: the at-rest codec (None or identity: clear lines)
    :param checkpoint_dir: where the keyed checkpoint lives (default ``<log dir>/.checkpoints``)
    :param fsync: ``fsync`` each line and checkpoint before returning (off: a process crash loses nothing,
        a power loss may lose the last lines, which ``audit verify`` then reports as removed)
    """

    def __init__(
        self, path: Path, codec: Any = None, checkpoint_dir: Path | None = None, fsync: bool = True
    ) -> None:
        self.path = path
        self.codec = codec if codec is not None and getattr(codec, "name", "identity") != "identity" else None
        self.checkpoint_dir = checkpoint_dir
        self.fsync = fsync
        self._tlock = threading.Lock()

    @property
    def lock_path(self) -> Path:
        return self.path.with_name(self.path.name + ".lock")

    @property
    def torn_path(self) -> Path:
        return self.path.with_name(self.path.name + ".torn")

    @property
    def _ckpt_folder(self) -> Path:
        return head_path(self.path, self.checkpoint_dir).parent

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the log's exclusive lock (threads of this process and other processes wait)."""
        with self._tlock:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                lfd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            except OSError as exc:
                raise storage_error("the audit log", self.path, exc, AuditWriteError) from exc
            try:
                fcntl.flock(lfd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(lfd)  # closing releases the flock

    # --- writing --------------------------------------------------------------------------------------

    def append(self, event: dict[str, Any]) -> dict[str, Any]:
        """Append ``event`` as the next line; returns its record. Raises :class:`AuditWriteError`."""
        with self.locked():
            return self._append_locked([event], self.codec)[-1]

    def _system_event(self, kind: str, data: dict[str, Any]) -> dict[str, Any]:
        return {"kind": kind, "tenant": self.path.stem, "actor": "system", "request_id": "",
                "at": utcnow().isoformat(), "data": data}

    def _check_tail(self, fd: int, codec: Any) -> tuple[int, dict[str, Any] | None, list[dict[str, Any]]]:
        """Under the lock: cut off garbage after the last valid record (kept in ``<log>.torn``) and compare
        the checkpoint with the last record. Returns the valid end, the last record and integrity events."""
        size = os.fstat(fd).st_size
        end, last = _last_record(fd, size)
        notes: list[dict[str, Any]] = []
        if end < size:
            garbage = os.pread(fd, size - end, end)
            entry = {"at": utcnow().isoformat(), "offset": end, "bytes": len(garbage),
                     "sha256": hashlib.sha256(garbage).hexdigest(), "data": garbage.decode("utf-8", "replace")}
            tfd = os.open(self.torn_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                _write_all(tfd, (json.dumps(entry, ensure_ascii=False) + "\n").encode())
                os.fsync(tfd)
            finally:
                os.close(tfd)
            os.ftruncate(fd, end)
            notes.append(self._system_event(REPAIR, {
                "after_seq": int(last["seq"]) if last else 0, "bytes": len(garbage), "sha256": entry["sha256"],
                "quarantined_to": self.torn_path.name,
            }))
        seq = int(last["seq"]) if last else 0
        try:
            head = read_head(self.path, codec, self.checkpoint_dir)
        except (HeadKeyError, ValueError) as exc:
            notes.append(self._system_event(MISMATCH, {"log_seq": seq, "problem": str(exc)}))
            return end, last, notes
        if head is None:
            if seq:
                notes.append(self._system_event(CREATED, {"log_seq": seq}))
        elif last is None or head.seq > seq or (head.seq == seq and head.hash != last["hash"]) or (
            head.seq == seq - 1 and head.hash != last["prev"]
        ):  # (a checkpoint further behind, after a crash, is checked in full by verify_log)
            problem = (
                f"the checkpoint names line {head.seq} but the log ends at line {seq}: lines were removed"
                if head.seq > seq
                else f"the log does not match its checkpoint (line {head.seq}; the log ends at line {seq})"
            )
            notes.append(self._system_event(MISMATCH, {
                "checkpoint_seq": head.seq, "checkpoint_hash": head.hash, "log_seq": seq, "problem": problem,
            }))
        return end, last, notes

    def _append_locked(self, events: list[dict[str, Any]], codec: Any) -> list[dict[str, Any]]:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        except OSError as exc:
            raise storage_error("the audit log", self.path, exc, AuditWriteError) from exc
        try:
            try:
                end, last, notes = self._check_tail(fd, codec)
            except OSError as exc:
                raise storage_error("the audit log", self.path, exc, AuditWriteError) from exc
            seq, prev = (int(last["seq"]), str(last["hash"])) if last else (0, GENESIS)
            if not notes and not events:
                return []
            recs, lines = [], []
            for event in notes + events:
                seq += 1
                digest = chain_hash(prev, event)
                rec: dict[str, Any] = {"seq": seq, "prev": prev, "hash": digest}
                if codec is None or getattr(codec, "name", "identity") == "identity":
                    rec["event"] = event
                else:
                    rec["enc"] = codec.encode(_canonical(event).decode(), _aad(seq, self.path.stem))
                recs.append(rec)
                lines.append(json.dumps(rec, ensure_ascii=False, default=str) + "\n")
                prev = digest
            try:
                _write_all(fd, "".join(lines).encode())
                if self.fsync:
                    os.fsync(fd)
                # no fsync needed: the lines are durable first, so a checkpoint lost in a crash is only
                # behind the log (reported as a note), never ahead of it (which means lines were removed)
                write_head(self.path, sign_head(self.path.stem, seq, prev, codec, self._ckpt_folder),
                           self.checkpoint_dir, fsync=False)
            except OSError as exc:
                try:
                    os.ftruncate(fd, end)  # leave no partial line behind (needs no free space)
                except OSError:
                    pass  # the next append finds and quarantines the torn line
                raise storage_error("the audit log", self.path, exc, AuditWriteError) from exc
            return recs[len(notes):]
        finally:
            os.close(fd)

    def reencrypt(self, codec: Any) -> int:
        """Rewrite every encrypted line with ``codec``'s current key (hashes unchanged), holding the lock, so
        no concurrent append is lost. Returns the number of lines re-encrypted."""
        with self.locked():
            self._append_locked([], codec)  # first repair a torn tail and check the checkpoint
            out, n, last = [], 0, None
            for rec in self.records():
                if "anchor" in rec:
                    from .audit_anchor import resign_anchor

                    resign_anchor(self.path.stem, rec, codec, self._ckpt_folder)
                elif "enc" in rec:
                    aad = _aad(int(rec["seq"]), self.path.stem)
                    event = json.loads(codec.decode(rec["enc"], aad))
                    rec["enc"] = codec.encode(_canonical(event).decode(), aad)
                    n += 1
                out.append(json.dumps(rec, ensure_ascii=False) + "\n")
                last = rec
            try:
                atomic_write(self.path, "".join(out))  # durable: file and folder entry flushed
                if last is not None:
                    head = sign_head(self.path.stem, int(last["seq"]), str(last["hash"]), codec, self._ckpt_folder)
                    write_head(self.path, head, self.checkpoint_dir, self.fsync)
            except OSError as exc:
                raise storage_error("the audit log", self.path, exc, AuditWriteError) from exc
            return n

    # --- reading --------------------------------------------------------------------------------------

    def records(self) -> Iterator[dict[str, Any]]:
        """Valid raw records as stored (``event`` in clear, or ``enc``); torn or invalid lines are skipped
        (:func:`verify_log` reports them)."""
        try:
            f = self.path.open("rb")
        except FileNotFoundError:
            return
        with f:
            for raw in f:
                if raw.endswith(b"\n"):
                    rec = _parse(raw)
                    if rec is not None:
                        yield rec

    def events(self) -> Iterator[dict[str, Any]]:
        """The decrypted events, in order."""
        for rec in self.records():
            if "anchor" not in rec:  # retention's stand-in for removed lines (groundwire.audit_anchor)
                yield decode_record(rec, self.codec, self.path.stem)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


@dataclass(slots=True)
class LogReport:
    """What :func:`verify_log` found: ``problems`` mean tampering or loss; ``notes`` are recoveries
    (torn writes quarantined, a checkpoint created) that are expected after crashes and full disks."""

    path: Path
    records: int = 0
    problems: list[ChainProblem] = field(default_factory=list)
    notes: list[ChainProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_log(path: Path, codec: Any = None, checkpoint_dir: Path | None = None) -> LogReport:
    """Check the chain of ``path`` and its keyed checkpoint (encrypted lines and keyring-signed checkpoints
    need ``codec``). Removing lines from the end, editing, reordering or deleting lines are problems."""
    report = LogReport(path)
    problems, notes = report.problems, report.notes
    prev, expected_seq = GENESIS, 1
    try:
        head: Head | None = read_head(path, codec, checkpoint_dir)
        head_error = ""
    except (HeadKeyError, ValueError) as exc:
        head, head_error = None, str(exc)
    last_seq, at_head = 0, None  # the last valid seq; the hash of the line the checkpoint names
    lineno = 0
    with path.open("rb") as f:
        for lineno, raw in enumerate(f, 1):  # noqa: B007 - lineno is used after the loop
            if not raw.strip():
                continue
            if not raw.endswith(b"\n"):
                notes.append(ChainProblem(lineno, f"torn write at the end ({len(raw)} bytes without a newline, "
                                                  "e.g. a crash or a full disk); the next append quarantines it"))
                lineno -= 1
                break
            rec = _parse(raw)
            if rec is None:
                problems.append(ChainProblem(lineno, "not a valid audit record"))
                prev, expected_seq = GENESIS, expected_seq + 1
                continue
            seq, rprev, rhash = rec["seq"], rec["prev"], rec["hash"]
            first = report.records == 0 and not problems
            report.records += 1
            last_seq = seq
            if head is not None and seq == head.seq:
                at_head = rhash
            if "anchor" in rec:  # lines removed by retention (groundwire.audit_anchor)
                _check_anchor(path, rec, codec, checkpoint_dir, lineno, first, report)
                prev, expected_seq = rhash, seq + 1
                continue
            try:
                event = decode_record(rec, codec, path.stem)
            except (GroundwireError, ValueError, KeyError, TypeError) as exc:
                problems.append(ChainProblem(lineno, f"cannot be decrypted ({exc})"))
                prev, expected_seq = rhash, seq + 1
                continue
            if seq != expected_seq:
                problems.append(
                    ChainProblem(lineno, f"sequence {seq}, expected {expected_seq} (line missing or moved)")
                )
            if rprev != prev:
                problems.append(ChainProblem(lineno, "does not chain to the previous line"))
            if chain_hash(rprev, event) != rhash:
                problems.append(ChainProblem(lineno, "content was modified (hash mismatch)"))
            kind, data = event.get("kind"), event.get("data") or {}
            if kind == REPAIR:
                notes.append(ChainProblem(lineno, f"{data.get('bytes')} bytes of a torn or damaged write after "
                                                  f"line {data.get('after_seq')} were quarantined to "
                                                  f"{data.get('quarantined_to')}"))
            elif kind == CREATED:
                notes.append(ChainProblem(lineno, f"checkpoint created for an existing log of "
                                                  f"{data.get('log_seq')} lines (none was found)"))
            elif kind == MISMATCH:
                problems.append(ChainProblem(lineno, f"recorded at append time: {data.get('problem')}"))
            prev, expected_seq = rhash, seq + 1
    _verify_head(path, checkpoint_dir, head, head_error, last_seq, at_head, lineno, report)
    return report


def _check_anchor(path: Path, rec: dict[str, Any], codec: Any, checkpoint_dir: Path | None, lineno: int,
                  first: bool, report: LogReport) -> None:
    from .audit_anchor import anchor_problem

    if not first:
        report.problems.append(ChainProblem(lineno, "a retention anchor in the middle of the log (only the first "
                                                    "line may stand in for removed lines)"))
        return
    problem = anchor_problem(path.stem, rec, codec, head_path(path, checkpoint_dir).parent)
    if problem:
        report.problems.append(ChainProblem(lineno, problem))
        return
    a = rec["anchor"]
    report.notes.append(ChainProblem(lineno, f"starts at a retention anchor: lines {a['first_seq']}-{rec['seq']} "
                                             f"(recorded before {a['before']}) were removed on {a['at']}"))


def _verify_head(
    path: Path, checkpoint_dir: Path | None, head: Head | None, head_error: str, last_seq: int,
    at_head: str | None, lineno: int, report: LogReport,
) -> None:
    torn = path.with_name(path.name + ".torn")
    if torn.exists():
        n = sum(1 for line in torn.read_bytes().splitlines() if line.strip())
        report.notes.append(ChainProblem(0, f"{n} torn or damaged write(s) kept in {torn.name}"))
    if head_error:
        report.problems.append(ChainProblem(lineno, f"checkpoint: {head_error}"))
        return
    if head is None:
        if report.records:
            report.problems.append(ChainProblem(lineno, f"no checkpoint ({head_path(path, checkpoint_dir)}): "
                                                        "removal of lines from the end cannot be ruled out"))
        return
    if head.seq > last_seq:
        report.problems.append(ChainProblem(lineno + 1, f"the log ends at line {last_seq} but its checkpoint "
                                                        f"names line {head.seq}: {head.seq - last_seq} line(s) "
                                                        "were removed from the end"))
    elif at_head != head.hash:
        report.problems.append(ChainProblem(lineno, f"line {head.seq} is not the line the checkpoint names "
                                                    "(replaced after it was checkpointed)"))
    elif head.seq < last_seq:
        report.notes.append(ChainProblem(lineno, f"the last {last_seq - head.seq} line(s) are not checkpointed "
                                                 "yet (a crash between writing and checkpointing); the next "
                                                 "append checkpoints them"))


def verify_chain(path: Path, codec: Any = None, checkpoint_dir: Path | None = None) -> list[ChainProblem]:
    """Every break in the chain of ``path`` and its checkpoint (empty list: intact); see :func:`verify_log`."""
    return verify_log(path, codec, checkpoint_dir).problems
