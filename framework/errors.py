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
    ├── MissingExtra         an optional dependency is not installed (names the pip extra)
    ├── StorageError         a file or database under the data dir could not be written or read
    │   │                    (names the path and the cause: disk full, read-only, permissions)
    │   ├── AuditWriteError  the audit record of a request could not be written: the request fails
    │   └── CorruptStore     a store cannot be opened (names the recovery command)
    ├── InputError           a request argument is wrong (empty prompt or user, malformed tenant id)
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
    "AuditWriteError",
    "CorruptStore",
    "InputError",
    "StorageError",
    "SyncBusy",
    "explain",
    "os_error_cause",
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
    "storage_error",
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


class InvalidPrincipal(GroundwireError, ValueError):
    """A principal id or token is not in a form Groundwire accepts (``groundwire.models.canonical_id``).

    Also a ``ValueError``, so validators that catch ``ValueError`` report it as a bad value."""

    exit_code = 2


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

    exit_code = 2

    def __init__(self, what: str, extra: str) -> None:
        self.extra = extra
        super().__init__(f"{what} needs an optional dependency: pip install 'groundwire[{extra}]'")


_CAUSES = {
    _errno.ENOSPC: "there is no space left on the disk",
    _errno.EDQUOT: "the disk quota is exhausted",
    _errno.EROFS: "the file system is read-only",
    _errno.EACCES: "permission denied",
    _errno.EPERM: "permission denied",
    _errno.EFBIG: "a file reached its size limit (a process limit such as 'ulimit -f', or the file system's)",
    _errno.EIO: "the disk reported an I/O error on write (a full disk, a file size limit such as 'ulimit -f', "
                "or a failing disk)",
}
_HINTS = {
    _errno.ENOSPC: "free disk space (or move data_dir to a larger disk), then retry",
    _errno.EDQUOT: "free space within the quota (or raise it), then retry",
    _errno.EROFS: "mount it read-write or point data_dir at a writable directory",
    _errno.EACCES: "give the process write access to it or point data_dir elsewhere",
    _errno.EPERM: "give the process write access to it or point data_dir elsewhere",
    _errno.EFBIG: "lift the limit (ulimit -f unlimited) or move data_dir to another file system, then retry",
    _errno.EIO: "free disk space, lift any file size limit (ulimit -f) and check the disk (dmesg), then retry",
}


def os_error_cause(exc: BaseException | str) -> str:
    """What went wrong, in words, for an :class:`OSError` of a write (a full disk, a size limit, a read-only
    file system, ...; its ``strerror`` otherwise): the cause part of :class:`StorageError`'s message."""
    code = getattr(exc, "errno", None)
    return _CAUSES.get(code if isinstance(code, int) else -1) or (
        exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    )


class StorageError(GroundwireError):
    """Persistent state under the data directory could not be written (or read).

    :param what: what was being written, e.g. ``the audit log``
    :param path: the file or directory
    :param cause: the underlying :class:`OSError` (its ``errno`` picks the wording: ENOSPC says disk space)
    """

    def __init__(self, what: str, path: object, cause: BaseException | str) -> None:
        self.what, self.path = what, str(path)
        code = getattr(cause, "errno", None)
        self.errno = code if isinstance(code, int) else None
        self.disk_full = code in (_errno.ENOSPC, _errno.EDQUOT)
        reason = os_error_cause(cause)
        hint = _HINTS.get(code or -1, "check the disk and the permissions of the data directory, then retry")
        super().__init__(f"could not write {what} at {self.path}: {reason} -> {hint}")


class AuditWriteError(StorageError):
    """The audit record could not be written; the operation it records is refused (fail closed)."""


def storage_error(what: str, path: object, exc: BaseException, cls: type[StorageError] = StorageError) -> StorageError:
    """A :class:`StorageError` (or ``cls``) for ``exc``, with ``disk space`` named when the disk is full.

    SQLite reports a full disk as ``sqlite3.OperationalError('database or disk is full')`` without an errno;
    that wording is mapped to ENOSPC here so callers get the same message.
    """
    if not isinstance(exc, OSError) and "disk is full" in str(exc):
        exc = OSError(_errno.ENOSPC, "No space left on device")
    return cls(what, path, exc)


class InputError(GroundwireError, ValueError):
    """A request argument is wrong (what the caller typed, not the configuration)."""

    exit_code = 2


class SyncBusy(GroundwireError):
    """Another sync holds the data dir's sync lock."""


class CorruptStore(StorageError):
    """A store cannot be opened because its files are damaged; the message names the recovery."""

    def __init__(self, what: str, path: object, problem: str, recovery: str) -> None:
        self.what, self.path, self.errno, self.disk_full = what, str(path), None, False
        GroundwireError.__init__(self, f"{what} at {self.path} {problem} -> {recovery}")


_NO_SPACE = ("No space left", "Error in compaction", "database or disk is full", "SQLITE_FULL")
_READ_ONLY = ("readonly database", "read-only file system", "Read-only file system")
_IO = ("disk I/O error", "File too large")  # SQLite's SQLITE_IOERR (e.g. EFBIG under ulimit -f), EFBIG's text
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
    if isinstance(exc, OSError) and exc.errno in _CAUSES:
        return storage_error("data", exc.filename or where, exc)
    if any(t in text for t in _NO_SPACE):
        return storage_error("data", where, OSError(_errno.ENOSPC, "No space left on device"))
    if any(t in text for t in _READ_ONLY):
        return storage_error("data", where, OSError(_errno.EROFS, "Read-only file system"))
    if any(t in text for t in _IO):
        return storage_error("data", where, OSError(_errno.EIO, "disk I/O error"))
    if isinstance(exc, _sqlite3.DatabaseError) and any(t in text for t in _CORRUPT):
        return CorruptStore("a store", where, f"is corrupt ({_first_line(exc)})",
                            "restore it from a backup, or move it aside and run the command again")
    if type(exc).__name__ == "PanicException" or any(t in text for t in _CORRUPT):
        chroma = _Path(where) / "chroma" if data_dir is not None else _Path("<data_dir>/chroma")
        return CorruptStore("the index store", chroma, f"is corrupt or unreadable ({_first_line(exc)})",
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
