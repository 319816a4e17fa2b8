"""The reviewer web page at ``/review``: sign-in with the OIDC authorization-code flow with PKCE, a signed
session cookie, CSRF tokens on every form, and server-rendered pages without any script.

Invariants:
- Sign-in: ``state``, ``nonce`` and the PKCE ``code_verifier`` (S256) live in a signed, short-lived,
  HttpOnly cookie; the callback checks ``state`` in constant time, redeems the code with the verifier, and
  validates the ID token exactly like a bearer token (same JWKS, issuer, expiry, claims mapping and tenant
  table) with the client id as audience and the stored ``nonce``.
- The session cookie is signed (itsdangerous, key from ``session_secret_env``), HttpOnly, SameSite=Lax,
  Secure (unless ``secure_cookies = false``), and expires after ``session_minutes``; it carries the
  verified identity and a random CSRF token.
- Every POST needs that CSRF token in its form and, if the browser sends ``Origin``, an Origin equal to the
  page's own; otherwise 403 (audited).
- Pages are Jinja2 templates with autoescape on; document text (draft, snippets, titles, prompts) is only
  ever output escaped, links are emitted only for ``http(s)`` URIs, and the Content-Security-Policy allows
  no script at all (``script-src 'none'``) and styles only from this service.
- What a reviewer may see or decide is the Grounder's review queue rule (same tenant, may read every
  source); the list shows only such drafts.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from fastapi import FastAPI, Request
from itsdangerous import BadSignature, URLSafeTimedSerializer
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.responses import HTMLResponse, RedirectResponse, Response

from ..errors import AccessDenied, GroundwireError
from ..models import UserContext
from .auth import AuthFailure, Identity
from .http import Problem
from .service import ServerState, problem_for

__all__ = ["mount_review"]

HERE = Path(__file__).parent
SESSION = "gw_review_session"
LOGIN = "gw_review_login"
PAGE_CSP = (
    "default-src 'none'; script-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
# same-origin, not no-referrer: with no-referrer browsers send "Origin: null" on form posts, and the Origin
# check below needs the real one; nothing leaks to other sites either way
_PAGE_HEADERS = {"Content-Security-Policy": PAGE_CSP, "Cache-Control": "no-store", "Referrer-Policy": "same-origin"}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def pkce_pair() -> tuple[str, str]:
    """A PKCE ``code_verifier`` and its S256 ``code_challenge`` (RFC 7636)."""
    verifier = _b64(secrets.token_bytes(48))
    return verifier, _b64(hashlib.sha256(verifier.encode()).digest())


def safe_href(uri: str) -> str:
    """``uri`` if it is an http(s) URL, else '' (a ``javascript:`` link must never be rendered)."""
    try:
        scheme = urlsplit(uri).scheme.lower()
    except ValueError:
        return ""
    return uri if scheme in ("http", "https") else ""


class ReviewPage:
    def __init__(self, st: ServerState) -> None:
        self.st = st
        self.cfg = st.settings.review
        secret = self.cfg.session_secret()
        self.sessions = URLSafeTimedSerializer(secret, salt="groundwire-review-session")
        self.logins = URLSafeTimedSerializer(secret, salt="groundwire-review-login")
        self.env = Environment(
            loader=FileSystemLoader(HERE / "templates"),
            autoescape=select_autoescape(default=True, default_for_string=True),
        )
        self.env.filters["href"] = safe_href

    # --- rendering and cookies -------------------------------------------------------------------

    def render(self, name: str, http_status: int = 200, **ctx: Any) -> HTMLResponse:
        html = self.env.get_template(name).render(**ctx)
        return HTMLResponse(html, status_code=http_status, headers=_PAGE_HEADERS)

    def error(self, request: Request, problem: Problem) -> HTMLResponse:
        request.state.refused = getattr(request.state, "refused", "") or problem.code
        return self.render("error.html", problem.status, status=problem.status, detail=problem.detail,
                           session=getattr(request.state, "session", None))

    def _cookie(self, response: Response, name: str, value: str, max_age: int, path: str = "/review") -> None:
        response.set_cookie(name, value, max_age=max_age, path=path, httponly=True,
                            secure=self.cfg.secure_cookies, samesite="lax")

    def session(self, request: Request) -> dict[str, Any] | None:
        raw = request.cookies.get(SESSION)
        if not raw:
            return None
        try:
            data = self.sessions.loads(raw, max_age=self.cfg.session_minutes * 60)
        except BadSignature:
            return None
        if not isinstance(data, dict):
            return None
        try:
            user = UserContext.of(data["u"], data["t"], data.get("g", []), data.get("r", []))
        except (KeyError, TypeError, ValueError):
            return None
        identity = Identity(user, "session", str(data.get("s", "")))
        request.state.identity = identity
        request.state.session = {"user": user.user_id, "tenant": user.tenant, "csrf": data["c"]}
        return {"identity": identity, "csrf": str(data["c"])}

    def check_csrf(self, request: Request, session: dict[str, Any], form: Any) -> None:
        origin = request.headers.get("origin")
        own = f"{request.url.scheme}://{request.url.netloc}"
        if origin is not None and origin != own:
            raise Problem(403, "csrf", "this form was not sent from the review page")
        token = form.get("csrf_token")
        if not isinstance(token, str) or not hmac.compare_digest(token, session["csrf"]):
            raise Problem(403, "csrf", "the form's security token is missing or wrong; reload the page and retry")

    # --- sign-in ---------------------------------------------------------------------------------

    async def login(self, request: Request) -> Response:
        assert self.st.validator is not None
        doc = await self.st.validator.jwks.discovery()
        state, nonce = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        verifier, challenge = pkce_pair()
        query = urlencode({
            "response_type": "code", "client_id": self.cfg.client_id, "redirect_uri": self.cfg.redirect_uri,
            "scope": " ".join(self.cfg.scopes), "state": state, "nonce": nonce,
            "code_challenge": challenge, "code_challenge_method": "S256",
        })
        response = RedirectResponse(f"{doc['authorization_endpoint']}?{query}", status_code=303)
        self._cookie(response, LOGIN, self.logins.dumps({"s": state, "n": nonce, "v": verifier}), 600)
        return response

    async def callback(self, request: Request) -> Response:
        assert self.st.validator is not None
        validator = self.st.validator
        raw = request.cookies.get(LOGIN, "")
        try:
            login = self.logins.loads(raw, max_age=600)
        except BadSignature:
            raise Problem(400, "login_expired",
                          "the sign-in took too long or was not started here; sign in again") from None
        state, code = request.query_params.get("state", ""), request.query_params.get("code", "")
        if not code or not hmac.compare_digest(state, str(login["s"])):
            raise Problem(400, "login_state", "the sign-in response does not belong to this browser; sign in again")
        doc = await validator.jwks.discovery()
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": self.cfg.redirect_uri,
                "client_id": self.cfg.client_id, "code_verifier": str(login["v"])}
        if self.cfg.client_secret():
            form["client_secret"] = self.cfg.client_secret()
        try:
            r = await self.st.http.post(str(doc["token_endpoint"]), data=form,
                                        timeout=validator.oidc.http_timeout_seconds)
            tokens = r.json() if r.status_code == 200 else {}
        except (ValueError, Exception):  # noqa: BLE001 - any failure of the issuer is one refusal
            tokens = {}
        id_token = tokens.get("id_token") if isinstance(tokens, dict) else None
        if not isinstance(id_token, str):
            raise Problem(401, "code_exchange_failed", "the identity provider did not complete the sign-in")
        try:
            claims = await validator.claims(id_token, audience=[self.cfg.client_id])
            if not hmac.compare_digest(str(claims.get("nonce", "")), str(login["n"])):
                raise AuthFailure("bad_nonce", "the sign-in response was replayed or altered")
            identity = await validator.identity(id_token, audience=[self.cfg.client_id])
        except AuthFailure as failure:
            request.state.refused = failure.reason
            raise Problem(failure.status, failure.reason, failure.detail) from None
        request.state.identity = identity
        u = identity.user
        payload = {"u": u.user_id, "t": u.tenant, "g": sorted(u.groups), "r": sorted(u.roles),
                   "s": identity.subject, "c": secrets.token_urlsafe(32)}
        response = RedirectResponse("/review", status_code=303)
        self._cookie(response, SESSION, self.sessions.dumps(payload), self.cfg.session_minutes * 60)
        response.delete_cookie(LOGIN, path="/review")
        return response

    # --- pages -----------------------------------------------------------------------------------

    def _listed(self, identity: Identity) -> list[dict[str, Any]]:
        g = self.st.grounder
        self.st.feature(identity.user, "review", "review_list")
        out: list[dict[str, Any]] = []
        for item in self.st.reviewable(identity.user, None, self.cfg.max_listed):
            try:
                full = g.reviews.get(item.id, identity.user)
            except AccessDenied:
                continue  # its sources changed since it was listed
            out.append({"id": full.id, "status": full.status, "author": full.author, "created_at": full.created_at,
                        "prompt": full.prompt, "citations": len(full.draft.get("citations", []))})
        return out

    def _show(self, identity: Identity, draft_id: str) -> Any:
        self.st.feature(identity.user, "review", "review_show")
        return self.st.grounder.reviews.get(draft_id, identity.user)

    def _decide(self, identity: Identity, draft_id: str, action: str, form: Any) -> Any:
        self.st.feature(identity.user, "review", f"review_{action}")
        q = self.st.grounder.reviews
        note = str(form.get("note", ""))[:2000]
        if action == "approve":
            return q.approve(draft_id, identity.user, note)
        if action == "reject":
            return q.reject(draft_id, identity.user, note)
        text = str(form.get("text", ""))
        if len(text) > self.st.settings.limits.max_edit_chars:
            raise Problem(422, "text_too_long", "the edited text is too long")
        return q.edit(draft_id, identity.user, text, note)


def mount_review(app: FastAPI, st: ServerState) -> None:
    """Add the ``/review`` routes to ``app``."""
    page = ReviewPage(st)

    async def guarded(request: Request, fn: Any) -> Response:
        request.state.route = getattr(request.scope.get("route"), "path", request.url.path)
        try:
            result: Response = await fn()
            return result
        except Problem as problem:
            return page.error(request, problem)
        except (GroundwireError, ValueError) as exc:
            return page.error(request, problem_for(exc))

    def to_login(request: Request) -> Response:
        request.state.refused = "no_session"
        return RedirectResponse("/review/login", status_code=303)

    @app.get("/review/static/review.css", include_in_schema=False)
    async def css() -> Response:
        return Response((HERE / "static" / "review.css").read_bytes(), media_type="text/css",
                        headers={"Cache-Control": "max-age=3600"})

    @app.get("/review/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        return await guarded(request, lambda: page.login(request))

    @app.get("/review/callback", include_in_schema=False)
    async def callback(request: Request) -> Response:
        return await guarded(request, lambda: page.callback(request))

    @app.get("/review", include_in_schema=False)
    async def index(request: Request) -> Response:
        async def go() -> Response:
            session = page.session(request)
            if session is None:
                return to_login(request)
            items = await st.call(page._listed, session["identity"])
            return page.render("list.html", items=items, session=request.state.session)

        return await guarded(request, go)

    @app.get("/review/{draft_id}", include_in_schema=False)
    async def show(request: Request, draft_id: str) -> Response:
        async def go() -> Response:
            session = page.session(request)
            if session is None:
                return to_login(request)
            item = await st.call(page._show, session["identity"], draft_id)
            return page.render("show.html", item=item, draft=item.draft, session=request.state.session,
                               open=item.status in ("pending_review", "edited"),
                               flagged=[v for v in item.draft.get("verdicts", []) if v.get("action") != "allow"])

        return await guarded(request, go)

    @app.post("/review/{draft_id}/{action}", include_in_schema=False)
    async def decide(request: Request, draft_id: str, action: str) -> Response:
        async def go() -> Response:
            if action not in ("approve", "edit", "reject"):
                raise Problem(404, "not_found", "no such action")
            session = page.session(request)
            if session is None:
                raise Problem(401, "no_session", "your session has expired; sign in again")
            form = await request.form()
            page.check_csrf(request, session, form)
            await st.call(page._decide, session["identity"], draft_id, action, form)
            return RedirectResponse(f"/review/{draft_id}", status_code=303)

        return await guarded(request, go)

    @app.post("/review/logout", include_in_schema=False)
    async def logout(request: Request) -> Response:
        async def go() -> Response:
            session = page.session(request)
            if session is not None:
                page.check_csrf(request, session, await request.form())
            response = RedirectResponse("/review/login", status_code=303)
            response.delete_cookie(SESSION, path="/review")
            return response

        return await guarded(request, go)
