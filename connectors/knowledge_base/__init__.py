"""Knowledge base connector: a folder of Markdown, text, HTML and PDF files.

Files are walked and read only through :class:`groundwire.ConfinedRoot`: nothing outside ``path`` is ever read,
symbolic links are skipped unless ``follow_symlinks = true`` (and then only links to files inside ``path``),
files with several names (hard links) unless ``follow_hardlinks = true``, FIFOs, sockets and devices are never
opened, reads stop at ``max_file_mb``, and names that are not valid UTF-8 are skipped. Every skip is a
:class:`Skipped` change with its reason.

ACLs (principals: ``everyone``, ``user:<id>``, ``group:<id>``, ``role:<id>``) come from ``<file>.acl.toml``
sidecars, the ``acl`` globs of the configuration, ``.groundwire-acl.toml`` folder sidecars and
``default_allow``; see :mod:`.acl` for the precedence (deny from any level applies). A file with no ACL, or
governed by a sidecar that is invalid, is skipped with the reason (fail closed) and, if it was indexed
before, deleted. One bad file or sidecar never stops the rest of the sync: later files' ACL changes and all
deletions still propagate.

Incremental: a file whose mtime, size and ACL are unchanged is not read again; a removed file is deleted
from the index; an ACL change updates the index without re-embedding. A root that cannot be read (or is
gone) changes nothing, unless the ACL settings (digest ``acl_settings`` in the state) changed since the
last sync: then every indexed document is withdrawn, since no ACL can be recomputed without the files.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import unicodedata
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from groundwire import (
    AccessControl,
    Checkpoint,
    ConfinedRoot,
    Connector,
    ConnectorError,
    Delete,
    Document,
    FileSourceSettings,
    Skipped,
    SourceEntry,
    SourceRefused,
    Unchanged,
    Upsert,
    hookimpl,
)
from groundwire.extract import EXTRACTORS, ExtractionError, UnsupportedFormat, extract
from pydantic import Field, StrictStr, field_validator

from .acl import FILE_ACL_SUFFIX, FOLDER_ACL, AclError, AclResolver, AclSpec, check_glob_conflicts

__all__ = ["KnowledgeBaseConnector", "KnowledgeBaseSettings"]

_PATH_SAFE = "/!$&'()*+,;=:@~"  # RFC 3986 pchar delimiters kept as they are; everything else is encoded


class KnowledgeBaseSettings(FileSourceSettings):
    acl: dict[str, list[StrictStr] | AclSpec] = Field(default_factory=dict)
    default_allow: list[StrictStr] | None = None  # lowest precedence: below every sidecar and glob
    exclude: list[str] = Field(default_factory=list)
    uri_prefix: str | None = None

    @field_validator("acl")
    @classmethod
    def _acl(cls, v: dict[str, list[str] | AclSpec]) -> dict[str, list[str] | AclSpec]:
        for spec in v.values():
            if isinstance(spec, list):
                AclSpec(allow=spec)  # validates the principals
        check_glob_conflicts(v)
        return v

    @field_validator("default_allow")
    @classmethod
    def _default(cls, v: list[str] | None) -> list[str] | None:
        if v is not None:
            AclSpec(allow=v)
        return v


class KnowledgeBaseConnector(Connector):
    type = "knowledge_base"
    Settings = KnowledgeBaseSettings

    def _include(self, rel: str, is_dir: bool) -> bool:
        s: KnowledgeBaseSettings = self.settings  # type: ignore[assignment]
        name = rel.rsplit("/", 1)[-1]
        if name.startswith("."):
            return False
        if is_dir:
            return True
        if name.endswith(FILE_ACL_SUFFIX):
            return False
        # in NFC, as the ACL globs are matched: "Entwürfe/*" typed NFC also excludes the NFD names a Mac writes
        name_nfc = unicodedata.normalize("NFC", rel)
        return not any(fnmatch.fnmatchcase(name_nfc, unicodedata.normalize("NFC", pat)) for pat in s.exclude)

    def expected_items(self, state: Mapping[str, Any]) -> int | None:
        """The files and refused entries the walk will yield (a listing, no file is read)."""
        try:
            return sum(1 for _ in self.confined_root().walk(self._include))
        except Exception:  # noqa: BLE001 - a total is optional; changes() reports the real problem
            return None

    def _acl_settings(self) -> str:
        """Digest of the settings that decide which files are read and with which ACL."""
        s: KnowledgeBaseSettings = self.settings  # type: ignore[assignment]
        what = s.model_dump(mode="json", include={"acl", "default_allow", "exclude", "follow_symlinks",
                                                  "follow_hardlinks"})
        return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:16]

    def changes(self, state: Mapping[str, Any]) -> Iterator[Any]:
        s: KnowledgeBaseSettings = self.settings  # type: ignore[assignment]
        acl_settings = self._acl_settings()
        seen: set[str] = set()
        try:
            fs = self.confined_root()
            acls = AclResolver(fs, s.acl, s.default_allow)
            for entry in fs.walk(self._include):
                if not isinstance(entry, SourceEntry):
                    yield Skipped(entry.item, entry.reason)
                    continue
                change = self._change(fs, acls, entry)
                if isinstance(change, (Upsert, Unchanged)):
                    seen.add(entry.rel)
                yield change
        except (SourceRefused, ConnectorError) as exc:  # the root itself: keep the index as it is...
            why = exc.reason if isinstance(exc, SourceRefused) else str(exc).split(": ", 1)[-1]
            indexed = sorted(self.context.indexed)
            if state.get("acl_settings") == acl_settings or not indexed:
                raise ConnectorError(self.name, f"{why}; nothing was changed") from None
            # ...unless its ACL settings changed since: those ACLs cannot be recomputed without the files
            for gone in indexed:
                yield Delete(gone)
            yield Checkpoint({"last_sync": datetime.now(UTC).isoformat(), "files": 0, "acl_settings": acl_settings})
            raise ConnectorError(
                self.name, f"{why}; the ACL settings (acl, default_allow, exclude) changed since the last sync, so "
                f"its {len(indexed)} indexed documents were withdrawn (fail closed); they return at the next sync "
                "that can read the folder") from None
        for gone in sorted(set(self.context.indexed) - seen):
            yield Delete(gone)
        yield Checkpoint({"last_sync": datetime.now(UTC).isoformat(), "files": len(seen),
                          "acl_settings": acl_settings})

    def _change(self, fs: ConfinedRoot, acls: AclResolver, entry: SourceEntry) -> Upsert | Unchanged | Skipped:
        """One file's change; every failure is a :class:`Skipped` (the file is then deleted if indexed)."""
        s: KnowledgeBaseSettings = self.settings  # type: ignore[assignment]
        rel = entry.rel
        suffix = Path(entry.name).suffix
        if suffix.casefold() not in EXTRACTORS:
            return Skipped(rel, f"unsupported file type {suffix or '(none)'!r}")
        if entry.size > fs.max_bytes:
            return Skipped(rel, f"larger than max_file_mb={s.max_file_mb}")
        try:
            # a followed link gets its target's ACL plus every deny at its own place: it can never widen access
            acl = acls.acl_for(entry.target)
            if acl is not None and entry.target != rel:
                here = acls.acl_for(rel)
                acl = AccessControl.of(acl.allow, acl.deny | (here.deny if here else frozenset()))
        except AclError as exc:
            return Skipped(rel, f"invalid ACL, not indexed (fail closed): {exc}")
        if acl is None or not acl.allow:
            return Skipped(rel, f"no ACL: visible to nobody, so not indexed; add {rel}{FILE_ACL_SUFFIX}, "
                                f"an 'acl' pattern or a {FOLDER_ACL}")
        version = f"{entry.mtime_ns}:{entry.size}:{acl.fingerprint()}"
        if entry.target != rel:  # a followed link: re-pointing it is a change too
            version += f":{entry.target}"
        if self.context.indexed.get(rel) == version:
            return Unchanged(rel)
        try:
            raw = fs.read(entry)
        except SourceRefused as exc:
            return Skipped(rel, exc.reason)
        except OSError as exc:
            return Skipped(rel, f"cannot read: {exc.strerror or exc}")
        try:
            title, sections = extract(entry.name, raw)
        except (UnsupportedFormat, ExtractionError) as exc:
            return Skipped(rel, str(exc))
        except Exception as exc:  # noqa: BLE001 - one undecodable file must not stop the sync
            return Skipped(rel, f"extraction failed: {type(exc).__name__}: {exc}")
        # percent-encoded: a raw '#', '?', '%', space or newline in a name would cite another URL or none
        uri = (s.uri_prefix.rstrip("/") + "/" + quote(rel, safe=_PATH_SAFE)) if s.uri_prefix else fs.uri(rel)
        return Upsert(
            Document(
                id=rel,
                title=title,
                uri=uri,
                acl=acl,
                sections=tuple(sections),
                modified=datetime.fromtimestamp(entry.mtime_ns / 1e9, UTC),
                version=version,
            )
        )


@hookimpl
def register_connectors(register: Any) -> None:
    register(KnowledgeBaseConnector)
