"""Groundwire's exceptions, one tree, each message saying what to do next.

::

    GroundwireError
    ├── ConfigError          a configuration file or value is wrong (names the file and the key)
    ├── PluginLoadError      a plugin could not be imported or registered (names the plugin)
    ├── ConnectorError       a connector failed (names the connector)
    ├── IndexError_          the vector store failed or is unreadable
    ├── AccessDenied         the user may not do this (says nothing about what exists)
    ├── FeatureDisabled      the feature is not enabled for any of the user's roles
    ├── PromptBlocked        the prompt shield refused the request
    ├── MissingExtra         an optional dependency is not installed (names the pip extra)
    ├── InputError           a request argument is wrong (empty prompt or user, malformed tenant id)
    ├── StorageError         the disk is full, the data dir is read-only, or a store is corrupt
    └── SyncBusy             another sync holds the data dir's sync lock (groundwire.synclock)

Every class has ``exit_code``: 2 for usage and configuration errors, 1 for refusals and failures (the
CLI's exit status). :func:`explain` turns a foreign exception (``OSError``, a Chroma error, a Rust panic
from Chroma's bindings, ``pluggy.PluginValidationError``) into the right subclass, or returns None.

Messages must never contain text from documents the caller may not read.
"""

from __future__ import annotations

import errno as _errno
import sqlite3 as _sqlite3
from pathlib import Path as _Path

__all__ = [
    "AccessDenied",
    "InputError",
    "StorageError",
    "SyncBusy",
    "explain",
    "ConfigError",
    "ConnectorError",
    "FeatureDisabled",
    "GroundwireError",
    "IndexError_",
    "MissingExtra",
    "PluginLoadError",
    "PromptBlocked",
]


class GroundwireError(Exception):
    """Base class of every error Groundwire raises on purpose."""

    exit_code: int = 1


class ConfigError(GroundwireError):
    """A configuration value is missing or wrong.

    :param file: the configuration file (or ``"<dict>"`` for in-memory configuration)
    :param key: the dotted key, e.g. ``connectors.handbook.path``
    :param problem: what is wrong
    :param hint: what to do about it
    """

    exit_code = 2

    def __init__(self, file: str, key: str, problem: str, hint: str = "") -> None:
        self.file, self.key, self.problem, self.hint = file, key, problem, hint
        msg = f"{file}: {key}: {problem}" if key else f"{file}: {problem}"
        if hint:
            msg += f" -> {hint}"
        super().__init__(msg)


class PluginLoadError(GroundwireError):
    """A plugin could not be loaded or registered."""

    exit_code = 2

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


class PromptBlocked(GroundwireError):
    """The prompt shield refused the request."""


class MissingExtra(GroundwireError):
    """An optional dependency is missing."""

    exit_code = 2

    def __init__(self, what: str, extra: str) -> None:
        self.extra = extra
        super().__init__(f"{what} needs an optional dependency: pip install 'groundwire[{extra}]'")


class InputError(GroundwireError):
    """A request argument is wrong (what the caller typed, not the configuration)."""

    exit_code = 2


class StorageError(GroundwireError):
    """Persistent state cannot be written or read: disk full, read-only data dir, corrupt store.

    :param path: the file or folder concerned
    """

    def __init__(self, path: str | _Path, problem: str, hint: str) -> None:
        self.path = str(path)
        super().__init__(f"{path}: {problem} -> {hint}")


class SyncBusy(GroundwireError):
    """Another sync holds the data dir's sync lock."""


_NO_SPACE = ("No space left", "Error in compaction", "database or disk is full", "SQLITE_FULL")
_READ_ONLY = ("readonly database", "read-only file system", "Read-only file system")
_CORRUPT = ("database disk image is malformed", "file is not a database", "malformed")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]


def explain(exc: BaseException, data_dir: str | _Path | None = None) -> GroundwireError | None:
    """The :class:`GroundwireError` a user should see for ``exc``, or None if it is not user-causable.

    Recognised: a full disk (``ENOSPC``, SQLite "disk is full", Chroma's "Error in compaction"), a
    read-only or unwritable data dir (``EROFS``, ``EACCES``, SQLite "readonly database"), a corrupt
    store (SQLite "malformed", or a Rust panic raised by Chroma's bindings while opening it: the
    recovery command is named), and ``pluggy.PluginValidationError`` (a misspelt hook).
    """
    if isinstance(exc, GroundwireError):
        return exc
    where = str(data_dir) if data_dir is not None else "the data dir"
    text = str(exc)
    cause = exc.__cause__ or exc.__context__
    if isinstance(exc, OSError) and exc.errno == _errno.ENOSPC or any(t in text for t in _NO_SPACE):
        return StorageError(getattr(exc, "filename", None) or where, "no space left on the device",
                            "free disk space (or move data_dir to a larger disk) and run the command again")
    if isinstance(exc, OSError) and exc.errno in (_errno.EROFS, _errno.EACCES, _errno.EPERM) or any(
        t in text for t in _READ_ONLY
    ):
        return StorageError(getattr(exc, "filename", None) or where, "cannot write here (read-only or "
                            "permission denied)", "make data_dir writable by this user, or set data_dir "
                            "to a writable folder in the configuration")
    if isinstance(exc, _sqlite3.DatabaseError) and any(t in text for t in _CORRUPT):
        return StorageError(where, f"a store is corrupt ({_first_line(exc)})",
                            "restore it from a backup, or move it aside and run the command again")
    if type(exc).__name__ == "PanicException" or any(t in text for t in _CORRUPT):
        chroma = _Path(where) / "chroma" if data_dir is not None else _Path("<data_dir>/chroma")
        return StorageError(chroma, f"the index store is corrupt or unreadable ({_first_line(exc)})",
                            f"move it aside (mv {chroma} {chroma}.corrupt) and run 'groundwire sync --full' "
                            "to rebuild it from the sources")
    if type(exc).__name__ == "PluginValidationError":
        plugin = getattr(exc, "plugin", None)
        name = getattr(plugin, "__name__", None) or str(plugin or "?")
        return PluginLoadError(name, f"{_first_line(exc)} (fix or uninstall the plugin, or disable it under "
                               "[plugins] disabled)")
    if cause is not None and cause is not exc:
        return explain(cause, data_dir)
    return None
