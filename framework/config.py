"""Validated configuration from a TOML file.

Every error names the file, the dotted key and what to do. Relative paths resolve against the
configuration file's folder. Unknown keys are errors (a typo must not silently disable a control).

Example::

    data_dir = ".groundwire"

    [embedder]
    name = "minilm"

    [generator]
    name = "extractive"

    [features]                 # feature -> roles allowed ("*" = every signed-in user)
    ask = ["*"]

    [connectors.handbook]      # only configured connectors ever run or are searched
    type = "knowledge_base"
    tenant = "acme"
    path = "corpus"
"""

from __future__ import annotations

import hashlib
import inspect
import logging
import tomllib
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, field_validator

from .errors import ConfigError
from .models import canonical_id, validate_tenant

__all__ = [
    "AuditConfig",
    "EncryptionConfig",
    "ConnectorConfig",
    "EmbedderConfig",
    "GeneratorConfig",
    "GroundwireConfig",
    "IndexConfig",
    "PluginSettings",
    "PluginsConfig",
    "RetentionConfig",
    "RetrievalConfig",
    "load_config",
    "validate_options",
    "validate_plugin_settings",
]

log = logging.getLogger("groundwire.config")
M = TypeVar("M", bound=BaseModel)


class PluginSettings(BaseModel):
    """Base of a plugin's ``[plugins.settings.<name>]`` model: unknown keys and wrong types are errors
    (strict: ``"false"`` is not a bool, ``"3"`` is not an int). A plugin module declares its models as
    ``SETTINGS_MODELS = {"<section>": Model}``; they are checked at start-up (every section and every
    ``tenants.<tenant>`` override) and read with :meth:`GroundwireConfig.plugin_settings`."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EmbedderConfig(_Strict):
    name: str = "minilm"
    options: dict[str, Any] = Field(default_factory=dict)
    query_cache_size: int = Field(default=1024, ge=0)
    batch_size: int = Field(default=64, ge=1)
    # sync: annotate and write each batch in a thread while the next batch embeds (groundwire.ingest_write)
    write_behind: bool = True


class GeneratorConfig(_Strict):
    name: str = "extractive"
    options: dict[str, Any] = Field(default_factory=dict)


class RetrievalConfig(_Strict):
    top_k: int = Field(default=5, ge=1, le=100)
    candidates: int = Field(default=20, ge=1, le=1000)
    chunk_size: int = Field(default=800, ge=100, le=8000, description="characters per chunk")
    chunk_overlap: int = Field(default=120, ge=0, le=2000)
    min_score: float = Field(default=0.0, ge=-1.0, le=1.0)
    # fast path (groundwire.retrieval): "auto" = in-memory permission-aware search, "chroma" = where-filter
    mode: Literal["auto", "chroma"] = "auto"
    exact_max_rows: int = Field(default=20000, ge=0, description="exact scan up to this many rows")
    overfetch: float = Field(default=4.0, ge=1.0, le=100.0)
    refresh_seconds: float = Field(default=2.0, ge=0.0, description="how often to compare collection counts")
    hybrid: bool = False
    rrf_k: int = Field(default=60, ge=1)
    dense_weight: float = Field(default=1.0, ge=0.0)
    bm25_weight: float = Field(default=1.0, ge=0.0)
    blas_threads: int = Field(default=1, ge=0, description="BLAS threads during a scan (0: numpy's default)")


class IndexConfig(_Strict):
    backend: Literal["embedded", "http"] = "embedded"
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    ssl: bool = False


class EncryptionConfig(_Strict):
    """``[encryption]``: AES-GCM at rest for chunk payloads, audit lines and drafts (see groundwire.crypto)."""

    enabled: bool = False
    provider: str = "env"
    options: dict[str, Any] = Field(default_factory=dict)


class AuditConfig(_Strict):
    """``[audit]``: ids, verdicts and latency are always recorded; prompt and draft text only if enabled."""

    store_prompts: bool = False
    store_drafts: bool = False
    #: fsync every audit line and checkpoint before the request returns (off: a power loss may lose lines)
    fsync: bool = True
    #: where the keyed checkpoints of the logs live (default ``<data_dir>/audit/.checkpoints``); relative to
    #: the configuration file. Put it on another volume to keep it apart from the logs.
    checkpoint_dir: str = ""


class RetentionConfig(_Strict):
    """``[retention]``: days to keep audit lines, review drafts (by last update) and quarantine entries (by
    last hit), enforced by ``groundwire retention apply``; 0 keeps them forever."""

    audit_days: int = Field(default=365, ge=0, le=36500)
    reviews_days: int = Field(default=365, ge=0, le=36500)
    quarantine_days: int = Field(default=365, ge=0, le=36500)


class PluginsConfig(_Strict):
    disabled: list[str] = Field(default_factory=list)
    load_entrypoints: bool = True
    settings: dict[str, dict[str, Any]] = Field(default_factory=dict)


class ConnectorConfig(BaseModel):
    """``type`` and ``tenant`` are the framework's; every other key goes to the connector's Settings."""

    model_config = ConfigDict(extra="allow")
    type: str
    tenant: str
    enabled: bool = True

    @field_validator("tenant")
    @classmethod
    def _tenant(cls, v: str) -> str:
        return validate_tenant(v)

    def connector_settings(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class GroundwireConfig(_Strict):
    data_dir: Path = Path(".groundwire")
    default_tenant: str | None = None
    embedder: EmbedderConfig = Field(default_factory=EmbedderConfig)
    generator: GeneratorConfig = Field(default_factory=GeneratorConfig)
    retrieval: RetrievalConfig = Field(default_factory=RetrievalConfig)
    index: IndexConfig = Field(default_factory=IndexConfig)
    plugins: PluginsConfig = Field(default_factory=PluginsConfig)
    encryption: EncryptionConfig = Field(default_factory=EncryptionConfig)
    audit: AuditConfig = Field(default_factory=AuditConfig)
    retention: RetentionConfig = Field(default_factory=RetentionConfig)
    features: dict[str, list[str]] = Field(default_factory=lambda: {"ask": ["*"]})
    connectors: dict[str, ConnectorConfig] = Field(default_factory=dict)
    # data residency: tenant (or "*") -> model endpoint regions allowed; empty = no restriction
    tenant_regions: dict[str, list[str]] = Field(default_factory=dict)
    # ``[server]`` of ``groundwire serve``: validated strictly by groundwire.server.settings (the core
    # does not import the server extra)
    server: dict[str, Any] = Field(default_factory=dict)

    # where it came from, for error messages and relative paths
    source: str = Field(default="<dict>", exclude=True)
    # SHA-256 of the file's bytes as loaded ("" for in-memory configuration): Grounder refuses to write
    # with a configuration whose file has changed since (see Grounder.check_config_current)
    source_hash: str = Field(default="", exclude=True)
    base_dir: Path = Field(default_factory=Path.cwd, exclude=True)

    @field_validator("features")
    @classmethod
    def _feature_roles(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        for feature, roles in v.items():
            for role in roles:
                if role.strip(" ") != "*":
                    canonical_id(role, f"role id in [features] {feature}")  # raises InvalidPrincipal (a ValueError)
        return v

    @field_validator("connectors")
    @classmethod
    def _names(cls, v: dict[str, ConnectorConfig]) -> dict[str, ConnectorConfig]:
        for name in v:
            if not name.replace("_", "").replace("-", "").isalnum():
                raise ValueError(f"connector name {name!r} may only use letters, digits, '-' and '_'")
        return v

    def resolve(self, path: str | Path) -> Path:
        p = Path(path).expanduser()
        return p if p.is_absolute() else (self.base_dir / p).resolve()

    @property
    def data_path(self) -> Path:
        return self.resolve(self.data_dir)

    def tenants(self) -> list[str]:
        found = {c.tenant for c in self.connectors.values()}
        if self.default_tenant:
            found.add(self.default_tenant)
        return sorted(found)

    def connectors_for(self, tenant: str) -> dict[str, ConnectorConfig]:
        """The enabled connectors configured for ``tenant`` (the only ones it may search)."""
        return {n: c for n, c in self.connectors.items() if c.tenant == tenant and c.enabled}

    @typing.overload
    def plugin_settings(self, plugin: str, tenant: str | None = None) -> dict[str, Any]: ...

    @typing.overload
    def plugin_settings(self, plugin: str, tenant: str | None, model: type[M]) -> M: ...

    def plugin_settings(self, plugin: str, tenant: str | None = None, model: type[M] | None = None) -> Any:
        """``[plugins.settings.<plugin>]``; with ``tenant``, with that tenant's overrides from
        ``[plugins.settings.<plugin>.tenants.<tenant>]`` applied (and the ``tenants`` table removed).

        With ``model`` (a :class:`PluginSettings` subclass): the merged settings validated into it
        (:class:`ConfigError` naming the file and key); without: a plain dict (no validation)."""
        settings = self.plugins.settings.get(plugin, {})
        merged = dict(settings)
        overrides = merged.pop("tenants", {}) or {}
        if tenant is None and model is None:
            return settings
        if tenant is not None:
            merged.update(overrides.get(tenant, {}) or {})
        if model is None:
            return merged
        where = f"plugins.settings.{plugin}" + (f".tenants.{tenant}" if tenant in overrides else "")
        return _validate_model(model, merged, self.source, where)

    def error(self, key: str, problem: str, hint: str = "") -> ConfigError:
        return ConfigError(self.source, key, problem, hint)


def _format_loc(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc)


def _validate_model(model: type[M], data: Mapping[str, Any], source: str, where: str) -> M:
    try:
        return model.model_validate(dict(data))
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(filter(None, [where, _format_loc(err["loc"])]))
        if err["type"] == "extra_forbidden":
            known = ", ".join(sorted(model.model_fields)) or "(none)"
            raise ConfigError(source, key, "unknown key", f"known keys: {known}") from None
        raise ConfigError(source, key, err["msg"], f"got {err.get('input')!r}") from None


def validate_plugin_settings(
    config: GroundwireConfig, models: Mapping[str, type[BaseModel]], plugin_names: Iterable[str] = ()
) -> None:
    """Check every ``[plugins.settings.<section>]`` a plugin declared a model for, and each of its
    ``tenants.<tenant>`` overrides (merged over the section, as the plugin will read them). A section
    that neither a model nor a registered plugin's name covers is logged (a misspelt section name, or a
    plugin that is not installed); a plugin without a model reads its section unchecked."""
    names = set(plugin_names)
    for section, data in config.plugins.settings.items():
        model = models.get(section)
        if model is None:
            if section not in names:
                log.warning("%s: [plugins.settings.%s] is not read by any loaded plugin; is the name right?",
                            config.source, section)
            continue
        tenants = data.get("tenants", {}) or {}
        if not isinstance(tenants, Mapping):
            raise ConfigError(config.source, f"plugins.settings.{section}.tenants", "must be a table of tenants")
        base = {k: v for k, v in data.items() if k != "tenants"}
        _validate_model(model, base, config.source, f"plugins.settings.{section}")
        for tenant, override in tenants.items():
            if not isinstance(override, Mapping):
                raise ConfigError(config.source, f"plugins.settings.{section}.tenants.{tenant}", "must be a table")
            _validate_model(model, {**base, **override}, config.source, f"plugins.settings.{section}.tenants.{tenant}")


def validate_options(cls: Any, options: Mapping[str, Any], source: str, key: str) -> dict[str, Any]:
    """Check ``options`` against the keyword parameters of ``cls.__init__`` (strict types, unknown keys
    are errors unless it takes ``**kwargs``); used for ``[embedder] options`` and ``[generator] options``.
    Parameters without an annotation accept anything; ``context`` (a generator's) is not an option."""
    sig = inspect.signature(cls.__init__)
    try:
        hints = typing.get_type_hints(cls.__init__)
    except Exception:  # noqa: BLE001 - unresolvable annotations: fall back to unchecked types
        hints = {}
    fields: dict[str, Any] = {}
    extra: Literal["allow", "forbid"] = "forbid"
    for name, param in list(sig.parameters.items())[1:]:
        if param.kind is inspect.Parameter.VAR_KEYWORD:
            extra = "allow"
            continue
        if param.kind is inspect.Parameter.VAR_POSITIONAL or name == "context":
            continue
        default = ... if param.default is inspect.Parameter.empty else param.default
        fields[name] = (hints.get(name, Any), default)
    model = create_model(
        f"{cls.__name__}Options", __config__=ConfigDict(extra=extra, strict=True, arbitrary_types_allowed=True),
        **fields,
    )
    _validate_model(model, options, source, key)
    return dict(options)


def config_from_dict(data: Mapping[str, Any], source: str = "<dict>", base_dir: Path | None = None) -> GroundwireConfig:
    """Validate a configuration mapping; raise :class:`ConfigError` naming the first bad key."""
    try:
        cfg = GroundwireConfig.model_validate(dict(data))
    except ValidationError as exc:
        err = exc.errors()[0]
        key = _format_loc(err["loc"])
        kind = err["type"]
        if kind == "extra_forbidden":
            raise ConfigError(source, key, "unknown key", "check the spelling; see README 'Configuration'") from None
        if kind == "missing":
            raise ConfigError(source, key, "is required", "add it to the file") from None
        raise ConfigError(source, key, err["msg"], f"got {err.get('input')!r}") from None
    cfg.source = source
    cfg.base_dir = (base_dir or Path.cwd()).resolve()
    if cfg.default_tenant is not None:
        try:
            validate_tenant(cfg.default_tenant)
        except ValueError as exc:
            raise ConfigError(source, "default_tenant", str(exc)) from None
    return cfg


def load_config(path: str | Path) -> GroundwireConfig:
    """Load and validate a TOML configuration file."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(str(p), "", "file not found", "create one with 'groundwire init' or pass --config PATH")
    raw = p.read_bytes()
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(p), "", f"not valid TOML: {exc}", "fix the syntax at the line shown") from None
    except UnicodeDecodeError:
        raise ConfigError(str(p), "", "not UTF-8 text", "save the file as UTF-8") from None
    cfg = config_from_dict(data, source=str(p), base_dir=p.parent)
    cfg.source_hash = hashlib.sha256(raw).hexdigest()
    return cfg
