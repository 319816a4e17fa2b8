"""Groundwire: ground AI drafts in an organisation's own documents, for human review.

The public API plugins and apps import. See ``groundwire.hookspecs`` for the plugin contract.
"""

from __future__ import annotations

from .config import GroundwireConfig, PluginSettings, config_from_dict, load_config
from .connector import (
    Checkpoint,
    Connector,
    ConnectorContext,
    ConnectorSettings,
    Delete,
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
    MissingExtra,
    PluginLoadError,
    PromptBlocked,
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
    severity_action,
)
from .pipeline import Grounder
from .pluginmanager import make_plugin_manager

__all__ = [
    "EVERYONE",
    "REVIEW_NOTICE",
    "AccessControl",
    "AccessDenied",
    "Action",
    "Checkpoint",
    "Chunk",
    "Citation",
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
    "Generation",
    "Generator",
    "GeneratorContext",
    "Grounder",
    "GroundingRequest",
    "GroundwireConfig",
    "PluginSettings",
    "GroundwireError",
    "MissingExtra",
    "PluginLoadError",
    "PromptBlocked",
    "Section",
    "Skipped",
    "Unchanged",
    "Upsert",
    "UserContext",
    "Verdict",
    "severity_action",
    "config_from_dict",
    "hookimpl",
    "load_config",
    "make_plugin_manager",
]

__version__ = "0.1.0"
