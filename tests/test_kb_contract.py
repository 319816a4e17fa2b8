"""The shared connector contract (groundwire.testing.ConnectorContract) run against the knowledge-base
connector on real files, including the hostile local-source cases (links, FIFOs, loops, undecodable names).

Each item lives in its own folder, ``<key>/<key>.md``, with its ACL in that folder's ``.groundwire-acl.toml``,
so the contract can replace the file (with a link, a FIFO, a renamed file) and it keeps its ACL.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
from groundwire import Connector, ConnectorContext
from groundwire.connectors.knowledge_base import KnowledgeBaseConnector, KnowledgeBaseSettings
from groundwire.testing import ConnectorContract


class FolderController:
    supports_item_acl = True

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def path_for(self, key: str) -> Path:
        return self.root / key / f"{key}.md"

    def add(self, key: str, text: str, allow: list[str]) -> None:
        self.path_for(key).parent.mkdir(exist_ok=True)
        self.set_acl(key, allow)
        self.edit(key, text)

    def edit(self, key: str, text: str) -> None:
        self.path_for(key).write_text(f"# Item {key}\n\n{text}\n", encoding="utf-8")

    def delete(self, key: str) -> None:
        self.path_for(key).unlink()

    def set_acl(self, key: str, allow: list[str]) -> None:
        quoted = ", ".join(f'"{p}"' for p in allow)
        (self.root / key / ".groundwire-acl.toml").write_text(f"allow = [{quoted}]\n", encoding="utf-8")

    def doc_id(self, key: str) -> str:
        return f"{key}/{key}.md"


class TestKnowledgeBaseContract(ConnectorContract):
    reads_local_files = True
    HANG_TIMEOUT = 20.0

    @pytest.fixture
    def source(self, tmp_path: Path) -> Iterator[FolderController]:
        self.tmp_path = tmp_path
        yield FolderController(tmp_path / "kb")

    def make_connector(  # type: ignore[override]
        self, source: FolderController, indexed: Mapping[str, str]
    ) -> Connector:
        settings = KnowledgeBaseSettings.model_validate({"path": str(source.root)})
        context = ConnectorContext(indexed=indexed, data_dir=self.tmp_path / "cache", config_dir=self.tmp_path)
        return KnowledgeBaseConnector("kb", "acme", settings, context)
