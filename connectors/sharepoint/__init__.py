"""SharePoint Online connector (Microsoft Graph, app-only): document libraries, site pages, permissions.

Install with ``pip install 'groundwire[sharepoint]'`` (msal for authentication, python-docx, python-pptx
and openpyxl for Office files). The module imports without the extra; msal is imported when a token is
first needed. See :mod:`groundwire.connectors.sharepoint.connector` for how a sync works and
:mod:`groundwire.connectors.sharepoint.permissions` for how permissions map to principals.

Example::

    [connectors.intranet]
    type = "sharepoint"
    tenant = "acme"
    sites = ["https://acme.sharepoint.com/sites/hr"]
    tenant_id = "acme.onmicrosoft.com"
    client_id = "00000000-0000-0000-0000-000000000000"
    client_secret_env = "GROUNDWIRE_SP_SECRET"
    pages_allow = { "*" = ["group:<entra id of the site's members group>"] }
"""

from __future__ import annotations

from typing import Any

from groundwire import hookimpl

from .auth import MsalTokenProvider, StaticTokenProvider, TokenProvider
from .connector import SharePointConnector, file_doc_id, page_doc_id
from .graph import GraphClient, GraphError, parse_retry_after
from .permissions import acl_from_permissions
from .settings import SharePointSettings

__all__ = [
    "GraphClient",
    "GraphError",
    "MsalTokenProvider",
    "SharePointConnector",
    "SharePointSettings",
    "StaticTokenProvider",
    "TokenProvider",
    "acl_from_permissions",
    "file_doc_id",
    "page_doc_id",
    "parse_retry_after",
]


@hookimpl
def register_connectors(register: Any) -> None:
    register(SharePointConnector)
