"""PII detection with Microsoft Presidio on the draft (``screen_output``): optional, configured-only.

Needs ``pip install 'groundwire[presidio]'`` (presidio-analyzer, which brings spaCy); presidio is imported
lazily, so this module imports without it and does nothing until configured.

Settings: ``[plugins.settings.presidio]`` with ``enabled = true`` (required: nothing runs otherwise),
``entities`` (Presidio entity names; default :data:`DEFAULT_ENTITIES`, plus :data:`NER_ENTITIES` when a
``spacy_model`` is set), ``score_threshold`` (0.4), ``language`` (``"en"``), ``spacy_model`` (the name of an
*installed* spaCy pipeline, or a path to one, for PERSON / LOCATION / ...; default: a blank pipeline, i.e.
tokenizer only, so only Presidio's pattern and checksum recognisers run), ``action = "redact" | "flag"``,
and per-tenant overrides in ``[plugins.settings.presidio.tenants.<tenant>]`` (same keys, plus ``enabled``).

Offline invariants: spaCy models are never downloaded (Presidio's own loader would try; a configured
model that is not installed is a configuration error); the e-mail recogniser's domain check uses
tldextract's bundled public-suffix snapshot, never the network. One ``AnalyzerEngine`` is built per
process per (language, spaCy model), under a lock. Verdict reasons name entity types and counts, never
the values.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from groundwire import (
    Action,
    Draft,
    GroundingRequest,
    GroundwireConfig,
    MissingExtra,
    PluginSettings,
    Verdict,
    hookimpl,
)
from groundwire.models import Chunk
from pydantic import Field

__all__ = ["DEFAULT_ENTITIES", "NER_ENTITIES", "analyzer", "find_pii"]

PLUGIN = "presidio"


class PresidioSettings(PluginSettings):
    """``[plugins.settings.presidio]`` (and each ``tenants.<tenant>`` override); checked at start-up."""

    enabled: bool = False
    entities: list[str] | None = None
    score_threshold: float = Field(default=0.4, ge=0.0, le=1.0)
    language: str = "en"
    spacy_model: str = ""
    action: Literal["redact", "flag"] = "redact"


SETTINGS_MODELS = {PLUGIN: PresidioSettings}

#: Pattern / checksum recognisers that need no NER model. URL and DATE_TIME are left out on purpose:
#: drafts legitimately contain dates and links, and redacting them would gut the answer.
DEFAULT_ENTITIES: tuple[str, ...] = (
    "EMAIL_ADDRESS",
    "PHONE_NUMBER",
    "CREDIT_CARD",
    "IBAN_CODE",
    "US_SSN",
    "US_ITIN",
    "UK_NHS",
    "IP_ADDRESS",
    "CRYPTO",
)
#: Added to the default when ``spacy_model`` names a pipeline with a named-entity recogniser.
NER_ENTITIES: tuple[str, ...] = ("PERSON", "LOCATION")

# spaCy labels -> Presidio entities (as Presidio's own conf/spacy.yaml); the rest are not personal data.
_NER_MAPPING = {
    "PER": "PERSON",
    "PERSON": "PERSON",
    "NORP": "NRP",
    "FAC": "LOCATION",
    "LOC": "LOCATION",
    "GPE": "LOCATION",
    "LOCATION": "LOCATION",
    "ORG": "ORGANIZATION",
    "ORGANIZATION": "ORGANIZATION",
    "DATE": "DATE_TIME",
    "TIME": "DATE_TIME",
}
_NER_IGNORE = [
    "CARDINAL", "EVENT", "LANGUAGE", "LAW", "MONEY", "ORDINAL", "PERCENT", "PRODUCT", "QUANTITY", "WORK_OF_ART",
]

_LOCK = threading.Lock()
_PRESIDIO_LOG = logging.getLogger("presidio-analyzer")


def _other_language_notice(record: logging.LogRecord) -> bool:
    """Drop Presidio's one-per-recogniser warning that recognisers for other languages were skipped."""
    return not record.getMessage().startswith("Recognizer not added to registry because language is not supported")

_ENGINES: dict[tuple[str, str], Any] = {}


def _import_presidio() -> Any:
    try:
        import presidio_analyzer
        import spacy
        import tldextract
    except ImportError as exc:
        raise MissingExtra("the presidio PII plugin", "presidio") from exc
    return presidio_analyzer, spacy, tldextract


def _build(language: str, spacy_model: str) -> Any:
    """A new ``AnalyzerEngine``: the predefined recognisers over a blank or an installed spaCy pipeline."""
    presidio_analyzer, spacy, tldextract = _import_presidio()
    from presidio_analyzer.nlp_engine import NerModelConfiguration, SpacyNlpEngine
    from presidio_analyzer.predefined_recognizers import EmailRecognizer

    class OfflineSpacyNlpEngine(SpacyNlpEngine):
        """Loads a blank pipeline or an installed model; never calls Presidio's model download."""

        def load(self) -> None:
            pipelines: Any = {language: spacy.load(spacy_model) if spacy_model else spacy.blank(language)}
            self.nlp = pipelines

        def _doc_to_nlp_artifact(self, doc: Any, lang: str) -> Any:
            # a blank pipeline has no lemmatizer: let context words ("ssn", "phone") match the lower-cased
            # token, or Presidio's context enhancement never fires
            for token in doc:
                if not token.lemma_:
                    token.lemma_ = token.lower_
            return super()._doc_to_nlp_artifact(doc, lang)

    # tldextract's module-level extractor fetches the public-suffix list over the network on first use;
    # this one reads only the snapshot shipped in the wheel and writes no cache.
    offline_tld = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None, fallback_to_snapshot=True)

    class OfflineEmailRecognizer(EmailRecognizer):
        def validate_result(self, pattern_text: str) -> bool:
            return bool(offline_tld(pattern_text).fqdn)

    nlp_engine = OfflineSpacyNlpEngine(
        models=[{"lang_code": language, "model_name": spacy_model or "blank"}],
        ner_model_configuration=NerModelConfiguration(
            model_to_presidio_entity_mapping=_NER_MAPPING, labels_to_ignore=_NER_IGNORE, low_score_entity_names=[]
        ),
    )
    nlp_engine.load()
    registry = presidio_analyzer.RecognizerRegistry(supported_languages=[language])
    _PRESIDIO_LOG.addFilter(_other_language_notice)
    try:
        registry.load_predefined_recognizers(languages=[language], nlp_engine=nlp_engine)
    finally:
        _PRESIDIO_LOG.removeFilter(_other_language_notice)
    stock_email = [r for r in registry.recognizers if isinstance(r, EmailRecognizer)]
    if stock_email:
        registry.recognizers = [r for r in registry.recognizers if r not in stock_email]
        registry.add_recognizer(OfflineEmailRecognizer(supported_language=language))
    return presidio_analyzer.AnalyzerEngine(
        registry=registry, nlp_engine=nlp_engine, supported_languages=[language]
    )


def analyzer(config: GroundwireConfig, language: str = "en", spacy_model: str = "") -> Any:
    """The process-wide ``AnalyzerEngine`` for ``(language, spacy_model)``, built on first use.

    :raises MissingExtra: presidio-analyzer is not installed
    :raises ConfigError: ``spacy_model`` is neither an installed spaCy package nor a pipeline directory
    """
    key = (language, spacy_model)
    engine = _ENGINES.get(key)
    if engine is not None:
        return engine
    _, spacy, _ = _import_presidio()
    if spacy_model and not (spacy.util.is_package(spacy_model) or Path(spacy_model).is_dir()):
        raise config.error(
            f"plugins.settings.{PLUGIN}.spacy_model",
            f"spaCy model {spacy_model!r} is not installed (it is never downloaded at run time)",
            "pip install the model's package or give the path of a saved pipeline, "
            "or remove spacy_model to use pattern recognisers only",
        )
    with _LOCK:
        engine = _ENGINES.get(key)
        if engine is None:
            engine = _ENGINES[key] = _build(language, spacy_model)
    return engine


def _ner_only(engine: Any, language: str, entity: str) -> bool:
    """True when only the spaCy NER recogniser can find ``entity`` (no pattern recogniser does)."""
    from presidio_analyzer.predefined_recognizers import SpacyRecognizer

    recognizers = engine.registry.get_recognizers(language=language, entities=[entity])
    return bool(recognizers) and all(isinstance(r, SpacyRecognizer) for r in recognizers)


def _entities(config: GroundwireConfig, s: dict[str, Any], engine: Any, language: str) -> list[str]:
    spacy_model = str(s.get("spacy_model") or "")
    default = [*DEFAULT_ENTITIES, *(NER_ENTITIES if spacy_model else ())]
    entities = [str(e) for e in s.get("entities", default)]
    supported = set(engine.get_supported_entities(language))
    unknown = sorted(set(entities) - supported)
    if unknown:
        raise config.error(
            f"plugins.settings.{PLUGIN}.entities",
            f"unknown Presidio entities {unknown}",
            f"choose from {', '.join(sorted(supported))}",
        )
    if not spacy_model:
        needs_model = sorted(e for e in entities if _ner_only(engine, language, e))
        if needs_model:
            raise config.error(
                f"plugins.settings.{PLUGIN}.entities",
                f"{needs_model} need a spaCy model with named-entity recognition",
                "set spacy_model to an installed pipeline (e.g. en_core_web_lg), or drop these entities",
            )
    return entities


def find_pii(
    text: str,
    config: GroundwireConfig,
    settings: dict[str, Any] | None = None,
) -> list[tuple[int, int, str, float]]:
    """Spans ``(start, end, entity, score)`` Presidio finds in ``text`` with ``settings`` (default: the
    untenanted plugin settings). A span inside another, longer span is reported once, as the longer one."""
    s = dict(config.plugin_settings(PLUGIN)) if settings is None else settings
    language = str(s.get("language", "en"))
    threshold = float(s.get("score_threshold", 0.4))
    if not 0.0 <= threshold <= 1.0:
        raise config.error(f"plugins.settings.{PLUGIN}.score_threshold", f"{threshold} is not in [0, 1]")
    engine = analyzer(config, language, str(s.get("spacy_model") or ""))
    entities = _entities(config, s, engine, language)
    results = engine.analyze(text=text, language=language, entities=entities, score_threshold=threshold)
    kept: list[tuple[int, int, str, float]] = []
    reach = -1  # the furthest end of the spans kept so far; they all start at or before r.start
    for r in sorted(results, key=lambda r: (r.start, -r.end, -r.score)):
        if r.end <= reach:
            continue  # nested in a span already kept
        kept.append((r.start, r.end, r.entity_type, float(r.score)))
        reach = max(reach, r.end)
    return kept


@hookimpl
def screen_output(
    request: GroundingRequest, draft: Draft, sources: Sequence[Chunk], config: GroundwireConfig
) -> Verdict | None:
    s = config.plugin_settings(PLUGIN, request.user.tenant)
    if s.get("enabled") is not True:
        return None
    action_name = str(s.get("action", "redact"))
    if action_name not in ("redact", "flag"):
        raise config.error(
            f"plugins.settings.{PLUGIN}.action", f"unknown action {action_name!r}", 'use "redact" or "flag"'
        )
    found = find_pii(draft.text, config, s)
    if not found:
        return None
    counts: dict[str, int] = {}
    for _, _, label, _ in found:
        counts[label] = counts.get(label, 0) + 1
    return Verdict(
        stage="output",
        plugin=PLUGIN,
        action=Action.FLAG if action_name == "flag" else Action.REDACT,
        score=round(max(score for *_, score in found), 3),
        reason="personal data (presidio): " + ", ".join(f"{n} {label}" for label, n in sorted(counts.items())),
        spans=tuple((start, end, label) for start, end, label, _ in found),
    )
