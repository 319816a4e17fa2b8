"""The connector contract: how a data source delivers documents, changes and deletions.

A connector is configured, never discovered: the framework instantiates one only for a
``[connectors.<name>]`` table naming its ``type``. It yields :data:`Change` items; the ingester applies
them to the index and persists the connector's state at each :class:`Checkpoint`, so an interrupted
sync resumes from the last checkpoint without losing or duplicating anything.

Invariants a connector must keep (checked by ``groundwire.testing.ConnectorContract``):
- every :class:`Upsert` document carries the ACL of its source (no ACL -> visible to nobody);
- document ids are stable across syncs; a document that disappears at the source is deleted;
- a checkpoint's state is JSON-serialisable and only emitted after every change it covers;
- a connector that reads local files reads them only through :meth:`Connector.confined_root`
  (:class:`groundwire.sources.ConfinedRoot`): inside its root, no links out, no hard links (by default), no
  special files, bounded reads, every refused entry a :class:`Skipped` with its reason;
- one bad item is a :class:`Skipped`, never an exception that ends the sync (later changes and deletions must
  still be delivered).
"""

from __future__ import annotations

import asyncio
import builtins
import logging
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from .errors import ConnectorError
from .models import Document
from .sources import ConfinedRoot

__all__ = [
    "Change",
    "Checkpoint",
    "Connector",
    "ConnectorContext",
    "ConnectorSettings",
    "Delete",
    "FileSourceSettings",
    "Skipped",
    "Unchanged",
    "Upsert",
]


class ConnectorSettings(BaseModel):
    """Base for a connector's settings model; unknown keys are an error."""

    model_config = ConfigDict(extra="forbid")


class FileSourceSettings(ConnectorSettings):
    """Settings every connector over a local folder shares (used by :meth:`Connector.confined_root`).

    :param path: the root folder, relative to the configuration file; nothing outside it is ever read
    :param follow_symlinks: read links to files whose real target stays inside ``path`` (default: skip links)
    :param max_file_mb: larger files are skipped; reads stop at this size whatever the file claims
    :param follow_hardlinks: read files that have more than one name (hard links; default: skip them, since
        one may name a file outside ``path``)
    """

    path: str
    follow_symlinks: bool = False
    follow_hardlinks: bool = False
    max_file_mb: float = Field(default=25.0, gt=0)


@dataclass(frozen=True, slots=True)
class Upsert:
    document: Document


@dataclass(frozen=True, slots=True)
class Delete:
    doc_id: str


@dataclass(frozen=True, slots=True)
class Unchanged:
    """The source reports the document unchanged since the indexed version (counted, nothing written)."""

    doc_id: str


@dataclass(frozen=True, slots=True)
class Skipped:
    """An item deliberately not indexed, with the reason (logged and counted, never silent)."""

    item: str
    reason: str


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """Persist ``state``: every change before it has been applied."""

    state: Mapping[str, Any]


Change = Upsert | Delete | Unchanged | Skipped | Checkpoint


@dataclass(slots=True)
class ConnectorContext:
    """What the framework offers a connector.

    :param indexed: doc id -> version of every document of this connector now in the index
    :param data_dir: a folder the connector may use for caches
    :param config_dir: the folder of the configuration file (relative paths resolve against it)
    """

    indexed: Mapping[str, str]
    data_dir: Any
    config_dir: Any
    logger: logging.Logger = field(default_factory=lambda: logging.getLogger("groundwire.connector"))


class Connector(ABC):
    """Base class of connectors. Subclasses set ``type`` and ``Settings`` and implement :meth:`changes`."""

    type: ClassVar[str]
    Settings: ClassVar[builtins.type[ConnectorSettings]] = ConnectorSettings

    def __init__(self, name: str, tenant: str, settings: ConnectorSettings, context: ConnectorContext) -> None:
        self.name = name
        self.tenant = tenant
        self.settings = settings
        self.context = context
        self.log = logging.getLogger(f"groundwire.connector.{name}")

    @abstractmethod
    def changes(self, state: Mapping[str, Any]) -> Iterator[Change]:
        """Yield the changes since ``state`` (empty for a first, full sync)."""

    async def achanges(self, state: Mapping[str, Any]) -> AsyncIterator[Change]:
        """Async variant; the default runs :meth:`changes` in a worker thread."""
        it = self.changes(state)
        sentinel = object()
        while True:
            item = await asyncio.to_thread(next, it, sentinel)
            if item is sentinel:
                return
            yield item  # type: ignore[misc]

    def confined_root(self) -> ConfinedRoot:
        """The configured folder as a :class:`ConfinedRoot` (settings: :class:`FileSourceSettings`).

        :raises ConnectorError: the folder does not exist
        """
        s = self.settings
        if not isinstance(s, FileSourceSettings):
            raise TypeError(f"{type(self).__name__}.Settings must subclass FileSourceSettings to read files")
        root = Path(s.path).expanduser()
        if not root.is_absolute():
            root = Path(self.context.config_dir) / root
        if not root.is_dir():
            raise ConnectorError(self.name, f"folder {root} does not exist; fix 'path' in the configuration")
        return ConfinedRoot(root, follow_symlinks=s.follow_symlinks, max_bytes=int(s.max_file_mb * 1024 * 1024),
                            follow_hardlinks=s.follow_hardlinks)

    def expected_items(self, state: Mapping[str, Any]) -> int | None:
        """How many items (files, pages) :meth:`changes` will go through, if that is cheap to know; for
        progress totals and ETA only (``None``: unknown). Runs in the same thread as :meth:`changes`."""
        return None

    def close(self) -> None:
        """Release connections. Called once after a sync."""
