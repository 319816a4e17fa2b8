"""The row type of the trust report and the helpers every row uses.

Invariants: a row is built by :func:`run`, which turns any exception of its self-check into a failing row
naming the exception (a self-check that cannot run has not passed); the configuration text is computed
the same way, so a broken configuration never hides the row.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..pipeline import Grounder

__all__ = ["NOT_AVAILABLE", "Check", "delegated", "first_tenant", "plugin_names", "run"]

NOT_AVAILABLE = "not available in this version"


@dataclass(frozen=True, slots=True)
class Check:
    """One trust-center control: the configuration in force and the outcome of its live self-check."""

    control: str
    config: str
    ok: bool
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {"control": self.control, "config": self.config, "ok": self.ok, "detail": self.detail}


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc).strip() or '(no message)'}"


def run(control: str, config: str | Callable[[], str], fn: Callable[[], tuple[bool, str]]) -> Check:
    """The row of ``control``: ``fn()`` returns ``(ok, detail)``; an exception fails the row."""
    try:
        shown = config() if callable(config) else config
    except Exception as exc:  # noqa: BLE001 - a configuration that cannot be shown is reported, not raised
        shown = f"(cannot be read: {_error(exc)})"
    try:
        ok, detail = fn()
    except Exception as exc:  # noqa: BLE001 - a failing self-check is reported, not raised
        ok, detail = False, _error(exc)
    return Check(control, shown, bool(ok), detail)


def first_tenant(g: Grounder) -> str:
    ts = g.config.tenants()
    return ts[0] if ts else "default"


def plugin_names(g: Grounder) -> set[str]:
    return {n for n, p in g.pm.list_name_plugin() if p is not None}


def delegated(g: Grounder, control: str, module: str, config: str | Callable[[], str]) -> Check:
    """The row whose self-check is ``groundwire.<module>.self_check(grounder) -> (ok, detail)``; when that
    module is not installed the row fails with :data:`NOT_AVAILABLE`."""
    name = f"groundwire.{module}"
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        return Check(control, config if isinstance(config, str) else name, False, NOT_AVAILABLE)

    def check() -> tuple[bool, str]:
        fn = getattr(importlib.import_module(name), "self_check", None)
        if not callable(fn):
            return False, f"{name} has no self_check(): {NOT_AVAILABLE}"
        ok, detail = fn(g)
        return bool(ok), str(detail)

    return run(control, config, check)
