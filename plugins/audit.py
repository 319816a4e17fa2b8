"""The built-in audit log: append-only JSON lines per tenant, each line hash-chained to the previous.

``<data_dir>/audit/<tenant>.jsonl``; every line is ``{"seq", "prev", "hash", "event"}`` where
``hash = sha256(prev + canonical json of event)``. Editing, removing or reordering a line breaks the chain,
removing lines from the end contradicts the keyed checkpoint (see ``groundwire.audit.verify_log``).
Appends from any number of processes are serialised by a file lock; a record that cannot be written
raises ``AuditWriteError``, which fails the request (no draft without its audit record).
Events carry ids, verdicts and counts, not document text.
With ``[encryption] enabled`` the event is stored AES-GCM-encrypted (``enc``), seq/prev/hash in clear.
"""

from __future__ import annotations

import threading
from pathlib import Path

from groundwire import GroundwireConfig, hookimpl
from groundwire.audit import AuditLog
from groundwire.audit_event import AuditEvent
from groundwire.crypto import codec_for

_LOGS: dict[Path, AuditLog] = {}
_LOCK = threading.Lock()


def log_for(config: GroundwireConfig, tenant: str) -> AuditLog:
    """The (cached) log of ``tenant``, with the codec, checkpoint place and fsync policy of ``config``."""
    path = config.data_path / "audit" / f"{tenant or '_system'}.jsonl"
    codec = codec_for(config)
    ckpt = config.resolve(config.audit.checkpoint_dir) if config.audit.checkpoint_dir else None
    with _LOCK:
        log = _LOGS.get(path)
        if log is None:
            log = _LOGS[path] = AuditLog(path, codec, ckpt, config.audit.fsync)
        log.codec = codec if codec.name != "identity" else None
        log.checkpoint_dir, log.fsync = ckpt, config.audit.fsync
        return log


@hookimpl
def record_event(event: AuditEvent, config: GroundwireConfig) -> None:
    log_for(config, event.tenant).append(event.to_dict())
