"""The quarantine: retrieved chunks that a ``screen_documents`` plugin marked ``quarantine`` are kept aside,
per tenant, until an administrator releases them.

Storage: SQLite at ``<data_dir>/quarantine.sqlite``, one row per (tenant, chunk id). In clear: tenant, chunk
id, connector, plugin, score, times, hit count, status and who released it. Passed through the at-rest
codec (AES-GCM with associated data ``quarantine:<tenant>:<chunk id>`` when encryption is enabled): the
document id, the plugin's reason, the SHA-256 of the chunk text and the release note.

Rules the pipeline applies (:meth:`QuarantineStore.apply`), after the access re-check, so only chunks the
user may read are ever looked up:

- A chunk stored as ``quarantined`` whose current text has the stored hash is withheld at once, without
  screening it again; the draft carries a ``quarantine`` verdict for it and its hit count goes up.
- A ``quarantine`` verdict for any other chunk records it (first time for this chunk and text: a
  ``chunk_quarantined`` audit event) and withholds it.
- A chunk an administrator *released*, with the same text, is no longer withheld by ``quarantine``
  verdicts: each such verdict stays on the draft for the reviewer, turned into a ``flag`` verdict (same
  plugin, score and target; the reason says it was released). ``drop`` verdicts still withhold it.
- A release applies only to the exact text released: when the chunk's text changes, the next
  ``quarantine`` verdict records it as quarantined again.

Reasons come from the screening plugins, whose contract is never to quote document text; they are stored
truncated to 500 characters. Audit events carry ids only. Listing and releasing need the ``quarantine_admin``
feature (``[features] quarantine_admin = ["security-admin"]``); a refusal is audited as ``feature_denied``.
An administrator sees and releases only entries whose chunk they can read now (index pre-filter and ACL
re-check, as for a request); for any other chunk id, release fails exactly as for an unknown id.
"""

from __future__ import annotations

import builtins
import dataclasses
import hashlib
import json
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .audit_event import AuditEvent
from .errors import FeatureDisabled, GroundwireError
from .models import Action, Chunk, GroundingRequest, UserContext, Verdict, utcnow

if TYPE_CHECKING:
    from .pipeline import Grounder

__all__ = [
    "ADMIN_FEATURE",
    "QUARANTINED",
    "RELEASED",
    "QuarantineEntry",
    "QuarantineNotFound",
    "QuarantineStateError",
    "QuarantineStore",
    "text_hash",
]

ADMIN_FEATURE = "quarantine_admin"
QUARANTINED = "quarantined"
RELEASED = "released"
PLUGIN = "quarantine"
_REASON_MAX = 500

_SCHEMA = """
CREATE TABLE IF NOT EXISTS quarantine (
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
);
CREATE INDEX IF NOT EXISTS quarantine_tenant_status ON quarantine (tenant, status);
"""
_COLUMNS = (
    "tenant, chunk_id, connector, plugin, score, first_seen, last_seen, hits, status, released_by, released_at, "
    "payload"
)


class QuarantineNotFound(GroundwireError):
    """No quarantine entry with this chunk id in the caller's tenant."""


class QuarantineStateError(GroundwireError):
    """The entry is not in a state that allows this (e.g. already released)."""


def text_hash(text: str) -> str:
    """SHA-256 of a chunk's text: a release applies only to the text it was made for."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(slots=True)
class QuarantineEntry:
    """One quarantined (or released) chunk of one tenant. Never holds document text."""

    tenant: str
    chunk_id: str
    doc_id: str
    connector: str
    plugin: str
    reason: str
    score: float
    text_hash: str
    first_seen: str
    last_seen: str
    hits: int
    status: str
    released_by: str = ""
    released_at: str = ""
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class QuarantineStore:
    """Quarantined chunks of one :class:`~groundwire.Grounder`, per tenant."""

    def __init__(self, grounder: Grounder, path: Path | None = None) -> None:
        self.grounder = grounder
        self.path = path or grounder.config.data_path / "quarantine.sqlite"
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = self._connect()
        try:
            db.executescript(_SCHEMA)
        finally:
            db.close()

    @property
    def codec(self) -> Any:
        return self.grounder.codec

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=30, isolation_level=None)

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (``BEGIN IMMEDIATE``: serialised across processes too)."""
        db = self._connect()
        try:
            db.execute("BEGIN IMMEDIATE")
            yield db
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        finally:
            db.close()

    # --- rows ---------------------------------------------------------------------------------------

    @staticmethod
    def _aad(tenant: str, chunk_id: str) -> str:
        return f"quarantine:{tenant}:{chunk_id}"

    def _encode(self, e: QuarantineEntry) -> str:
        body = {"doc_id": e.doc_id, "reason": e.reason, "text_hash": e.text_hash, "note": e.note}
        return str(self.codec.encode(json.dumps(body, ensure_ascii=False), self._aad(e.tenant, e.chunk_id)))

    def _entry(self, row: Sequence[Any]) -> QuarantineEntry:
        body = json.loads(self.codec.decode(row[11], self._aad(row[0], row[1])))
        return QuarantineEntry(
            tenant=row[0], chunk_id=row[1], doc_id=body["doc_id"], connector=row[2], plugin=row[3],
            reason=body["reason"], score=float(row[4]), text_hash=body["text_hash"], first_seen=row[5],
            last_seen=row[6], hits=int(row[7]), status=row[8], released_by=row[9], released_at=row[10],
            note=body["note"],
        )

    def _write(self, db: sqlite3.Connection, e: QuarantineEntry) -> None:
        db.execute(
            f"INSERT OR REPLACE INTO quarantine ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (e.tenant, e.chunk_id, e.connector, e.plugin, e.score, e.first_seen, e.last_seen, e.hits, e.status,
             e.released_by, e.released_at, self._encode(e)),
        )

    def _get(self, db: sqlite3.Connection, tenant: str, chunk_id: str) -> QuarantineEntry | None:
        row = db.execute(
            f"SELECT {_COLUMNS} FROM quarantine WHERE tenant = ? AND chunk_id = ?", (tenant, chunk_id)
        ).fetchone()
        return None if row is None else self._entry(row)

    def get(self, tenant: str, chunk_id: str) -> QuarantineEntry | None:
        """The entry for ``chunk_id`` in ``tenant``, or None."""
        db = self._connect()
        try:
            return self._get(db, tenant, chunk_id)
        finally:
            db.close()

    def list(self, admin_user: UserContext, status: str | None = None) -> builtins.list[QuarantineEntry]:
        """Entries of the administrator's tenant whose chunk they can read (optionally only ``quarantined``
        or ``released``), most recently seen first. Needs the ``quarantine_admin`` feature."""
        self._require_admin(admin_user, "quarantine_list", {})
        entries = self.entries(admin_user.tenant, status)
        readable = self._readable(admin_user, [e.chunk_id for e in entries])
        return [e for e in entries if e.chunk_id in readable]

    def _require_admin(self, admin_user: UserContext, action: str, data: dict[str, Any]) -> None:
        g = self.grounder
        votes = g.pm.hook.feature_allowed(user=admin_user, feature=ADMIN_FEATURE, config=g.config)
        if False in votes or True not in votes:
            g._audit(AuditEvent("feature_denied", admin_user.tenant, admin_user.user_id, data={
                "feature": ADMIN_FEATURE, "roles": sorted(admin_user.roles), "action": action, **data}))
            raise FeatureDisabled(ADMIN_FEATURE, admin_user.roles)

    def _readable(self, user: UserContext, chunk_ids: Sequence[str]) -> set[str]:
        """Those of ``chunk_ids`` that ``user`` can read now (pre-filtered fetch, then the ACL re-check)."""
        g = self.grounder
        connectors = sorted(g.config.connectors_for(user.tenant))
        if not chunk_ids or not connectors:
            return set()
        principals = g.principals(user)
        got = g.index.tenant(user.tenant).get_chunks(builtins.list(dict.fromkeys(chunk_ids)), principals, connectors)
        return {c.id for c in got if c.tenant == user.tenant and c.acl.grants(principals)}

    def entries(self, tenant: str, status: str | None = None) -> builtins.list[QuarantineEntry]:
        """All entries of ``tenant``, unauthorized (for code that already decided who may see them; the
        CLI and apps use :meth:`list`), most recently seen first."""
        if status is not None and status not in (QUARANTINED, RELEASED):
            raise ValueError(f"unknown quarantine status {status!r}: use {QUARANTINED!r} or {RELEASED!r}")
        sql = f"SELECT {_COLUMNS} FROM quarantine WHERE tenant = ?"
        args = [tenant]
        if status:
            sql += " AND status = ?"
            args.append(status)
        db = self._connect()
        try:
            rows = db.execute(sql + " ORDER BY last_seen DESC, chunk_id", args).fetchall()
        finally:
            db.close()
        return [self._entry(r) for r in rows]

    def states(self, tenant: str, chunks: Sequence[Chunk]) -> dict[str, QuarantineEntry]:
        """Entries of those of ``chunks`` that are stored with the hash of their *current* text, by chunk id.
        (An entry recorded for an earlier text of the chunk does not apply.)"""
        if not chunks:
            return {}
        by_id = {c.id: c for c in chunks}
        marks = ", ".join("?" * len(by_id))
        db = self._connect()
        try:
            rows = db.execute(
                f"SELECT {_COLUMNS} FROM quarantine WHERE tenant = ? AND chunk_id IN ({marks})",
                [tenant, *by_id],
            ).fetchall()
        finally:
            db.close()
        entries = (self._entry(row) for row in rows)
        return {e.chunk_id: e for e in entries if e.text_hash == text_hash(by_id[e.chunk_id].text)}

    def reencrypt(self, codec: Any) -> int:
        """Re-encrypt every entry's payload with ``codec`` (key rotation). Returns the count."""
        with self._lock, self._tx() as db:
            rows = db.execute("SELECT tenant, chunk_id, payload FROM quarantine").fetchall()
            for tenant, cid, payload in rows:
                aad = self._aad(tenant, cid)
                db.execute(
                    "UPDATE quarantine SET payload = ? WHERE tenant = ? AND chunk_id = ?",
                    (codec.encode(codec.decode(payload, aad), aad), tenant, cid),
                )
        return len(rows)

    # --- what the pipeline calls --------------------------------------------------------------------

    def apply(
        self,
        request: GroundingRequest,
        chunks: Sequence[Chunk],
        screen: Callable[[builtins.list[Chunk]], builtins.list[Verdict]],
    ) -> tuple[builtins.list[Verdict], set[str]]:
        """Screen the retrieved ``chunks`` of one request through the store and ``screen`` (the
        ``screen_documents`` hook); return the verdicts for the draft and the ids of the chunks to withhold.

        Chunks held as ``quarantined`` (same text) are withheld without being screened again; ``screen`` sees
        the rest. See the module docstring for how released chunks and ``drop`` verdicts are treated.
        """
        tenant = request.user.tenant
        states = self.states(tenant, chunks)
        held = [c for c in chunks if c.id in states and states[c.id].status == QUARANTINED]
        screened = [c for c in chunks if c.id not in {h.id for h in held}]
        verdicts = screen(screened)
        out = [
            Verdict(
                stage="documents", plugin=PLUGIN, action=Action.QUARANTINE, score=states[c.id].score,
                reason=f"held in quarantine since {states[c.id].first_seen[:19]} (quarantined by "
                f"{states[c.id].plugin}); an administrator can release it with 'groundwire quarantine release'",
                target=c.id,
            )
            for c in held
        ]
        withheld = {c.id for c in held}
        if held:
            self._hit(tenant, [c.id for c in held])
        by_id = {c.id: c for c in screened}
        worst: dict[str, Verdict] = {}
        for v in verdicts:
            entry = states.get(v.target)
            if v.action is Action.QUARANTINE and entry is not None and entry.status == RELEASED:
                # Released by an administrator for exactly this text: NOT withheld. The verdict stays on the
                # draft for the reviewer, as a FLAG (same plugin, score and target; the reason says so).
                out.append(dataclasses.replace(
                    v, action=Action.FLAG,
                    reason=f"{v.reason} (released from quarantine by an administrator: not withheld)",
                ))
                continue
            out.append(v)
            if v.action in (Action.DROP, Action.QUARANTINE):  # DROP always withholds, released or not
                withheld.add(v.target)
            if (v.action is Action.QUARANTINE and v.target in by_id
                    and (v.target not in worst or v.score > worst[v.target].score)):
                worst[v.target] = v
        for cid, v in worst.items():
            self._record(request, by_id[cid], v)
        return out, withheld

    def _hit(self, tenant: str, chunk_ids: Sequence[str]) -> None:
        now = utcnow().isoformat()
        with self._lock, self._tx() as db:
            db.executemany(
                "UPDATE quarantine SET hits = hits + 1, last_seen = ? WHERE tenant = ? AND chunk_id = ? "
                "AND status = ?",
                [(now, tenant, cid, QUARANTINED) for cid in chunk_ids],
            )

    def _record(self, request: GroundingRequest, chunk: Chunk, verdict: Verdict) -> None:
        tenant, h, now = request.user.tenant, text_hash(chunk.text), utcnow().isoformat()
        with self._lock, self._tx() as db:
            old = self._get(db, tenant, chunk.id)
            if old is not None and old.text_hash == h:
                if old.status == RELEASED:  # released by another process since this request looked
                    return
                old.hits, old.last_seen = old.hits + 1, now
                self._write(db, old)
                return
            entry = QuarantineEntry(
                tenant=tenant, chunk_id=chunk.id, doc_id=chunk.doc_id, connector=chunk.connector,
                plugin=verdict.plugin, reason=verdict.reason[:_REASON_MAX], score=float(verdict.score),
                text_hash=h, first_seen=now, last_seen=now, hits=1, status=QUARANTINED,
            )
            self._write(db, entry)  # new, or new text: an earlier release no longer applies
        self.grounder._audit(AuditEvent(
            "chunk_quarantined", tenant, request.user.user_id, request.id,
            {"chunk_id": chunk.id, "doc_id": chunk.doc_id, "connector": chunk.connector,
             "plugin": verdict.plugin, "score": float(verdict.score),
             "previous_status": old.status if old is not None else ""},
        ))

    # --- the administrator's decision ---------------------------------------------------------------

    def release(self, chunk_id: str, admin_user: UserContext, note: str = "") -> QuarantineEntry:
        """Release ``chunk_id`` in the administrator's tenant: its current text is no longer withheld by
        ``quarantine`` verdicts. Needs the ``quarantine_admin`` feature for one of the user's roles."""
        g = self.grounder
        tenant = admin_user.tenant
        self._require_admin(admin_user, "quarantine_release", {"chunk_id": chunk_id})
        g.check_config_current()
        not_found = QuarantineNotFound(
            f"no quarantined chunk {chunk_id!r} that you may release in tenant {tenant!r}; "
            f"see 'groundwire quarantine list --by <you> --roles <role> --tenant {tenant}' for the ids you can read"
        )
        readable = chunk_id in self._readable(admin_user, [chunk_id])
        with self._lock, self._tx() as db:
            entry = self._get(db, tenant, chunk_id)
            if entry is None or not readable:
                if entry is not None:
                    g._audit(AuditEvent("quarantine_denied", tenant, admin_user.user_id, data={
                        "chunk_id": chunk_id, "reason": "administrator cannot read the chunk"}))
                raise not_found
            if entry.status == RELEASED:
                raise QuarantineStateError(
                    f"chunk {chunk_id!r} was already released by {entry.released_by} at {entry.released_at}; "
                    "it is quarantined again only if a screening plugin quarantines a changed text"
                )
            entry.status, entry.released_by, entry.released_at = RELEASED, admin_user.user_id, utcnow().isoformat()
            entry.note = note
            self._write(db, entry)
        g._audit(AuditEvent("quarantine_released", tenant, admin_user.user_id, data={
            "chunk_id": chunk_id, "doc_id": entry.doc_id, "connector": entry.connector, "plugin": entry.plugin}))
        return entry
