"""Authentication: OIDC bearer JWTs checked against the issuer's JWKS, and hashed static API keys.

Every way in ends in an :class:`Identity` holding a :class:`~groundwire.UserContext`; the Grounder's own
access, feature and review checks take it from there.

Token checks, in order (each failure is an :class:`AuthFailure` with a short ``reason`` for the audit log):

1. the header parses, its ``alg`` is one of the configured asymmetric algorithms (never ``none`` or an
   HMAC algorithm, so a public key can never be used as a shared secret) and it names a ``kid``;
2. the key with that ``kid`` comes from the issuer's JWKS (found through the discovery document, whose
   ``issuer`` must equal the configured one). Keys are cached for ``jwks_cache_seconds``; an unknown
   ``kid`` re-fetches the set (key rotation), but at most once per ``jwks_min_refresh_seconds``, so
   tokens with made-up kids cannot make the service hammer the issuer;
3. the key's type fits ``alg``; signature, ``iss``, ``aud``, ``exp`` (required), ``nbf`` and ``iat``
   checked by PyJWT with ``leeway_seconds`` of clock skew;
4. claims mapping: the first non-empty claim of ``claims.user``; the ``claims.tenant`` value must be in
   ``[server.tenants]`` (unknown tenants are refused); ``groups`` and ``roles`` must be lists of strings;
   a group overage (``_claim_names`` naming the groups claim, or Entra's ``hasgroups``) is refused unless
   a ``group_resolver`` is configured.

API keys (``X-API-Key``) are compared by SHA-256 digest in constant time; each is bound to one tenant and
role set and acts as the user ``service:<name>``. That prefix is reserved: a token whose user claim starts with
``service:`` (in any ASCII case) is refused, so no signed-in user can share a service's principal.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import importlib
import inspect
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import httpx
import jwt

from ..errors import ConfigError
from ..models import UserContext
from .settings import ApiKeySettings, OIDCSettings, ServerSettings

__all__ = ["MAX_ISSUER_BYTES", "SERVICE_PREFIX", "ApiKeyAuthenticator", "AuthFailure", "Identity", "JWKSCache",
           "OIDCValidator", "map_claims"]


SERVICE_PREFIX = "service:"  # the user ids of API keys; refused in tokens
#: largest discovery document or JWK Set read from the issuer (real ones are a few KB)
MAX_ISSUER_BYTES = 1 << 20


class AuthFailure(Exception):
    """A request could not be authenticated (401) or its identity is not admitted (403).

    :param reason: a short code for the audit log and metrics (``expired``, ``bad_signature``, ...)
    :param status: 401 (no valid credentials) or 403 (valid, but refused)
    :param detail: a message for the caller that reveals nothing about keys or configuration
    """

    def __init__(self, reason: str, detail: str, status: int = 401) -> None:
        super().__init__(detail)
        self.reason, self.detail, self.status = reason, detail, status


@dataclass(frozen=True, slots=True)
class Identity:
    """Who made a request, as established by the server."""

    user: UserContext
    method: Literal["oidc", "api_key", "session"]
    subject: str

    @property
    def key(self) -> str:
        """The rate-limit key: one bucket per tenant and user."""
        return f"{self.user.tenant}/{self.user.user_id}"


class JWKSCache:
    """The issuer's discovery document and signing keys, cached, refreshed on rotation with a rate limit."""

    def __init__(self, settings: OIDCSettings, client: httpx.AsyncClient, clock: Callable[[], float] = time.monotonic):
        self.settings = settings
        self.client = client
        self.clock = clock
        self._discovery: dict[str, Any] | None = None
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at: float | None = None
        self._lock = asyncio.Lock()
        self._failed_at: float | None = None
        self.fetches = 0

    async def _get_json(self, url: str) -> dict[str, Any]:
        """GET a JSON object from the issuer. After a failure, further fetches fail at once for
        ``jwks_min_refresh_seconds`` (an issuer outage must not make every request wait for a timeout)."""
        unreachable = AuthFailure("issuer_unreachable", "the identity provider could not be reached", 503)
        if self._failed_at is not None and self.clock() - self._failed_at < self.settings.jwks_min_refresh_seconds:
            raise unreachable
        try:
            # asked unencoded and read raw, at most MAX_ISSUER_BYTES: httpx would inflate any coding the
            # server picks (zstd too, with zstandard installed), each read whole, before a size check
            async with self.client.stream("GET", url, timeout=self.settings.http_timeout_seconds,
                                          headers={"Accept-Encoding": "identity"}) as r:
                r.raise_for_status()
                coding = r.headers.get("content-encoding", "").strip().lower()
                if coding not in ("", "identity"):
                    raise ValueError(f"the issuer answered with content-encoding {coding!r}, not asked for")
                body = bytearray()
                async for part in r.aiter_raw():
                    body += part
                    if len(body) > MAX_ISSUER_BYTES:
                        raise ValueError(f"the issuer's document is over {MAX_ISSUER_BYTES} bytes")
            data = json.loads(body)
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
        except (httpx.HTTPError, ValueError, RecursionError) as exc:
            self._failed_at = self.clock()
            raise unreachable from exc
        self._failed_at = None
        return data

    async def discovery(self) -> dict[str, Any]:
        """The OpenID Provider metadata; its ``issuer`` must equal the configured issuer (OIDC Discovery 4.3)."""
        if self._discovery is None:
            doc = await self._get_json(self.settings.discovery)
            if str(doc.get("issuer", "")).rstrip("/") != self.settings.issuer or not doc.get("jwks_uri"):
                raise AuthFailure("issuer_mismatch", "the identity provider's metadata does not match", 503)
            self._discovery = doc
        return self._discovery

    async def _refresh(self) -> None:
        doc = await self.discovery()
        data = await self._get_json(str(doc["jwks_uri"]))
        keys: dict[str, jwt.PyJWK] = {}
        for jwk in data.get("keys", []):
            if not isinstance(jwk, dict) or jwk.get("use", "sig") != "sig" or not jwk.get("kid"):
                continue
            try:
                keys[str(jwk["kid"])] = jwt.PyJWK(jwk)
            except (jwt.PyJWKError, jwt.InvalidKeyError):
                continue  # a key type this service does not accept
        self._keys, self._fetched_at = keys, self.clock()
        self.fetches += 1

    async def key(self, kid: str) -> jwt.PyJWK:
        async with self._lock:
            now = self.clock()
            stale = self._fetched_at is None or now - self._fetched_at >= self.settings.jwks_cache_seconds
            if stale:
                await self._refresh()
            elif kid not in self._keys and now - (self._fetched_at or 0.0) >= self.settings.jwks_min_refresh_seconds:
                await self._refresh()  # rotation: the issuer may have published a new key
            found = self._keys.get(kid)
        if found is None:
            raise AuthFailure("unknown_kid", "the token was signed with a key this service does not know")
        return found


_JWT_ERRORS: Sequence[tuple[type[Exception], str, str]] = (
    (jwt.ExpiredSignatureError, "expired", "the token has expired; sign in again"),
    (jwt.ImmatureSignatureError, "not_yet_valid", "the token is not valid yet"),
    (jwt.InvalidAudienceError, "wrong_audience", "the token was not issued for this service"),
    (jwt.InvalidIssuerError, "wrong_issuer", "the token was not issued by the configured identity provider"),
    (jwt.InvalidSignatureError, "bad_signature", "the token's signature is not valid"),
    (jwt.MissingRequiredClaimError, "missing_claim", "the token lacks a required claim"),
    (jwt.InvalidTokenError, "invalid_token", "the token is not valid"),
)


class OIDCValidator:
    """Validate a JWT from the configured issuer and map it to an :class:`Identity`."""

    def __init__(self, settings: ServerSettings, client: httpx.AsyncClient) -> None:
        assert settings.oidc is not None
        self.settings = settings
        self.oidc: OIDCSettings = settings.oidc
        self.jwks = JWKSCache(self.oidc, client)
        self._resolver: Callable[[Mapping[str, Any]], Any] | None = None
        if self.oidc.claims.group_resolver:
            module, _, attr = self.oidc.claims.group_resolver.partition(":")
            try:
                self._resolver = getattr(importlib.import_module(module), attr)
            except (ImportError, AttributeError) as exc:
                raise ConfigError("[server]", "server.oidc.claims.group_resolver",
                                  f"cannot import {self.oidc.claims.group_resolver!r}: {exc}",
                                  "name an importable 'package.module:function'") from None
            if not callable(self._resolver):
                raise ConfigError("[server]", "server.oidc.claims.group_resolver", "is not callable")

    async def claims(self, token: str, audience: Sequence[str] | None = None) -> dict[str, Any]:
        """The verified claims of ``token`` (see the module docstring for the checks)."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise AuthFailure("malformed", "the bearer token is not a JWT") from None
        alg = header.get("alg")
        if alg not in self.oidc.algorithms:
            raise AuthFailure("alg_not_allowed", "the token's signing algorithm is not accepted")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise AuthFailure("no_kid", "the token does not name its signing key")
        key = await self.jwks.key(kid)
        if key.algorithm_name != alg:
            raise AuthFailure("alg_key_mismatch", "the token's algorithm does not match its key")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key.key,
                algorithms=[alg],
                audience=list(audience or self.oidc.audience),
                issuer=self.oidc.issuer,
                leeway=self.oidc.leeway_seconds,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.InvalidTokenError as exc:
            for cls, reason, detail in _JWT_ERRORS:
                if isinstance(exc, cls):
                    raise AuthFailure(reason, detail) from None
            raise AuthFailure("invalid_token", "the token is not valid") from None  # pragma: no cover
        return claims

    async def identity(self, token: str, audience: Sequence[str] | None = None) -> Identity:
        claims = await self.claims(token, audience)
        groups: Sequence[str] | None = None
        if _overage(claims, self.oidc.claims.groups):
            if self._resolver is None:
                raise AuthFailure(
                    "group_overage",
                    "the token does not list all your groups (group overage) and no group resolver is configured",
                    403,
                )
            resolved = self._resolver(claims)
            if inspect.isawaitable(resolved):
                resolved = await resolved
            groups = list(resolved)
        user = map_claims(claims, self.settings, groups=groups)
        return Identity(user, "oidc", str(claims.get("sub", user.user_id)))


def _overage(claims: Mapping[str, Any], groups_claim: str) -> bool:
    names = claims.get("_claim_names")
    if isinstance(names, Mapping) and groups_claim in names:
        return True
    return groups_claim not in claims and claims.get("hasgroups") in (True, "true")


def _strings(claims: Mapping[str, Any], name: str) -> list[str]:
    value = claims.get(name, [])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise AuthFailure("bad_claims", f"the token's {name!r} claim is not a list of strings")
    return value


def map_claims(
    claims: Mapping[str, Any], settings: ServerSettings, groups: Sequence[str] | None = None
) -> UserContext:
    """The :class:`UserContext` a verified token stands for; raises :class:`AuthFailure` (403) for a
    tenant missing from ``[server.tenants]``."""
    assert settings.oidc is not None
    cs = settings.oidc.claims
    user_id = next((claims[c] for c in cs.user if isinstance(claims.get(c), str) and claims[c].strip()), None)
    if user_id is None:
        raise AuthFailure("no_user_claim", "the token does not identify a user")
    if user_id.strip(" ").lower().startswith(SERVICE_PREFIX):
        # reserved for API keys: a token must never become a service's principal (its drafts, its documents)
        raise AuthFailure("reserved_user_id", "the token's user id is reserved for service API keys", 403)
    tid = claims.get(cs.tenant)
    tenant = settings.tenants.get(tid) if isinstance(tid, str) else None
    if tenant is None:
        raise AuthFailure("tenant_not_mapped", "your organisation is not enabled on this service", 403)
    group_ids = list(groups) if groups is not None else _strings(claims, cs.groups)
    try:
        return UserContext.of(user_id, tenant, group_ids, _strings(claims, cs.roles))
    except ValueError:
        raise AuthFailure("bad_claims", "the token's identity claims are not valid") from None


class ApiKeyAuthenticator:
    """Static service keys; only their SHA-256 digests are configured."""

    def __init__(self, keys: Sequence[ApiKeySettings]) -> None:
        self.keys = list(keys)

    @staticmethod
    def digest(key: str) -> str:
        return hashlib.sha256(key.encode("utf-8")).hexdigest()

    def identity(self, presented: str) -> Identity:
        digest = self.digest(presented)
        match: ApiKeySettings | None = None
        for k in self.keys:  # compare against every key: the time taken does not depend on which matched
            if hmac.compare_digest(digest, k.sha256):
                match = k
        if match is None:
            raise AuthFailure("bad_api_key", "the API key is not valid")
        user = UserContext.of(f"{SERVICE_PREFIX}{match.name}", match.tenant, match.groups, match.roles)
        return Identity(user, "api_key", match.name)
