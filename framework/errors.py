"""Groundwire's exceptions, one tree, each message saying what to do next.

::

    GroundwireError
    ├── ConfigError          a configuration file or value is wrong (names the file and the key)
    ├── PluginLoadError      a plugin could not be imported or registered (names the plugin)
    ├── ConnectorError       a connector failed (names the connector)
    ├── IndexError_          the vector store failed or is unreadable
    ├── AccessDenied         the user may not do this (says nothing about what exists)
    ├── FeatureDisabled      the feature is not enabled for any of the user's roles
    ├── InvalidPrincipal     a user/group/role id or ACL token has no canonical form (also a ValueError)
    ├── StaleConfig          the configuration file changed since this Grounder loaded it (a ConfigError)
    ├── PromptBlocked        the prompt shield refused the request
    └── MissingExtra         an optional dependency is not installed (names the pip extra)

Messages must never contain text from documents the caller may not read.
"""

from __future__ import annotations

__all__ = [
    "AccessDenied",
    "ConfigError",
    "ConnectorError",
    "FeatureDisabled",
    "GroundwireError",
    "IndexError_",
    "InvalidPrincipal",
    "MissingExtra",
    "PluginLoadError",
    "PromptBlocked",
    "StaleConfig",
]


class GroundwireError(Exception):
    """Base class of every error Groundwire raises on purpose."""


class ConfigError(GroundwireError):
    """A configuration value is missing or wrong.

    :param file: the configuration file (or ``"<dict>"`` for in-memory configuration)
    :param key: the dotted key, e.g. ``connectors.handbook.path``
    :param problem: what is wrong
    :param hint: what to do about it
    """

    def __init__(self, file: str, key: str, problem: str, hint: str = "") -> None:
        self.file, self.key, self.problem, self.hint = file, key, problem, hint
        msg = f"{file}: {key}: {problem}" if key else f"{file}: {problem}"
        if hint:
            msg += f" -> {hint}"
        super().__init__(msg)


class PluginLoadError(GroundwireError):
    """A plugin could not be loaded or registered."""

    def __init__(self, plugin: str, problem: str) -> None:
        self.plugin = plugin
        super().__init__(f"plugin {plugin!r}: {problem}")


class ConnectorError(GroundwireError):
    """A connector failed; ``connector`` names the configured instance."""

    def __init__(self, connector: str, problem: str) -> None:
        self.connector = connector
        super().__init__(f"connector {connector!r}: {problem}")


class IndexError_(GroundwireError):  # noqa: N801 - avoid shadowing the builtin IndexError
    """The index (vector store) failed or could not be read."""


class AccessDenied(GroundwireError):
    """The user may not do this. The message never reveals whether a resource exists."""


class FeatureDisabled(GroundwireError):
    """The requested feature is not enabled for any of the user's roles."""

    def __init__(self, feature: str, roles: frozenset[str] | set[str]) -> None:
        self.feature = feature
        shown = ", ".join(sorted(roles)) or "(none)"
        super().__init__(
            f"feature {feature!r} is not enabled for your roles ({shown}); "
            "ask an administrator to enable it under [features] in the configuration"
        )


class InvalidPrincipal(GroundwireError, ValueError):
    """A principal id or token is not in a form Groundwire accepts (``groundwire.models.canonical_id``).

    Also a ``ValueError``, so validators that catch ``ValueError`` report it as a bad value."""


class StaleConfig(ConfigError):
    """The configuration file changed after this :class:`~groundwire.Grounder` loaded it, so applying the
    in-memory copy could undo an administrator's change (e.g. re-widen a narrowed ACL)."""

    def __init__(self, file: str) -> None:
        super().__init__(
            file, "", "changed since this Grounder loaded it; refusing to apply the old in-memory configuration",
            "create a new Grounder (Grounder.from_config) or restart the app to use the current file",
        )


class PromptBlocked(GroundwireError):
    """The prompt shield refused the request."""


class MissingExtra(GroundwireError):
    """An optional dependency is missing."""

    def __init__(self, what: str, extra: str) -> None:
        self.extra = extra
        super().__init__(f"{what} needs an optional dependency: pip install 'groundwire[{extra}]'")
