"""The shared connector contract, run against the web connector and a real static site on loopback.

The source controller edits the site's files: every item is a page linked from the start page, so
adding, editing and deleting items changes what a crawl finds. ACLs are per site (``audience``), so
per-item ACL changes do not apply.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest
from groundwire import Connector, ConnectorContext
from groundwire.connectors.web import WebConnector, WebSettings
from groundwire.testing import ConnectorContract

from .static_site import StaticSite, page

pytestmark = pytest.mark.integration


class SiteController:
    supports_item_acl = False

    def __init__(self, site: StaticSite) -> None:
        self.site = site
        self.items: dict[str, str] = {}
        self._write_index()

    def _write_index(self) -> None:
        links = "".join(f"<li><a href='{key}.html'>{key}</a></li>" for key in sorted(self.items))
        self.site.write("/index.html", page("Contract site", f"<p>The items.</p><ul>{links}</ul>"))

    def _write(self, key: str, text: str) -> None:
        self.site.write(f"/{key}.html", page(f"Item {key}", f"<h2 id='body'>Body</h2><p>{text}</p>"))

    def add(self, key: str, text: str, allow: list[str]) -> None:
        self.items[key] = text
        self._write(key, text)
        self._write_index()

    def edit(self, key: str, text: str) -> None:
        self.items[key] = text
        self._write(key, text)

    def delete(self, key: str) -> None:
        del self.items[key]
        self.site.remove(f"/{key}.html")
        self._write_index()

    def set_acl(self, key: str, allow: list[str]) -> None:  # pragma: no cover - supports_item_acl is False
        raise NotImplementedError("the web connector's ACL is the site's audience")

    def doc_id(self, key: str) -> str:
        return self.site.url(f"/{key}.html")


class TestWebConnectorContract(ConnectorContract):
    reads_local_files = False  # pages over HTTP: the hostile local-file cases do not apply

    @pytest.fixture
    def source(self, serve: Callable[..., StaticSite], tmp_path: Path) -> Iterator[SiteController]:
        self.tmp_path = tmp_path
        yield SiteController(serve())

    def make_connector(  # type: ignore[override]
        self, source: SiteController, indexed: Mapping[str, str]
    ) -> Connector:
        site = source.site
        settings = WebSettings.model_validate({
            "start_urls": [site.url("/")],
            "allow": [site.url("/")],
            "audience": ["everyone"],
            "allow_http_hosts": ["127.0.0.1"],
            "allow_networks": ["127.0.0.1/32"],
            "requests_per_second": 500,
        })
        context = ConnectorContext(indexed=indexed, data_dir=self.tmp_path, config_dir=self.tmp_path)
        return WebConnector("site", "acme", settings, context)
