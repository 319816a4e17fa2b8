"""The rows of the review queue: one SQLite row per draft (``<data_dir>/reviews.sqlite3``).

In clear: id, tenant, request id, author, status, times. The rest (``body``: prompt, draft, sources, history,
whatever the review workflow keeps) is one JSON payload passed through the at-rest codec of the draft's tenant
(its data key, :mod:`groundwire.datakeys`) with associated data ``review:<draft id>``. The store neither
interprets the body nor knows the rules of reviewing (:mod:`groundwire.review` does).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..datakeys import tenant_codec
from .sqlite import Migration, SqliteStore

__all__ = ["DraftRow", "DraftStore"]

_V1 = Migration(1, (
    """CREATE TABLE IF NOT EXISTS drafts (
        id TEXT PRIMARY KEY,
        tenant TEXT NOT NULL,
        request_id TEXT NOT NULL,
        author TEXT NOT NULL,
        status TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        payload TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS drafts_tenant_status ON drafts (tenant, status)",
))


@dataclass(slots=True)
class DraftRow:
    """One stored draft; ``body`` is the decrypted payload (empty in listings)."""

    id: str
    tenant: str
    author: str
    status: str
    created_at: str
    updated_at: str
    body: dict[str, Any] = field(default_factory=dict)


class DraftStore(SqliteStore):
    """Draft rows. ``codec`` returns the at-rest codec when a payload is first encoded or decoded (so
    listing needs no key)."""

    what = "the review store"
    migrations = (_V1,)

    def __init__(self, path: Path, codec: Callable[[], Any]) -> None:
        self._codec = codec
        super().__init__(path)

    @staticmethod
    def aad(draft_id: str) -> str:
        return f"review:{draft_id}"

    def _encode(self, tenant: str, draft_id: str, body: dict[str, Any]) -> str:
        codec = tenant_codec(self._codec(), tenant)
        return str(codec.encode(json.dumps(body, ensure_ascii=False), self.aad(draft_id)))

    def insert(self, row: DraftRow, request_id: str) -> None:
        with self.connect() as db:
            db.execute(
                "INSERT INTO drafts VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (row.id, row.tenant, request_id, row.author, row.status, row.created_at, row.updated_at,
                 self._encode(row.tenant, row.id, row.body)),
            )

    def load(self, draft_id: str) -> DraftRow | None:
        with self.connect() as db:
            r = db.execute(
                "SELECT id, tenant, author, status, created_at, updated_at, payload FROM drafts WHERE id = ?",
                (draft_id,),
            ).fetchone()
        if r is None:
            return None
        body = json.loads(tenant_codec(self._codec(), r[1]).decode(r[6], self.aad(r[0])))
        return DraftRow(r[0], r[1], r[2], r[3], r[4], r[5], body)

    def update(self, row: DraftRow, previous_status: str) -> bool:
        """Store ``row`` if its status is still ``previous_status``; False if another writer changed it."""
        with self.connect() as db:
            cur = db.execute(
                "UPDATE drafts SET status = ?, updated_at = ?, payload = ? WHERE id = ? AND status = ?",
                (row.status, row.updated_at, self._encode(row.tenant, row.id, row.body), row.id, previous_status),
            )
        return cur.rowcount == 1

    def list(self, tenant: str, status: str | None = None) -> list[DraftRow]:
        """Rows of ``tenant`` without bodies, newest first."""
        sql = "SELECT id, tenant, author, status, created_at, updated_at FROM drafts WHERE tenant = ?"
        args: list[str] = [tenant]
        if status:
            sql += " AND status = ?"
            args.append(status)
        with self.connect() as db:
            rows = db.execute(sql + " ORDER BY created_at DESC", args).fetchall()
        return [DraftRow(*r) for r in rows]


    def count(self, tenant: str, status: str | None = None) -> int:
        """How many rows ``tenant`` has (optionally in ``status``)."""
        sql, args = "SELECT COUNT(*) FROM drafts WHERE tenant = ?", [tenant]
        if status:
            sql += " AND status = ?"
            args.append(status)
        with self.connect() as db:
            return int(db.execute(sql, args).fetchone()[0])

    def delete_before(self, before: str, dry_run: bool = False) -> dict[tuple[str, str], int]:
        """Delete (or, in a dry run, count) the rows last updated before ``before`` (an ISO time); counts per
        ``(tenant, status)``."""
        return self.delete_rows_before("drafts", "updated_at", before, dry_run)

    def sample(self) -> tuple[str, str] | None:
        """``(associated data, payload)`` of the newest row, to check that the keyring can read this store."""
        with self.connect() as db:
            r = db.execute("SELECT id, payload FROM drafts ORDER BY updated_at DESC LIMIT 1").fetchone()
        return None if r is None else (self.aad(str(r[0])), str(r[1]))

    def reencrypt(self, codec: Any) -> int:
        """Re-encrypt every payload with ``codec``'s current key, in one transaction. Returns the count."""
        with self.transaction() as db:
            rows = db.execute("SELECT id, tenant, payload FROM drafts").fetchall()
            for did, tenant, payload in rows:
                tc = tenant_codec(codec, tenant)  # a payload under the master key moves to the tenant's data key
                plain = tc.decode(payload, self.aad(did))
                db.execute("UPDATE drafts SET payload = ? WHERE id = ?", (tc.encode(plain, self.aad(did)), did))
        return len(rows)

    def delete_tenant(self, tenant: str) -> int:
        """Delete every row of ``tenant`` (a purge), leaving nothing of them in the files. Returns the count."""
        return self.purge("DELETE FROM drafts WHERE tenant = ?", (tenant,))
