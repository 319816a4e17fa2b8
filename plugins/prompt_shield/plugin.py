"""The prompt shield's hooks and settings.

Settings (``[plugins.settings.prompt_shield]``, per tenant under ``[...prompt_shield.tenants.<tenant>]``),
validated strictly by :class:`ShieldSettings` (unknown keys and wrong types are errors that name the key):
``threshold`` / ``document_threshold`` (0..1, override the artefact's; they govern the classifier only, a
strong rule hit blocks whatever they are), ``document_action`` (``drop`` | ``quarantine``), ``use_model``
(``false`` = rules only), ``direct`` / ``indirect`` (enable each hook), ``precompute`` (score chunks at
ingestion).

Invariants: verdict reasons never quote the screened text; a failure to load the model falls back to the
rules only and says so in the reason (the shield never fails open silently).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
from groundwire import Action, Embedder, GroundingRequest, GroundwireConfig, Verdict, hookimpl
from groundwire.models import Chunk
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .indirect_model import embed_text, late_units_from_sentences
from .model import effective_threshold
from .scoring import (
    ANNOTATION,
    Score,
    indirect_version,
    raw_document_scores,
    score_chunks,
    score_documents,
    score_prompts,
)

__all__ = ["PLUGIN", "ShieldSettings", "annotate_chunks", "annotation_versions", "embedder_backend", "precompute",
           "screen_documents", "screen_prompt", "settings_for"]

log = logging.getLogger("groundwire.plugins.prompt_shield")
PLUGIN = "prompt_shield"


class ShieldSettings(BaseModel):
    """``[plugins.settings.prompt_shield]`` after the tenant's overrides are applied."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    threshold: float | None = Field(default=None, ge=0.0, le=1.0)
    document_threshold: float | None = Field(default=None, ge=0.0, le=1.0)
    document_action: Literal["drop", "quarantine"] = "drop"
    use_model: bool = True
    direct: bool = True
    indirect: bool = True
    precompute: bool = True


def settings_for(config: GroundwireConfig, tenant: str | None) -> ShieldSettings:
    """Validated settings for ``tenant`` (its overrides applied); a bad key or value is a ``ConfigError``
    naming ``plugins.settings.prompt_shield.<key>``."""
    raw = dict(config.plugin_settings(PLUGIN, tenant if tenant is not None else ""))
    raw.pop("tenants", None)
    try:
        return ShieldSettings.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err["loc"])
        overrides = (config.plugin_settings(PLUGIN).get("tenants") or {}).get(tenant or "", {}) or {}
        in_tenant = bool(err["loc"]) and err["loc"][0] in overrides
        where = f"plugins.settings.{PLUGIN}" + (f".tenants.{tenant}" if in_tenant else "")
        raise config.error(
            f"{where}.{key}" if key else where,
            str(err["msg"]),
            "see the prompt_shield section of the README for the settings and their types",
        ) from exc


def embedder_backend(config: GroundwireConfig) -> str:
    """The MiniLM backend retrieval uses, so the shield shares its prompt embedding and loaded model."""
    e = config.embedder
    if e.name == "minilm" and not e.options.get("path"):
        return str(e.options.get("backend", "auto"))
    return "auto"


@hookimpl
def screen_prompt(request: GroundingRequest, config: GroundwireConfig) -> Verdict | None:
    s = settings_for(config, request.user.tenant)
    if not s.direct:
        return None
    try:
        sc = score_prompts([request.prompt], s.use_model, s.threshold, embedder_backend(config))[0]
        th = effective_threshold("direct", s.threshold, s.use_model)
    except (OSError, ImportError) as exc:  # model unavailable: rules still apply
        log.warning("prompt shield model unavailable, using rules only: %s", exc)
        sc = score_prompts([request.prompt], False)[0]
        sc = Score(sc.score, sc.reason + "; classifier unavailable", sc.strong)
        th = effective_threshold("direct", None, False)
    action = Action.BLOCK if (sc.strong or sc.score >= th) else Action.ALLOW
    return Verdict(stage="prompt", plugin=PLUGIN, action=action, score=round(sc.score, 4), reason=sc.reason)


def _bundled(config: GroundwireConfig) -> bool:
    """Whether the configured embedder *is* the bundled MiniLM the indirect head was trained on (then its
    vectors are used as they are; any other embedder's vectors live in another space)."""
    e = config.embedder
    return e.name == "minilm" and not e.options.get("path")


@hookimpl
def annotation_versions(config: GroundwireConfig, tenant: str) -> dict[str, dict[str, Any]] | None:
    """A current precomputed score carries :func:`indirect_version` (checked like :func:`score_chunks` does);
    none is expected where the tenant's settings turn the precompute off."""
    s = settings_for(config, tenant)
    if not (s.indirect and s.use_model and s.precompute):
        return None
    return {ANNOTATION: {"v": indirect_version()}}


@hookimpl
def annotate_chunks(
    chunks: Sequence[Chunk], config: GroundwireConfig, embedder: Embedder, vectors: Mapping[str, Sequence[float]],
    sentence_vectors: Mapping[str, tuple[Sequence[str], Any]],
) -> dict[str, dict[str, Any]] | None:
    """Precompute the indirect screening of new chunks at ingestion (``precompute``, default on), so a
    request only applies the threshold to stored results (per tenant: its settings decide).

    With the bundled MiniLM as the embedder, the head reads each chunk's index vector from ``vectors`` (no
    second model run for the chunk's own vector) and its sentences' vectors from ``sentence_vectors`` (the
    same run's, when the embedder pools spans: no second model run at all); see :func:`precompute`."""
    return precompute(chunks, config, embedder, vectors, sentence_vectors)


def precompute(
    chunks: Sequence[Chunk],
    config: GroundwireConfig,
    embedder: Embedder,
    vectors: Mapping[str, Sequence[float]],
    sentence_vectors: Mapping[str, tuple[Sequence[str], Any]] | None,
) -> dict[str, dict[str, Any]] | None:
    """:func:`annotate_chunks`' work. A head on late-chunked unit vectors (the shipped one) takes them from
    ``sentence_vectors`` (chunk id -> the chunk text's sentences and their vectors from ingestion's own
    run) when the embedder pools spans; chunks without them are read in one bundled-model run each (the
    query-time path). A head on standalone unit vectors embeds its units through ingestion's per-batch
    memo ``embedder`` (the extractive generator's sentences are the same texts: one model run for both).
    With another embedder than the bundled MiniLM, the bundled model embeds everything, as at query time."""
    if not chunks:
        return None
    todo = [c for c in chunks if (s := settings_for(config, c.tenant)).indirect and s.use_model and s.precompute]
    if not todo:
        return None
    own = _bundled(config)
    try:
        unit_vecs: list[Any] = [None] * len(todo)
        if own and sentence_vectors is not None and getattr(embedder, "pools_spans", False):
            for i, c in enumerate(todo):
                got = sentence_vectors.get(c.id)
                vec = vectors.get(c.id)
                if got is not None and vec is not None:
                    unit_vecs[i] = late_units_from_sentences(c.text, got[1], np.asarray(vec, np.float32))
        raw = raw_document_scores(
            [c.text for c in todo], True, embedder_backend(config), remember=False,
            chunk_vecs=[vectors.get(c.id) if own else None for c in todo],
            embed_units=embedder.embed_documents if own else None,
            chunk_inputs=[embed_text(c.text, c.title) for c in todo],
            unit_vecs=unit_vecs,
        )
    except (OSError, ImportError) as exc:  # scored at query time instead
        log.warning("prompt shield could not precompute chunk scores: %s", exc)
        return None
    version = indirect_version()
    return {c.id: {ANNOTATION: {"v": version, **r.to_json()}} for c, r in zip(todo, raw, strict=True)}


@hookimpl
def screen_documents(
    request: GroundingRequest, chunks: Sequence[Chunk], config: GroundwireConfig
) -> list[Verdict]:
    s = settings_for(config, request.user.tenant)
    if not s.indirect or not chunks:
        return []
    action = Action(s.document_action)
    try:
        scores = score_chunks(chunks, s.use_model, s.document_threshold, embedder_backend(config))
        th = effective_threshold("indirect", s.document_threshold, s.use_model)
    except (OSError, ImportError) as exc:
        log.warning("document shield model unavailable, using rules only: %s", exc)
        scores = score_documents([c.text for c in chunks], False)
        th = effective_threshold("indirect", None, False)
    return [
        Verdict(
            stage="documents",
            plugin=PLUGIN,
            action=action,
            score=round(sc.score, 4),
            reason=f"possible planted instruction: {sc.reason}",
            target=c.id,
        )
        for c, sc in zip(chunks, scores, strict=True)
        if sc.strong or sc.score >= th
    ]
