"""The unique-authentication row: the HTTP service's token validation, probed live.

With ``[server]`` configured, the row builds the service's own validators from it and checks that
- the identity provider's discovery document and JWKS are reachable and publish at least one signing key;
- a token naming a published key id but signed with another key is rejected (``bad_signature``);
- an unsigned ``alg: none`` token and an HS256 token are rejected (``alg_not_allowed``);
- with a key the validator trusts (a probe key placed in a second validator's key cache, so no issuer key is
  needed): a well-formed token is accepted (so the probe is meaningful), and the same token expired, for
  another audience or from another issuer is rejected;
- a random API key is refused when ``[[server.api_keys]]`` exist.
Without ``[server]`` the row passes as "not applicable": the embedding app asserts the user's identity.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import json
import secrets
import time
from typing import TYPE_CHECKING, Any

from .base import Check, run

if TYPE_CHECKING:
    from ..pipeline import Grounder

__all__ = ["AUTHENTICATION", "unique_authentication"]

AUTHENTICATION = "unique authentication"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unsigned(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    return ".".join([_b64(json.dumps(header).encode()), _b64(json.dumps(claims).encode()), _b64(signature)])


async def _rejects(validator: Any, token: str) -> str | None:
    """The rejection reason, or None when the token was accepted."""
    from ..server.auth import AuthFailure

    try:
        await validator.claims(token)
    except AuthFailure as exc:
        return exc.reason
    return None


async def _probe_oidc(settings: Any) -> tuple[bool, str]:
    import httpx
    import jwt
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    from ..server.auth import OIDCValidator

    oidc = settings.oidc
    async with httpx.AsyncClient() as client:
        live = OIDCValidator(settings, client)
        try:
            await live.jwks.key("__trust-report-probe__")
        except Exception as exc:  # noqa: BLE001 - unknown_kid is expected; unreachable is the failure
            if getattr(exc, "reason", "") != "unknown_kid":
                return False, f"the identity provider {oidc.issuer} is not usable: {getattr(exc, 'detail', exc)}"
        published = dict(live.jwks._keys)
        if not published:
            return False, f"the JWKS of {oidc.issuer} publishes no signing key this service accepts"
        kid, real = next(iter(published.items()))
        alg = str(real.algorithm_name)
        forger: Any = ec.generate_private_key(ec.SECP256R1()) if alg == "ES256" else rsa.generate_private_key(
            public_exponent=65537, key_size=2048)
        now = int(time.time())
        claims = {"iss": oidc.issuer, "aud": oidc.audience[0], "sub": "trust-report-probe", "iat": now, "nbf": now,
                  "exp": now + 300}
        failures: list[str] = []
        reasons: dict[str, str | None] = {
            "forged signature": await _rejects(live, jwt.encode(claims, forger, algorithm=alg, headers={"kid": kid})),
            "alg none": await _rejects(live, _unsigned({"alg": "none", "typ": "JWT", "kid": kid}, claims)),
            "HS256": await _rejects(live, jwt.encode(claims, secrets.token_bytes(32), algorithm="HS256",
                                                     headers={"kid": kid})),
        }
        # a validator with the same settings that trusts one probe key: claim checks without the issuer's key
        pinned = settings.model_copy(update={"oidc": oidc.model_copy(
            update={"jwks_cache_seconds": 3600, "jwks_min_refresh_seconds": 3600})})
        probe = OIDCValidator(pinned, client)
        probe_kid = "trust-report-probe"
        pub = jwt.algorithms.RSAAlgorithm.to_jwk(forger.public_key()) if alg == "RS256" else \
            jwt.algorithms.ECAlgorithm.to_jwk(forger.public_key())
        probe.jwks._keys = {probe_kid: jwt.PyJWK({**json.loads(pub), "kid": probe_kid, "alg": alg, "use": "sig"})}
        probe.jwks._fetched_at = probe.jwks.clock()

        def signed(**over: Any) -> str:
            return jwt.encode({**claims, **over}, forger, algorithm=alg, headers={"kid": probe_kid})

        if await _rejects(probe, signed()) is not None:
            failures.append("a well-formed probe token was refused (the probe cannot tell rejections apart)")
        late = oidc.leeway_seconds + 3600
        reasons |= {
            "expired": await _rejects(probe, signed(exp=now - late, iat=now - 2 * late, nbf=now - 2 * late)),
            "wrong audience": await _rejects(probe, signed(aud="api://not-this-service")),
            "wrong issuer": await _rejects(probe, signed(iss="https://issuer.invalid")),
        }
    failures += [f"a token with {what} was ACCEPTED" for what, reason in reasons.items() if reason is None]
    if failures:
        return False, "; ".join(failures)
    shown = ", ".join(f"{what} ({reason})" for what, reason in reasons.items())
    return True, f"JWKS of {oidc.issuer} reachable ({len(published)} key(s)); rejected: {shown}"


def _in_thread(coro: Any) -> tuple[bool, str]:
    # a fresh event loop in its own thread: works whether or not the caller runs one (the service does)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        result: tuple[bool, str] = pool.submit(asyncio.run, coro).result()
    return result


def unique_authentication(g: Grounder) -> Check:
    server = g.config.server
    if not server:
        return Check(AUTHENTICATION, "no [server] section", True,
                     "not applicable: identity asserted by the embedding app")

    def config() -> str:
        oidc = server.get("oidc") or {}
        return (f"[server] oidc issuer={oidc.get('issuer', '(none)')}, "
                f"api_keys={len(server.get('api_keys') or [])}")

    def check() -> tuple[bool, str]:
        try:
            from ..server.auth import ApiKeyAuthenticator, AuthFailure
            from ..server.settings import load_server_settings
        except ImportError as exc:
            return False, (f"[server] is configured but the server extra is missing ({exc}): "
                           "pip install 'groundwire[server]'")
        settings = load_server_settings(g.config)
        parts: list[str] = []
        ok = True
        if settings.oidc is not None:
            ok, detail = _in_thread(_probe_oidc(settings))
            parts.append(detail)
        if settings.api_keys:
            try:
                ApiKeyAuthenticator(settings.api_keys).identity(secrets.token_urlsafe(32))
                ok = False
                parts.append("a random API key was ACCEPTED")
            except AuthFailure:
                parts.append(f"{len(settings.api_keys)} API key(s) stored as SHA-256; a random key is refused")
        return ok, "; ".join(parts)

    return run(AUTHENTICATION, config, check)
