"""``[server]`` of the configuration file, validated strictly (unknown keys are errors).

Example::

    [server]
    host = "127.0.0.1"                  # loopback unless you mean it
    port = 8080
    metrics_roles = ["metrics-reader"]  # who may read /metrics

    [server.oidc]                       # the identity provider every bearer token must come from
    issuer = "https://login.microsoftonline.com/<tid>/v2.0"
    audience = ["api://groundwire"]
    # discovery_url = "<issuer>/.well-known/openid-configuration" (the default)

    [server.oidc.claims]                # Entra ID defaults
    user = ["oid", "preferred_username", "upn"]
    tenant = "tid"

    [server.tenants]                    # token tenant id -> Groundwire tenant; unknown ids are refused
    "72f988bf-86f1-41af-91ab-2d7cd011db47" = "acme"

    [[server.api_keys]]                 # service-to-service only; store the SHA-256, never the key
    name = "ticketing"
    sha256 = "<hex of sha256(key)>"
    tenant = "acme"
    roles = ["ticketing-bot"]

    [server.review]                     # the reviewer page (authorization-code flow with PKCE)
    client_id = "groundwire-review"
    redirect_uri = "http://127.0.0.1:8080/review/callback"

Invariants: an issuer is required unless only API keys are used; ``http://`` issuers are refused unless
they are on loopback (test doubles); secrets (the session key, a confidential client's secret) are read
from environment variables named here, never stored in the file.
"""

from __future__ import annotations

import ipaddress
import os
import re
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..config import GroundwireConfig
from ..models import validate_tenant

__all__ = [
    "ApiKeySettings",
    "ClaimsSettings",
    "LimitsSettings",
    "OIDCSettings",
    "ReviewPageSettings",
    "ServerSettings",
    "is_loopback",
    "load_server_settings",
]

_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host.casefold() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _check_url(url: str, what: str) -> str:
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return url.rstrip("/") if what == "issuer" else url
    if parts.scheme == "http" and parts.hostname and is_loopback(parts.hostname):
        return url.rstrip("/") if what == "issuer" else url
    raise ValueError(f"{what} must be an https:// URL (http:// only on loopback), got {url!r}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ClaimsSettings(_Strict):
    """Which token claims carry the identity (Entra ID defaults)."""

    user: list[str] = Field(default_factory=lambda: ["oid", "preferred_username", "upn"], min_length=1)
    tenant: str = "tid"
    groups: str = "groups"
    roles: str = "roles"
    # "module:function" called with the verified claims when the token says its groups did not fit
    # (``_claim_names`` group overage); returns the group ids. Unset: such tokens are refused.
    group_resolver: str = ""

    @field_validator("group_resolver")
    @classmethod
    def _resolver(cls, v: str) -> str:
        if v and (":" not in v or not all(v.split(":", 1))):
            raise ValueError("use 'package.module:function'")
        return v


class OIDCSettings(_Strict):
    issuer: str
    audience: list[str] = Field(min_length=1)
    discovery_url: str = ""
    algorithms: list[Literal["RS256", "ES256"]] = Field(default_factory=lambda: ["RS256", "ES256"],  # type: ignore[arg-type]
                                                         min_length=1)
    leeway_seconds: int = Field(default=60, ge=0, le=600, description="clock skew allowed on exp / nbf / iat")
    jwks_cache_seconds: int = Field(default=3600, ge=0, description="keys are re-fetched after this long")
    jwks_min_refresh_seconds: float = Field(
        default=30.0, ge=0.0, description="an unknown kid re-fetches the JWKS at most this often"
    )
    http_timeout_seconds: float = Field(default=5.0, gt=0.0, le=60.0)
    claims: ClaimsSettings = Field(default_factory=ClaimsSettings)

    @field_validator("issuer")
    @classmethod
    def _issuer(cls, v: str) -> str:
        return _check_url(v, "issuer")

    @field_validator("discovery_url")
    @classmethod
    def _discovery(cls, v: str) -> str:
        return _check_url(v, "discovery_url") if v else v

    @property
    def discovery(self) -> str:
        return self.discovery_url or f"{self.issuer}/.well-known/openid-configuration"


class ApiKeySettings(_Strict):
    """A static key for one calling service, bound to a tenant and a role set."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    sha256: str
    tenant: str
    roles: list[str] = Field(default_factory=list)
    groups: list[str] = Field(default_factory=list)

    @field_validator("sha256")
    @classmethod
    def _hash(cls, v: str) -> str:
        v = v.strip().lower()
        if not _HEX64.match(v):
            raise ValueError("must be the 64 hex digits of sha256(key), never the key itself")
        return v

    @field_validator("tenant")
    @classmethod
    def _tenant(cls, v: str) -> str:
        return validate_tenant(v)


class LimitsSettings(_Strict):
    max_body_bytes: int = Field(default=64 * 1024, ge=1024, le=16 * 1024 * 1024)
    max_prompt_chars: int = Field(default=4000, ge=1, le=100_000)
    max_edit_chars: int = Field(default=50_000, ge=1, le=1_000_000)
    rate_per_minute: float = Field(default=120.0, gt=0.0, description="sustained requests per user (per worker)")
    burst: int = Field(default=30, ge=1, description="requests a user may make at once before the rate applies")
    max_concurrency: int = Field(default=8, ge=1, description="grounding / retrieval calls at once (per worker)")
    queue_timeout_seconds: float = Field(default=5.0, ge=0.0)


class ReviewPageSettings(_Strict):
    enabled: bool = True
    client_id: str = ""
    client_secret_env: str = Field(default="", description="env var holding a confidential client's secret")
    redirect_uri: str = ""
    scopes: list[str] = Field(default_factory=lambda: ["openid", "profile", "email"])
    session_secret_env: str = "GROUNDWIRE_SESSION_SECRET"
    session_minutes: int = Field(default=480, ge=1, le=7 * 24 * 60)
    secure_cookies: bool = True
    max_listed: int = Field(default=50, ge=1, le=1000)

    @field_validator("redirect_uri")
    @classmethod
    def _redirect(cls, v: str) -> str:
        return _check_url(v, "redirect_uri") if v else v

    def session_secret(self) -> bytes:
        value = os.environ.get(self.session_secret_env, "")
        if len(value) < 32:
            raise ValueError(
                f"set the environment variable {self.session_secret_env} to a random secret of at least 32 "
                "characters (e.g. python -c 'import secrets; print(secrets.token_urlsafe(48))'); every worker "
                "must see the same value"
            )
        return value.encode()

    def client_secret(self) -> str:
        return os.environ.get(self.client_secret_env, "") if self.client_secret_env else ""


class ServerSettings(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    workers: int = Field(default=1, ge=1, le=64)
    warm_up: bool = True
    oidc: OIDCSettings | None = None
    tenants: dict[str, str] = Field(default_factory=dict, description="token tenant id -> Groundwire tenant")
    api_keys: list[ApiKeySettings] = Field(default_factory=list)
    limits: LimitsSettings = Field(default_factory=LimitsSettings)
    review: ReviewPageSettings = Field(default_factory=ReviewPageSettings)
    metrics_roles: list[str] = Field(default_factory=lambda: ["metrics-reader"])

    @field_validator("tenants")
    @classmethod
    def _tenants(cls, v: dict[str, str]) -> dict[str, str]:
        for tenant in v.values():
            validate_tenant(tenant)
        return v

    @model_validator(mode="after")
    def _coherent(self) -> ServerSettings:
        if self.oidc is None and not self.api_keys:
            raise ValueError("configure [server.oidc] (an issuer) or at least one [[server.api_keys]] entry")
        names = [k.name for k in self.api_keys]
        if len(names) != len(set(names)):
            raise ValueError("api key names must be unique")
        if self.review.enabled and self.oidc is not None and not (self.review.client_id and self.review.redirect_uri):
            raise ValueError("[server.review] needs client_id and redirect_uri (or set enabled = false)")
        return self

    @property
    def review_enabled(self) -> bool:
        return self.review.enabled and self.oidc is not None


def load_server_settings(config: GroundwireConfig) -> ServerSettings:
    """Validate ``config.server``; raise :class:`~groundwire.ConfigError` naming the first bad ``server.*`` key."""
    data: dict[str, Any] = dict(config.server)
    try:
        return ServerSettings.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(["server", *(str(p) for p in err["loc"])])
        if err["type"] == "extra_forbidden":
            raise config.error(key, "unknown key", "check the spelling; see README 'HTTP service'") from None
        if err["type"] == "missing":
            raise config.error(key, "is required", "add it to the file") from None
        msg = str(err["msg"]).removeprefix("Value error, ")
        raise config.error(key, msg) from None
