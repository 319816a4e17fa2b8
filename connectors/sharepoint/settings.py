"""Settings of the SharePoint connector (the keys of a ``[connectors.<name>]`` table of type ``sharepoint``).

Unknown keys are errors. Secrets are never written in the configuration file itself: the client secret,
the certificate passphrase and a static token are read from the environment variables the file names.
"""

from __future__ import annotations

import ipaddress
from typing import Literal

from groundwire import ConnectorSettings
from pydantic import Field, field_validator, model_validator

__all__ = ["SharePointSettings", "is_loopback_host"]


def is_loopback_host(host: str) -> bool:
    """True for ``localhost`` and addresses in 127.0.0.0/8 or ::1."""
    h = host.strip("[]").casefold()
    if h == "localhost":
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False


class SharePointSettings(ConnectorSettings):
    """How to reach Microsoft Graph, which sites to read and how to map their permissions.

    Authentication (app-only, scope ``https://graph.microsoft.com/.default``) is one of:

    - ``tenant_id`` + ``client_id`` + ``client_secret_env``: msal client secret;
    - ``tenant_id`` + ``client_id`` + ``certificate_path`` (PEM private key and certificate, or a
      ``.pfx``) with ``certificate_thumbprint`` for PEM and optional ``certificate_password_env``;
    - ``access_token_env``: a bearer token taken as is from the environment (tests, or a token obtained
      elsewhere).
    """

    # --- what to read -------------------------------------------------------------------------------
    sites: list[str] = Field(min_length=1, description="site URLs (https://host/sites/x) or Graph site ids")
    include_pages: bool = True
    pages_allow: dict[str, list[str]] = Field(
        default_factory=dict,
        description="site (as written in 'sites', or '*') -> principals that may read its site pages",
    )
    max_file_mb: float = Field(default=25.0, gt=0)

    # --- permissions --------------------------------------------------------------------------------
    organization_links_grant_everyone: bool = False
    anonymous_links_grant_everyone: bool = False
    site_groups: dict[str, list[str]] = Field(
        default_factory=dict,
        description="SharePoint site group (display name or '<site id>/<group id>') -> principals",
    )
    recheck_permissions: Literal["every_sync", "changed_only"] = "every_sync"

    # --- authentication -----------------------------------------------------------------------------
    tenant_id: str | None = None
    client_id: str | None = None
    client_secret_env: str | None = None
    certificate_path: str | None = None
    certificate_thumbprint: str | None = None
    certificate_password_env: str | None = None
    access_token_env: str | None = None
    authority_host: str = "https://login.microsoftonline.com"

    # --- transport ----------------------------------------------------------------------------------
    graph_url: str = "https://graph.microsoft.com/v1.0"
    allow_http_hosts: list[str] = Field(default_factory=list, description="loopback hosts allowed over http")
    timeout: float = Field(default=60.0, gt=0)
    delta_page_size: int | None = Field(default=None, ge=1, le=1000)
    max_retries: int = Field(default=8, ge=0, le=50)
    backoff_base: float = Field(default=1.0, ge=0)
    backoff_max: float = Field(default=60.0, ge=0)
    max_retry_after: float = Field(default=300.0, ge=0, description="cap on one Retry-After wait, seconds")

    @field_validator("allow_http_hosts")
    @classmethod
    def _loopback_only(cls, hosts: list[str]) -> list[str]:
        for h in hosts:
            if not is_loopback_host(h):
                raise ValueError(f"{h!r} is not a loopback host; plain http is allowed only for loopback")
        return [h.strip("[]").casefold() for h in hosts]

    @field_validator("pages_allow", "site_groups")
    @classmethod
    def _principals(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        from groundwire.models import normalize_principal

        return {k: [normalize_principal(p) for p in ps] for k, ps in v.items()}

    @model_validator(mode="after")
    def _auth(self) -> SharePointSettings:
        if self.access_token_env:
            return self
        if not (self.tenant_id and self.client_id):
            raise ValueError(
                "set tenant_id and client_id (with client_secret_env or certificate_path), or access_token_env"
            )
        if bool(self.client_secret_env) == bool(self.certificate_path):
            raise ValueError("set exactly one of client_secret_env and certificate_path")
        pem = self.certificate_path and not self.certificate_path.casefold().endswith(".pfx")
        if pem and not self.certificate_thumbprint:
            raise ValueError("a PEM certificate_path needs certificate_thumbprint")
        return self
