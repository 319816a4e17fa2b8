"""SQLite plumbing shared by the stores: WAL, busy timeouts, schema versions with migrations, closed
connections, and one error type for a full disk, a read-only directory or a corrupt file.

Invariants:
- Every connection is opened and closed by :meth:`SqliteStore.connect` / :meth:`SqliteStore.transaction`
  (context managers); none outlives the call that needed it, except one idle *keeper* per store object
  (opened after the first successful connection, never running a statement after its first read, so it
  holds no lock): SQLite checkpoints the WAL into the database and fsyncs it whenever the last connection
  to a file closes, which doubled the cost of each durable write (the commit's fsync, then the checkpoint's).
  With the keeper open, SQLite's automatic checkpoint (every 1000 WAL pages) does that work instead.
  Durability is unchanged: a commit is in the fsynced WAL before it returns (``synchronous = FULL``).
- The database is in WAL mode (readers never block the writer, and vice versa) with a busy timeout, so
  concurrent processes wait for each other instead of failing with "database is locked".
- ``PRAGMA user_version`` is the schema version. Migrations run in order inside one ``BEGIN IMMEDIATE``
  transaction (two processes opening a new database migrate it once); a database from a newer version is
  refused with a message.
- Every :class:`sqlite3.Error` that is about the file (disk full, read-only, corrupt, locked past the
  timeout) becomes a :class:`~groundwire.errors.StorageError` naming the file and what to do.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..errors import StorageError, storage_error

__all__ = ["Migration", "SqliteStore", "sqlite_error"]

BUSY_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class Migration:
    """Statements that bring the schema from ``version - 1`` to ``version``."""

    version: int
    statements: Sequence[str]


def sqlite_error(what: str, path: Path, exc: sqlite3.Error) -> StorageError:
    """The :class:`StorageError` for ``exc`` on the database ``path``."""
    msg = str(exc).lower()
    if "disk is full" in msg or ("disk i/o" in msg and _full(path)):
        return storage_error(what, path, OSError(errno.ENOSPC, "No space left on device"))
    if "disk i/o" in msg:  # SQLITE_IOERR with space left: e.g. a file size limit (ulimit -f); errno lost in SQLite
        return storage_error(what, path, OSError(errno.EIO, "disk I/O error"))
    if "readonly" in msg or "read-only" in msg or ("unable to open" in msg and _read_only(path)):
        return storage_error(what, path, OSError(errno.EROFS, "read-only"))
    if "unable to open" in msg:
        parent = path.parent
        code = errno.EACCES if parent.exists() and not os.access(parent, os.W_OK) else errno.ENOENT
        return storage_error(what, path, OSError(code, os.strerror(code)))
    if "not a database" in msg or "malformed" in msg:
        return StorageError(
            what, path, f"the file is corrupt ({exc}); move it aside (e.g. rename it to {path.name}.corrupt) "
            "and restart, which creates an empty one; restore it from a backup to keep its contents"
        )
    if "locked" in msg or "busy" in msg:
        return StorageError(what, path, f"another process held it for more than {BUSY_TIMEOUT_S:.0f} s ({exc})")
    return StorageError(what, path, exc)


def _read_only(path: Path) -> bool:
    try:
        return bool(os.statvfs(path.parent).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _full(path: Path) -> bool:
    try:
        st = os.statvfs(path.parent)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < 64 * 1024


class SqliteStore:
    """A SQLite database file with a versioned schema. Subclasses set ``what`` and ``migrations``."""

    what = "a database"
    migrations: Sequence[Migration] = ()

    def __init__(self, path: Path) -> None:
        self.path = path
        self._keeper: sqlite3.Connection | None = None
        self._keeper_lock = threading.Lock()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise storage_error(self.what, path, exc) from exc
        self._migrate()

    @property
    def version(self) -> int:
        return max((m.version for m in self.migrations), default=0)

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        try:
            db.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        except BaseException:
            db.close()
            raise
        return db

    def _migrate(self) -> None:
        try:
            db = self._open()
            try:
                if db.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                    db.execute("PRAGMA journal_mode = WAL")
                current = int(db.execute("PRAGMA user_version").fetchone()[0])
                if current == self.version:
                    return
                db.execute("BEGIN IMMEDIATE")
                try:
                    current = int(db.execute("PRAGMA user_version").fetchone()[0])  # another process may have won
                    if current > self.version:
                        raise StorageError(
                            self.what, self.path, f"its schema version {current} is newer than this Groundwire's "
                            f"({self.version}); upgrade Groundwire"
                        )
                    for m in sorted(self.migrations, key=lambda m: m.version):
                        if m.version > current:
                            for stmt in m.statements:
                                db.execute(stmt)
                            db.execute(f"PRAGMA user_version = {int(m.version)}")
                    db.execute("COMMIT")
                except BaseException:
                    if db.in_transaction:
                        db.execute("ROLLBACK")
                    raise
            finally:
                db.close()
        except sqlite3.Error as exc:
            raise sqlite_error(self.what, self.path, exc) from exc

    @contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        """A connection in autocommit mode, closed on exit; sqlite errors become :class:`StorageError`."""
        try:
            db = self._open()
        except sqlite3.Error as exc:
            raise sqlite_error(self.what, self.path, exc) from exc
        if self._keeper is None:
            self._keep_open()
        try:
            yield db
        except sqlite3.Error as exc:
            raise sqlite_error(self.what, self.path, exc) from exc
        finally:
            db.close()

    def _keep_open(self) -> None:
        """Open the idle keeper connection (see the module docstring); best effort: without it every write
        only costs one more fsync."""
        with self._keeper_lock:
            if self._keeper is not None:
                return
            try:
                keeper = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
                keeper.execute("PRAGMA user_version").fetchone()  # a read: maps the WAL index, then idles
            except sqlite3.Error:
                return
            self._keeper = keeper

    def close(self) -> None:
        """Close the keeper connection (the store stays usable; the next call opens it again)."""
        with self._keeper_lock:
            keeper, self._keeper = self._keeper, None
        if keeper is not None:
            keeper.close()

    def purge(self, sql: str, args: Sequence[object]) -> int:
        """Run one DELETE so that nothing of the deleted rows stays in the files: ``secure_delete`` zeroes
        the freed cells, VACUUM rewrites the database without free pages, and a TRUNCATE checkpoint empties
        the ``-wal`` file (which held the old page images). Returns the number of rows deleted."""
        with self.connect() as db:
            db.execute("PRAGMA secure_delete = ON")
            db.execute("BEGIN IMMEDIATE")
            try:
                n = db.execute(sql, list(args)).rowcount
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
            db.execute("VACUUM")
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return int(n)

    def delete_rows_before(
        self, table: str, column: str, before: str, dry_run: bool = False
    ) -> dict[tuple[str, str], int]:
        """Delete (or, in a dry run, count) the rows of ``table`` whose ``column`` (an ISO time in the stored UTC
        format) is before ``before``, in one transaction. Returns counts per ``(tenant, status)``. ``table`` and
        ``column`` are the store's own identifiers (constants of its subclass), never user input."""
        where = f"FROM {table} WHERE {column} < ?"
        with self.transaction() as db:
            rows = db.execute(f"SELECT tenant, status, COUNT(*) {where} GROUP BY tenant, status", (before,)).fetchall()
            if not dry_run:
                db.execute(f"DELETE {where}", (before,))
        return {(str(t), str(s)): int(n) for t, s, n in rows}

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (``BEGIN IMMEDIATE``: serialised across processes), committed on success and
        rolled back on any exception."""
        with self.connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    try:
                        db.execute("ROLLBACK")
                    except sqlite3.Error:
                        pass
                raise
