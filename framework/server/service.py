"""The server's shared state and its one adapter to the :class:`~groundwire.Grounder`.

Everything that decides access is the Grounder's: tenants and features (the ``feature_allowed`` hook,
denials audited as ``feature_denied``), security trimming, screening and quarantine, and the review queue's
"may read every source" rule. This module only turns a verified :class:`~.auth.Identity` into calls on it,
and maps the Grounder's errors to HTTP problems.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx

from ..audit_event import AuditEvent
from ..errors import AccessDenied, FeatureDisabled, GroundwireError
from ..models import Chunk, GroundingRequest, UserContext
from ..pipeline import Grounder
from .auth import ApiKeyAuthenticator, Identity, OIDCValidator
from .http import ConcurrencyGate, Problem, RateLimiter
from .metrics import Metrics
from .settings import ServerSettings

__all__ = ["ServerState", "problem_for"]

T = TypeVar("T")


def problem_for(exc: BaseException) -> Problem:
    """The HTTP problem for an error the Grounder raised on purpose (messages are safe to show)."""
    from ..quarantine import QuarantineNotFound, QuarantineStateError
    from ..review import ReviewStateError

    if isinstance(exc, Problem):
        return exc
    if isinstance(exc, FeatureDisabled):
        return Problem(403, "feature_disabled", str(exc))
    if isinstance(exc, AccessDenied):
        return Problem(404 if "no draft with this id" in str(exc) else 403, "access_denied", str(exc))
    if isinstance(exc, QuarantineNotFound):
        return Problem(404, "not_found", "no quarantine entry with this id in your tenant")
    if isinstance(exc, ReviewStateError | QuarantineStateError):
        return Problem(409, "conflict", str(exc))
    if isinstance(exc, ValueError):
        return Problem(422, "invalid", str(exc))
    if isinstance(exc, GroundwireError):
        return Problem(400, "refused", str(exc))
    return Problem(500, "internal")


@dataclass
class ServerState:
    grounder: Grounder
    settings: ServerSettings
    http: httpx.AsyncClient
    metrics: Metrics
    validator: OIDCValidator | None = None
    api_keys: ApiKeyAuthenticator = field(default_factory=lambda: ApiKeyAuthenticator(()))
    limiter: RateLimiter | None = None
    gate: ConcurrencyGate | None = None
    ready: bool = False

    @classmethod
    def build(cls, grounder: Grounder, settings: ServerSettings, http: httpx.AsyncClient) -> ServerState:
        lim = settings.limits
        return cls(
            grounder=grounder,
            settings=settings,
            http=http,
            metrics=Metrics(),
            validator=OIDCValidator(settings, http) if settings.oidc is not None else None,
            api_keys=ApiKeyAuthenticator(settings.api_keys),
            limiter=RateLimiter(lim.rate_per_minute, lim.burst),
            gate=ConcurrencyGate(lim.max_concurrency, lim.queue_timeout_seconds),
        )

    # --- the audit path --------------------------------------------------------------------------

    def record_sync(self, entry: dict[str, Any]) -> None:
        """Write one ``http_request`` audit event through the Grounder's ``record_event`` hook."""
        identity: Identity | None = entry.pop("identity", None)
        extra = entry.pop("extra", {}) or {}
        if identity is not None:
            tenant, actor = identity.user.tenant, identity.user.user_id
            entry["auth"] = identity.method
            entry["subject"] = identity.subject
        else:
            tenant, actor = "", "anonymous"
        if not entry.get("refused"):
            entry.pop("refused", None)
        rid = entry.pop("request_id")
        event = AuditEvent("http_request", tenant, actor, rid, {**entry, **extra})
        self.grounder.pm.hook.record_event(event=event, config=self.grounder.config)

    async def record(self, entry: dict[str, Any]) -> None:
        await asyncio.to_thread(self.record_sync, entry)

    # --- calls on the Grounder -------------------------------------------------------------------

    def feature(self, user: UserContext, feature: str, action: str) -> None:
        """Raise :class:`FeatureDisabled` (audited as ``feature_denied``) unless ``feature`` is enabled for
        one of the user's roles: the same ``feature_allowed`` vote the pipeline uses (deny wins)."""
        g = self.grounder
        votes = g.pm.hook.feature_allowed(user=user, feature=feature, config=g.config)
        if False in votes or True not in votes:
            g.pm.hook.record_event(
                event=AuditEvent("feature_denied", user.tenant, user.user_id,
                                 data={"feature": feature, "roles": sorted(user.roles), "action": action}),
                config=g.config,
            )
            raise FeatureDisabled(feature, user.roles)

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a blocking Grounder call in a worker thread, mapping its errors to problems."""
        try:
            return await asyncio.to_thread(fn, *args, **kwargs)
        except (GroundwireError, ValueError) as exc:
            raise problem_for(exc) from None

    def retrieve(self, user: UserContext, prompt: str, top_k: int | None,
                 connectors: list[str] | None) -> list[Chunk]:
        """Trimmed, screened chunks for ``prompt``: the pipeline's own steps 1-5 (tenant and feature check,
        prompt shield, pre-filtered search with the fail-closed re-check, document screening and quarantine),
        without generation."""
        g = self.grounder
        request = GroundingRequest(
            user=user, prompt=prompt, feature="ask", top_k=top_k or g.config.retrieval.top_k,
            connectors=tuple(connectors) if connectors is not None else None,
        )
        blocked, _ = g._before_retrieval(request)
        if blocked is not None:
            raise Problem(422, "prompt_blocked", "the prompt shield refused this request")
        sources, _withheld, _verdicts = g._retrieve_and_screen(request)
        return sources
