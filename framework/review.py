"""The review workflow: every draft is persisted as ``pending_review`` and a person approves, edits or
rejects it.

Storage: SQLite at ``<data_dir>/reviews.sqlite3``; ids, tenant, author, status and times in clear, the
draft (text, citations, prompt, source chunk ids and versions, decision history) in one payload passed through the
at-rest codec (AES-GCM with associated data ``review:<draft id>`` when encryption is enabled).

Invariants:
- A reviewer only lists, sees or decides drafts of their own tenant, and only if they can read the exact
  *versions* of every source the draft was built from. Each item stores, per source chunk, the hash of
  what the draft saw (text, title, URI, location, document, connector) and that version's ACL. The chunk
  must still be in the index with the same hash, readable by the reviewer now (pre-filtered fetch, then
  the current ACL) *and* granted to the reviewer by the stored ACL. So a document that was redacted and
  re-shared (same chunk id, new text or wider ACL) does not make the original draft visible. An item
  without stored versions (made before they were recorded) is refused. Otherwise :class:`AccessDenied`,
  whose message does not reveal whether the draft exists; :meth:`ReviewQueue.list` leaves such items out.
- Verdicts about chunks that screening withheld keep their target chunk id only for a reviewer who can
  read that chunk now; for anyone else the target is blanked.
- Every decision (approve / edit / reject) and every refused attempt is audited with the reviewer's id.
- Approved and rejected drafts are final.
"""

from __future__ import annotations

import builtins
import hashlib
import json
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .audit_event import AuditEvent
from .errors import AccessDenied, GroundwireError
from .models import AccessControl, Chunk, Draft, DraftStatus, GroundingRequest, UserContext, utcnow

if TYPE_CHECKING:
    from .pipeline import Grounder

__all__ = ["ReviewItem", "ReviewQueue", "ReviewStateError", "chunk_version"]

_NOT_YOURS = "no draft with this id that you may review"
_OPEN = (DraftStatus.PENDING_REVIEW, DraftStatus.EDITED)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS drafts (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    request_id TEXT NOT NULL,
    author TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    payload TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS drafts_tenant_status ON drafts (tenant, status);
"""


class ReviewStateError(GroundwireError):
    """The draft is already approved or rejected."""


def chunk_version(chunk: Chunk) -> str:
    """SHA-256 of what a draft can show of ``chunk``: its text, title, URI, location, document and connector."""
    h = hashlib.sha256()
    for part in (chunk.connector, chunk.doc_id, chunk.title, chunk.uri, chunk.location, chunk.text):
        h.update(part.encode("utf-8", "surrogatepass") + b"\x00")
    return h.hexdigest()


@dataclass(slots=True)
class ReviewItem:
    """A persisted draft; ``draft`` is :meth:`Draft.to_dict` (text possibly edited)."""

    id: str
    tenant: str
    author: str
    status: str
    created_at: str
    updated_at: str
    prompt: str = ""
    draft: dict[str, Any] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    # chunk id -> {"hash": chunk_version(), "allow": [...], "deny": [...]} of the versions the draft used
    versions: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def text(self) -> str:
        return str(self.draft.get("text", ""))

    def cited_and_used(self) -> list[str]:
        ids = [c["chunk_id"] for c in self.draft.get("citations", [])] + list(self.sources)
        return list(dict.fromkeys(ids))

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "tenant": self.tenant,
            "author": self.author,
            "status": self.status,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "prompt": self.prompt,
            "draft": self.draft,
            "sources": self.sources,
            "history": self.history,
        }


class ReviewQueue:
    """Persisted drafts of one :class:`~groundwire.Grounder`."""

    def __init__(self, grounder: Grounder, path: Path | None = None) -> None:
        self.grounder = grounder
        self.path = path or grounder.config.data_path / "reviews.sqlite3"
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._db() as db:
            db.executescript(_SCHEMA)

    def _db(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=30)

    @property
    def codec(self) -> Any:
        return self.grounder.codec

    # --- storage ------------------------------------------------------------------------------------

    def submit(self, request: GroundingRequest, draft: Draft, sources: Sequence[Chunk]) -> ReviewItem:
        """Persist a new draft as pending review (called by the pipeline for every non-blocked draft)."""
        now = utcnow().isoformat()
        item = ReviewItem(
            id=draft.id,
            tenant=request.user.tenant,
            author=request.user.user_id,
            status=str(draft.status),
            created_at=now,
            updated_at=now,
            prompt=request.prompt,
            draft=draft.to_dict(),
            sources=[c.id for c in sources],
            versions={
                c.id: {"hash": chunk_version(c), "allow": sorted(c.acl.allow), "deny": sorted(c.acl.deny)}
                for c in sources
            },
        )
        with self._lock, self._db() as db:
            db.execute(
                "INSERT INTO drafts VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (item.id, item.tenant, request.id, item.author, item.status, now, now, self._encode(item)),
            )
        return item

    def _encode(self, item: ReviewItem) -> str:
        body = {"prompt": item.prompt, "draft": item.draft, "sources": item.sources, "history": item.history,
                "versions": item.versions}
        return str(self.codec.encode(json.dumps(body, ensure_ascii=False), f"review:{item.id}"))

    def _load(self, draft_id: str) -> ReviewItem | None:
        with self._db() as db:
            row = db.execute(
                "SELECT id, tenant, author, status, created_at, updated_at, payload FROM drafts WHERE id = ?",
                (draft_id,),
            ).fetchone()
        if row is None:
            return None
        body = json.loads(self.codec.decode(row[6], f"review:{row[0]}"))
        return ReviewItem(
            row[0],
            row[1],
            row[2],
            row[3],
            row[4],
            row[5],
            prompt=body["prompt"],
            draft=body["draft"],
            sources=body["sources"],
            history=body["history"],
            versions=body.get("versions", {}),
        )

    def _save(self, item: ReviewItem, previous: str) -> None:
        with self._db() as db:
            cur = db.execute(
                "UPDATE drafts SET status = ?, updated_at = ?, payload = ? WHERE id = ? AND status = ?",
                (item.status, item.updated_at, self._encode(item), item.id, previous),
            )
        if cur.rowcount != 1:  # another reviewer (another process) decided first
            raise ReviewStateError(f"draft {item.id} was changed by another reviewer; reload it and decide again")

    def count(self, tenant: str, status: str | None = None) -> int:
        """How many drafts ``tenant`` has (optionally in ``status``): a number, no ids (for the trust report)."""
        sql, args = "SELECT COUNT(*) FROM drafts WHERE tenant = ?", [tenant]
        if status:
            sql += " AND status = ?"
            args.append(status)
        with self._db() as db:
            return int(db.execute(sql, args).fetchone()[0])

    def list(self, reviewer: UserContext, status: str | None = None) -> builtins.list[ReviewItem]:
        """Drafts of the reviewer's tenant that they may review (ids, author, status, times only; no text),
        newest first. Drafts whose source versions the reviewer cannot read are left out."""
        sql = "SELECT id FROM drafts WHERE tenant = ?"
        args: builtins.list[str] = [reviewer.tenant]
        if status:
            sql += " AND status = ?"
            args.append(status)
        with self._db() as db:
            ids = [r[0] for r in db.execute(sql + " ORDER BY created_at DESC", args).fetchall()]
        items = [i for i in (self._load(d) for d in ids) if i is not None and i.tenant == reviewer.tenant]
        ok = self._reviewable(items, reviewer)
        return [
            ReviewItem(i.id, i.tenant, i.author, i.status, i.created_at, i.updated_at) for i in items if i.id in ok
        ]

    def reencrypt(self, codec: Any) -> int:
        """Re-encrypt every stored draft with ``codec`` (key rotation). Returns the count."""
        with self._lock, self._db() as db:
            rows = db.execute("SELECT id, payload FROM drafts").fetchall()
            for did, payload in rows:
                plain = codec.decode(payload, f"review:{did}")
                db.execute(
                    "UPDATE drafts SET payload = ? WHERE id = ?", (codec.encode(plain, f"review:{did}"), did)
                )
        return len(rows)

    # --- the reviewer's view and decisions ---------------------------------------------------------

    def _authorize(self, draft_id: str, reviewer: UserContext, action: str) -> ReviewItem:
        item = self._load(draft_id)
        if item is None or item.tenant != reviewer.tenant:
            self._audit(reviewer, action, draft_id, {"denied": "not found in reviewer's tenant"})
            raise AccessDenied(_NOT_YOURS)
        if item.id not in self._reviewable([item], reviewer):
            self._audit(reviewer, action, draft_id, {"denied": "reviewer cannot read all source versions"})
            raise AccessDenied(
                "you cannot read every source this draft was written from (as it was when the draft was "
                "written), so you may not review it; ask a reviewer who has access to those documents"
            )
        return item

    def _readable_now(self, reviewer: UserContext, ids: Sequence[str]) -> dict[str, Chunk]:
        """The chunks among ``ids`` that ``reviewer`` can read now (pre-filtered fetch, then the ACL)."""
        g = self.grounder
        connectors = sorted(g.config.connectors_for(reviewer.tenant))
        if not ids or not connectors:
            return {}
        principals = g.principals(reviewer)
        got = g.index.tenant(reviewer.tenant).get_chunks(builtins.list(dict.fromkeys(ids)), principals, connectors)
        return {c.id: c for c in got if c.tenant == reviewer.tenant and c.acl.grants(principals)}

    def _reviewable(self, items: Sequence[ReviewItem], reviewer: UserContext) -> set[str]:
        """Ids of ``items`` whose every source version ``reviewer`` may read (see the module docstring)."""
        needed = [cid for item in items for cid in item.cited_and_used()]
        now = self._readable_now(reviewer, needed)
        principals = self.grounder.principals(reviewer)
        ok: set[str] = set()
        for item in items:
            if item.tenant != reviewer.tenant:
                continue
            for cid in item.cited_and_used():
                version, chunk = item.versions.get(cid), now.get(cid)
                if version is None or chunk is None or chunk_version(chunk) != version.get("hash"):
                    break
                try:
                    then = AccessControl.of(version.get("allow", ()), version.get("deny", ()))
                except ValueError:  # stored with an older id rule that no longer parses: fail closed
                    break
                if not then.grants(principals):
                    break
            else:
                ok.add(item.id)
        return ok

    def get(self, draft_id: str, reviewer: UserContext) -> ReviewItem:
        """The full draft, for a reviewer who may read all its sources."""
        item = self._authorize(draft_id, reviewer, "show")
        targets = {v.get("target", "") for v in item.draft.get("verdicts", [])} - {""} - set(item.sources)
        visible = self._readable_now(reviewer, sorted(targets)).keys()
        for v in item.draft.get("verdicts", []):
            if v.get("target") in targets and v.get("target") not in visible:
                v["target"] = ""  # a withheld chunk this reviewer cannot read: not even its id
        return item

    def approve(self, draft_id: str, reviewer: UserContext, note: str = "") -> ReviewItem:
        return self._decide(draft_id, reviewer, DraftStatus.APPROVED, note=note)

    def edit(self, draft_id: str, reviewer: UserContext, text: str, note: str = "") -> ReviewItem:
        if not text.strip():
            raise ValueError("the edited text is empty")
        return self._decide(draft_id, reviewer, DraftStatus.EDITED, note=note, text=text)

    def reject(self, draft_id: str, reviewer: UserContext, reason: str = "") -> ReviewItem:
        return self._decide(draft_id, reviewer, DraftStatus.REJECTED, note=reason)

    def _decide(
        self,
        draft_id: str,
        reviewer: UserContext,
        status: DraftStatus,
        note: str = "",
        text: str | None = None,
    ) -> ReviewItem:
        action = {DraftStatus.APPROVED: "approve", DraftStatus.EDITED: "edit"}.get(status, "reject")
        self.grounder.check_config_current()
        with self._lock:
            item = self._authorize(draft_id, reviewer, action)
            if DraftStatus(item.status) not in _OPEN:
                raise ReviewStateError(
                    f"draft {draft_id} is already {item.status}; decisions on it are final"
                )
            now, previous = utcnow().isoformat(), item.status
            if text is not None:
                item.draft["text"] = text
            item.status, item.updated_at = str(status), now
            item.draft["status"] = str(status)
            item.history.append({"at": now, "reviewer": reviewer.user_id, "decision": action, "note": note})
            self._save(item, previous)
        data: dict[str, Any] = {
            "decision": action,
            "status": str(status),
            "note": note,
            "author": item.author,
        }
        if text is not None and self.grounder.config.audit.store_drafts:
            data["draft_text"] = text
        self._audit(reviewer, action, draft_id, data)
        return item

    def _audit(self, reviewer: UserContext, action: str, draft_id: str, data: dict[str, Any]) -> None:
        kind = "review_denied" if "denied" in data else "review"
        self.grounder._audit(
            AuditEvent(
                kind, reviewer.tenant, reviewer.user_id, data={"draft_id": draft_id, "action": action, **data}
            )
        )
