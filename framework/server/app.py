"""The ASGI application: :func:`create_app` for one :class:`~groundwire.Grounder`, :func:`app_from_env` for
uvicorn workers, :func:`run` behind ``groundwire serve``.

Invariants: the interactive docs pages (which load scripts from a CDN) are off; the OpenAPI schema is
served at ``/openapi.json`` to authenticated callers; every error is ``application/problem+json``
without internal detail (validation errors name the field, never echo the input).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any

import httpx
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from ..pipeline import Grounder
from .api import authenticate
from .api import router as api_router
from .auth import Identity
from .http import AuditMiddleware, Problem, problem_response
from .service import ServerState
from .settings import ServerSettings, is_loopback, load_server_settings

__all__ = ["app_from_env", "create_app", "run"]

log = logging.getLogger("groundwire.server")
CONFIG_ENV = "GROUNDWIRE_CONFIG"


def create_app(
    grounder: Grounder, settings: ServerSettings | None = None, *, http: httpx.AsyncClient | None = None
) -> FastAPI:
    """The service for ``grounder``; ``settings`` default to the configuration's ``[server]`` section."""
    settings = settings or load_server_settings(grounder.config)
    client = http or httpx.AsyncClient(follow_redirects=False, trust_env=False)
    st = ServerState.build(grounder, settings, client)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.warm_up:
            await asyncio.to_thread(grounder.warm_up)
        st.ready = True
        try:
            yield
        finally:
            if http is None:
                await client.aclose()

    app = FastAPI(
        title="Groundwire",
        version="0.1.0",
        description="Grounded drafts for human review. Every route except /healthz needs a bearer token.",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        lifespan=lifespan,
    )
    app.state.gw = st

    async def on_problem(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Problem)
        if not getattr(request.state, "refused", ""):
            request.state.refused = exc.code
        return problem_response(exc.status, exc.code, exc.detail, getattr(request.state, "request_id", ""),
                                exc.headers)

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        request.state.refused = code
        return problem_response(exc.status_code, code, "", getattr(request.state, "request_id", ""))

    async def on_invalid(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        fields = sorted({".".join(str(p) for p in e.get("loc", ()) if p != "body") or "body" for e in exc.errors()})
        request.state.refused = "invalid"
        return problem_response(422, "invalid", f"invalid or missing fields: {', '.join(fields)}",
                                getattr(request.state, "request_id", ""))

    app.add_exception_handler(Problem, on_problem)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(RequestValidationError, on_invalid)
    app.include_router(api_router)

    @app.get("/openapi.json", include_in_schema=False)
    async def openapi(identity: Annotated[Identity, Depends(authenticate)]) -> dict[str, Any]:
        return app.openapi()

    if settings.review_enabled:
        from .review_page import mount_review

        mount_review(app, st)

    app.add_middleware(
        AuditMiddleware,
        record=st.record,
        max_body_bytes=settings.limits.max_body_bytes,
        observe=st.metrics.observe,
    )
    return app


def app_from_env() -> FastAPI:
    """uvicorn factory for worker processes: the configuration file named by ``GROUNDWIRE_CONFIG``."""
    path = os.environ.get(CONFIG_ENV)
    if not path:
        raise RuntimeError(f"set {CONFIG_ENV} to the configuration file")
    return create_app(Grounder.from_config(path))


def run(config: Path, host: str | None = None, port: int | None = None, workers: int | None = None) -> None:
    """Serve ``config`` with uvicorn (``groundwire serve``); validates the configuration first."""
    import uvicorn

    grounder = Grounder.from_config(config)
    settings = load_server_settings(grounder.config)
    if settings.review_enabled:
        try:
            settings.review.session_secret()
        except ValueError as exc:
            raise grounder.config.error("server.review.session_secret_env", str(exc)) from None
    host = host or settings.host
    port = settings.port if port is None else port
    workers = workers or settings.workers
    if not is_loopback(host):
        log.warning("binding to %s: the service is reachable from other machines; put TLS in front of it", host)
    os.environ[CONFIG_ENV] = str(Path(config).resolve())
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="groundwire-metrics-")
    uvicorn.run(
        "groundwire.server.app:app_from_env", factory=True, host=host, port=port, workers=workers,
        proxy_headers=False, server_header=False, date_header=True, log_level="warning",
    )
