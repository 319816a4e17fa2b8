"""App-only access tokens for Microsoft Graph, behind a small seam so tests need no Entra ID.

A :class:`TokenProvider` returns a bearer token and can be told that the last one was rejected.
:class:`MsalTokenProvider` uses msal's ``ConfidentialClientApplication`` (client secret or certificate)
with the scope ``https://graph.microsoft.com/.default``; msal caches the token and renews it before it
expires. msal is imported only when such a provider is built, so the connector's module imports without
the ``sharepoint`` extra.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Protocol

from groundwire import ConfigError, ConnectorError, MissingExtra

from .settings import SharePointSettings

__all__ = ["GRAPH_SCOPE", "MsalTokenProvider", "StaticTokenProvider", "TokenProvider", "make_token_provider"]

GRAPH_SCOPE = "https://graph.microsoft.com/.default"


class TokenProvider(Protocol):
    def token(self) -> str:
        """A bearer token for Graph."""
        ...

    def invalidate(self) -> None:
        """The last token was rejected (401): the next :meth:`token` must not return it again."""
        ...


class StaticTokenProvider:
    """A fixed token (from the environment variable ``access_token_env``, or given in code)."""

    def __init__(self, token: str) -> None:
        if not token:
            raise ValueError("empty access token")
        self._token = token

    def token(self) -> str:
        return self._token

    def invalidate(self) -> None:
        """A static token cannot be renewed; the next request fails with 401 again and is reported."""


def _env(name: str, connector: str, key: str) -> str:
    value = os.environ.get(name, "")
    if not value:
        raise ConnectorError(connector, f"environment variable {name} (from '{key}') is not set or empty")
    return value


class MsalTokenProvider:
    """Client-credentials tokens from msal (client secret or certificate)."""

    def __init__(self, settings: SharePointSettings, connector: str, config_dir: Any = None) -> None:
        try:
            import msal
        except ImportError as exc:
            raise MissingExtra("the SharePoint connector's authentication", "sharepoint") from exc
        s = settings
        credential: Any
        if s.client_secret_env:
            credential = _env(s.client_secret_env, connector, "client_secret_env")
        else:
            assert s.certificate_path is not None
            path = Path(s.certificate_path).expanduser()
            if not path.is_absolute() and config_dir is not None:
                path = Path(config_dir) / path
            password = (
                _env(s.certificate_password_env, connector, "certificate_password_env")
                if (s.certificate_password_env)
                else None
            )
            if path.suffix.casefold() == ".pfx":
                credential = {"private_key_pfx_path": str(path)}
                if password:
                    credential["passphrase"] = password
            else:
                try:
                    pem = path.read_text(encoding="utf-8")
                except OSError as exc:
                    raise ConfigError(
                        "<sharepoint>",
                        f"connectors.{connector}.certificate_path",
                        f"cannot read {path}: {exc}",
                    ) from None
                credential = {"private_key": pem, "thumbprint": s.certificate_thumbprint}
                if "BEGIN CERTIFICATE" in pem:
                    credential["public_certificate"] = pem  # sends x5c: enables subject-name/issuer auth
                if password:
                    credential["passphrase"] = password
        self.connector = connector
        self.app = msal.ConfidentialClientApplication(
            s.client_id,
            authority=f"{s.authority_host.rstrip('/')}/{s.tenant_id}",
            client_credential=credential,
        )

    def token(self) -> str:
        result = self.app.acquire_token_for_client(scopes=[GRAPH_SCOPE])  # msal's cache first
        tok = result.get("access_token") if isinstance(result, dict) else None
        if not tok:
            err = result.get("error", "unknown_error") if isinstance(result, dict) else "no result"
            desc = str(result.get("error_description", "")) if isinstance(result, dict) else ""
            raise ConnectorError(
                self.connector,
                f"could not get a Graph token from Entra ID ({err}: {(desc.splitlines() or ['-'])[0]}); "
                "check tenant_id, client_id, the secret or certificate, and the app's admin consent "
                "(Sites.Read.All, or Sites.Selected with the sites granted)",
            )
        return str(tok)

    def invalidate(self) -> None:
        """Drop the cached access tokens (msal has no force_refresh for client credentials)."""
        cache = self.app.token_cache
        for at in list(cache.search(cache.CredentialType.ACCESS_TOKEN)):
            cache.remove_at(at)


def make_token_provider(settings: SharePointSettings, connector: str, config_dir: Any = None) -> TokenProvider:
    """The provider the settings ask for: a static token from the environment, or msal."""
    if settings.access_token_env:
        return StaticTokenProvider(_env(settings.access_token_env, connector, "access_token_env"))
    return MsalTokenProvider(settings, connector, config_dir)
