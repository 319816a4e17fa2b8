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


SPOOFED = {
    "X-Forwarded-User": "alice", "X-Remote-User": "oid-alice", "Remote-User": "oid-alice",
    "X-MS-CLIENT-PRINCIPAL-NAME": "alice@example.com", "X-MS-CLIENT-PRINCIPAL-ID": "oid-alice",
    "X-Groundwire-User": "oid-alice", "X-Groundwire-Groups": "hr", "X-Forwarded-For": "127.0.0.1",
    "X-Real-IP": "127.0.0.1", "X-Forwarded-Host": "evil.example", "X-Original-URL": "/healthz",
    "X-Rewrite-URL": "/healthz", "X-HTTP-Method-Override": "GET", "X-Tenant": "acme", "X-Request-Id": "forged-id",
}


def test_identity_headers_are_never_trusted(service: Service) -> None:
    """Header spoofing: a proxy's identity headers (``X-Forwarded-User``, App Service's
    ``X-MS-CLIENT-PRINCIPAL-*``), path-rewrite and method-override headers and a forged request id. Without a
    token they authenticate nobody (401); with bob's token the request is bob's (no HR text, bob is the
    author), and the audit record carries the service's own request id."""
    question = {"prompt": "When do salary increases take effect and how big is the budget?"}
    with service.client(None) as anon:
        r = anon.post("/v1/drafts", json=question, headers=SPOOFED)
        assert r.status_code == 401 and "salary" not in r.text.lower()
        assert anon.get("/v1/reviews", headers=SPOOFED).status_code == 401
    with service.client("bob") as bob:
        made = bob.post("/v1/drafts", json=question, headers=SPOOFED)
        assert made.status_code == 201, made.text
        body = made.json()
        assert "3.5 percent" not in made.text and all(c["doc_id"] != "hr/salaries.md" for c in body["citations"])
        assert bob.get(f"/v1/drafts/{body['id']}").json()["author"] == "oid-bob"
    rid = made.headers["x-request-id"]
    assert rid != "forged-id" and service.http_events(request_id=rid)[0]["actor"] == "oid-bob"
    assert not service.http_events(request_id="forged-id")
