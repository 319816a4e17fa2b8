"""The authoritative cross-process ACL of every chunk of one tenant (embedded Chroma).

An embedded Chroma reader keeps in-process state (segments, caches) that can lag behind another process's
writes; it was seen to keep serving a revoked ACL after the writer finished. This store makes that harmless:
one SQLite row per chunk id (``<state dir>/acl/gw-<tenant>.sqlite``, WAL, :mod:`groundwire.stores` style)
holding the chunk's allow and deny principals, which :class:`groundwire.index.TenantIndex` re-checks for every
chunk a read returns.

Invariants:
- Write order (by :class:`~groundwire.index.TenantIndex`, holding :meth:`AclStore.writing`, a cross-process
  file lock, across the whole write): *before* the Chroma write, each affected row is narrowed to the meet of
  its old and new ACL (allow = old ∩ new, deny = old ∪ new) or deleted (deletions); *after* it, rows are set to
  the new ACL (new chunks get their row only then). So at every instant the row grants nobody whom the old or
  the new Chroma row denies, and during a write only users both versions allow.
- Read rule: a chunk is returned only when its row exists and grants the user, *and* Chroma's own metadata
  grants the user; the returned chunk's ACL is the meet of both, so later re-checks (the ``access`` plugin,
  review) use the stricter one. A missing row is "not readable" (fail closed).
- Crash recovery: narrowing before a Chroma write marks the store *interrupted* (``meta.dirty``, in the
  same transaction); :meth:`AclStore.put`, :meth:`AclStore.fill` and the end of a successful write
  (:meth:`AclStore.settled`) clear it. A writer killed between its Chroma write and its ``put`` leaves the
  mark, so the next writer (holding the lock) re-fills the store from Chroma before it writes; otherwise a
  row would stay at the meet (or a new chunk rowless) for good, since the resumed sync finds Chroma already
  current and skips the document. Deletions do not mark it (one more fsync-ed commit per deleted document
  otherwise): a kill between the store's and Chroma's delete leaves rows Chroma still has, and the resumed
  sync deletes that document again (known limit: unless its file came back unchanged meanwhile; it then
  stays unreadable, failing closed, until it changes).
- A store created beside an existing collection is filled from Chroma once (:meth:`AclStore.complete` false),
  under the same lock, by the first process that uses the tenant (its client reopened first if another
  process wrote since it last looked; known limit: that one-time copy trusts its Chroma view).
"""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from .freshness import flock
from .stores.sqlite import Migration, SqliteStore

__all__ = ["Acl", "AclStore", "meet", "permits"]

Acl = tuple[frozenset[str], frozenset[str]]  # (allow, deny)

_V1 = Migration(1, (
    """CREATE TABLE IF NOT EXISTS chunk_acl (
        chunk_id TEXT PRIMARY KEY,
        doc_key TEXT NOT NULL,
        connector TEXT NOT NULL,
        allow TEXT NOT NULL,
        deny TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS chunk_acl_doc ON chunk_acl (doc_key)",
    "CREATE INDEX IF NOT EXISTS chunk_acl_connector ON chunk_acl (connector)",
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
))
_IN = 500
_DIRTY = "INSERT OR REPLACE INTO meta (key, value) VALUES ('dirty', '1')"
_CLEAN = "DELETE FROM meta WHERE key = 'dirty'"


def meet(a: Acl, b: Acl) -> Acl:
    """The ACL that grants exactly the users both ``a`` and ``b`` grant (or fewer: never more)."""
    return a[0] & b[0], a[1] | b[1]


def permits(acl: Acl, principals: Iterable[str]) -> bool:
    ps = set(principals)
    return bool(ps & acl[0]) and not ps & acl[1]


def _enc(values: Iterable[str]) -> str:
    return json.dumps(sorted(values))


@functools.lru_cache(maxsize=4096)  # ACL lists repeat across the chunks of a document and a tenant
def _dec(text: str) -> frozenset[str]:
    return frozenset(str(v) for v in json.loads(text))


class AclStore(SqliteStore):
    """Chunk id -> (doc key, connector, allow, deny) of one tenant; see the module docstring."""

    what = "the chunk ACL store"
    migrations = (_V1,)

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self._complete = False

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """The cross-process lock every index write (and the one-time fill) holds from its first store
        update to its last."""
        with flock(self.path.with_name(self.path.name + ".lock")):
            yield

    # --- the one-time fill ---------------------------------------------------------------------------

    def complete(self) -> bool:
        if self._complete:
            return True
        with self.connect() as db:
            row = db.execute("SELECT value FROM meta WHERE key = 'complete'").fetchone()
        self._complete = row is not None
        return self._complete

    def fill(self, rows: Sequence[tuple[str, str, str, Acl]]) -> None:
        """Replace every row by ``rows`` (id, doc key, connector, ACL) and mark the store complete."""
        with self.transaction() as db:
            db.execute("DELETE FROM chunk_acl")
            self._insert(db, rows)
            db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('complete', '1')")
            db.execute(_CLEAN)
        self._complete = True

    def interrupted(self) -> bool:
        """True when a writer changed rows before its Chroma write and did not finish (see the module
        docstring)."""
        with self.connect() as db:
            return db.execute("SELECT 1 FROM meta WHERE key = 'dirty'").fetchone() is not None

    def settled(self) -> None:
        """A write (store and Chroma) completed: clear the interrupted mark if :meth:`put` did not."""
        if self.interrupted():
            with self.transaction() as db:
                db.execute(_CLEAN)

    def fill_narrowed(self, rows: Sequence[tuple[str, str, str, Acl]]) -> None:
        """Before switching to a rebuilt collection holding ``rows``: rows it lacks are deleted, the others
        narrowed to meet(old, new); :meth:`fill` after the switch sets them."""
        new = {cid: acl for cid, _, _, acl in rows}
        with self.connect() as db:
            have = [str(r[0]) for r in db.execute("SELECT chunk_id FROM chunk_acl")]
        self.delete(ids=[cid for cid in have if cid not in new])
        self.narrow(new)

    # --- reads ---------------------------------------------------------------------------------------

    def get(self, ids: Sequence[str]) -> dict[str, Acl]:
        out: dict[str, Acl] = {}
        with self.connect() as db:
            for i in range(0, len(ids), _IN):
                part = list(ids[i : i + _IN])
                q = f"SELECT chunk_id, allow, deny FROM chunk_acl WHERE chunk_id IN ({', '.join('?' * len(part))})"
                for cid, allow, deny in db.execute(q, part):
                    out[str(cid)] = (_dec(allow), _dec(deny))
        return out

    # --- writes (callers hold writing()) -------------------------------------------------------------

    @staticmethod
    def _insert(db: object, rows: Sequence[tuple[str, str, str, Acl]]) -> None:
        db.executemany(  # type: ignore[attr-defined]
            "INSERT OR REPLACE INTO chunk_acl (chunk_id, doc_key, connector, allow, deny) VALUES (?, ?, ?, ?, ?)",
            [(cid, key, conn, _enc(acl[0]), _enc(acl[1])) for cid, key, conn, acl in rows],
        )

    def put(self, rows: Sequence[tuple[str, str, str, Acl]]) -> None:
        """Set these rows (after a Chroma write); the narrowing before it is complete."""
        with self.transaction() as db:
            self._insert(db, rows)
            db.execute(_CLEAN)

    def narrow(self, new: dict[str, Acl]) -> None:
        """Before a Chroma write: every existing row among ``new``'s ids becomes meet(old, new); absent ids
        stay absent (a new chunk is readable only once :meth:`put` ran)."""
        if not new:
            return
        old = self.get(list(new))
        with self.transaction() as db:
            db.execute(_DIRTY)  # also for new ids: a kill after the Chroma write would leave them rowless
            db.executemany(
                "UPDATE chunk_acl SET allow = ?, deny = ? WHERE chunk_id = ?",
                [(_enc(m[0]), _enc(m[1]), cid) for cid, acl in old.items() for m in [meet(acl, new[cid])]],
            )

    def narrow_docs(self, doc_key: str, acl: Acl) -> list[str]:
        """Before an ACL-only update of a document: its rows become meet(old, acl). Returns their ids."""
        with self.transaction() as db:
            rows = db.execute("SELECT chunk_id, allow, deny FROM chunk_acl WHERE doc_key = ?", (doc_key,)).fetchall()
            if rows:
                db.execute(_DIRTY)
            for cid, allow, deny in rows:
                m = meet((_dec(allow), _dec(deny)), acl)
                db.execute("UPDATE chunk_acl SET allow = ?, deny = ? WHERE chunk_id = ?", (_enc(m[0]), _enc(m[1]), cid))
        return [str(r[0]) for r in rows]

    def delete(self, ids: Sequence[str] = (), doc_keys: Sequence[str] = (), connector: str | None = None,
               everything: bool = False) -> None:
        """Before a Chroma delete: these rows go (so the chunks are unreadable from now on)."""
        with self.transaction() as db:
            if everything:
                db.execute("DELETE FROM chunk_acl")
            if connector is not None:
                db.execute("DELETE FROM chunk_acl WHERE connector = ?", (connector,))
            for column, values in (("chunk_id", ids), ("doc_key", doc_keys)):
                for i in range(0, len(values), _IN):
                    part = list(values[i : i + _IN])
                    db.execute(f"DELETE FROM chunk_acl WHERE {column} IN ({', '.join('?' * len(part))})", part)
