"""A local OpenID Connect issuer for tests, on 127.0.0.1.

Follows OpenID Connect Discovery 1.0 (``/.well-known/openid-configuration`` with ``issuer``,
``authorization_endpoint``, ``token_endpoint``, ``jwks_uri``), RFC 7517 (a JWK Set of public RSA and EC
P-256 signing keys with ``kid``, ``use`` and ``alg``), RFC 7519 (JWTs with ``iss``, ``sub``, ``aud``,
``exp``, ``nbf``, ``iat``) and the authorization-code flow with PKCE S256 (RFC 7636): ``/authorize``
signs the browser in as :attr:`OIDCIssuer.login_as` (or the user named by ``login_hint``) without a
form and redirects back with a single-use code; ``/token`` redeems it only with the matching
``client_id``, ``redirect_uri`` and ``code_verifier``.

Tests mint bearer tokens directly with :meth:`OIDCIssuer.mint` (any key, header or claim can be forged
on purpose) and rotate keys with :meth:`OIDCIssuer.rotate`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import socket
import threading
import time
from typing import Any
from urllib.parse import urlencode

import jwt
import uvicorn
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

__all__ = ["LiveServer", "OIDCIssuer", "free_port"]

TENANT_ID = "9188040d-6c67-4c5b-b112-36a304b66dad"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LiveServer:
    """Serve an ASGI app with uvicorn on 127.0.0.1 in a background thread."""

    def __init__(self, app: Any, port: int | None = None) -> None:
        self.port = port or free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class OIDCIssuer:
    """The issuer's keys, users and endpoints. ``url`` is set once :meth:`serve` has started it."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.keys: dict[str, Any] = {}  # kid -> private key
        self.published: list[str] = []  # kids in the JWKS
        self.add_key("rsa-1", "RS256")
        self.add_key("ec-1", "ES256")
        self.users: dict[str, dict[str, Any]] = {}
        self.login_as: dict[str, Any] | None = None
        self.clients: dict[str, set[str]] = {}  # client_id -> registered redirect URIs
        self._codes: dict[str, dict[str, Any]] = {}
        self.jwks_requests = 0
        self.token_requests = 0

    # --- keys and tokens -------------------------------------------------------------------------

    def add_key(self, kid: str, alg: str, publish: bool = True) -> None:
        if alg == "RS256":
            self.keys[kid] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        else:
            self.keys[kid] = ec.generate_private_key(ec.SECP256R1())
        if publish:
            self.published.append(kid)

    def rotate(self, kid: str, alg: str = "RS256", retire: str | None = None) -> None:
        """Publish a new signing key (and optionally stop publishing an old one)."""
        self.add_key(kid, alg)
        if retire in self.published:
            self.published.remove(retire)

    def jwks(self) -> dict[str, Any]:
        keys = []
        for kid in self.published:
            key = self.keys[kid].public_key()
            if isinstance(key, rsa.RSAPublicKey):
                jwk = json.loads(RSAAlgorithm.to_jwk(key))
                jwk["alg"] = "RS256"
            else:
                jwk = json.loads(ECAlgorithm.to_jwk(key))
                jwk["alg"] = "ES256"
            keys.append({**jwk, "kid": kid, "use": "sig"})
        return {"keys": keys}

    def claims(self, user: str = "alice", **overrides: Any) -> dict[str, Any]:
        """Entra-ID-shaped claims for ``user`` (see :attr:`users`), audience ``api://groundwire``."""
        now = int(time.time())
        base = {"iss": self.url, "aud": "api://groundwire", "iat": now, "nbf": now, "exp": now + 600,
                "tid": TENANT_ID, "ver": "2.0"}
        base.update(self.users.get(user, {"oid": f"oid-{user}", "sub": f"sub-{user}",
                                          "preferred_username": f"{user}@example.com"}))
        base.update(overrides)
        return {k: v for k, v in base.items() if v is not None}

    def mint(self, claims: dict[str, Any] | None = None, kid: str = "rsa-1", alg: str | None = None,
             headers: dict[str, Any] | None = None, key: Any = None) -> str:
        """A signed JWT. ``key`` overrides the signing key (forgery); ``alg`` the algorithm."""
        private = key if key is not None else self.keys[kid]
        algorithm = alg or ("RS256" if isinstance(private, rsa.RSAPrivateKey) else "ES256")
        return jwt.encode(claims if claims is not None else self.claims(), private, algorithm=algorithm,
                          headers={"kid": kid, **(headers or {})})

    # --- the endpoints ---------------------------------------------------------------------------

    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.url,
            "authorization_endpoint": f"{self.url}/authorize",
            "token_endpoint": f"{self.url}/token",
            "jwks_uri": f"{self.url}/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256", "ES256"],
            "code_challenge_methods_supported": ["S256"],
            "grant_types_supported": ["authorization_code"],
            "token_endpoint_auth_methods_supported": ["none"],
            "scopes_supported": ["openid", "profile", "email"],
            "claims_supported": ["sub", "oid", "tid", "preferred_username", "groups", "roles", "nonce"],
        }

    async def _discovery(self, request: Request) -> Response:
        return JSONResponse(self.discovery())

    async def _jwks(self, request: Request) -> Response:
        self.jwks_requests += 1
        return JSONResponse(self.jwks())

    async def _authorize(self, request: Request) -> Response:
        q = request.query_params
        client, redirect = q.get("client_id", ""), q.get("redirect_uri", "")
        if redirect not in self.clients.get(client, set()):
            return JSONResponse({"error": "invalid_request", "error_description": "unknown client or redirect"}, 400)
        if q.get("response_type") != "code" or q.get("code_challenge_method") != "S256" or not q.get("code_challenge"):
            error = {"error": "invalid_request", "state": q.get("state", "")}
            return RedirectResponse(f"{redirect}?{urlencode(error)}")
        hint = q.get("login_hint")
        who = self.claims(hint) if hint else self.login_as
        if who is None:
            return RedirectResponse(f"{redirect}?{urlencode({'error': 'login_required', 'state': q.get('state', '')})}")
        code = secrets.token_urlsafe(24)
        self._codes[code] = {"client": client, "redirect": redirect, "challenge": q["code_challenge"],
                             "nonce": q.get("nonce", ""), "claims": dict(who)}
        return RedirectResponse(f"{redirect}?{urlencode({'code': code, 'state': q.get('state', '')})}", 302)

    async def _token(self, request: Request) -> Response:
        self.token_requests += 1
        form = await request.form()
        grant = self._codes.pop(str(form.get("code", "")), None)  # single use
        if (
            form.get("grant_type") != "authorization_code"
            or grant is None
            or form.get("client_id") != grant["client"]
            or form.get("redirect_uri") != grant["redirect"]
            or _b64(hashlib.sha256(str(form.get("code_verifier", "")).encode()).digest()) != grant["challenge"]
        ):
            return JSONResponse({"error": "invalid_grant"}, 400)
        now = int(time.time())
        claims = {**grant["claims"], "iat": now, "nbf": now, "exp": now + 600}
        id_token = self.mint({**claims, "aud": grant["client"], "nonce": grant["nonce"]})
        access = self.mint(claims)
        return JSONResponse({"access_token": access, "id_token": id_token, "token_type": "Bearer",
                             "expires_in": 600}, headers={"Cache-Control": "no-store"})

    def app(self) -> Starlette:
        return Starlette(routes=[
            Route("/.well-known/openid-configuration", self._discovery),
            Route("/jwks", self._jwks),
            Route("/authorize", self._authorize),
            Route("/token", self._token, methods=["POST"]),
        ])

    def serve(self) -> LiveServer:
        return LiveServer(self.app(), self.port)
