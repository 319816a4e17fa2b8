"""Retention for hash-chained audit logs: removing the oldest lines without breaking verifiability.

A log whose first lines were removed starts with an *anchor* record instead of line 1::

    {"seq": k, "prev": <prev of line k>, "hash": <hash of line k>,
     "anchor": {"first_seq": f, "removed": n, "before": <cutoff>, "at": <when>, "kid": <key id>, "mac": <hex>}}

It stands in for the last removed line ``k``: the next line chains to ``hash`` and has sequence ``k + 1``, so
:func:`groundwire.audit.verify_log` checks the rest of the chain exactly as before. ``mac`` is an HMAC-SHA256
over every field, keyed like the checkpoint (:mod:`groundwire.audit_head`: the keyring's current key, or the
local checkpoint secret), so an anchor cannot be forged to hide the removal of lines without that key.

Invariants:
- Only a prefix is removed (lines in order up to the first one at or after the cutoff), never the last line,
  so the checkpoint still names a line present in the log.
- A log with chain problems is never trimmed (that would erase the evidence): :class:`RetentionError`.
- The rewrite holds the log's lock (appenders wait, none is lost), writes a temporary file, fsyncs it and
  renames it over the log; the ``retention`` record of what was removed is appended under the same lock.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .atomic import atomic_output
from .audit_head import LOCAL, HeadKeyError, _key
from .errors import GroundwireError, storage_error
from .models import utcnow

if TYPE_CHECKING:
    from .audit import AuditLog

__all__ = ["RetentionError", "TrimResult", "anchor_problem", "resign_anchor", "sign_anchor", "trim_log"]

_FIELDS = ("first_seq", "removed", "before", "at")


class RetentionError(GroundwireError):
    """Retention cannot run safely (e.g. the audit log already has chain problems)."""


def _message(log: str, rec: dict[str, Any]) -> bytes:
    a = rec["anchor"]
    parts = [f"anchor:{log}:{rec['seq']}:{rec['prev']}:{rec['hash']}"] + [f"{a[f]}" for f in _FIELDS]
    return ":".join(parts).encode()


def sign_anchor(log: str, rec: dict[str, Any], codec: Any, folder: Path) -> dict[str, Any]:
    """``rec`` with ``anchor.kid`` and ``anchor.mac`` set (the current key, or the local checkpoint secret)."""
    kid = str(codec.current) if getattr(codec, "keyring", None) is not None else LOCAL
    rec["anchor"]["kid"] = kid
    rec["anchor"]["mac"] = hmac.new(_key(kid, codec, folder, True), _message(log, rec), hashlib.sha256).hexdigest()
    return rec


def resign_anchor(log: str, rec: dict[str, Any], codec: Any, folder: Path) -> dict[str, Any]:
    """Re-sign a verified anchor with ``codec``'s current key (key rotation); refuses a forged one."""
    problem = anchor_problem(log, rec, codec, folder)
    if problem:
        raise RetentionError(f"the audit log {log}: {problem}; run 'groundwire audit verify'")
    return sign_anchor(log, rec, codec, folder)


def anchor_problem(log: str, rec: dict[str, Any], codec: Any, folder: Path) -> str:
    """Why the anchor ``rec`` is not authentic ("" if it is)."""
    a = rec.get("anchor")
    if not isinstance(a, dict) or any(f not in a for f in (*_FIELDS, "kid", "mac")):
        return "the anchor record is malformed"
    try:
        key = _key(str(a["kid"]), codec, folder, False)
    except HeadKeyError as exc:
        return f"the anchor cannot be checked: {exc}"
    good = hmac.new(key, _message(log, rec), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(good, str(a["mac"])):
        return "the anchor's MAC does not match (forged, or lines were removed without retention)"
    return ""


@dataclass(frozen=True, slots=True)
class TrimResult:
    """What :func:`trim_log` removed (or would remove, in a dry run)."""

    log: str
    removed: int
    first_seq: int = 0
    last_seq: int = 0
    kept: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"removed": self.removed, "first_seq": self.first_seq, "last_seq": self.last_seq, "kept": self.kept}


def _at(ev: dict[str, Any]) -> datetime | None:
    try:
        return datetime.fromisoformat(str(ev.get("at")))
    except ValueError:
        return None


def trim_log(log: AuditLog, before: datetime, dry_run: bool = False, event: dict[str, Any] | None = None,
             ) -> TrimResult:
    """Remove the lines of ``log`` recorded before ``before`` (timezone-aware), as a prefix, replacing them by
    an anchor; then append ``event`` (its ``data`` gets ``audit`` = the result) under the same lock. A dry run
    only counts. Raises :class:`RetentionError` if the log has chain problems."""
    from .audit import _parse, decode_record, verify_log

    name = log.path.stem
    with log.locked():
        if not dry_run:
            log._append_locked([], log.codec)  # repair a torn tail, check the checkpoint
        if not log.path.exists():
            return TrimResult(name, 0)
        report = verify_log(log.path, log.codec, log.checkpoint_dir)
        if report.problems:
            p = report.problems[0]
            raise RetentionError(f"the audit log {log.path} has {len(report.problems)} chain problem(s) (line "
                                 f"{p.line}: {p.problem}); retention would erase the evidence: investigate with "
                                 "'groundwire audit verify' first")
        # one streaming pass (memory: one record): the removable prefix, never the last record
        prior: dict[str, Any] | None = None  # an anchor left by an earlier run
        first: dict[str, Any] | None = None
        last: dict[str, Any] | None = None  # the last record to remove
        removed = total = 0
        pending: dict[str, Any] | None = None  # the record before the current one (removable unless it is last)
        open_prefix = True
        for rec in log.records():
            total += 1
            if pending is not None:
                first, last, removed = first or pending, pending, removed + 1
                pending = None
            if "anchor" in rec:
                prior = rec["anchor"] if total == 1 else prior
                continue
            if open_prefix:
                t = _at(decode_record(rec, log.codec, name))
                if t is not None and t < before:
                    pending = rec
                else:
                    open_prefix = False
        anchors = 1 if prior is not None else 0
        if last is None or first is None:
            result = TrimResult(name, 0, kept=total - anchors)
        else:
            result = TrimResult(name, removed, int(first["seq"]), int(last["seq"]), total - anchors - removed)
        if dry_run:
            return result
        if last is not None:
            anchor = {"seq": last["seq"], "prev": last["prev"], "hash": last["hash"], "anchor": {
                "first_seq": int(prior["first_seq"]) if prior else result.first_seq,
                "removed": result.removed + (int(prior["removed"]) if prior else 0),
                "before": before.isoformat(), "at": utcnow().isoformat()}}
            sign_anchor(name, anchor, log.codec, log._ckpt_folder)
            try:
                with atomic_output(log.path) as out:  # durable: file and folder entry flushed
                    out.write((json.dumps(anchor, ensure_ascii=False) + "\n").encode())
                    with log.path.open("rb") as f:
                        for raw in f:
                            got = _parse(raw) if raw.endswith(b"\n") else None
                            if got is not None and ("anchor" in got or int(got["seq"]) <= result.last_seq):
                                continue
                            out.write(raw)
            except OSError as exc:
                raise storage_error("the audit log", log.path, exc) from exc
        if event is not None:
            log._append_locked([{**event, "data": {**event.get("data", {}), "audit": result.to_dict()}}], log.codec)
        return result
