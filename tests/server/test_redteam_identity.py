"""Red-team probes of the service's identity mapping (live uvicorn on 127.0.0.1, the OIDC issuer double).

Each test names the forged or spoofed identity it presents; the ones that found a bug failed before the fix.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import pytest

from .conftest import Service

KEY = "gwk_redteam_" + "k" * 40


@pytest.mark.parametrize("claims", [
    {"oid": "service:ticketing"},
    {"oid": "Service:Ticketing"},                                  # an ASCII case variant: the same principal
    {"oid": None, "preferred_username": " SERVICE:ticketing "},    # the fallback claim, padded
], ids=["oid", "case-variant", "preferred-username"])
def test_a_token_cannot_claim_an_api_key_identity(make_service: Callable[..., Service], claims) -> None:
    """Forged identity: a token whose user claim reads ``service:<name>`` (a self-chosen username at a
    non-Entra issuer, say) would be the same ``user:service:<name>`` principal as the API key ``<name>``: it
    could read that service's drafts and documents shared with it. Such tokens are refused (403) and audited."""
    svc = make_service(api_keys=[{"name": "ticketing", "sha256": hashlib.sha256(KEY.encode()).hexdigest(),
                                  "tenant": "acme", "roles": []}])
    with svc.client(None) as anon:
        made = anon.post("/v1/drafts", json={"prompt": "annual leave"}, headers={"X-API-Key": KEY})
        assert made.status_code == 201, made.text
        draft_id = made.json()["id"]
    with svc.client("mallory", **claims) as mallory:
        r = mallory.get(f"/v1/drafts/{draft_id}")
        assert r.status_code == 403, r.text
        assert r.json()["type"] == "urn:groundwire:problem:reserved_user_id"
        assert draft_id not in r.text and "annual" not in r.text.lower()
        assert mallory.post("/v1/drafts", json={"prompt": "annual leave"}).status_code == 403
    refused = svc.http_events(refused="reserved_user_id")
    assert len(refused) == 2 and all(e["actor"] == "anonymous" and e["status"] == 403 for e in refused)
    with svc.client(None) as anon:  # the key itself still works
        assert anon.get(f"/v1/drafts/{draft_id}", headers={"X-API-Key": KEY}).status_code == 200
