"""The JSON API (``/v1/...``) and the operational endpoints (``/healthz``, ``/readyz``, ``/metrics``).

Every route except ``/healthz`` depends on :func:`authenticate`; the ``/v1`` routes also on the per-user
rate limit. Grounding and retrieval pass the concurrency gate. Features used: ``ask`` (drafts, retrieve),
``review`` (the review queue), ``quarantine_admin`` and ``trust_report``, all from ``[features]``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from ..errors import AccessDenied
from .auth import AuthFailure, Identity
from .http import Problem
from .metrics import CONTENT_TYPE_LATEST
from .service import ServerState, problem_for

__all__ = ["authenticate", "router"]

_BEARER = {"WWW-Authenticate": 'Bearer error="invalid_token"'}


def gw(request: Request) -> ServerState:
    return request.app.state.gw  # type: ignore[no-any-return]


async def authenticate(request: Request) -> Identity:
    """The caller's identity from ``Authorization: Bearer <JWT>`` or ``X-API-Key``, or a 401/403 problem."""
    st = gw(request)
    route = request.scope.get("route")
    request.state.route = getattr(route, "path", request.url.path)
    key = request.headers.get("x-api-key")
    authz = request.headers.get("authorization")
    try:
        if key is not None and authz is not None:
            raise AuthFailure("ambiguous_credentials", "send either a bearer token or an API key, not both")
        if key is not None:
            identity = st.api_keys.identity(key)
        elif authz is not None and authz[:7].lower() == "bearer " and authz[7:].strip():
            if st.validator is None:
                raise AuthFailure("oidc_not_configured", "this service accepts API keys only")
            identity = await st.validator.identity(authz[7:].strip())
        else:
            raise AuthFailure("no_credentials", "sign in: send 'Authorization: Bearer <token>'")
    except AuthFailure as failure:
        request.state.refused = failure.reason
        st.metrics.auth_failures.labels(failure.reason).inc()
        raise Problem(failure.status, failure.reason, failure.detail,
                      _BEARER if failure.status == 401 else None) from None
    request.state.identity = identity
    return identity


async def limited(request: Request, identity: Annotated[Identity, Depends(authenticate)]) -> Identity:
    limiter = gw(request).limiter
    wait = limiter.check(identity.key) if limiter is not None else 0.0
    if wait > 0:
        raise Problem(429, "rate_limited", "too many requests; slow down",
                      {"Retry-After": str(max(1, round(wait)))})
    return identity


User = Annotated[Identity, Depends(limited)]
State = Annotated[ServerState, Depends(gw)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DraftIn(_In):
    prompt: str = Field(min_length=1)
    feature: str = Field(default="ask", min_length=1, max_length=64, pattern=r"^[a-z0-9_-]+$")
    top_k: int | None = Field(default=None, ge=1, le=100)
    connectors: list[str] | None = Field(default=None, max_length=100)


class RetrieveIn(_In):
    prompt: str = Field(min_length=1)
    top_k: int | None = Field(default=None, ge=1, le=100)
    connectors: list[str] | None = Field(default=None, max_length=100)


class NoteIn(_In):
    note: str = Field(default="", max_length=2000)


class EditIn(_In):
    text: str = Field(min_length=1)
    note: str = Field(default="", max_length=2000)


class RejectIn(_In):
    reason: str = Field(default="", max_length=2000)


def _prompt(st: ServerState, prompt: str) -> str:
    if len(prompt) > st.settings.limits.max_prompt_chars:
        raise Problem(422, "prompt_too_long", f"the prompt is longer than {st.settings.limits.max_prompt_chars} "
                      "characters; shorten it")
    return prompt


router = APIRouter()


@router.get("/healthz", tags=["operations"])
async def healthz() -> dict[str, str]:
    """Liveness: the process answers. The only route that needs no credentials."""
    return {"status": "ok"}


@router.get("/readyz", tags=["operations"])
async def readyz(st: State, identity: Annotated[Identity, Depends(authenticate)], response: Response) -> dict[str, Any]:
    """Readiness: models warmed up and the issuer's keys reachable."""
    checks: dict[str, bool] = {"warmed_up": st.ready}
    if st.validator is not None:
        try:
            await st.validator.jwks.discovery()
            checks["issuer"] = True
        except AuthFailure:
            checks["issuer"] = False
    ok = all(checks.values())
    response.status_code = 200 if ok else 503
    return {"status": "ready" if ok else "not_ready", "checks": checks}


@router.get("/metrics", tags=["operations"], response_class=Response)
async def metrics(st: State, identity: Annotated[Identity, Depends(authenticate)]) -> Response:
    """Prometheus text format; needs one of ``[server] metrics_roles``."""
    if not set(st.settings.metrics_roles) & set(identity.user.roles):
        raise Problem(403, "forbidden", "reading metrics needs one of the roles in [server] metrics_roles")
    return Response(st.metrics.render(), media_type=CONTENT_TYPE_LATEST)


@router.post("/v1/drafts", status_code=201, tags=["drafts"])
async def create_draft(body: DraftIn, st: State, identity: User, request: Request) -> dict[str, Any]:
    """Ground the prompt for the signed-in user; the draft is stored as ``pending_review``."""
    prompt = _prompt(st, body.prompt)
    assert st.gate is not None
    async with st.gate:
        try:
            draft = await st.grounder.aground(
                prompt, identity.user, feature=body.feature, top_k=body.top_k, connectors=body.connectors
            )
        except Exception as exc:  # noqa: BLE001 - mapped to a problem without internal detail
            raise problem_for(exc) from None
    request.state.audit_extra = {"draft_id": draft.id, "draft_status": str(draft.status)}
    return draft.to_dict()


@router.get("/v1/drafts/{draft_id}", tags=["drafts"])
async def get_draft(draft_id: str, st: State, identity: User) -> dict[str, Any]:
    """A draft, to its author only (while the author can still read every source)."""
    not_yours = problem_for(AccessDenied("no draft with this id that you may review"))
    try:
        item = await st.call(st.grounder.reviews.get, draft_id, identity.user)
    except Problem as problem:
        raise not_yours if problem.status == 403 else problem from None
    if item.author != identity.user.user_id:
        raise not_yours
    return dict(item.to_dict())


@router.post("/v1/retrieve", tags=["retrieval"])
async def retrieve(body: RetrieveIn, st: State, identity: User, request: Request) -> dict[str, Any]:
    """The chunks the user may read that best match the prompt (trimmed and screened), with citations."""
    prompt = _prompt(st, body.prompt)
    assert st.gate is not None
    async with st.gate:
        chunks = await st.call(st.retrieve, identity.user, prompt, body.top_k, body.connectors)
    request.state.audit_extra = {"sources": [c.id for c in chunks]}
    return {
        "chunks": [
            {"n": i, "chunk_id": c.id, "doc_id": c.doc_id, "connector": c.connector, "title": c.title,
             "uri": c.uri, "location": c.location, "score": round(c.score, 6), "text": c.text}
            for i, c in enumerate(chunks, start=1)
        ]
    }


def _reviewable(st: ServerState, identity: Identity, status: str | None, limit: int) -> list[dict[str, Any]]:
    st.feature(identity.user, "review", "review_list")
    hidden = ("draft", "prompt", "sources", "history")
    return [{k: v for k, v in item.to_dict().items() if k not in hidden}
            for item in st.reviewable(identity.user, status, limit)]


@router.get("/v1/reviews", tags=["reviews"])
async def list_reviews(
    st: State, identity: User, status: Annotated[str | None, Query(pattern=r"^[a-z_]+$")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    """Drafts of your tenant whose every source you can read (needs the ``review`` feature)."""
    return {"items": await st.call(_reviewable, st, identity, status, limit)}


def _review_get(st: ServerState, identity: Identity, draft_id: str) -> dict[str, Any]:
    st.feature(identity.user, "review", "review_show")
    return dict(st.grounder.reviews.get(draft_id, identity.user).to_dict())


@router.get("/v1/reviews/{draft_id}", tags=["reviews"])
async def show_review(draft_id: str, st: State, identity: User) -> dict[str, Any]:
    return await st.call(_review_get, st, identity, draft_id)


def _decide(st: ServerState, identity: Identity, draft_id: str, action: str, *args: str) -> dict[str, Any]:
    st.feature(identity.user, "review", f"review_{action}")
    item = getattr(st.grounder.reviews, action)(draft_id, identity.user, *args)
    return dict(item.to_dict())


@router.post("/v1/reviews/{draft_id}/approve", tags=["reviews"])
async def approve(draft_id: str, body: NoteIn, st: State, identity: User) -> dict[str, Any]:
    return await st.call(_decide, st, identity, draft_id, "approve", body.note)


@router.post("/v1/reviews/{draft_id}/edit", tags=["reviews"])
async def edit(draft_id: str, body: EditIn, st: State, identity: User) -> dict[str, Any]:
    if len(body.text) > st.settings.limits.max_edit_chars:
        raise Problem(422, "text_too_long", f"the edited text is longer than {st.settings.limits.max_edit_chars}")
    return await st.call(_decide, st, identity, draft_id, "edit", body.text, body.note)


@router.post("/v1/reviews/{draft_id}/reject", tags=["reviews"])
async def reject(draft_id: str, body: RejectIn, st: State, identity: User) -> dict[str, Any]:
    return await st.call(_decide, st, identity, draft_id, "reject", body.reason)


def _quarantine_list(st: ServerState, identity: Identity, status: str | None) -> list[dict[str, Any]]:
    return [e.to_dict() for e in st.quarantined(identity.user, status)]


@router.get("/v1/quarantine", tags=["quarantine"])
async def quarantine_list(
    st: State, identity: User, status: Annotated[str | None, Query(pattern=r"^(quarantined|released)$")] = None,
) -> dict[str, Any]:
    """Quarantined chunks of your tenant (ids and reasons, never text; needs ``quarantine_admin``)."""
    return {"items": await st.call(_quarantine_list, st, identity, status)}


@router.post("/v1/quarantine/{chunk_id}/release", tags=["quarantine"])
async def quarantine_release(chunk_id: str, body: NoteIn, st: State, identity: User) -> dict[str, Any]:
    entry = await st.call(st.grounder.quarantine.release, chunk_id, identity.user, body.note)
    return dict(entry.to_dict())


def _trust(st: ServerState, identity: Identity) -> dict[str, Any]:
    from ..trust import trust_checks

    st.feature(identity.user, "trust_report", "trust_report")
    checks = trust_checks(st.grounder)
    return {"ok": all(c.ok for c in checks),
            "checks": [c.to_dict() for c in checks]}


@router.get("/v1/trust-report", tags=["trust"])
async def trust_report(st: State, identity: User) -> dict[str, Any]:
    """The live self-check of every trust control (needs the ``trust_report`` feature)."""
    return await st.call(_trust, st, identity)
