"""The ingester records a connector's new version even when the content is unchanged.

Otherwise a connector's cheap change detection (``ConnectorContext.indexed``) would compare against a
stale version forever and re-read the unchanged document on every sync (a touched file, a web page
whose version scheme changed).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from groundwire import (
    AccessControl,
    Checkpoint,
    Connector,
    ConnectorSettings,
    Document,
    Grounder,
    Section,
    Unchanged,
    Upsert,
    config_from_dict,
    hookimpl,
)

INDEXED_SEEN: list[dict[str, str]] = []


class VersionedSettings(ConnectorSettings):
    version: str


class VersionedConnector(Connector):
    """One document whose text never changes; its version is the ``version`` setting."""

    type = "versioned"
    Settings = VersionedSettings

    def changes(self, state: Mapping[str, Any]) -> Iterator[Any]:
        version = self.settings.version  # type: ignore[attr-defined]
        INDEXED_SEEN.append(dict(self.context.indexed))
        if self.context.indexed.get("doc") == version:
            yield Unchanged("doc")
        else:
            acl = AccessControl.of(["everyone"])
            text = (Section("Same text."),)
            yield Upsert(Document("doc", "Doc", "https://x.example/doc", acl, text, version=version))
        yield Checkpoint({})


class _Plugin:
    @hookimpl
    def register_connectors(self, register: Any) -> None:
        register(VersionedConnector)


def test_same_content_new_version_is_recorded(tmp_path: Path) -> None:
    def sync(version: str) -> Any:
        connector = {"type": "versioned", "tenant": "acme", "version": version}
        cfg = config_from_dict({"data_dir": str(tmp_path / "gw"), "embedder": {"name": "hashing"},
                                "plugins": {"load_entrypoints": False}, "connectors": {"c": connector}})
        (report,) = Grounder(cfg, extra_plugins=[_Plugin()]).sync()
        return report

    INDEXED_SEEN.clear()
    assert sync("v1").added == 1
    assert sync("v2").unchanged == 1  # an upsert with the same text is not re-embedded...
    assert sync("v2").unchanged == 1
    assert INDEXED_SEEN[-1] == {"doc": "v2"}  # ...but the index now holds the new version
