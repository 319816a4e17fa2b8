"""Hostile requests against a live server: each is refused with the right status and audited."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from groundwire import hookimpl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .conftest import Service

PROMPT = {"prompt": "When do salary increases take effect?"}


def _b64(obj: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


def _refused(svc: Service, token: str, status: int, reason: str) -> None:
    r = httpx.post(f"{svc.url}/v1/drafts", json=PROMPT, headers={"Authorization": f"Bearer {token}"},
                   trust_env=False, timeout=30)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert body["type"] == f"urn:groundwire:problem:{reason}" and body["status"] == status
    rid = body["instance"].rsplit(":", 1)[1]
    assert r.headers["x-request-id"] == rid
    ev = svc.http_events(request_id=rid)
    assert len(ev) == 1 and ev[0]["refused"] == reason and ev[0]["status"] == status
    assert ev[0]["actor"] == "anonymous"  # no identity was established


def test_forged_signature(service: Service) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    _refused(service, service.issuer.mint(service.issuer.claims("alice"), kid="rsa-1", key=other), 401, "bad_signature")


def test_tampered_payload(service: Service) -> None:
    head, _, sig = service.token("alice").split(".")
    forged = service.issuer.claims("alice", groups=["hr", "admins"], roles=["security-admin"])
    _refused(service, f"{head}.{_b64(forged)}.{sig}", 401, "bad_signature")


def test_wrong_audience(service: Service) -> None:
    _refused(service, service.token("alice", aud="api://someone-else"), 401, "wrong_audience")


def test_wrong_issuer(service: Service) -> None:
    _refused(service, service.token("alice", iss="https://evil.example"), 401, "wrong_issuer")


def test_expired_token_and_leeway(service: Service) -> None:
    now = int(time.time())
    _refused(service, service.token("alice", exp=now - 3600), 401, "expired")
    with service.client("alice", exp=now - 10) as within_leeway:
        assert within_leeway.post("/v1/drafts", json=PROMPT).status_code == 201
    _refused(service, service.token("alice", nbf=now + 3600), 401, "not_yet_valid")


def test_missing_exp_is_refused(service: Service) -> None:
    claims = service.issuer.claims("alice")
    del claims["exp"]
    _refused(service, service.issuer.mint(claims), 401, "missing_claim")


def test_alg_none_and_hmac_with_the_public_key(service: Service) -> None:
    claims = service.issuer.claims("alice")
    _refused(service, f"{_b64({'alg': 'none', 'typ': 'JWT', 'kid': 'rsa-1'})}.{_b64(claims)}.", 401,
             "alg_not_allowed")
    pem = service.issuer.keys["rsa-1"].public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    head = _b64({"alg": "HS256", "typ": "JWT", "kid": "rsa-1"})
    import hashlib
    import hmac

    body = f"{head}.{_b64(claims)}"
    sig = base64.urlsafe_b64encode(hmac.new(pem, body.encode(), hashlib.sha256).digest()).rstrip(b"=").decode()
    _refused(service, f"{body}.{sig}", 401, "alg_not_allowed")


def test_algorithm_must_match_the_key(service: Service) -> None:
    # signed with the RSA key but naming the EC key's kid
    token = jwt.encode(service.issuer.claims("alice"), service.issuer.keys["rsa-1"], algorithm="RS256",
                       headers={"kid": "ec-1"})
    _refused(service, token, 401, "alg_key_mismatch")


def test_es256_tokens_are_accepted(service: Service) -> None:
    token = service.issuer.mint(service.issuer.claims("alice"), kid="ec-1")
    r = httpx.post(f"{service.url}/v1/drafts", json=PROMPT, headers={"Authorization": f"Bearer {token}"},
                   trust_env=False, timeout=30)
    assert r.status_code == 201


class ManualClock:
    """A monotonic clock the test moves by hand, handed to the service's JWKS cache (its ``clock``), so the
    rate limit is checked against the interval itself, not against how fast a loaded machine serves requests
    (six refused requests used to have to fit in the 0.5 s interval of real time)."""

    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


def test_unknown_kid_refetches_at_most_once_per_interval(service: Service) -> None:
    issuer = service.issuer
    jwks = service.app.state.gw.validator.jwks
    clock = jwks.clock = ManualClock(time.monotonic())  # continues the real one: keys fetched before still count
    interval = jwks.settings.jwks_min_refresh_seconds
    with service.client("alice") as ok:
        assert ok.post("/v1/drafts", json=PROMPT).status_code == 201  # keys cached
    clock.now += interval + 0.1  # past jwks_min_refresh_seconds

    def made_up(i: int) -> None:
        _refused(service, issuer.mint(issuer.claims("alice"), kid=f"made-up-{i}", key=issuer.keys["rsa-1"]),
                 401, "unknown_kid")

    before = issuer.jwks_requests
    for i in range(6):
        made_up(i)
    assert issuer.jwks_requests - before == 1  # one refresh, then the rate limit holds
    clock.now += interval - 0.05  # just inside the interval since that refresh
    made_up(6)
    assert issuer.jwks_requests - before == 1
    clock.now += 0.1  # the interval has passed: one more refresh, then the limit again
    made_up(7)
    made_up(8)
    assert issuer.jwks_requests - before == 2


def test_key_rotation_is_picked_up(service: Service) -> None:
    issuer = service.issuer
    with service.client("alice") as ok:
        assert ok.post("/v1/drafts", json=PROMPT).status_code == 201
    issuer.rotate("rsa-rotated")
    time.sleep(0.6)
    token = issuer.mint(issuer.claims("alice"), kid="rsa-rotated")
    r = httpx.post(f"{service.url}/v1/drafts", json=PROMPT, headers={"Authorization": f"Bearer {token}"},
                   trust_env=False, timeout=30)
    assert r.status_code == 201, r.text


def test_tenant_not_mapped(service: Service) -> None:
    _refused(service, service.token("alice", tid="00000000-0000-0000-0000-000000000000"), 403, "tenant_not_mapped")
    _refused(service, service.token("alice", tid=None), 403, "tenant_not_mapped")


def test_group_overage_fails_closed(service: Service) -> None:
    overage = {"groups": None, "_claim_names": {"groups": "src1"},
               "_claim_sources": {"src1": {"endpoint": "https://graph.microsoft.com/v1.0/users/x/getMemberObjects"}}}
    _refused(service, service.token("alice", **overage), 403, "group_overage")
    _refused(service, service.token("alice", groups=None, hasgroups=True), 403, "group_overage")


def resolve_groups(claims: dict[str, Any]) -> list[str]:
    """The group resolver used by the overage test (a real one would call Microsoft Graph)."""
    return ["hr"] if claims.get("oid") == "oid-alice" else []


def test_group_overage_with_a_resolver(make_service: Callable[..., Service]) -> None:
    svc = make_service(oidc={"claims": {"group_resolver": f"{__name__}:resolve_groups"}})
    with svc.client("alice", groups=None, _claim_names={"groups": "src1"}) as alice:
        r = alice.post("/v1/drafts", json=PROMPT)
    assert r.status_code == 201
    assert any("salaries" in c["doc_id"] for c in r.json()["citations"])


def test_user_a_cannot_read_user_b_draft(service: Service) -> None:
    with service.client("carol") as carol, service.client("bob") as bob, service.client("alice") as alice:
        draft = carol.post("/v1/drafts", json=PROMPT).json()
        for c in (bob, alice):  # alice could even read the sources: a draft is its author's
            r = c.get(f"/v1/drafts/{draft['id']}")
            assert r.status_code == 404 and draft["id"] not in r.text
        assert bob.get(f"/v1/reviews/{draft['id']}").status_code == 403
    refused = service.http_events(route="/v1/drafts/{draft_id}", actor="oid-bob")
    assert refused and refused[0]["status"] == 404 and refused[0]["refused"] == "access_denied"


def test_oversize_body(make_service: Callable[..., Service]) -> None:
    svc = make_service(limits={"max_body_bytes": 2048})
    big = {"prompt": "x" * 5000}
    with svc.client("alice") as alice:
        r = alice.post("/v1/drafts", json=big)
        assert r.status_code == 413 and r.headers["content-type"] == "application/problem+json"

        def chunks():  # no Content-Length: the limit still holds while streaming
            for _ in range(10):
                yield b"x" * 1000

        r2 = alice.post("/v1/drafts", content=chunks(), headers={"Content-Type": "application/json"})
        assert r2.status_code == 413
        long = alice.post("/v1/drafts", json={"prompt": "y" * 1500})
        assert long.status_code == 201  # under both limits
    svc2_events = svc.http_events(refused="body_too_large")
    assert len(svc2_events) == 2 and all(e["status"] == 413 for e in svc2_events)


def test_prompt_too_long(make_service: Callable[..., Service]) -> None:
    svc = make_service(limits={"max_prompt_chars": 100})
    with svc.client("alice") as alice:
        r = alice.post("/v1/drafts", json={"prompt": "z" * 101})
    assert r.status_code == 422 and r.json()["type"].endswith(":prompt_too_long")
    assert svc.http_events(refused="prompt_too_long", actor="oid-alice")


def test_rate_limit_per_user(make_service: Callable[..., Service]) -> None:
    svc = make_service(limits={"burst": 3, "rate_per_minute": 1})
    with svc.client("alice") as alice, svc.client("bob") as bob:
        codes = [alice.post("/v1/retrieve", json={"prompt": "leave"}).status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        limited = alice.post("/v1/retrieve", json={"prompt": "leave"})
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
        assert bob.post("/v1/retrieve", json={"prompt": "leave"}).status_code == 200  # per user
    ev = svc.http_events(refused="rate_limited")
    assert len(ev) == 2 and {e["actor"] for e in ev} == {"oid-alice"}


class _BrokenAudit:
    @hookimpl
    def record_event(self, event, config):  # type: ignore[no-untyped-def]
        if event.kind == "http_request":
            raise OSError("disk full")


def test_a_request_whose_audit_record_fails_is_not_served(service: Service) -> None:
    plugin = _BrokenAudit()
    service.grounder.pm.register(plugin)
    try:
        with service.client("alice") as alice:
            r = alice.post("/v1/retrieve", json={"prompt": "leave"})
        assert r.status_code == 500
        assert r.json()["type"].endswith(":audit_failed") and "disk" not in r.text and "leave" not in r.text
    finally:
        service.grounder.pm.unregister(plugin)


def _segments(token: str) -> list[bytes] | None:
    try:
        return [base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)) for p in token.split(".")]
    except ValueError:
        return None


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_property_any_altered_token_is_refused(service: Service, data: st.DataObject) -> None:
    """Changing any one character of a valid token never yields an identity."""
    from groundwire.server.auth import AuthFailure, OIDCValidator

    token = service.token("alice")
    i = data.draw(st.integers(min_value=0, max_value=len(token) - 1))
    ch = data.draw(st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_."))
    if ch == token[i]:
        return
    altered = token[:i] + ch + token[i + 1:]
    if _segments(altered) == _segments(token):
        return  # base64url's unused trailing bits: the same bytes, so the same token

    async def check() -> None:
        async with httpx.AsyncClient(trust_env=False) as client:
            validator = OIDCValidator(service.app.state.gw.settings, client)
            with pytest.raises(AuthFailure):
                await validator.identity(altered)

    asyncio.run(check())


def test_concurrency_gate_refuses_when_full() -> None:
    from groundwire.server.http import ConcurrencyGate, Problem

    async def scenario() -> int:
        gate = ConcurrencyGate(limit=1, timeout=0.05)
        async with gate:
            with pytest.raises(Problem) as refused:
                async with gate:
                    pass
            assert refused.value.status == 503 and refused.value.headers["Retry-After"] == "1"
        async with gate:  # released again
            return gate.in_flight

    assert asyncio.run(scenario()) == 1


@settings(max_examples=60, deadline=None)
@given(tid=st.one_of(st.text(max_size=40), st.integers(), st.none(), st.lists(st.text(max_size=5), max_size=2)))
def test_property_only_mapped_tenants_are_admitted(tid: object) -> None:
    from groundwire.server.auth import AuthFailure, map_claims
    from groundwire.server.settings import ServerSettings

    mapped = "9188040d-6c67-4c5b-b112-36a304b66dad"
    s = ServerSettings.model_validate({"oidc": {"issuer": "https://id.example", "audience": ["a"]},
                                       "tenants": {mapped: "acme"}, "review": {"enabled": False}})
    claims = {"oid": "u1", "tid": tid, "groups": ["g"], "roles": []}
    if tid == mapped:
        assert map_claims(claims, s).tenant == "acme"
    else:
        with pytest.raises(AuthFailure) as refused:
            map_claims(claims, s)
        assert refused.value.status == 403 and refused.value.reason == "tenant_not_mapped"


def test_an_unreachable_issuer_fails_closed_without_a_fetch_per_request() -> None:
    from groundwire.server.auth import AuthFailure, JWKSCache
    from groundwire.server.settings import OIDCSettings

    calls: list[str] = []

    def down(request: httpx.Request) -> httpx.Response:
        calls.append(str(request.url))
        return httpx.Response(502)

    now = [1000.0]
    oidc = OIDCSettings(issuer="https://id.example", audience=["a"], jwks_min_refresh_seconds=30)

    async def scenario() -> list[str]:
        async with httpx.AsyncClient(transport=httpx.MockTransport(down)) as client:
            cache = JWKSCache(oidc, client, clock=lambda: now[0])
            reasons = []
            for _ in range(5):
                with pytest.raises(AuthFailure) as err:
                    await cache.key("k1")
                reasons.append(f"{err.value.status}:{err.value.reason}")
            now[0] += 31
            with pytest.raises(AuthFailure):
                await cache.key("k1")
            return reasons

    assert asyncio.run(scenario()) == ["503:issuer_unreachable"] * 5
    assert calls == ["https://id.example/.well-known/openid-configuration"] * 2  # one try per interval
