"""Access control: the fail-closed re-check of every retrieved chunk (required, cannot be disabled).

The index query is already pre-filtered by the user's principals; this plugin checks every chunk again,
so a bug or a stale filter in any index backend cannot leak a document. A chunk is denied when:
its ACL does not grant one of the user's principals, a denied principal matches (deny wins), it belongs
to another tenant, or it comes from a connector that is not configured for the user's tenant.
"""

from __future__ import annotations

from collections.abc import Sequence

from groundwire import GroundingRequest, GroundwireConfig, hookimpl
from groundwire.models import Chunk


@hookimpl
def filter_chunks(
    request: GroundingRequest, principals: frozenset[str], chunks: Sequence[Chunk], config: GroundwireConfig
) -> list[str]:
    tenant = request.user.tenant
    configured = set(config.connectors_for(tenant))
    return [
        c.id
        for c in chunks
        if c.tenant != tenant or c.connector not in configured or not c.acl.grants(principals)
    ]
