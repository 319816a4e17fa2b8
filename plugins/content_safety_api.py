"""API-backed screening behind the same hooks: Azure AI Content Safety and the OpenAI moderation endpoint.

Enabled only when configured; nothing is sent anywhere otherwise.

``[plugins.settings.azure_content_safety]``: ``endpoint`` (``https://<name>.cognitiveservices.azure.com``),
``key_env`` (default ``AZURE_CONTENT_SAFETY_KEY``) or ``key``, ``api_version`` (``2024-09-01``),
``flag_at`` (2) / ``block_at`` (6) severities (one for all, or per category as for ``content_safety``),
``analyze_output`` / ``shield_prompt`` / ``shield_documents``
(all ``true``), ``document_action`` (``drop``), ``fail_closed`` (``false``), ``timeout`` (10 s).
Wire format: ``POST {endpoint}/contentsafety/text:analyze?api-version=...`` with ``{"text", "categories",
"outputType": "FourSeverityLevels"}`` -> ``{"categoriesAnalysis": [{"category", "severity"}]}``;
``POST .../text:shieldPrompt`` with ``{"userPrompt", "documents"}`` -> ``{"userPromptAnalysis":
{"attackDetected"}, "documentsAnalysis": [{"attackDetected"}]}``; header ``Ocp-Apim-Subscription-Key``.

``[plugins.settings.openai_moderation]``: ``base_url`` (``https://api.openai.com/v1``), ``api_key_env``
(``OPENAI_API_KEY``), ``model`` (``omni-moderation-latest``), ``block_categories`` (categories whose flag
blocks; others flag), ``fail_closed``, ``timeout``.
``POST {base_url}/moderations`` with ``{"model", "input"}``
-> ``{"results": [{"flagged", "categories", "category_scores"}]}``.

Both services: ``retries`` (2) more attempts after a 429, a 5xx or a transport error, waiting what
``Retry-After`` says (seconds or an HTTP date, at most ``max_retry_after``, 30 s) or else an exponential
back-off from ``backoff`` (0.5 s, with jitter); never longer than ``retry_budget`` (20 s) in all.

Invariants: TLS only, except loopback hosts (test doubles); one pooled, keep-alive ``httpx.Client`` per
process for all calls (thread-safe; closed at exit); retries by tenacity; a failed call yields a FLAG
verdict saying the service was unavailable, or a BLOCK with ``fail_closed = true``; other 4xx answers
are not retried; reasons never quote screened text.
"""

from __future__ import annotations

import atexit
import os
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
import tenacity
from groundwire import (
    Action,
    ConfigError,
    Draft,
    GroundingRequest,
    GroundwireConfig,
    Verdict,
    hookimpl,
    severity_action,
)
from groundwire.models import Chunk

__all__ = ["AZURE", "OPENAI", "RETRY_STATUS", "retry_after"]

AZURE = "azure_content_safety"
OPENAI = "openai_moderation"
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}
_AZURE_CATS = {"Hate": "hate", "Violence": "violence", "SelfHarm": "self_harm", "Sexual": "sexual"}


def _url(config: GroundwireConfig, plugin: str, base: str) -> str:
    parts = urlsplit(base)
    if parts.scheme != "https" and not (parts.scheme == "http" and parts.hostname in _LOOPBACK):
        raise config.error(
            f"plugins.settings.{plugin}",
            f"refusing non-TLS endpoint {base!r}",
            "use https:// (plain http is allowed only for loopback test servers)",
        )
    return base.rstrip("/")


def _key(config: GroundwireConfig, plugin: str, env_key: str, default_env: str, service: str) -> str:
    """The API key from the settings or the environment variable they name; a clear error when missing."""
    s = config.plugin_settings(plugin)
    key = str(s.get("key") or s.get("api_key") or os.environ.get(str(s.get(env_key, default_env)), ""))
    if not key:
        raise ConfigError(
            config.source,
            f"plugins.settings.{plugin}.{env_key}",
            f"no API key for {service}",
            f"set the environment variable named by {env_key} (default {default_env})",
        )
    return key


RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
_client_lock = threading.Lock()
_clients: list[httpx.Client] = []


def _client() -> httpx.Client:
    """The process's pooled client (connections kept alive across calls and threads)."""
    with _client_lock:
        if not _clients:
            client = httpx.Client(trust_env=False, limits=httpx.Limits(max_keepalive_connections=8))
            atexit.register(client.close)
            _clients.append(client)
        return _clients[0]


def retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date); None if absent/bad."""
    if not value or not value.strip():
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


class _Retryable(Exception):
    """A 429 / 5xx answer, carrying the server's ``Retry-After`` wait (seconds) if it sent one."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(f"HTTP {response.status_code}")
        self.response = response
        self.wait = retry_after(response.headers.get("Retry-After"))


def _post(url: str, headers: dict[str, str], body: dict[str, Any], s: dict[str, Any]) -> dict[str, Any]:
    """POST with retries; the last failure is raised (``httpx.HTTPError`` or ``ValueError`` for bad JSON)."""
    backoff = tenacity.wait_random_exponential(multiplier=float(s.get("backoff", 0.5)), max=10.0)
    cap = float(s.get("max_retry_after", 30.0))

    def wait(state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, _Retryable) and exc.wait is not None:
            return min(exc.wait, cap)
        return float(backoff(state))

    retrying = tenacity.Retrying(
        stop=tenacity.stop_after_attempt(int(s.get("retries", 2)) + 1)
        | tenacity.stop_after_delay(float(s.get("retry_budget", 20.0))),
        wait=wait,
        retry=tenacity.retry_if_exception_type((_Retryable, httpx.TransportError)),
        reraise=True,
    )
    timeout = float(s.get("timeout", 10))
    try:
        for attempt in retrying:
            with attempt:
                r = _client().post(url, headers=headers, json=body, timeout=timeout)
                if r.status_code in RETRY_STATUS:
                    raise _Retryable(r)
                r.raise_for_status()
    except _Retryable as exc:  # out of attempts: report it as the HTTP error it is
        exc.response.raise_for_status()
        raise
    data: dict[str, Any] = r.json()
    return data


def _unavailable(stage: str, plugin: str, s: dict[str, Any], exc: Exception, target: str = "") -> Verdict:
    action = Action.BLOCK if s.get("fail_closed", False) else Action.FLAG
    if stage == "documents" and action is Action.BLOCK:
        action = Action.DROP
    return Verdict(
        stage=stage,
        plugin=plugin,
        action=action,
        score=0.0,
        target=target,
        reason=f"screening service unavailable ({type(exc).__name__})",
    )


# --- Azure AI Content Safety --------------------------------------------------------------------------


def _azure(config: GroundwireConfig) -> tuple[dict[str, Any], str, dict[str, str]] | None:
    s = config.plugin_settings(AZURE)
    if not s.get("endpoint"):
        return None
    base = _url(config, AZURE, str(s["endpoint"]))
    key = _key(config, AZURE, "key_env", "AZURE_CONTENT_SAFETY_KEY", "Azure AI Content Safety")
    return s, base, {"Ocp-Apim-Subscription-Key": key, "Content-Type": "application/json"}


def _shield(config: GroundwireConfig, prompt: str, documents: Sequence[str]) -> dict[str, Any] | None:
    got = _azure(config)
    if got is None:
        return None
    s, base, headers = got
    url = f"{base}/contentsafety/text:shieldPrompt?api-version={s.get('api_version', '2024-09-01')}"
    return _post(url, headers, {"userPrompt": prompt, "documents": list(documents)}, s)


@hookimpl
def screen_prompt(request: GroundingRequest, config: GroundwireConfig) -> Verdict | None:
    got = _azure(config)
    if got is None or not got[0].get("shield_prompt", True):
        return None
    try:
        data = _shield(config, request.prompt, [])
    except (httpx.HTTPError, ValueError) as exc:
        return _unavailable("prompt", AZURE, got[0], exc)
    attack = bool(((data or {}).get("userPromptAnalysis") or {}).get("attackDetected"))
    return Verdict(
        stage="prompt",
        plugin=AZURE,
        action=Action.BLOCK if attack else Action.ALLOW,
        score=1.0 if attack else 0.0,
        reason="user prompt attack detected" if attack else "no attack",
    )


@hookimpl
def screen_documents(
    request: GroundingRequest, chunks: Sequence[Chunk], config: GroundwireConfig
) -> list[Verdict]:
    got = _azure(config)
    if got is None or not got[0].get("shield_documents", True) or not chunks:
        return []
    s = got[0]
    try:
        data = _shield(config, request.prompt, [c.text for c in chunks]) or {}
    except (httpx.HTTPError, ValueError) as exc:
        return (
            [_unavailable("documents", AZURE, s, exc, c.id) for c in chunks] if s.get("fail_closed") else []
        )
    action = Action(str(s.get("document_action", "drop")))
    analyses = data.get("documentsAnalysis") or []
    return [
        Verdict(
            stage="documents",
            plugin=AZURE,
            action=action,
            score=1.0,
            target=c.id,
            reason="document attack detected",
        )
        for c, a in zip(chunks, analyses, strict=False)
        if (a or {}).get("attackDetected")
    ]


def _azure_output(request: GroundingRequest, draft: Draft, config: GroundwireConfig) -> list[Verdict]:
    got = _azure(config)
    if got is None or not got[0].get("analyze_output", True):
        return []
    s, base, headers = got
    url = f"{base}/contentsafety/text:analyze?api-version={s.get('api_version', '2024-09-01')}"
    body = {"text": draft.text, "categories": list(_AZURE_CATS), "outputType": "FourSeverityLevels"}
    try:
        data = _post(url, headers, body, s)
    except (httpx.HTTPError, ValueError) as exc:
        return [_unavailable("output", AZURE, s, exc)]
    out = []
    for item in data.get("categoriesAnalysis") or []:
        cat = _AZURE_CATS.get(str(item.get("category")), str(item.get("category")))
        sev = int(item.get("severity") or 0)
        action = severity_action(s, cat, sev)
        if action is None:
            continue
        out.append(
            Verdict(
                stage="output",
                plugin=AZURE,
                action=action,
                score=round(sev / 7, 3),
                reason=f"{cat}: severity {sev}",
            )
        )
    return out


# --- OpenAI moderation --------------------------------------------------------------------------------


def _openai_output(request: GroundingRequest, draft: Draft, config: GroundwireConfig) -> list[Verdict]:
    s = config.plugin_settings(OPENAI)
    if not s:
        return []
    base = _url(config, OPENAI, str(s.get("base_url", "https://api.openai.com/v1")))
    key = _key(config, OPENAI, "api_key_env", "OPENAI_API_KEY", "OpenAI moderation")
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    body = {"model": s.get("model", "omni-moderation-latest"), "input": draft.text}
    try:
        data = _post(f"{base}/moderations", headers, body, s)
    except (httpx.HTTPError, ValueError) as exc:
        return [_unavailable("output", OPENAI, s, exc)]
    block = set(
        s.get(
            "block_categories",
            ["sexual/minors", "self-harm/instructions", "violence/graphic", "hate/threatening"],
        )
    )
    out = []
    for res in data.get("results") or []:
        if not res.get("flagged"):
            continue
        cats = sorted(c for c, on in (res.get("categories") or {}).items() if on)
        scores = res.get("category_scores") or {}
        top = max((float(scores.get(c, 0.0)) for c in cats), default=1.0)
        action = Action.BLOCK if set(cats) & block else Action.FLAG
        out.append(
            Verdict(
                stage="output",
                plugin=OPENAI,
                action=action,
                score=round(top, 4),
                reason="flagged: " + ", ".join(cats),
            )
        )
    return out


@hookimpl
def screen_output(
    request: GroundingRequest, draft: Draft, sources: Sequence[Chunk], config: GroundwireConfig
) -> list[Verdict]:
    return _azure_output(request, draft, config) + _openai_output(request, draft, config)
