"""The shared connector contract (groundwire.testing.ConnectorContract), run against the Graph double."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
from groundwire import Connector, ConnectorContext
from groundwire.connectors.sharepoint import SharePointConnector, SharePointSettings, file_doc_id
from groundwire.testing import ConnectorContract, SourceController

from .graph_double import TOKEN_ENV, GraphDouble, Perm, group_perm, org_link, user_perm

ALICE_OID = "0f1e2d3c-aaaa-4bbb-8ccc-000000000001"


def perms_for(allow: list[str]) -> list[Perm]:
    """Graph permissions that grant exactly these Groundwire principals."""
    out = []
    for p in allow:
        if p == "everyone":
            out.append(org_link())
        elif p.startswith("group:"):
            out.append(group_perm(p.split(":", 1)[1]))
        elif p.startswith("user:"):
            out.append(user_perm(p.split(":", 1)[1], ALICE_OID))
        else:  # pragma: no cover - the contract uses only these
            raise ValueError(p)
    return out


class GraphSource:
    """A SourceController over one site with one library in the Graph double."""

    supports_item_acl = True

    def __init__(self, double: GraphDouble) -> None:
        self.double = double
        self.site = double.add_site("/sites/contract")
        self.drive = double.add_drive(self.site)
        self.items: dict[str, str] = {}

    def add(self, key: str, text: str, allow: list[str]) -> None:
        self.items[key] = self.double.add_file(self.drive, f"{key}.txt", text, perms=perms_for(allow))

    def edit(self, key: str, text: str) -> None:
        self.double.edit_file(self.drive, self.items[key], text)

    def delete(self, key: str) -> None:
        self.double.delete(self.drive, self.items[key])

    def set_acl(self, key: str, allow: list[str]) -> None:
        self.double.set_permissions(self.drive, self.items[key], perms_for(allow))

    def doc_id(self, key: str) -> str:
        return file_doc_id(self.drive, self.items[key])


class TestSharePointContract(ConnectorContract):
    reads_local_files = False  # Microsoft Graph: the hostile local-file cases do not apply

    @pytest.fixture
    def source(self, graph: GraphDouble, tmp_path: Path) -> Iterator[SourceController]:
        self.tmp = tmp_path
        yield GraphSource(graph)

    def make_connector(self, source: SourceController, indexed: Mapping[str, str]) -> Connector:
        assert isinstance(source, GraphSource)
        settings = SharePointSettings(
            sites=[source.double.site_url(source.site)],
            graph_url=source.double.graph_url,
            allow_http_hosts=["127.0.0.1"],
            access_token_env=TOKEN_ENV,
            organization_links_grant_everyone=True,
            include_pages=False,
            backoff_base=0.001,
        )
        ctx = ConnectorContext(
            indexed=indexed, data_dir=self.tmp, config_dir=self.tmp, logger=logging.getLogger("test")
        )
        return SharePointConnector("sp", "acme", settings, ctx)
