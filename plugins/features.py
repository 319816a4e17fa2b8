"""Per-role feature enablement from ``[features]``: ``feature = ["role", ...]``, ``"*"`` = everyone.

A feature missing from the table is disabled (fail closed). Role names compare in the canonical id form
(NFC, ASCII letters lower-cased), the same as the roles of a :class:`~groundwire.UserContext`. Denials are
audited by the pipeline.
"""

from __future__ import annotations

from groundwire import GroundwireConfig, InvalidPrincipal, UserContext, canonical_id, hookimpl


def _role(name: str) -> str | None:
    """A configured role in the canonical form of user roles (``groundwire.canonical_id``); an invalid one
    matches nobody (fail closed)."""
    if name.strip(" ") == "*":
        return "*"
    try:
        return canonical_id(name, "role id")
    except InvalidPrincipal:
        return None


@hookimpl(trylast=True)
def feature_allowed(user: UserContext, feature: str, config: GroundwireConfig) -> bool:
    roles = {_role(r) for r in config.features.get(feature, [])} - {None}
    return "*" in roles or bool(roles & user.roles)
