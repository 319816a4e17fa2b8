"""The audit event passed to ``record_event``: ids and decisions, never document text by default."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .models import utcnow

__all__ = ["AuditEvent"]


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One auditable thing that happened.

    :param kind: ``request``, ``feature_denied``, ``prompt_blocked``, ``review``, ``sync``, ...
    :param tenant: the tenant it happened in
    :param actor: the user id (or ``system`` for syncs)
    :param data: ids, verdicts, counts and latencies; prompt/draft text only if configured
    """

    kind: str
    tenant: str
    actor: str
    request_id: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    at: datetime = field(default_factory=utcnow)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "tenant": self.tenant,
            "actor": self.actor,
            "request_id": self.request_id,
            "at": self.at.isoformat(),
            "data": self.data,
        }
