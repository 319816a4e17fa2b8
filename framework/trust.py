"""Trust operations on a configured :class:`~groundwire.Grounder`: key rotation, audit verification and
export. The self-checks behind ``groundwire trust-report`` live in :mod:`groundwire.trustcenter` (``Check`` and
``trust_checks`` are re-exported here).

Invariants: rotation re-wraps every tenant data key under the current master key, then decrypts with
any known key and re-encrypts (index payloads, review drafts and quarantine entries under the tenant's data
key, audit lines under the current master key), never writing plaintext; verification and export read every tenant's
audit log and report problems by file and line.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .audit import AuditLog, ChainProblem, LogReport, verify_log
from .index.rows import take_payloads, with_payloads
from .trustcenter import Check, trust_checks

if TYPE_CHECKING:
    from .pipeline import Grounder

__all__ = [
    "Check", "audit_paths", "audit_reports", "export_audit", "rotate_keys", "trust_checks", "verify_audit",
]

_PAGE = 1000


def audit_paths(g: Grounder, tenant: str | None = None) -> list[Path]:
    folder = g.config.data_path / "audit"
    if tenant:
        return [p for p in [folder / f"{tenant}.jsonl"] if p.exists()]
    return sorted(folder.glob("*.jsonl")) if folder.is_dir() else []


def _checkpoint_dir(g: Grounder) -> Path | None:
    c = g.config.audit.checkpoint_dir
    return g.config.resolve(c) if c else None


def audit_reports(g: Grounder, tenant: str | None = None) -> dict[Path, LogReport]:
    """Chain, checkpoint and recovery notes per audit file (see :func:`groundwire.audit.verify_log`).
    A checkpoint whose log file is gone is reported too (the whole log was deleted)."""
    from .audit_head import checkpoint_dir

    folder = g.config.data_path / "audit"
    out = {p: verify_log(p, g.codec, _checkpoint_dir(g)) for p in audit_paths(g, tenant)}
    ckpts = checkpoint_dir(folder / "x.jsonl", _checkpoint_dir(g))
    for head in sorted(ckpts.glob(f"{tenant or '*'}.json")) if ckpts.is_dir() else []:
        log = folder / f"{head.stem}.jsonl"
        if log not in out:
            report = LogReport(log)
            report.problems.append(ChainProblem(0, f"the log file is missing but its checkpoint {head} exists: "
                                                   "the whole log was deleted"))
            out[log] = report
    return out


def verify_audit(g: Grounder, tenant: str | None = None) -> dict[Path, list[ChainProblem]]:
    """Chain problems per audit file (every file appears; an empty list means intact)."""
    return {p: r.problems for p, r in audit_reports(g, tenant).items()}


def export_audit(
    g: Grounder, since: datetime | None = None, tenant: str | None = None
) -> Iterator[dict[str, Any]]:
    """Decrypted audit events at or after ``since`` (timezone-aware), oldest first per tenant."""
    for path in audit_paths(g, tenant):
        for ev in AuditLog(path, g.codec, _checkpoint_dir(g)).events():
            if since is not None and datetime.fromisoformat(ev["at"]) < since:
                continue
            yield ev


def rotate_keys(g: Grounder) -> dict[str, int]:
    """Re-encrypt everything stored with the current key. Returns counts per store."""
    codec = g.codec
    if codec.name == "identity":
        from .crypto import EncryptionError

        raise EncryptionError(
            "encryption is not enabled: set [encryption] enabled = true and a key provider first"
        )
    from .keycheck import check_index

    check_index([g.index.tenant(t) for t in g.config.tenants()], codec)  # refuse before re-encrypting
    counts = {"data_keys": 0, "chunks": 0, "audit_lines": 0, "drafts": 0, "quarantined": 0}
    keys = getattr(codec, "data_keys", None)
    if keys is not None:  # first: the payloads below are then written under data keys wrapped by the new key
        counts["data_keys"] = keys.rewrap(codec)
    for tenant in g.config.tenants():
        tindex = g.index.tenant(tenant)
        col, tcodec = tindex.collection, tindex.codec  # the tenant's data key; gw1 payloads migrate to it
        offset = 0
        while True:
            got = take_payloads(col.get(include=["documents", "embeddings", "metadatas"], limit=_PAGE,
                                        offset=offset))
            ids = got["ids"]
            if not ids:
                break
            docs = [tcodec.encode(tcodec.decode(d, i), i) for i, d in zip(ids, got["documents"], strict=True)]
            # written in layout 2 with documents blanked: no ciphertext under the retired key is left behind
            col.upsert(ids=ids, embeddings=got["embeddings"], documents=[""] * len(ids),
                       metadatas=with_payloads(got["metadatas"], docs))
            counts["chunks"] += len(ids)
            if len(ids) < _PAGE:
                break
            offset += _PAGE
    for path in audit_paths(g):
        log = AuditLog(path, codec, _checkpoint_dir(g), g.config.audit.fsync)
        counts["audit_lines"] += log.reencrypt(codec)  # holds the log's lock: no concurrent append is lost
    counts["drafts"] = g.reviews.reencrypt(codec)
    counts["quarantined"] = g.quarantine.reencrypt(codec)
    return counts
