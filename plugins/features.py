"""Per-role feature enablement from ``[features]``: ``feature = ["role", ...]``, ``"*"`` = everyone.

A feature missing from the table is disabled (fail closed). Denials are audited by the pipeline.
"""

from __future__ import annotations

from groundwire import GroundwireConfig, UserContext, hookimpl


@hookimpl(trylast=True)
def feature_allowed(user: UserContext, feature: str, config: GroundwireConfig) -> bool:
    roles = {r.strip().casefold() for r in config.features.get(feature, [])}
    return "*" in roles or bool(roles & user.roles)
