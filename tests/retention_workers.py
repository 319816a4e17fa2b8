"""Worker run in separate processes (multiprocessing ``spawn``) by the retention concurrency test."""

from __future__ import annotations

from pathlib import Path

from groundwire.audit import AuditLog
from groundwire.models import utcnow


def append_now(path: str, worker: str, n: int) -> int:
    """Append ``n`` events stamped now (so retention never removes them), each with a unique request id."""
    log = AuditLog(Path(path), None, fsync=False)
    for i in range(n):
        log.append({"kind": "test", "tenant": "t", "actor": worker, "request_id": f"{worker}-{i}",
                    "at": utcnow().isoformat(), "data": {"i": i}})
    return n
