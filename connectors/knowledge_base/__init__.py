"""Knowledge base connector: a folder of Markdown, text, HTML and PDF files.

ACLs (principals: ``everyone``, ``user:<id>``, ``group:<id>``, ``role:<id>``), most specific first:

1. a sidecar next to the file, ``<file name>.acl.toml``: ``allow = [...]``, optional ``deny = [...]``;
2. the connector's ``acl`` table in the configuration: glob pattern (relative, ``*`` crosses folders)
   -> list of principals or ``{allow = [...], deny = [...]}``; the longest matching pattern wins;
3. the nearest ``.groundwire-acl.toml`` in the file's folder or a parent folder inside ``path``.

A file with no ACL, or with an invalid one, is skipped with the reason: nobody could see it (fail
closed). Incremental: a file whose mtime, size and ACL are unchanged is not read again; a removed file is
deleted from the index; an ACL change updates the index without re-embedding.
"""

from __future__ import annotations

import fnmatch
import os
import tomllib
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from groundwire import (
    AccessControl,
    Checkpoint,
    Connector,
    ConnectorError,
    ConnectorSettings,
    Delete,
    Document,
    Skipped,
    Unchanged,
    Upsert,
    hookimpl,
)
from groundwire.extract import EXTRACTORS, ExtractionError, UnsupportedFormat, extract
from pydantic import BaseModel, ConfigDict, Field

FOLDER_ACL = ".groundwire-acl.toml"
FILE_ACL_SUFFIX = ".acl.toml"


class AclSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    allow: list[str] = Field(default_factory=list)
    deny: list[str] = Field(default_factory=list)


class KnowledgeBaseSettings(ConnectorSettings):
    path: str
    acl: dict[str, list[str] | AclSpec] = Field(default_factory=dict)
    exclude: list[str] = Field(default_factory=list)
    max_file_mb: float = Field(default=25.0, gt=0)
    uri_prefix: str | None = None


class AclError(ValueError):
    pass


def _spec_to_acl(spec: list[str] | AclSpec | Mapping[str, Any], where: str) -> AccessControl:
    try:
        if isinstance(spec, list):
            return AccessControl.of(spec)
        if isinstance(spec, AclSpec):
            return AccessControl.of(spec.allow, spec.deny)
        extra = set(spec) - {"allow", "deny"}
        if extra:
            raise AclError(f"{where}: unknown key(s) {sorted(extra)}; use allow = [...] and deny = [...]")
        return AccessControl.of(spec.get("allow", []), spec.get("deny", []))
    except (ValueError, TypeError) as exc:
        if isinstance(exc, AclError):
            raise
        raise AclError(f"{where}: {exc}") from exc


class KnowledgeBaseConnector(Connector):
    type = "knowledge_base"
    Settings = KnowledgeBaseSettings

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        s: KnowledgeBaseSettings = self.settings  # type: ignore[assignment]
        root = Path(s.path).expanduser()
        self.root = root if root.is_absolute() else (Path(self.context.config_dir) / root).resolve()
        self._folder_acl: dict[Path, AccessControl | None | AclError] = {}
        # longest pattern first: the most specific match wins
        self._patterns = sorted(
            ((p.rstrip("/") + "/*" if p.endswith("/") else p, spec) for p, spec in s.acl.items()),
            key=lambda kv: len(kv[0]),
            reverse=True,
        )

    # --- ACL resolution ------------------------------------------------------------------------------

    def _read_acl_file(self, path: Path) -> AccessControl:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise AclError(f"{path.name}: unreadable ACL file: {exc}") from exc
        return _spec_to_acl(data, path.name)

    def _folder(self, folder: Path) -> AccessControl | None:
        if folder not in self._folder_acl:
            f = folder / FOLDER_ACL
            if f.is_file():
                try:
                    self._folder_acl[folder] = self._read_acl_file(f)
                except AclError as exc:
                    self._folder_acl[folder] = exc
            elif folder == self.root or self.root not in folder.parents:
                self._folder_acl[folder] = None
            else:
                self._folder_acl[folder] = self._folder(folder.parent)  # type: ignore[assignment]
        got = self._folder_acl[folder]
        if isinstance(got, AclError):
            raise got
        return got

    def acl_for(self, path: Path) -> AccessControl | None:
        sidecar = path.with_name(path.name + FILE_ACL_SUFFIX)
        if sidecar.is_file():
            return self._read_acl_file(sidecar)
        rel = path.relative_to(self.root).as_posix()
        for pattern, spec in self._patterns:
            if fnmatch.fnmatchcase(rel, pattern):
                return _spec_to_acl(spec, f"acl[{pattern!r}]")
        return self._folder(path.parent)

    # --- enumeration ---------------------------------------------------------------------------------

    def _files(self) -> Iterator[Path]:
        s: KnowledgeBaseSettings = self.settings  # type: ignore[assignment]
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for fn in sorted(filenames):
                if fn.startswith(".") or fn.endswith(FILE_ACL_SUFFIX):
                    continue
                p = Path(dirpath) / fn
                rel = p.relative_to(self.root).as_posix()
                if any(fnmatch.fnmatchcase(rel, pat) for pat in s.exclude):
                    continue
                yield p

    def changes(self, state: Mapping[str, Any]) -> Iterator[Any]:
        s: KnowledgeBaseSettings = self.settings  # type: ignore[assignment]
        if not self.root.is_dir():
            raise ConnectorError(self.name, f"folder {self.root} does not exist; fix 'path' in the configuration")
        seen: set[str] = set()
        for path in self._files():
            rel = path.relative_to(self.root).as_posix()
            if path.suffix.casefold() not in EXTRACTORS:
                yield Skipped(rel, f"unsupported file type {path.suffix or '(none)'!r}")
                continue
            try:
                st = path.stat()
            except OSError as exc:
                yield Skipped(rel, f"cannot read: {exc}")
                continue
            seen.add(rel)
            if st.st_size > s.max_file_mb * 1024 * 1024:
                yield Skipped(rel, f"larger than max_file_mb={s.max_file_mb}")
                seen.discard(rel)
                continue
            try:
                acl = self.acl_for(path)
            except AclError as exc:
                yield Skipped(rel, f"invalid ACL, not indexed (fail closed): {exc}")
                seen.discard(rel)
                continue
            if acl is None or not acl.allow:
                yield Skipped(rel, f"no ACL: visible to nobody, so not indexed; add {rel}{FILE_ACL_SUFFIX}, "
                                   f"an 'acl' pattern or a {FOLDER_ACL}")
                seen.discard(rel)
                continue
            version = f"{st.st_mtime_ns}:{st.st_size}:{acl.fingerprint()}"
            if self.context.indexed.get(rel) == version:
                yield Unchanged(rel)
                continue
            try:
                title, sections = extract(path.name, path.read_bytes())
            except (UnsupportedFormat, ExtractionError, OSError) as exc:
                yield Skipped(rel, str(exc))
                seen.discard(rel)
                continue
            uri = (s.uri_prefix.rstrip("/") + "/" + rel) if s.uri_prefix else path.resolve().as_uri()
            yield Upsert(
                Document(
                    id=rel,
                    title=title,
                    uri=uri,
                    acl=acl,
                    sections=tuple(sections),
                    modified=datetime.fromtimestamp(st.st_mtime, UTC),
                    version=version,
                )
            )
        for gone in sorted(set(self.context.indexed) - seen):
            yield Delete(gone)
        yield Checkpoint({"last_sync": datetime.now(UTC).isoformat(), "files": len(seen)})


@hookimpl
def register_connectors(register: Any) -> None:
    register(KnowledgeBaseConnector)
