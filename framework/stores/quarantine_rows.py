"""The rows of the quarantine: one SQLite row per (tenant, chunk id) (``<data_dir>/quarantine.sqlite``).

In clear: the columns of :data:`CLEAR` (tenant, chunk id, connector, plugin, score, times, hits, status,
who released it). ``body`` (document id, reason, text hash, note) is one JSON payload passed through the
at-rest codec of the row's tenant (its data key, :mod:`groundwire.datakeys`) with associated data
``quarantine:<tenant>:<chunk id>``. The rules (what is withheld, what a release means) live in
:mod:`groundwire.quarantine`; this module only stores rows.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..datakeys import tenant_codec
from .sqlite import Migration, SqliteStore

__all__ = ["CLEAR", "QuarantineRows", "Row"]

CLEAR = ("tenant", "chunk_id", "connector", "plugin", "score", "first_seen", "last_seen", "hits", "status",
         "released_by", "released_at")
_COLUMNS = ", ".join((*CLEAR, "payload"))
Row = tuple[tuple[Any, ...], dict[str, Any]]  # (values of CLEAR, decrypted body)

_V1 = Migration(1, (
    """CREATE TABLE IF NOT EXISTS quarantine (
        tenant TEXT NOT NULL,
        chunk_id TEXT NOT NULL,
        connector TEXT NOT NULL,
        plugin TEXT NOT NULL,
        score REAL NOT NULL,
        first_seen TEXT NOT NULL,
        last_seen TEXT NOT NULL,
        hits INTEGER NOT NULL,
        status TEXT NOT NULL,
        released_by TEXT NOT NULL DEFAULT '',
        released_at TEXT NOT NULL DEFAULT '',
        payload TEXT NOT NULL,
        PRIMARY KEY (tenant, chunk_id)
    )""",
    "CREATE INDEX IF NOT EXISTS quarantine_tenant_status ON quarantine (tenant, status)",
))


class QuarantineRows(SqliteStore):
    """Quarantine rows; ``codec`` returns the at-rest codec when a payload is first encoded or decoded."""

    what = "the quarantine store"
    migrations = (_V1,)

    def __init__(self, path: Path, codec: Callable[[], Any]) -> None:
        self._codec = codec
        super().__init__(path)

    @staticmethod
    def aad(tenant: str, chunk_id: str) -> str:
        return f"quarantine:{tenant}:{chunk_id}"

    def _row(self, r: Sequence[Any]) -> Row:
        return tuple(r[: len(CLEAR)]), json.loads(
            tenant_codec(self._codec(), r[0]).decode(r[len(CLEAR)], self.aad(r[0], r[1])))

    def put(self, db: sqlite3.Connection, values: Sequence[Any], body: dict[str, Any]) -> None:
        """Insert or replace one row (``values`` in the order of :data:`CLEAR`) inside ``db``'s transaction."""
        codec = tenant_codec(self._codec(), values[0])
        payload = codec.encode(json.dumps(body, ensure_ascii=False), self.aad(values[0], values[1]))
        db.execute(f"INSERT OR REPLACE INTO quarantine ({_COLUMNS}) VALUES ({', '.join('?' * 12)})",
                   (*values, payload))

    def get(self, db: sqlite3.Connection, tenant: str, chunk_id: str) -> Row | None:
        r = db.execute(
            f"SELECT {_COLUMNS} FROM quarantine WHERE tenant = ? AND chunk_id = ?", (tenant, chunk_id)
        ).fetchone()
        return None if r is None else self._row(r)

    def select(self, where: str, args: Sequence[Any], order: str = "") -> list[Row]:
        """Rows matching ``where`` (a fixed SQL condition with ``?`` placeholders, never user text)."""
        with self.connect() as db:
            rows = db.execute(f"SELECT {_COLUMNS} FROM quarantine WHERE {where} {order}", list(args)).fetchall()
        return [self._row(r) for r in rows]

    def hit(self, tenant: str, chunk_ids: Sequence[str], now: str, status: str) -> None:
        with self.transaction() as db:
            db.executemany(
                "UPDATE quarantine SET hits = hits + 1, last_seen = ? WHERE tenant = ? AND chunk_id = ? "
                "AND status = ?",
                [(now, tenant, cid, status) for cid in chunk_ids],
            )

    def delete_before(self, before: str, dry_run: bool = False) -> dict[tuple[str, str], int]:
        """Delete (or, in a dry run, count) the rows last seen before ``before`` (an ISO time); counts per
        ``(tenant, status)``."""
        return self.delete_rows_before("quarantine", "last_seen", before, dry_run)

    def sample(self) -> tuple[str, str] | None:
        """``(associated data, payload)`` of the most recently seen row, to check the keyring can read it."""
        with self.connect() as db:
            r = db.execute("SELECT tenant, chunk_id, payload FROM quarantine ORDER BY last_seen DESC LIMIT 1"
                           ).fetchone()
        return None if r is None else (self.aad(r[0], r[1]), str(r[2]))

    def reencrypt(self, codec: Any) -> int:
        """Re-encrypt every payload with ``codec``'s current key, in one transaction. Returns the count."""
        with self.transaction() as db:
            rows = db.execute("SELECT tenant, chunk_id, payload FROM quarantine").fetchall()
            for tenant, cid, payload in rows:
                aad, tc = self.aad(tenant, cid), tenant_codec(codec, tenant)
                db.execute(
                    "UPDATE quarantine SET payload = ? WHERE tenant = ? AND chunk_id = ?",
                    (tc.encode(tc.decode(payload, aad), aad), tenant, cid),
                )
        return len(rows)

    def delete_tenant(self, tenant: str) -> int:
        """Delete every row of ``tenant`` (a purge), leaving nothing of them in the files. Returns the count."""
        return self.purge("DELETE FROM quarantine WHERE tenant = ?", (tenant,))
