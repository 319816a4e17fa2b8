"""Connector state files of ingestion (see :class:`StateStore`)."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .atomic import atomic_write
from .errors import storage_error

__all__ = ["StateStore"]

log = logging.getLogger("groundwire.ingest")


class StateStore:
    """Connector state files under ``<data_dir>/state/<tenant>/<connector>.json``.

    Invariants: a file is replaced atomically (temp file + fsync + rename + directory fsync), so a crash
    leaves the old state or the new one, never a torn file. Each file also records which index data the
    state describes (``{"format": 2, "index": {"collection", "documents"}, "state": {...}}``);
    :meth:`load_for` returns an empty state (a full sync) when that index data is gone, so a delta token
    never says "no changes" about documents the index no longer holds. A write that fails raises
    :class:`~groundwire.errors.StorageError` (naming disk space when the disk is full).
    """

    FORMAT = 2

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, tenant: str, connector: str) -> Path:
        return self.root / tenant / f"{connector}.json"

    def _read(self, tenant: str, connector: str) -> tuple[dict[str, Any], dict[str, Any] | None]:
        p = self.path(tenant, connector)
        if not p.exists():
            return {}, None
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            log.warning("state file %s is unreadable (%s); doing a full sync of %s", p, exc, connector)
            return {}, None
        if not isinstance(data, dict):
            return {}, None
        if data.get("format") == self.FORMAT and isinstance(data.get("state"), dict):
            marker = data.get("index")
            return dict(data["state"]), dict(marker) if isinstance(marker, dict) else None
        return data, None  # format 1: the bare connector state, no index marker

    def load(self, tenant: str, connector: str) -> dict[str, Any]:
        """The saved connector state (empty: none, or unreadable)."""
        return self._read(tenant, connector)[0]

    def load_for(self, tenant: str, connector: str, collection: str, documents: int) -> dict[str, Any]:
        """The saved state if the index still holds what it describes, else ``{}`` (and the file removed).

        :param collection: the id of the tenant's collection now (a deleted or rebuilt index has a new one)
        :param documents: how many documents of ``connector`` the index holds now
        """
        state, marker = self._read(tenant, connector)
        if not state:
            return state
        if marker is None:
            stale = documents == 0  # format 1: only a state over an empty index is known to be stale
        else:
            stale = str(marker.get("collection", "")) != collection or (
                int(marker.get("documents", 0)) > 0 and documents == 0
            )
        if stale:
            log.warning("the index no longer holds the documents the saved state of %s/%s describes; "
                        "doing a full sync", tenant, connector)
            self.clear(tenant, connector)
            return {}
        return state

    def save(
        self, tenant: str, connector: str, state: Mapping[str, Any], collection: str = "", documents: int = 0
    ) -> None:
        p = self.path(tenant, connector)
        body = {"format": self.FORMAT, "index": {"collection": collection, "documents": documents},
                "state": dict(state)}
        try:
            atomic_write(p, json.dumps(body))  # durable: file and folder entry flushed
        except OSError as exc:
            raise storage_error(f"the sync state of connector {connector!r}", p, exc) from exc

    def clear(self, tenant: str, connector: str) -> None:
        self.path(tenant, connector).unlink(missing_ok=True)
