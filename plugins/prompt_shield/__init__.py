"""Prompt shield: direct (``screen_prompt``) and indirect (``screen_documents``) prompt-injection screening.

Offline, no downloads. A package of small parts:

- :mod:`.normalize`: NFKC, invisible / bidi characters removed, confusables folded, whitespace collapsed,
  word windows (what rules and model read);
- :mod:`.decode`: base64/32/16, ascii85/base85, hex, rot13 and leetspeak readings, nested up to a bound;
- :mod:`.rules`: known attack families; a *strong* hit blocks on its own, whatever the threshold; each
  pattern runs only where the literals it requires are present (:mod:`.prefilter`);
- :mod:`.model`: character features, MiniLM embeddings and the numpy logistic regression whose weights
  ship here as ``prompt_shield_indirect.npz`` (older format);
- :mod:`.direct_model`: the direct classifier (embedding, character features and hashed n-grams;
  ``prompt_shield_direct.npz``), whose lexical part ranks a long prompt's windows;
- :mod:`.indirect_model`: the indirect head over a chunk's stored vector and its sentences' vectors
  (``prompt_shield_indirect.npz``);
- :mod:`.segments`: table-row and fence patterns (and the older prose segments, kept for benchmarks);
- :mod:`.scoring`: prompts are scored as the max over word windows and decoded payloads, documents as their
  worst segment, precomputed at ingestion (``annotate_chunks``) and versioned;
- :mod:`.plugin`: the hooks and the strictly validated settings (:class:`ShieldSettings`);
- :mod:`.reference`: the straightforward rules, decoding and character features the fast ones are tested
  against (never called by the shield).

Invariants: verdict reasons never quote the screened text; a failure to load the model falls back to the
rules only and says so in the reason (the shield never fails open silently).
"""

from __future__ import annotations

from .combo_head import ComboModel
from .decode import decoded_payloads
from .direct_model import DirectModel, hashed_ngrams, load_direct
from .indirect_model import IndirectModel, embed_text, load_indirect, units
from .model import (
    ARTEFACT_DIR,
    N_CHAR,
    ShieldModel,
    char_features,
    effective_threshold,
    embed,
    fit_logistic,
    load_model,
)
from .normalize import clean, clean_lines, for_model, homoglyph_words, normalise, windows
from .plugin import (
    PLUGIN,
    ShieldSettings,
    annotate_chunks,
    annotation_versions,
    embedder_backend,
    precompute,
    screen_documents,
    screen_prompt,
    settings_for,
)
from .rules import RULES, Rule, rule_hits
from .scoring import (
    ANNOTATION,
    RawScore,
    Score,
    clear_cache,
    indirect_version,
    prompt_items,
    raw_document_scores,
    score_chunks,
    score_documents,
    score_prompts,
)
from .segments import N_CONTEXT, SEGMENT_CHARS, TABLE_ROW, doc_context, segments
from .token_head import TokenHeadModel

_TABLE_ROW = TABLE_ROW  # the name benchmarks used before the split

# checked at start-up with every plugin's settings models (a bad key or value fails before the first request)
SETTINGS_MODELS = {PLUGIN: ShieldSettings}

__all__ = [
    "ANNOTATION",
    "ARTEFACT_DIR",
    "N_CHAR",
    "N_CONTEXT",
    "PLUGIN",
    "RULES",
    "SETTINGS_MODELS",
    "SEGMENT_CHARS",
    "TABLE_ROW",
    "RawScore",
    "IndirectModel",
    "Rule",
    "Score",
    "ShieldModel",
    "ShieldSettings",
    "ComboModel",
    "DirectModel",
    "TokenHeadModel",
    "annotate_chunks",
    "annotation_versions",
    "precompute",
    "char_features",
    "clean",
    "clean_lines",
    "clear_cache",
    "decoded_payloads",
    "doc_context",
    "effective_threshold",
    "embed",
    "embed_text",
    "embedder_backend",
    "fit_logistic",
    "for_model",
    "hashed_ngrams",
    "homoglyph_words",
    "indirect_version",
    "load_direct",
    "load_indirect",
    "load_model",
    "normalise",
    "prompt_items",
    "raw_document_scores",
    "rule_hits",
    "score_chunks",
    "score_documents",
    "score_prompts",
    "screen_documents",
    "screen_prompt",
    "segments",
    "settings_for",
    "units",
    "windows",
]
