"""The trust report as a trust-center table: one row per control, each with the configuration in force and a
live self-check that fails when the control is off or broken (``groundwire trust-report``).

Rows, in order (:data:`CONTROLS`): keys, authentication, activity, disposal, inventory, portable media, data at
rest, failure detection, prompt shield, external data, per-role features, residency, then security trimming,
tenant isolation, drafts for human review, retention and no data sharing. Rows whose self-check lives in
another module (purge, exports, retention) fail with "not available in this version" when it is not installed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from . import activity, auth, keys, policy
from .base import NOT_AVAILABLE, Check

if TYPE_CHECKING:
    from ..pipeline import Grounder

__all__ = ["CONTROLS", "NOT_AVAILABLE", "ROWS", "Check", "trust_checks"]

ROWS: tuple[tuple[str, Callable[[Grounder], Check]], ...] = (
    (keys.KEY_ACCESS, keys.key_access),
    (auth.AUTHENTICATION, auth.unique_authentication),
    (activity.ACTIVITY, activity.activity),
    (activity.DISPOSAL, activity.disposal),
    (activity.INVENTORY, activity.inventory),
    (activity.PORTABLE, activity.portable_media),
    (keys.AT_REST, keys.at_rest),
    (activity.FAILURES, activity.failure_detection),
    (policy.SHIELD, policy.shield),
    (policy.EXTERNAL, policy.external_data),
    (policy.FEATURES, policy.features),
    (policy.RESIDENCY, policy.residency),
    (policy.TRIMMING, policy.trimming),
    (policy.ISOLATION, policy.isolation),
    (policy.DRAFTS, policy.drafts),
    (activity.RETENTION, activity.retention),
    (policy.SHARING, policy.no_sharing),
)
CONTROLS: tuple[str, ...] = tuple(name for name, _ in ROWS)


def trust_checks(g: Grounder) -> list[Check]:
    """Every trust-center row for ``g``, in :data:`CONTROLS` order."""
    from .. import hookspecs  # noqa: F401 - ensure specs are loaded

    return [row(g) for _, row in ROWS]
