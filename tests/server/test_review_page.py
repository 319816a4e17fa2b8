"""The reviewer page over HTTP (no browser): sign-in with code + PKCE, cookies, CSRF, inert document text."""

from __future__ import annotations

import re
from collections.abc import Iterator
from http.cookies import SimpleCookie

import httpx
import pytest

from .conftest import Service

_OPEN: list[httpx.Client] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while _OPEN:
        _OPEN.pop().close()


class Browserless:
    """Follows redirects by hand and keeps cookies itself (httpx never sends Secure cookies over http)."""

    def __init__(self, svc: Service) -> None:
        self.svc = svc
        self.cookies: dict[str, str] = {}
        self.set_cookie_headers: list[str] = []
        self.http = httpx.Client(trust_env=False, timeout=30)
        _OPEN.append(self.http)

    def request(self, method: str, url: str, **kw: object) -> httpx.Response:
        if url.startswith("/"):
            url = self.svc.url + url
        headers = dict(kw.pop("headers", {}) or {})  # type: ignore[call-overload]
        if url.startswith(self.svc.url) and self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        r = self.http.request(method, url, headers=headers, **kw)  # type: ignore[arg-type]
        for raw in r.headers.get_list("set-cookie"):
            self.set_cookie_headers.append(raw)
            for name, morsel in SimpleCookie(raw).items():
                if morsel["max-age"] == "0" or morsel.value == "":
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = morsel.value
        return r

    def follow(self, url: str, limit: int = 6) -> httpx.Response:
        r = self.request("GET", url)
        while r.is_redirect and limit:
            loc = r.headers["location"]
            r = self.request("GET", loc)
            limit -= 1
        return r

    def sign_in(self, user: str) -> httpx.Response:
        self.svc.issuer.login_as = self.svc.issuer.claims(user)
        return self.follow("/review")

    def csrf(self, html: str) -> str:
        m = re.search(r'name="csrf_token" value="([^"]+)"', html)
        assert m, "no CSRF token in the page"
        return m.group(1)


def _draft(svc: Service, user: str, prompt: str) -> str:
    with svc.client(user) as c:
        r = c.post("/v1/drafts", json={"prompt": prompt})
        assert r.status_code == 201
        return str(r.json()["id"])


def test_sign_in_sets_a_hardened_session_cookie(service: Service) -> None:
    b = Browserless(service)
    page = b.sign_in("alice")
    assert page.status_code == 200 and "Drafts to review" in page.text
    session = [h for h in b.set_cookie_headers if h.startswith("gw_review_session=")][0].lower()
    assert "httponly" in session and "secure" in session and "samesite=lax" in session
    csp = page.headers["content-security-policy"]
    assert "script-src 'none'" in csp and "default-src 'none'" in csp and "http" not in csp.replace("https", "")
    assert "<script" not in page.text.lower()
    ev = service.http_events(route="/review/callback")
    assert ev and ev[0]["actor"] == "oid-alice" and ev[0]["status"] == 303


def test_list_shows_only_drafts_whose_sources_the_reviewer_can_read(service: Service) -> None:
    hr = _draft(service, "carol", "What is the salary review budget?")
    everyone = _draft(service, "bob", "How many days of annual leave?")  # bob's sources are all public
    alice, bob = Browserless(service), Browserless(service)
    a, b = alice.sign_in("alice").text, bob.sign_in("bob").text
    assert hr in a and everyone in a
    assert hr not in b and everyone in b
    assert bob.request("GET", f"/review/{hr}").status_code == 403


def test_forms_need_the_csrf_token(service: Service) -> None:
    did = _draft(service, "carol", "How many days of annual leave?")
    b = Browserless(service)
    b.sign_in("alice")
    page = b.request("GET", f"/review/{did}")
    token = b.csrf(page.text)
    no_token = b.request("POST", f"/review/{did}/approve", data={"note": "x"})
    assert no_token.status_code == 403
    wrong = b.request("POST", f"/review/{did}/approve", data={"csrf_token": "guess", "note": "x"})
    assert wrong.status_code == 403
    cross = b.request("POST", f"/review/{did}/approve", data={"csrf_token": token},
                      headers={"Origin": "https://evil.example"})
    assert cross.status_code == 403
    assert service.grounder.reviews.list("acme", "approved") == []
    refusals = service.http_events(refused="csrf")
    assert len(refusals) == 3 and {e["actor"] for e in refusals} == {"oid-alice"}
    ok = b.request("POST", f"/review/{did}/approve", data={"csrf_token": token, "note": "fine"})
    assert ok.status_code == 303
    assert [i.id for i in service.grounder.reviews.list("acme", "approved")] == [did]
    # another session's token does not work either
    other = Browserless(service)
    other.sign_in("alice")
    did2 = _draft(service, "carol", "How many days of annual leave?")
    assert other.request("POST", f"/review/{did2}/reject", data={"csrf_token": token}).status_code == 403


def test_hostile_document_text_is_rendered_inert(service: Service) -> None:
    did = _draft(service, "bob", "Parking rules for visitors: where do visitors park?")
    item = service.grounder.reviews.get(did, service.grounder.make_user("x", "acme"))
    assert "<script>" in item.text or any("<script>" in c["snippet"] for c in item.draft["citations"])
    b = Browserless(service)
    b.sign_in("alice")
    page = b.request("GET", f"/review/{did}").text
    assert "&lt;script&gt;" in page
    assert "<script" not in page.lower()
    assert "<img" not in page.lower()  # the onerror= attribute stays text inside an escaped tag


def test_login_state_and_pkce_are_checked(service: Service) -> None:
    b = Browserless(service)
    service.issuer.login_as = service.issuer.claims("alice")
    r = b.request("GET", "/review/login")
    authorize = r.headers["location"]
    assert "code_challenge_method=S256" in authorize and "code_challenge=" in authorize
    back = b.http.get(authorize)  # the issuer redirects to the callback with code and state
    callback = back.headers["location"]
    forged_state = re.sub(r"state=[^&]+", "state=forged", callback)
    assert b.request("GET", forged_state).status_code == 400
    # a callback carried to another browser (no login cookie) is refused
    assert Browserless(service).request("GET", callback).status_code == 400
    assert service.http_events(refused="login_state")


def test_unmapped_tenant_cannot_sign_in(service: Service) -> None:
    b = Browserless(service)
    service.issuer.login_as = service.issuer.claims("alice", tid="11111111-1111-1111-1111-111111111111")
    page = b.follow("/review")
    assert page.status_code == 403 and "gw_review_session" not in b.cookies
    assert service.http_events(refused="tenant_not_mapped", route="/review/callback")
