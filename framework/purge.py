"""Tenant purge (asset disposal): destroy everything a tenant stored, crypto-shred its data key, and record it.

:func:`purge_tenant` holds the data dir's sync lock (a running sync would write the tenant back) and
deletes, in this order: the tenant's Chroma collections (the anchor ``gw-<tenant>`` and every rebuild
generation ``gw-<tenant>.r<n>``) with their HNSW segment folders, which Chroma leaves on disk; the
generation file; the snapshot folder (``chroma/snapshots/gw-<tenant>/``); connector state and caches
(``state/<tenant>/``, ``cache/<tenant>/``); review drafts and quarantine entries (rows deleted with
``secure_delete``, then VACUUM and a TRUNCATE checkpoint); finally the tenant's data key
(:meth:`groundwire.datakeys.DataKeys.destroy`), after which no copy of its payloads can be decrypted.

Chroma's own SQLite file keeps deleted rows in free pages and its full-text index keeps deleted tokens
until merged: with the embedded backend the purge merges the full-text index (``optimize``), VACUUMs the
file and truncates its journal. Chroma prunes its write-ahead log (``embeddings_queue``) itself once
applied (``automatically_purge``, the default since 0.5.6; ``chroma utils vacuum`` enables it for older
stores); the purge also VACUUMs away what pruning freed. With the HTTP backend the server's files are not
reachable: the record says so and names ``chroma utils vacuum`` for the server.

The destruction record (``tenant_purged`` in the tenant's audit log, which is kept: its lines are under
the master key, so the chain and the record still verify) names who and when, what was destroyed with
counts, the data key id, and keyed digests (HMAC under a key derived from the current master key) of the
destroyed document and chunk ids: whoever holds the master key can confirm that a given document was
purged; nobody else learns the ids. A ``tenant_purge_started`` event is written first, so an interrupted
purge leaves evidence and can be run again (every step tolerates what is already gone).

:func:`self_check` is the live check behind the trust report's asset-disposal row.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import shutil
import sqlite3
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .audit_event import AuditEvent
from .errors import InputError
from .models import utcnow, validate_tenant

if TYPE_CHECKING:
    from .pipeline import Grounder

__all__ = ["PurgeRecord", "UnknownTenant", "purge_tenant", "self_check"]

_PAGE = 5000
_DIGEST_INFO = b"groundwire destruction record v1"


class UnknownTenant(InputError):
    """The tenant to purge is neither configured nor has any data in the data dir."""


@dataclass(frozen=True, slots=True)
class PurgeRecord:
    """What :func:`purge_tenant` destroyed (the ``data`` of the ``tenant_purged`` audit event)."""

    tenant: str
    by: str
    at: str
    destroyed: dict[str, Any] = field(default_factory=dict)
    digests: dict[str, str] = field(default_factory=dict)
    crypto_shredded: bool = False
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _collection_names(client: Any, tenant: str) -> list[str]:
    names = []
    for col in client.list_collections():
        name = col if isinstance(col, str) else col.name
        if name == f"gw-{tenant}" or name.startswith(f"gw-{tenant}.r"):
            names.append(str(name))
    return sorted(names)


def _traces(g: Grounder, tenant: str) -> list[str]:
    data = g.config.data_path
    found = [str(p.relative_to(data)) for p in (
        data / "keys" / f"{tenant}.dek", data / "state" / tenant, data / "cache" / tenant,
        data / "audit" / f"{tenant}.jsonl", data / "chroma" / f"gw-{tenant}.generation",
        data / "chroma" / "snapshots" / f"gw-{tenant}",
    ) if p.exists()]
    if (data / "reviews.sqlite3").exists() and g.reviews.count(tenant):
        found.append("reviews.sqlite3")
    if (data / "quarantine.sqlite").exists() and g.quarantine.rows.select("tenant = ?", [tenant]):
        found.append("quarantine.sqlite")
    if g.config.index.backend == "http" or (data / "chroma" / "chroma.sqlite3").exists():
        found.extend(_collection_names(g.index.client, tenant))
    return found


def _digest_key(g: Grounder) -> tuple[bytes | None, str]:
    ring = getattr(g.codec, "keyring", None)
    if ring is None:
        return None, "sha256 (encryption off)"
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_DIGEST_INFO).derive(
        bytes(ring.keys[ring.current]))
    return key, f"hmac-sha256, key derived from master key {ring.current!r}"


def _digest(key: bytes | None, items: Iterable[str]) -> str:
    body = "\n".join(sorted(set(items))).encode("utf-8", "surrogatepass")
    return (hmac.new(key, body, hashlib.sha256) if key is not None else hashlib.sha256(body)).hexdigest()


def _inventory(client: Any, names: list[str]) -> tuple[set[str], set[str], list[str]]:
    """Chunk ids, ``connector\\0doc id`` keys and Chroma collection ids of the tenant's collections."""
    chunks: set[str] = set()
    docs: set[str] = set()
    ids: list[str] = []
    for name in names:
        col = client.get_collection(name, embedding_function=None)
        ids.append(str(col.id))
        offset = 0
        while True:
            got = col.get(include=["metadatas"], limit=_PAGE, offset=offset)
            chunks.update(got["ids"])
            docs.update(f"{m.get('connector', '')}\0{m.get('doc_id', '')}" for m in got["metadatas"] or [] if m)
            if len(got["ids"]) < _PAGE:
                break
            offset += _PAGE
    return chunks, docs, ids


def _segments(chroma_dir: Path, collection_ids: list[str]) -> list[str]:
    db_path = chroma_dir / "chroma.sqlite3"
    if not collection_ids or not db_path.exists():
        return []
    db = sqlite3.connect(db_path, timeout=30)
    try:
        marks = ",".join("?" * len(collection_ids))
        rows = db.execute(f"SELECT id FROM segments WHERE collection IN ({marks})", collection_ids).fetchall()
    except sqlite3.Error:
        return []
    finally:
        db.close()
    return [str(r[0]) for r in rows]


def _scrub_chroma(chroma_dir: Path) -> None:
    """Leave nothing of deleted rows in ``chroma.sqlite3``: merge the full-text index, VACUUM, truncate."""
    db = sqlite3.connect(chroma_dir / "chroma.sqlite3", timeout=30, isolation_level=None)
    try:
        db.execute("PRAGMA busy_timeout = 30000")
        with contextlib.suppress(sqlite3.Error):  # absent in stores made without full-text search
            db.execute("INSERT INTO embedding_fulltext_search(embedding_fulltext_search) VALUES('optimize')")
        db.execute("VACUUM")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        db.close()


def _remove_tree(path: Path) -> int:
    """Delete a file or folder; returns how many files it held."""
    if not os.path.lexists(path):
        return 0
    if path.is_dir() and not path.is_symlink():
        n = sum(1 for p in path.rglob("*") if p.is_file())
        shutil.rmtree(path)
        return n
    path.unlink()
    return 1


def purge_tenant(
    grounder: Grounder, tenant: str, by: str, *, wait: bool = False, timeout: float | None = None,
    on_wait: Callable[[str], None] | None = None,
) -> PurgeRecord:
    """Destroy ``tenant``'s data in ``grounder``'s data dir and record who did it (see the module docstring).

    :param by: the administrator's id, recorded in the destruction record (required)
    :param wait: wait for a running sync to finish (else :class:`~groundwire.errors.SyncBusy` at once)
    :raises UnknownTenant: the tenant is neither configured nor present in the data dir
    """
    from .synclock import sync_lock

    g = grounder
    try:
        validate_tenant(tenant)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    by = (by or "").strip()
    if not by or not by.isprintable():
        raise InputError("a purge needs the administrator's id: pass --by ADMIN (it goes into the destruction record)")
    with sync_lock(g.config.data_path, wait=wait, timeout=timeout, on_wait=on_wait):
        traces = _traces(g, tenant)
        if tenant not in g.config.tenants() and not traces:
            known = ", ".join(g.config.tenants()) or "none"
            raise UnknownTenant(
                f"no tenant {tenant!r} is configured or has data in {g.config.data_path} (configured tenants: "
                f"{known}); check the tenant id"
            )
        g._audit(AuditEvent("tenant_purge_started", tenant, by, data={"found": sorted(traces)}))
        return _purge_locked(g, tenant, by)


def _purge_locked(g: Grounder, tenant: str, by: str) -> PurgeRecord:
    data, notes = g.config.data_path, []
    chroma_dir = data / "chroma"
    embedded = g.config.index.backend == "embedded"
    names = _collection_names(g.index.client, tenant)
    chunks, docs, col_ids = _inventory(g.index.client, names)
    segments = _segments(chroma_dir, col_ids) if embedded else []
    g.index.drop_tenant(tenant)
    g._fast.pop(tenant, None)  # the in-memory retriever of this tenant
    seg_files = sum(_remove_tree(chroma_dir / s) for s in segments if s and "/" not in s and s not in (".", ".."))
    if embedded and (chroma_dir / "chroma.sqlite3").exists():
        _scrub_chroma(chroma_dir)
    else:
        notes.append("index backend 'http': run 'chroma utils vacuum --path <persist dir>' on the Chroma server "
                     "so its SQLite file keeps no freed pages")
    snapshot_files = _remove_tree(chroma_dir / "snapshots" / f"gw-{tenant}")
    _remove_tree(chroma_dir / f"gw-{tenant}.generation")
    state_files = _remove_tree(data / "state" / tenant) + _remove_tree(data / "cache" / tenant)
    drafts = g.reviews.store.delete_tenant(tenant) if (data / "reviews.sqlite3").exists() else 0
    quarantined = g.quarantine.rows.delete_tenant(tenant) if (data / "quarantine.sqlite").exists() else 0
    destroy = getattr(g.codec, "destroy_tenant", None)
    dek_id = destroy(tenant) if callable(destroy) else None
    if not callable(destroy):
        notes.append("encryption at rest is off: the data was deleted but not crypto-shredded, and the audit log "
                     "keeps the tenant's ids in clear")
    if g.config.connectors_for(tenant):
        notes.append(f"connectors {', '.join(sorted(g.config.connectors_for(tenant)))} are still configured for "
                     "this tenant: the next sync indexes their sources again; remove them from the configuration")
    key, how = _digest_key(g)
    record = PurgeRecord(
        tenant=tenant, by=by, at=utcnow().isoformat(),
        destroyed={
            "collections": names, "chunks": len(chunks), "documents": len(docs),
            "index_segment_files": seg_files, "snapshot_files": snapshot_files, "state_files": state_files,
            "drafts": drafts, "quarantine_entries": quarantined, "data_key": dek_id,
        },
        digests={"documents": _digest(key, docs), "chunks": _digest(key, chunks), "method": how},
        crypto_shredded=dek_id is not None, notes=notes,
    )
    g._audit(AuditEvent("tenant_purged", tenant, by, data=record.to_dict()))
    return record


# --- the live self-check ---------------------------------------------------------------------------------

def _grep(root: Path, needles: dict[str, bytes]) -> list[str]:
    hits: list[str] = []
    for p in sorted(root.rglob("*")):
        if p.is_file() and not p.is_symlink():
            raw = p.read_bytes()
            hits.extend(f"{what} in {p.relative_to(root)}" for what, b in needles.items() if b in raw)
    return hits


def self_check(grounder: Grounder) -> tuple[bool, str]:
    """Purge a throwaway tenant in a temporary data dir (same embedder, plugins and key provider, encryption
    on) and grep every byte left for its canary text, document id and principal. Returns ``(ok, detail)``."""
    from .pipeline import Grounder as _Grounder
    from .trust import verify_audit

    cfg = grounder.config
    if not cfg.encryption.enabled:
        return False, "encryption at rest is off: a purge deletes files but cannot crypto-shred; enable [encryption]"
    token = os.urandom(6).hex()
    text, principal, tenant = f"canary{token} disposal probe sentence.", f"user:purge{token}", "purge-check"
    with tempfile.TemporaryDirectory(prefix="gw-purge-check-") as tmp:
        root = Path(tmp)
        (root / "corpus").mkdir()
        doc = f"probe{token}.md"
        (root / "corpus" / doc).write_text(f"# Probe\n\n{text}\n", encoding="utf-8")
        enc = cfg.encryption.model_dump()
        if "path" in enc["options"]:
            enc["options"]["path"] = str(cfg.resolve(enc["options"]["path"]))
        data = {
            "data_dir": str(root / "data"), "default_tenant": tenant,
            "embedder": cfg.embedder.model_dump(), "plugins": cfg.plugins.model_dump(), "encryption": enc,
            "features": {"ask": ["*"]},
            "connectors": {"probe": {"type": "knowledge_base", "tenant": tenant, "path": str(root / "corpus"),
                                     "acl": {"*": [principal]}}},
        }
        from .config import config_from_dict

        g = _Grounder(config_from_dict(data, "<purge self-check>", root), grounder.pm,
                      embedder=grounder._embedder)
        g.sync()
        needles = {"text": text.encode(), "document id": doc.encode(), "principal": principal.encode()}
        indexed = g.index.tenant(tenant).count()
        before = _grep(root / "data", needles)  # the principal sits in clear in Chroma's metadata until purged
        if not indexed or not any(h.startswith("principal") for h in before):
            return False, f"the canary tenant was not indexed as expected ({indexed} chunks; found: {before})"
        record = purge_tenant(g, tenant, "trust-report")
        hits = _grep(root / "data", needles)
        problems = [p for ps in verify_audit(g, tenant).values() for p in ps]
        if hits:
            return False, "after the purge the data dir still holds the tenant's " + "; ".join(hits)
        if problems or not record.crypto_shredded:
            return False, f"purge ran but the record does not verify or nothing was shredded: {problems or record}"
        return True, (f"purged a canary tenant ({record.destroyed['chunks']} chunk, data key destroyed); no trace "
                      "of its text, document id or principal in any file; destruction record verifies")
