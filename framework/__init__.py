"""Groundwire: ground AI drafts in an organisation's own documents, for human review.

The public API plugins and apps import. See ``groundwire.hookspecs`` for the plugin contract.
"""

from __future__ import annotations

from .config import GroundwireConfig, config_from_dict, load_config
from .connector import (
    Checkpoint,
    Connector,
    ConnectorContext,
    ConnectorSettings,
    Delete,
    FileSourceSettings,
    Skipped,
    Unchanged,
    Upsert,
)
from .embedding import Embedder
from .errors import (
    AccessDenied,
    ConfigError,
    ConnectorError,
    FeatureDisabled,
    GroundwireError,
    InvalidPrincipal,
    MissingExtra,
    PluginLoadError,
    PromptBlocked,
    StaleConfig,
)
from .generation import Generation, Generator, GeneratorContext
from .hookspecs import hookimpl
from .models import (
    EVERYONE,
    REVIEW_NOTICE,
    AccessControl,
    Action,
    Chunk,
    Citation,
    Document,
    Draft,
    DraftStatus,
    GroundingRequest,
    Section,
    UserContext,
    Verdict,
    canonical_id,
    severity_action,
)
from .pipeline import Grounder
from .pluginmanager import make_plugin_manager
from .sentences import sentence_spans, split_sentences
from .sources import ConfinedRoot, SourceEntry, SourceRefused, SourceSkip, printable_name

__all__ = [
    "EVERYONE",
    "REVIEW_NOTICE",
    "AccessControl",
    "AccessDenied",
    "Action",
    "Checkpoint",
    "Chunk",
    "Citation",
    "ConfinedRoot",
    "ConfigError",
    "Connector",
    "ConnectorContext",
    "ConnectorError",
    "ConnectorSettings",
    "Delete",
    "Document",
    "Draft",
    "DraftStatus",
    "Embedder",
    "FeatureDisabled",
    "FileSourceSettings",
    "Generation",
    "Generator",
    "GeneratorContext",
    "Grounder",
    "GroundingRequest",
    "GroundwireConfig",
    "GroundwireError",
    "InvalidPrincipal",
    "MissingExtra",
    "PluginLoadError",
    "PromptBlocked",
    "Section",
    "Skipped",
    "SourceEntry",
    "SourceRefused",
    "SourceSkip",
    "StaleConfig",
    "Unchanged",
    "Upsert",
    "UserContext",
    "Verdict",
    "canonical_id",
    "sentence_spans",
    "split_sentences",
    "config_from_dict",
    "severity_action",
    "hookimpl",
    "load_config",
    "make_plugin_manager",
    "printable_name",
]

__version__ = "0.1.0"
