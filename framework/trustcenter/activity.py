"""Rows about records and operations: the audit trail, the inventory, failure detection (``doctor``) and the
rows whose self-checks live in other modules (purge, exports, retention).

Invariants: the activity row passes only when the audit plugin is registered and every log's chain and keyed
head checkpoint verify; the inventory row fails on any store it cannot account for (a tenant without its
collection entry, a file of unknown kind under data_dir, a configured connector or registered plugin
missing from the listing, a part that could not be read); the failure-detection row is ``doctor`` all ok.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import Check, delegated, plugin_names, run

if TYPE_CHECKING:
    from ..pipeline import Grounder

__all__ = [
    "ACTIVITY", "DISPOSAL", "FAILURES", "INVENTORY", "PORTABLE", "RETENTION",
    "activity", "disposal", "failure_detection", "inventory", "portable_media", "retention",
]

ACTIVITY = "tracks and stores all activity"
DISPOSAL = "asset disposal"
INVENTORY = "production inventory"
PORTABLE = "encrypts portable media"
FAILURES = "failure detection"
RETENTION = "retention"


def activity(g: Grounder) -> Check:
    c = g.config

    def config() -> str:
        ckpt = c.audit.checkpoint_dir or "<data_dir>/audit/.checkpoints"
        return (f"audit plugin {'on' if 'audit' in plugin_names(g) else 'OFF'}, store_prompts={c.audit.store_prompts}, "
                f"store_drafts={c.audit.store_drafts}, fsync={c.audit.fsync}, checkpoints={ckpt}")

    def check() -> tuple[bool, str]:
        from ..trust import audit_reports

        if "audit" not in plugin_names(g):
            return False, "the audit plugin is disabled: requests, verdicts and reviews are not recorded"
        reports = audit_reports(g)
        bad = {p.name: [f"line {x.line}: {x.problem}" for x in r.problems] for p, r in reports.items() if r.problems}
        records = sum(r.records for r in reports.values())
        if bad:
            return False, f"{len(reports)} audit logs checked; broken: " + "; ".join(
                f"{name} ({', '.join(v[:2])})" for name, v in bad.items())
        return True, f"{len(reports)} audit logs, {records} records: chains verified, head checkpoints intact"

    return run(ACTIVITY, config, check)


def inventory(g: Grounder) -> Check:
    def check() -> tuple[bool, str]:
        from ..inventory import UNKNOWN, build_inventory
        from ..pluginmanager import plugin_info

        inv = build_inventory(g)
        gaps = list(inv["problems"])
        listed = {col["tenant"] for col in inv["collections"]}
        names = {str(col.name) for col in g.index.client.list_collections()}
        gaps += [f"tenant {t}'s collection is not listed" for t in g.config.tenants()
                 if f"gw-{t}" in names and t not in listed]
        gaps += [f"file of unknown kind under data_dir: {f['path']} (move it out, or it is an untracked asset)"
                 for f in inv["files"] if f["encryption"] == UNKNOWN]
        gaps += [f"connector {n} not listed" for n in g.config.connectors
                 if n not in {x["name"] for x in inv["connectors"]}]
        hashed = {p["name"] for p in inv["plugins"] if p["sha256"]}
        gaps += [f"plugin {i.name} has no file hash" for i in plugin_info(g.pm) if i.name not in hashed]
        if gaps:
            return False, "; ".join(gaps[:4]) + (f" (+{len(gaps) - 4} more)" if len(gaps) > 4 else "")
        return True, (f"{len(inv['collections'])} collections, {len(inv['files'])} files (each with its encryption "
                      f"status), {len(inv['keys'])} keys, {len(inv['connectors'])} connectors, "
                      f"{len(inv['plugins'])} plugins with file hashes")

    return run(INVENTORY, "groundwire inventory", check)


def failure_detection(g: Grounder) -> Check:
    def check() -> tuple[bool, str]:
        from ..doctor import doctor_checks

        checks = doctor_checks(g)
        bad = [f"{d.name}: {d.detail}" for d in checks if not d.ok]
        if bad:
            return False, f"doctor: {len(bad)} of {len(checks)} checks FAIL: " + "; ".join(bad[:3])
        return True, f"doctor: all {len(checks)} checks ok (stores, keys, disk, model, connectors, audit, Chroma)"

    return run(FAILURES, "groundwire doctor", check)


def disposal(g: Grounder) -> Check:
    return delegated(g, DISPOSAL, "purge", "groundwire tenant purge (crypto-shredding)")


def portable_media(g: Grounder) -> Check:
    return delegated(g, PORTABLE, "exports", "audit export / review export: encrypted archives")


def retention(g: Grounder) -> Check:
    shown = getattr(g.config, "retention", None)
    return delegated(g, RETENTION, "retention", f"[retention] {shown}" if shown is not None else "[retention]")
