"""Retention: ``[retention]`` limits enforced by ``groundwire retention apply``, and its trust-report self-check.

- Audit logs: lines recorded more than ``audit_days`` ago are removed as a prefix and replaced by a keyed
  anchor (:mod:`groundwire.audit_anchor`), so ``audit verify`` still proves the rest of the chain, detects
  tampering, truncation from the end and a forged anchor. Concurrent appends wait on the log's lock.
- Review drafts last updated more than ``reviews_days`` ago and quarantine entries last hit more than
  ``quarantine_days`` ago are deleted from their SQLite stores. A deleted quarantine entry only means the chunk
  is screened afresh at its next retrieval (a still-injected chunk is quarantined again): retention never
  makes a withheld chunk usable without screening.
- 0 days keeps that store forever.
- Every apply (not a dry run) appends one ``retention`` record per tenant log: the policy, who ran it, and
  the counts removed from each store (ids of removed lines as a sequence range; no content).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from .audit import AuditLog, verify_log
from .audit_anchor import RetentionError, TrimResult, trim_log
from .models import utcnow

if TYPE_CHECKING:
    from .pipeline import Grounder

__all__ = ["RetentionError", "RetentionReport", "apply_retention", "self_check"]


@dataclass(slots=True)
class RetentionReport:
    """What was (or, in a dry run, would be) removed, per tenant."""

    dry_run: bool
    policy: dict[str, int]
    audit: dict[str, TrimResult] = field(default_factory=dict)
    reviews: dict[str, dict[str, int]] = field(default_factory=dict)
    quarantine: dict[str, dict[str, int]] = field(default_factory=dict)

    def totals(self) -> dict[str, int]:
        return {"audit_lines": sum(r.removed for r in self.audit.values()),
                "drafts": sum(sum(v.values()) for v in self.reviews.values()),
                "quarantine_entries": sum(sum(v.values()) for v in self.quarantine.values())}

    def tenants(self) -> list[str]:
        return sorted(set(self.audit) | set(self.reviews) | set(self.quarantine))


def _cutoff(days: int, now: datetime) -> datetime | None:
    return now - timedelta(days=days) if days > 0 else None


def _by_tenant(counts: dict[tuple[str, str], int]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for (tenant, status), n in counts.items():
        out.setdefault(tenant, {})[status] = n
    return out


def apply_retention(g: Grounder, dry_run: bool = False, actor: str = "system", now: datetime | None = None
                    ) -> RetentionReport:
    """Enforce ``[retention]`` on every tenant's audit log, the review store and the quarantine store."""
    from .trust import _checkpoint_dir, audit_paths

    r = g.config.retention
    now = now or utcnow()
    report = RetentionReport(dry_run, {"audit_days": r.audit_days, "reviews_days": r.reviews_days,
                                       "quarantine_days": r.quarantine_days})
    if not dry_run:
        g.check_config_current()
    cut = _cutoff(r.reviews_days, now)
    if cut is not None:
        report.reviews = _by_tenant(g.reviews.store.delete_before(cut.isoformat(), dry_run))
    cut = _cutoff(r.quarantine_days, now)
    if cut is not None:
        report.quarantine = _by_tenant(g.quarantine.rows.delete_before(cut.isoformat(), dry_run))
    audit_cut = _cutoff(r.audit_days, now)
    folder = g.config.data_path / "audit"
    tenants = sorted({p.stem for p in audit_paths(g)} | set(report.reviews) | set(report.quarantine)
                     | set(g.config.tenants()))
    for tenant in tenants:
        log = _log(g, folder / f"{tenant}.jsonl", _checkpoint_dir(g))
        event = None if dry_run else {
            "kind": "retention", "tenant": tenant, "actor": actor, "request_id": "", "at": now.isoformat(),
            "data": {"policy": report.policy, "reviews": report.reviews.get(tenant, {}),
                     "quarantine": report.quarantine.get(tenant, {})}}
        if audit_cut is None:
            if event is not None:
                log.append(event)
            continue
        res = trim_log(log, audit_cut, dry_run, event)
        report.audit[tenant] = res
    return report


def _log(g: Grounder, path: Path, ckpt: Path | None) -> AuditLog:
    """The log object the audit plugin appends through (same lock), or a new one for a log it has not opened."""
    try:
        from groundwire.plugins.audit import log_for

        log: AuditLog = log_for(g.config, path.stem)
        return log
    except ImportError:  # pragma: no cover - the audit plugin ships with the framework
        return AuditLog(path, g.codec, ckpt, g.config.audit.fsync)


def self_check(grounder: Grounder) -> tuple[bool, str]:
    """The trust report's retention check: the policy in force is valid and not all-off; a dry run over the
    live data works and changes nothing (audit logs byte-identical, ``audit verify`` result unchanged); and a
    canary log keyed like the live ones is trimmed, still verifies, and a forged anchor on it is detected."""
    import json

    from .trust import audit_reports

    r = grounder.config.retention
    policy = f"audit {r.audit_days} d, reviews {r.reviews_days} d, quarantine {r.quarantine_days} d"
    if not (r.audit_days or r.reviews_days or r.quarantine_days):
        return False, "no [retention] limit set (all 0): audit lines, drafts and quarantine entries are kept forever"
    before = {p: (p.read_bytes(), rep.ok) for p, rep in audit_reports(grounder).items() if p.exists()}
    dry = apply_retention(grounder, dry_run=True)
    after = {p: (p.read_bytes(), rep.ok) for p, rep in audit_reports(grounder).items() if p.exists()}
    if before != after:
        return False, "the dry run changed an audit log or its verification"
    with tempfile.TemporaryDirectory(prefix="gw-retention-check-") as tmp:
        log = AuditLog(Path(tmp) / "canary.jsonl", grounder.codec, fsync=False)
        now = utcnow()
        for i, age in enumerate((30, 20, 10, 0)):
            log.append({"kind": "canary", "tenant": "canary", "actor": "system", "request_id": str(i),
                        "at": (now - timedelta(days=age)).isoformat(), "data": {}})
        res = trim_log(log, now - timedelta(days=15))
        rep = verify_log(log.path, log.codec)
        if res.removed != 2 or not rep.ok or [e["request_id"] for e in log.events()] != ["2", "3"]:
            return False, f"the canary log did not trim and verify ({res.removed} removed; {rep.problems[:1]})"
        lines = log.path.read_text(encoding="utf-8").splitlines()
        forged = json.loads(lines[0])
        forged["anchor"]["first_seq"] = 3  # claim fewer lines were removed
        log.path.write_text("\n".join([json.dumps(forged), *lines[1:]]) + "\n", encoding="utf-8")
        if verify_log(log.path, log.codec).ok:
            return False, "a forged retention anchor was accepted"
    t = dry.totals()
    return True, (f"{policy}; dry run: {t['audit_lines']} audit lines, {t['drafts']} drafts, "
                  f"{t['quarantine_entries']} quarantine entries due; audit verify unchanged; canary log trimmed "
                  "to a keyed anchor and verified, forged anchor detected")
