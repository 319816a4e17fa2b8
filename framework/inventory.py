"""``groundwire inventory``: every store and asset of a configured Groundwire, read without writing.

Lists the Chroma collections of each tenant (chunk counts, on-disk size of their vector segments), every
file under ``data_dir`` with its size and encryption status, the key ids and their ages, the configured
connectors with their last sync and item counts, and the registered plugins with versions and the
SHA-256 of their module files.

Encryption status of a file, decided from its kind and, for stores of payloads, from its content:
``encrypted payloads`` (every payload is AES-GCM ciphertext; ids, ACL principals and hashes stay in clear),
``plaintext`` (data stored in clear: vectors, ACL stores, connector state, or payloads written without
encryption), ``mixed`` (some payloads in clear), ``n.a.`` (no document or user data: locks, generation files,
MACs, wrapped tenant data keys, key material) and ``unknown`` (a file no Groundwire store writes; the trust
report's inventory row fails on it).

Invariants: nothing is modified and no collection is created (SQLite files are opened read-only, which may
leave their ``-wal`` / ``-shm`` side files, listed like their database); key material is never read
into the output, only key ids; a part that cannot be read is reported in ``problems``, never raised.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import re
import sqlite3
from datetime import UTC, datetime
from fnmatch import fnmatch
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .crypto import PREFIX
from .datakeys import DEK_PREFIX
from .index.rows import take_payloads

if TYPE_CHECKING:
    from .pipeline import Grounder

__all__ = [
    "ENCRYPTED", "MIXED", "NA", "PLAINTEXT", "UNKNOWN",
    "audit_payloads", "build_inventory", "collection_payloads", "sqlite_payloads", "status_of",
]

ENCRYPTED, PLAINTEXT, MIXED, NA, UNKNOWN = "encrypted payloads", "plaintext", "mixed", "n.a.", "unknown"
_PAGE = 1000
_KEY_ID_TIME = re.compile(r"^k(\d{14})$")  # ids made by 'groundwire keys generate' (groundwire.keyfile.new_key_id)
_CIPHER = (f"{PREFIX}:", f"{DEK_PREFIX}:")  # master-key (gw1) and tenant data-key (gw2) ciphertexts

# (glob on the path relative to data_dir, status or "payloads:<how>") - first match wins
_KINDS: tuple[tuple[str, str], ...] = (
    ("*.lock", NA), ("*.lock.owner", NA), ("*.tmp", NA),
    ("audit/.checkpoints/key", NA), ("audit/.checkpoints/*.json", NA), ("keys/*.dek", NA),
    ("audit/*.jsonl", "payloads:audit"), ("audit/*.jsonl.torn", "payloads:audit"),
    ("reviews.sqlite3", "payloads:sqlite"), ("quarantine.sqlite", "payloads:sqlite"),
    ("reviews.sqlite3-*", "payloads:sqlite-side"), ("quarantine.sqlite-*", "payloads:sqlite-side"),
    ("chroma/chroma.sqlite3", "payloads:chroma"), ("chroma/chroma.sqlite3-*", "payloads:chroma"),
    ("chroma/*.generation", NA), ("chroma/snapshots/*", PLAINTEXT), ("chroma/*/*", PLAINTEXT),
    ("state/*", PLAINTEXT), ("state-rebuild/*", PLAINTEXT), ("cache/*", PLAINTEXT),
)


def _combine(encrypted: int, total: int) -> str:
    if total == 0:
        return NA
    if encrypted == total:
        return ENCRYPTED
    return PLAINTEXT if encrypted == 0 else MIXED


def sqlite_payloads(path: Path) -> tuple[int, int]:
    """``(encrypted, total)`` payloads of a review or quarantine store (opened read-only)."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        enc = total = 0
        for table in tables:
            cols = [r[1] for r in db.execute(f'PRAGMA table_info("{table}")')]
            if "payload" not in cols:
                continue
            t, e = db.execute(
                f'SELECT COUNT(*), COALESCE(SUM(payload LIKE ? OR payload LIKE ?), 0) FROM "{table}"',
                tuple(f"{c}%" for c in _CIPHER),
            ).fetchone()
            total, enc = total + int(t), enc + int(e)
        return enc, total
    finally:
        db.close()


def audit_payloads(path: Path) -> tuple[int, int]:
    """``(encrypted, total)`` records of an audit log (``enc`` lines vs ``event`` lines)."""
    enc = total = 0
    with path.open("rb") as f:
        for raw in f:
            try:
                rec = json.loads(raw)
            except ValueError:
                continue
            if isinstance(rec, dict) and ("enc" in rec or "event" in rec):
                total += 1
                enc += "enc" in rec
    return enc, total


def collection_payloads(collection: Any, limit: int | None = None) -> tuple[int, int]:
    """``(encrypted, total)`` chunk payloads of a Chroma collection (the first ``limit`` if given)."""
    enc = seen = offset = 0
    while limit is None or seen < limit:
        n = _PAGE if limit is None else min(_PAGE, limit - seen)
        got = take_payloads(collection.get(include=["documents", "metadatas"], limit=n, offset=offset))
        docs = got.get("documents") or []
        if not docs:
            break
        seen += len(docs)
        enc += sum(1 for d in docs if isinstance(d, str) and d.startswith(_CIPHER))
        if len(docs) < n:
            break
        offset += len(docs)
    return enc, seen


def status_of(rel: str, path: Path, chroma_status: str = NA) -> str:
    """The encryption status of the file ``path`` (``rel``: its path under data_dir, with ``/``)."""
    for pattern, kind in _KINDS:
        if not fnmatch(rel, pattern):
            continue
        if kind == "payloads:audit":
            return _combine(*audit_payloads(path))
        if kind == "payloads:sqlite":
            return _combine(*sqlite_payloads(path))
        if kind == "payloads:sqlite-side":  # WAL / shared memory of a store: as its database
            base = path.with_name(path.name.rsplit("-", 1)[0])
            return _combine(*sqlite_payloads(base)) if base.exists() else NA
        if kind == "payloads:chroma":
            return chroma_status
        return kind
    return UNKNOWN


def _sha256(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


def _dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else 0


def _segments(chroma_dir: Path) -> dict[str, list[str]]:
    """collection id -> segment ids, from Chroma's own catalogue (read-only)."""
    db_path = chroma_dir / "chroma.sqlite3"
    if not db_path.exists():
        return {}
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        out: dict[str, list[str]] = {}
        for seg, col in db.execute("SELECT id, collection FROM segments"):
            out.setdefault(str(col), []).append(str(seg))
        return out
    finally:
        db.close()


def _collections(g: Grounder, problems: list[str]) -> list[dict[str, Any]]:
    chroma_dir = g.config.data_path / "chroma"
    try:
        segments = _segments(chroma_dir) if g.config.index.backend == "embedded" else {}
    except sqlite3.Error as exc:
        problems.append(f"Chroma catalogue {chroma_dir / 'chroma.sqlite3'}: {exc}")
        segments = {}
    known = {f"gw-{t}" for t in g.config.tenants()}
    out = []
    for col in g.index.client.list_collections():
        name = str(col.name)
        tenant = str((col.metadata or {}).get("gw_tenant", ""))
        base = name.split(".r", 1)[0]
        try:
            live = g.index.live_name(tenant) == name if tenant and base in known else False
        except Exception as exc:  # noqa: BLE001 - reported
            problems.append(f"collection {name}: {exc}")
            live = False
        size: int | None = None
        if g.config.index.backend == "embedded":
            size = sum(_dir_bytes(chroma_dir / s) for s in segments.get(str(col.id), []))
        enc, total = collection_payloads(col)
        out.append({
            "tenant": tenant, "name": name, "live": live, "configured_tenant": base in known,
            "chunks": col.count(), "vector_bytes": size, "payloads": _combine(enc, total),
            "encrypted_payloads": enc,
        })
    return sorted(out, key=lambda c: (c["tenant"], c["name"]))


def _files(g: Grounder, chroma_status: str, problems: list[str]) -> list[dict[str, Any]]:
    root = g.config.data_path
    enc = g.config.encryption
    keyfile = g.config.resolve(str(enc.options.get("path", ""))) if enc.provider == "file" else None
    out: list[dict[str, Any]] = []
    if not root.is_dir():
        return out
    for dirpath, dirnames, filenames in os.walk(root, onerror=lambda e: problems.append(f"cannot list: {e}")):
        dirnames.sort()
        for name in sorted(filenames):
            p = Path(dirpath) / name
            rel = p.relative_to(root).as_posix()
            try:
                st = p.lstat()
                status = NA if keyfile is not None and p == keyfile else status_of(rel, p, chroma_status)
            except (OSError, sqlite3.Error, ValueError) as exc:
                problems.append(f"{rel}: {exc}")
                st, status = None, UNKNOWN
            out.append({"path": rel, "bytes": st.st_size if st else None, "encryption": status,
                        "modified": _iso(st.st_mtime) if st else None})
    return out


def key_ages(g: Grounder, problems: list[str]) -> list[dict[str, Any]]:
    """Key ids with when they were made: from the id when ``keys generate`` made it (``kYYYYmmddHHMMSS``),
    else the key file's modification time; never key material."""
    enc = g.config.encryption
    out: list[dict[str, Any]] = []
    now = datetime.now(UTC)
    if enc.enabled:
        try:
            ring = g.codec.keyring
        except Exception as exc:  # noqa: BLE001 - reported
            problems.append(f"keys: {exc}")
            ring = None
        file_mtime: float | None = None
        if enc.provider == "file":
            with_path = g.config.resolve(str(enc.options.get("path", "")))
            file_mtime = with_path.stat().st_mtime if with_path.exists() else None
        for kid in sorted(ring.keys) if ring is not None else []:
            m = _KEY_ID_TIME.match(kid)
            if m:
                made, source = datetime.strptime(m.group(1), "%Y%m%d%H%M%S").replace(tzinfo=UTC), "key id"
            elif file_mtime is not None:
                made, source = datetime.fromtimestamp(file_mtime, UTC), "key file modified"
            else:
                made, source = None, "unknown (keys from the environment)"
            out.append({"id": kid, "current": kid == ring.current, "provider": enc.provider,
                        "created": made.isoformat(timespec="seconds") if made else None,
                        "age_days": round((now - made).total_seconds() / 86400, 1) if made else None,
                        "created_from": source})
    for dek in sorted((g.config.data_path / "keys").glob("*.dek")):  # tenant data keys, wrapped by the master key
        try:
            doc = json.loads(dek.read_text(encoding="utf-8"))
            made = datetime.fromisoformat(str(doc["created"])) if doc.get("created") else None
            if made is not None and made.tzinfo is None:
                made = made.replace(tzinfo=UTC)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            problems.append(f"data key {dek.name}: {type(exc).__name__}")
            continue
        out.append({"id": str(doc.get("id", dek.stem)), "current": True, "provider": f"data key of tenant {dek.stem}",
                    "created": made.isoformat(timespec="seconds") if made else None,
                    "age_days": round((now - made).total_seconds() / 86400, 1) if made else None,
                    "created_from": "data key file" if made else "unknown"})
    local = g.config.data_path / "audit" / ".checkpoints" / "key"
    ckpt = g.config.resolve(g.config.audit.checkpoint_dir) / "key" if g.config.audit.checkpoint_dir else local
    if ckpt.exists():
        made = datetime.fromtimestamp(ckpt.stat().st_mtime, UTC)
        out.append({"id": "local (audit checkpoint MAC key)", "current": True, "provider": "local file",
                    "created": made.isoformat(timespec="seconds"),
                    "age_days": round((now - made).total_seconds() / 86400, 1), "created_from": "file modified"})
    return out


def _connectors(g: Grounder, problems: list[str]) -> list[dict[str, Any]]:
    from .ingest import StateStore

    store = StateStore(g.config.data_path / "state")
    indexed = {str(c.name) for c in g.index.client.list_collections()}
    out = []
    for name, cc in sorted(g.config.connectors.items()):
        p = store.path(cc.tenant, name)
        items: int | None = 0
        try:
            if f"gw-{cc.tenant}" in indexed:  # never create a tenant's collection by looking
                items = len(g.index.tenant(cc.tenant).documents(name))
        except Exception as exc:  # noqa: BLE001 - reported
            problems.append(f"connector {name}: {exc}")
        out.append({"name": name, "type": cc.type, "tenant": cc.tenant, "enabled": cc.enabled,
                    "last_sync": _iso(p.stat().st_mtime) if p.exists() else None, "items": items})
    return out


def _plugins(g: Grounder, problems: list[str]) -> list[dict[str, Any]]:
    from .pluginmanager import plugin_info

    out = []
    for info in plugin_info(g.pm):
        plugin = g.pm.get_plugin(info.name)
        try:
            source = inspect.getsourcefile(plugin if inspect.ismodule(plugin) else type(plugin))
        except TypeError:
            source = None
        path = Path(source) if source else None
        digest = _sha256(path) if path is not None and path.is_file() else None
        if digest is None:
            problems.append(f"plugin {info.name}: no module file to hash")
        out.append({"name": info.name, "version": info.version, "builtin": info.builtin,
                    "file": str(path) if path else None, "sha256": digest})
    return out


def build_inventory(g: Grounder) -> dict[str, Any]:
    """The inventory of ``g``'s stores and assets (see the module docstring); ``problems`` lists what
    could not be read."""
    problems: list[str] = []
    try:
        collections = _collections(g, problems)
    except Exception as exc:  # noqa: BLE001 - reported
        problems.append(f"Chroma: {type(exc).__name__}: {exc}")
        collections = []
    chroma_status = NA
    if collections:
        enc = sum(c["encrypted_payloads"] for c in collections)
        chroma_status = _combine(enc, sum(c["chunks"] for c in collections))
    return {
        "data_dir": str(g.config.data_path),
        "collections": collections,
        "files": _files(g, chroma_status, problems),
        "keys": key_ages(g, problems),
        "connectors": _connectors(g, problems),
        "plugins": _plugins(g, problems),
        "problems": problems,
    }
