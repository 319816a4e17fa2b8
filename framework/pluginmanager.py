"""Build a fresh plugin manager per application instance.

Steps: add hookspecs -> block disabled plugins -> register the built-ins (``DEFAULT_PLUGINS``) -> load
entry points of the group ``groundwire`` one by one, isolating failures: a plugin that cannot be imported,
whose hooks do not match their specs, or that implements a hook that does not exist (a misspelling) is
unregistered and skipped with a warning naming it and the reason -> ``check_pending()`` so a misspelled
hook in a built-in or ``extra`` plugin is an error at start-up.

Environment:
- ``GROUNDWIRE_LOAD_PLUGINS=a,b``: load only these entry-point plugins (empty string: none).
- ``GROUNDWIRE_STRICT_PLUGINS=1``: a plugin that fails to load is an error instead of a warning.
- ``GROUNDWIRE_TRACE_PLUGINS=1``: log every hook call and its result (debug level).

Invariant: the ``access`` plugin is required and cannot be disabled: it is the fail-closed re-check.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
import os
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import pluggy

from . import hookspecs
from .errors import PluginLoadError

__all__ = [
    "DEFAULT_PLUGINS",
    "REQUIRED_PLUGINS",
    "PluginInfo",
    "collect_registry",
    "make_plugin_manager",
    "plugin_info",
]

log = logging.getLogger("groundwire.plugins")

DEFAULT_PLUGINS: tuple[str, ...] = (
    "groundwire.plugins.access",
    "groundwire.plugins.features",
    "groundwire.plugins.citations",
    "groundwire.plugins.extractive",
    "groundwire.plugins.embedders",
    "groundwire.plugins.audit",
    "groundwire.plugins.keys",
    "groundwire.plugins.trust_cli",
    "groundwire.plugins.openai_generator",
    "groundwire.plugins.prompt_shield",
    "groundwire.plugins.pii",
    "groundwire.plugins.presidio_pii",
    "groundwire.plugins.groundedness",
    "groundwire.plugins.content_safety",
    "groundwire.plugins.content_safety_api",
    "groundwire.connectors.knowledge_base",
    "groundwire.connectors.sharepoint",
    "groundwire.connectors.web",
)
REQUIRED_PLUGINS = frozenset({"access"})


def _short(module_path: str) -> str:
    return module_path.rsplit(".", 1)[-1]


def make_plugin_manager(
    load_entrypoints: bool = True,
    disabled: Iterable[str] = (),
    extra: Iterable[object] = (),
) -> pluggy.PluginManager:
    """Return a new plugin manager with the built-ins and (optionally) the installed plugins.

    :param load_entrypoints: load third-party plugins from the ``groundwire`` entry-point group
    :param disabled: plugin names (built-in short names or entry-point names) not to register
    :param extra: plugin objects (modules, classes, instances) to register too, e.g. in tests
    :raises PluginLoadError: a required plugin was disabled, a hook is misspelled, or (strict mode) a
        plugin failed to load
    """
    pm = pluggy.PluginManager("groundwire")
    pm.add_hookspecs(hookspecs)
    disabled = set(disabled)
    if disabled & REQUIRED_PLUGINS:
        raise PluginLoadError(
            ", ".join(sorted(disabled & REQUIRED_PLUGINS)),
            "is required (it enforces document permissions) and cannot be disabled; "
            "remove it from [plugins] disabled",
        )
    for name in disabled:
        pm.set_blocked(name)
    for path in DEFAULT_PLUGINS:
        name = _short(path)
        if pm.is_blocked(name):
            continue
        pm.register(importlib.import_module(path), name=name)
    if load_entrypoints:
        _load_entrypoints(pm)
    for plugin in extra:
        pm.register(plugin)
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise PluginLoadError(str(getattr(exc, "plugin", "?")), f"unknown hook: {exc}") from exc
    if os.environ.get("GROUNDWIRE_TRACE_PLUGINS"):
        pm.trace.root.setwriter(lambda msg: log.debug("%s", msg))
        pm.enable_tracing()
    return pm


# plugin name -> distribution version, per manager (pluggy keeps this only for its own loader)
_VERSIONS: weakref.WeakKeyDictionary[pluggy.PluginManager, dict[str, str]] = weakref.WeakKeyDictionary()


def _load_entrypoints(pm: pluggy.PluginManager) -> None:
    allow_env = os.environ.get("GROUNDWIRE_LOAD_PLUGINS")
    allow = None if allow_env is None else {n.strip() for n in allow_env.split(",") if n.strip()}
    strict = os.environ.get("GROUNDWIRE_STRICT_PLUGINS", "") not in ("", "0")
    for dist in importlib.metadata.distributions():
        for ep in dist.entry_points:
            if ep.group != "groundwire":
                continue
            if allow is not None and ep.name not in allow:
                continue
            if pm.is_blocked(ep.name) or pm.get_plugin(ep.name) is not None:
                continue
            try:
                plugin = ep.load()
                pm.register(plugin, name=ep.name)
                unknown = _unknown_hooks(pm, plugin)
                if unknown:
                    pm.unregister(plugin)
                    raise PluginLoadError(
                        ep.name, f"implements hooks that do not exist: {', '.join(unknown)} (misspelt?)"
                    )
                _VERSIONS.setdefault(pm, {})[ep.name] = dist.version
            except Exception as exc:
                dist_name = dist.metadata["name"] if dist.metadata else "?"
                if strict:
                    raise PluginLoadError(ep.name, f"from {dist_name}: {exc}") from exc
                log.warning(
                    "plugin %r from %s failed to load and was skipped: %s "
                    "(set GROUNDWIRE_STRICT_PLUGINS=1 to make this an error)",
                    ep.name,
                    dist_name,
                    exc,
                )


def _unknown_hooks(pm: pluggy.PluginManager, plugin: object) -> list[str]:
    """Names of ``plugin``'s hook implementations that no hookspec declares (and are not optional)."""
    out = []
    for caller in pm.get_hookcallers(plugin) or ():
        if caller.spec is not None:
            continue
        for impl in caller.get_hookimpls():
            if impl.plugin is plugin and not impl.optionalhook:
                out.append(caller.name)
    return sorted(set(out))


@dataclass(frozen=True, slots=True)
class PluginInfo:
    name: str
    version: str
    hooks: tuple[str, ...]
    builtin: bool


def plugin_info(pm: pluggy.PluginManager) -> list[PluginInfo]:
    """Name, version and hooks of every registered plugin, for ``groundwire plugins``."""
    versions = _VERSIONS.get(pm, {})
    try:
        own_version = importlib.metadata.version("groundwire")
    except importlib.metadata.PackageNotFoundError:
        own_version = "dev"
    builtin_names = {_short(p) for p in DEFAULT_PLUGINS}
    out = []
    for name, plugin in pm.list_name_plugin():
        if plugin is None:
            continue
        hooks = tuple(sorted(h.name for h in pm.get_hookcallers(plugin) or ()))
        builtin = name in builtin_names
        out.append(PluginInfo(name, own_version if builtin else versions.get(name, "?"), hooks, builtin))
    return sorted(out, key=lambda i: (not i.builtin, i.name))


def collect_registry(pm: pluggy.PluginManager, hook_name: str, key: Callable[[Any], str]) -> dict[str, Any]:
    """Call a ``register_*`` hook and return ``{name: class}``; a duplicate name is an error."""
    found: dict[str, Any] = {}

    def register(obj: Any) -> None:
        name = key(obj)
        if name in found and found[name] is not obj:
            raise PluginLoadError(
                name,
                f"two plugins register the {hook_name.removeprefix('register_')[:-1]} name {name!r} "
                f"({found[name].__module__} and {obj.__module__}); disable one of them",
            )
        found[name] = obj

    getattr(pm.hook, hook_name)(register=register)
    return found
