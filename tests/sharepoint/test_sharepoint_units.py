"""Unit tests of the SharePoint connector's parts: throttling, URL policy, permission mapping, auth,
settings, Office extraction and page text. No network: httpx.MockTransport or the Graph double."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import types
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from groundwire import ConnectorContext, ConnectorError, Delete, Upsert
from groundwire.connectors.sharepoint import (
    GraphClient,
    GraphError,
    MsalTokenProvider,
    SharePointConnector,
    SharePointSettings,
    StaticTokenProvider,
    acl_from_permissions,
    file_doc_id,
    parse_retry_after,
)
from groundwire.connectors.sharepoint.graph import FileTooLarge
from groundwire.connectors.sharepoint.pages import canvas_sections
from groundwire.extract import ExtractionError, extract
from groundwire.testing import run_changes
from pydantic import ValidationError

from .graph_double import TOKEN_ENV, GraphDouble, group_perm
from .helpers import docx_bytes, pptx_bytes, xlsx_bytes

GRAPH = "https://graph.microsoft.com/v1.0"


def settings(**kw: Any) -> SharePointSettings:
    base: dict[str, Any] = {
        "sites": ["https://contoso.sharepoint.com/sites/hr"],
        "access_token_env": TOKEN_ENV,
        "backoff_base": 1.0,
        "backoff_max": 4.0,
        "max_retries": 4,
    }
    return SharePointSettings(**{**base, **kw})


class Recorder:
    def __init__(self) -> None:
        self.sleeps: list[float] = []
        self.invalidated = 0

    def sleep(self, s: float) -> None:
        self.sleeps.append(s)

    def token(self) -> str:
        return f"tok{self.invalidated}"

    def invalidate(self) -> None:
        self.invalidated += 1


def client(handler: Any, rec: Recorder, **kw: Any) -> GraphClient:
    return GraphClient(
        settings(**kw), rec, "sp", sleep=rec.sleep, rng=lambda: 1.0, transport=httpx.MockTransport(handler)
    )


# --- throttling and retries ---------------------------------------------------------------------------


def test_retry_after_seconds_and_http_date() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("0.25") == 0.25
    assert parse_retry_after(format_datetime(now + timedelta(seconds=30), usegmt=True), now) == 30.0
    assert parse_retry_after(format_datetime(now - timedelta(seconds=30), usegmt=True), now) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_429_and_503_honour_retry_after_capped() -> None:
    replies = iter(
        [
            httpx.Response(429, headers={"Retry-After": "3"}),
            httpx.Response(503, headers={"Retry-After": "1000"}),
            httpx.Response(200, json={"ok": True}),
        ]
    )
    rec = Recorder()
    c = client(lambda req: next(replies), rec, max_retry_after=5)
    assert c.get_json("/sites/x") == {"ok": True}
    assert rec.sleeps == [3.0, 5.0]


def test_backoff_is_exponential_capped_and_jittered_then_gives_up() -> None:
    rec = Recorder()
    c = client(lambda req: httpx.Response(503), rec)
    with pytest.raises(GraphError) as err:
        c.get_json("/sites/x")
    assert err.value.status == 503
    assert rec.sleeps == [1.0, 2.0, 4.0, 4.0]  # rng()=1.0: the cap of the full-jitter window
    jittered = GraphClient(
        settings(),
        rec,
        "sp",
        rng=lambda: 0.5,
        sleep=lambda s: None,
        transport=httpx.MockTransport(lambda r: httpx.Response(503)),
    )
    assert jittered._backoff(3) == 2.0


def test_transport_errors_are_retried() -> None:
    calls = {"n": 0}

    def handler(req: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if calls["n"] < 3:
            raise httpx.ConnectError("refused")
        return httpx.Response(200, json={"value": []})

    rec = Recorder()
    assert client(handler, rec).get_all("/sites/x/drives") == []
    assert len(rec.sleeps) == 2


def test_401_renews_the_token_once() -> None:
    seen: list[str] = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(req.headers["Authorization"])
        return httpx.Response(401 if len(seen) == 1 else 200, json={"id": "s"})

    rec = Recorder()
    assert client(handler, rec).get_json("/sites/s") == {"id": "s"}
    assert seen == ["Bearer tok0", "Bearer tok1"] and rec.invalidated == 1


# --- URL policy -------------------------------------------------------------------------------------------


def test_https_only_except_allowed_loopback() -> None:
    with pytest.raises(ConnectorError, match="only https"):
        GraphClient(settings(graph_url="http://graph.example.com/v1.0"), Recorder(), "sp")
    with pytest.raises(ConnectorError, match="only https"):
        GraphClient(settings(graph_url="http://127.0.0.1:1/v1.0"), Recorder(), "sp")
    GraphClient(settings(graph_url="http://127.0.0.1:1/v1.0", allow_http_hosts=["127.0.0.1"]), Recorder(), "sp")
    with pytest.raises(ValidationError, match="not a loopback host"):
        settings(allow_http_hosts=["10.0.0.5"])


def test_token_goes_only_to_graph() -> None:
    auth: dict[str, str | None] = {}

    def handler(req: httpx.Request) -> httpx.Response:
        auth[req.url.host] = req.headers.get("Authorization")
        if req.url.host == "graph.microsoft.com":
            return httpx.Response(302, headers={"Location": "https://files.example.net/blob?sig=1"})
        return httpx.Response(200, content=b"data")

    c = client(handler, Recorder())
    assert c.download(f"{GRAPH}/drives/d/items/i/content", limit=100) == b"data"
    assert auth["graph.microsoft.com"] == "Bearer tok0"
    assert auth["files.example.net"] is None
    with pytest.raises(ConnectorError, match="refusing to send the Graph token"):
        c.get_json("https://evil.example.com/v1.0/drives/d/root/delta?token=x")


def test_download_size_limit() -> None:
    c = client(lambda req: httpx.Response(200, content=b"x" * 500), Recorder())
    with pytest.raises(FileTooLarge):
        c.download("https://files.example.net/blob", limit=100)


# --- permissions --------------------------------------------------------------------------------------------


def perm(**kw: Any) -> dict[str, Any]:
    return {"id": "1", "roles": ["read"], **kw}


def test_identity_sets_map_to_principals() -> None:
    s = settings(site_groups={"Team Members": ["group:team"], "site1/9": ["group:nine"]})
    perms = [
        perm(
            grantedToV2={
                "user": {"id": "OID-1", "email": "Ann@Contoso.com"},
                "siteUser": {"loginName": "i:0#.f|membership|ann@contoso.com"},
            }
        ),
        perm(grantedToV2={"group": {"id": "G-1", "displayName": "Sales"}}),
        perm(grantedToV2={"siteUser": {"loginName": "c:0o.c|federateddirectoryclaimprovider|m365-group_o"}}),
        perm(grantedToV2={"siteUser": {"loginName": "c:0t.c|tenant|sec-group"}}),
        perm(grantedToV2={"siteGroup": {"id": "4", "displayName": "Team Members"}}),
        perm(grantedToV2={"siteGroup": {"id": "9", "displayName": "Other"}}),
        perm(grantedToV2={"siteGroup": {"id": "5", "displayName": "Unmapped"}}),
        perm(grantedToV2={"application": {"id": "app", "displayName": "Some app"}}),
        perm(grantedTo={"user": {"id": "legacy-oid"}}),
    ]
    acl = acl_from_permissions(perms, s, "site1")
    assert acl.allow == {
        "user:ann@contoso.com",
        "user:oid-1",
        "group:g-1",
        "group:sec-group",
        "group:team",
        "group:nine",
        "user:legacy-oid",
    }


def test_sharing_links_by_scope() -> None:
    org = perm(link={"scope": "organization", "type": "view"})
    anon = perm(link={"scope": "anonymous", "type": "view"})
    existing = perm(link={"scope": "existingAccess", "type": "view"}, grantedToIdentitiesV2=[{"user": {"id": "x"}}])
    people = perm(
        link={"scope": "users", "type": "edit"},
        grantedToIdentitiesV2=[{"user": {"id": "u1", "email": "a@c.com"}}, {"group": {"id": "g2"}}],
    )
    assert acl_from_permissions([org, anon, existing], settings()).allow == frozenset()
    assert acl_from_permissions([org], settings(organization_links_grant_everyone=True)).allow == {"everyone"}
    assert acl_from_permissions([anon], settings(anonymous_links_grant_everyone=True)).allow == {"everyone"}
    assert acl_from_permissions([anon], settings(organization_links_grant_everyone=True)).allow == frozenset()
    assert acl_from_permissions([people], settings()).allow == {"user:u1", "user:a@c.com", "group:g2"}
    everyone_claim = perm(grantedToV2={"siteUser": {"loginName": "c:0-.f|rolemanager|spo-grid-all-users/t1"}})
    assert acl_from_permissions([everyone_claim], settings()).allow == {"everyone"}


def test_expired_permissions_grant_nobody() -> None:
    past = (datetime.now(UTC) - timedelta(days=1)).isoformat().replace("+00:00", "Z")
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat().replace("+00:00", "Z")
    g = {"group": {"id": "g"}}
    assert acl_from_permissions([perm(grantedToV2=g, expirationDateTime=past)], settings()).allow == frozenset()
    assert acl_from_permissions([perm(grantedToV2=g, expirationDateTime=future)], settings()).allow == {"group:g"}
    never = "0001-01-01T00:00:00Z"
    assert acl_from_permissions([perm(grantedToV2=g, expirationDateTime=never)], settings()).allow == {"group:g"}


# --- authentication and settings ---------------------------------------------------------------------------


class FakeCache:
    class CredentialType:
        ACCESS_TOKEN = "AccessToken"

    def __init__(self) -> None:
        self.tokens = ["cached"]

    def search(self, kind: str) -> list[str]:
        return list(self.tokens)

    def remove_at(self, at: str) -> None:
        self.tokens.remove(at)


class FakeApp:
    made: list[dict[str, Any]] = []
    result: dict[str, Any] = {"access_token": "AT", "expires_in": 3600}

    def __init__(self, client_id: str, authority: str, client_credential: Any) -> None:
        self.token_cache = FakeCache()
        FakeApp.made.append({"client_id": client_id, "authority": authority, "credential": client_credential})

    def acquire_token_for_client(self, scopes: list[str]) -> dict[str, Any]:
        assert scopes == ["https://graph.microsoft.com/.default"]
        return FakeApp.result


@pytest.fixture
def fake_msal(monkeypatch: pytest.MonkeyPatch) -> type[FakeApp]:
    FakeApp.made = []
    FakeApp.result = {"access_token": "AT"}
    monkeypatch.setitem(sys.modules, "msal", types.SimpleNamespace(ConfidentialClientApplication=FakeApp))
    return FakeApp


def test_msal_client_secret(fake_msal: type[FakeApp], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SP_SECRET", "s3cret")
    s = SharePointSettings(
        sites=["x"], tenant_id="contoso.onmicrosoft.com", client_id="app-id", client_secret_env="SP_SECRET"
    )
    p = MsalTokenProvider(s, "sp")
    assert p.token() == "AT"
    assert fake_msal.made == [
        {
            "client_id": "app-id",
            "credential": "s3cret",
            "authority": "https://login.microsoftonline.com/contoso.onmicrosoft.com",
        }
    ]
    p.invalidate()
    assert p.app.token_cache.tokens == []
    fake_msal.result = {
        "error": "invalid_client",
        "error_description": "AADSTS7000215: Invalid client secret.",
    }
    with pytest.raises(ConnectorError, match="invalid_client"):
        p.token()


def test_msal_certificate(fake_msal: type[FakeApp], tmp_path: Path) -> None:
    pem = tmp_path / "app.pem"
    pem.write_text(
        "-----BEGIN PRIVATE KEY-----\nx\n-----END PRIVATE KEY-----\n"
        "-----BEGIN CERTIFICATE-----\ny\n-----END CERTIFICATE-----\n"
    )
    s = SharePointSettings(
        sites=["x"], tenant_id="t", client_id="c", certificate_path="app.pem", certificate_thumbprint="AB12"
    )
    MsalTokenProvider(s, "sp", config_dir=tmp_path)
    cred = fake_msal.made[0]["credential"]
    assert cred["thumbprint"] == "AB12" and "BEGIN PRIVATE KEY" in cred["private_key"]
    assert "public_certificate" in cred
    pfx = SharePointSettings(sites=["x"], tenant_id="t", client_id="c", certificate_path=str(tmp_path / "a.pfx"))
    MsalTokenProvider(pfx, "sp")
    assert fake_msal.made[1]["credential"] == {"private_key_pfx_path": str(tmp_path / "a.pfx")}


def test_settings_need_exactly_one_way_to_authenticate() -> None:
    with pytest.raises(ValidationError, match="tenant_id and client_id"):
        SharePointSettings(sites=["x"])
    with pytest.raises(ValidationError, match="exactly one"):
        SharePointSettings(sites=["x"], tenant_id="t", client_id="c")
    with pytest.raises(ValidationError, match="thumbprint"):
        SharePointSettings(sites=["x"], tenant_id="t", client_id="c", certificate_path="a.pem")
    with pytest.raises(ValidationError, match="at least 1"):
        SharePointSettings(sites=[], access_token_env="X")
    with pytest.raises(ValueError, match="invalid principal"):
        SharePointSettings(sites=["x"], access_token_env="X", pages_allow={"*": ["members"]})


def test_unknown_setting_is_a_config_error(graph: GraphDouble, tmp_path: Path) -> None:
    from .helpers import make_grounder

    g = make_grounder(tmp_path, graph, ["x"], site_url="typo")
    [rep] = g.sync()
    assert "connectors.sp.site_url: unknown key" in rep.error


def test_static_token_and_missing_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("NO_SUCH_TOKEN", raising=False)
    s = settings(access_token_env="NO_SUCH_TOKEN")
    ctx = ConnectorContext(indexed={}, data_dir=tmp_path, config_dir=tmp_path)
    with pytest.raises(ConnectorError, match="NO_SUCH_TOKEN"):
        run_changes(SharePointConnector("sp", "acme", s, ctx))
    assert StaticTokenProvider("abc").token() == "abc"


def test_plugin_imports_without_msal() -> None:
    code = (
        "import sys; sys.modules['msal'] = None\n"
        "from groundwire import make_plugin_manager\n"
        "from groundwire.pluginmanager import collect_registry\n"
        "pm = make_plugin_manager(load_entrypoints=False)\n"
        "print(sorted(collect_registry(pm, 'register_connectors', lambda c: c.type)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "sharepoint" in out.stdout


# --- delta details over the double --------------------------------------------------------------------------


def connector(
    graph: GraphDouble, site: str, tmp_path: Path, indexed: dict[str, str] | None = None, **kw: Any
) -> SharePointConnector:
    kw = {"include_pages": False, **kw}
    s = SharePointSettings(
        sites=[graph.site_url(site)],
        graph_url=graph.graph_url,
        allow_http_hosts=["127.0.0.1"],
        access_token_env=TOKEN_ENV,
        backoff_base=0.001,
        **kw,
    )
    ctx = ConnectorContext(indexed=indexed or {}, data_dir=tmp_path, config_dir=tmp_path, logger=logging.getLogger("t"))
    return SharePointConnector("sp", "acme", s, ctx)


def test_items_repeated_across_delta_pages_keep_the_last(graph: GraphDouble, tmp_path: Path) -> None:
    site = graph.add_site("/sites/r")
    drive = graph.add_drive(site, perms=[group_perm("g")])
    ids = [graph.add_file(drive, f"f{i}.txt", f"first version {i}") for i in range(6)]
    conn = connector(graph, site, tmp_path)
    seen: list[Any] = []
    try:
        for ch in conn.changes({}):  # change the source while the enumeration runs
            seen.append(ch)
            if type(ch).__name__ == "Checkpoint" and len(seen) < 5:
                graph.edit_file(drive, ids[0], "second version 0")
                graph.delete(drive, ids[1])
    finally:
        conn.close()
    last: dict[str, Any] = {}
    for ch in seen:
        if isinstance(ch, (Upsert, Delete)):
            last[ch.document.id if isinstance(ch, Upsert) else ch.doc_id] = ch
    assert last[file_doc_id(drive, ids[0])].document.text == "second version 0"
    assert isinstance(last[file_doc_id(drive, ids[1])], Delete)


def test_repeats_inside_one_page_keep_the_last(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TOKEN_ENV, "t")
    item = {
        "id": "i1",
        "name": "a.txt",
        "file": {},
        "eTag": "1",
        "@microsoft.graph.downloadUrl": f"{GRAPH}/dl",
    }
    pages = {
        "/v1.0/sites/contoso.sharepoint.com:/sites/hr": {"id": "s1"},
        "/v1.0/sites/s1/drives": {"value": [{"id": "d1"}]},
        "/v1.0/drives/d1/root/delta": {"value": [item, {"id": "i1", "deleted": {}}], "@odata.deltaLink": "x"},
    }
    calls: list[str] = []

    def handler(req: httpx.Request) -> httpx.Response:
        calls.append(req.url.path)
        return httpx.Response(200, json=pages[req.url.path])

    s = settings(include_pages=False)
    ctx = ConnectorContext(indexed={"d1/i1": "old"}, data_dir=tmp_path, config_dir=tmp_path)
    out = run_changes(SharePointConnector("sp", "acme", s, ctx, transport=httpx.MockTransport(handler)))
    assert out.deletes == ["d1/i1"] and not out.upserts
    assert "/v1.0/drives/d1/items/i1/permissions" not in calls  # the earlier occurrence was never fetched


def test_libraries_and_pages_are_paged(graph: GraphDouble, tmp_path: Path) -> None:
    site = graph.add_site("/sites/many")
    drives = [graph.add_drive(site, f"Lib{i}", perms=[group_perm("g")]) for i in range(5)]
    for d in drives:
        graph.add_file(d, "a.txt", f"text in {d}")
    for i in range(5):
        graph.add_page(site, f"Page {i}", f"<p>Page number {i}.</p>")
    c = connector(graph, site, tmp_path, **{"include_pages": True, "pages_allow": {"*": ["group:g"]}})
    out = run_changes(c)
    assert len([d for d in out.upserts if d.startswith("page:")]) == 5
    assert len([d for d in out.upserts if not d.startswith("page:")]) == 5
    assert json.dumps(out.state)


# --- extraction -------------------------------------------------------------------------------------------


def test_office_extraction() -> None:
    title, secs = extract("h.docx", docx_bytes("Handbook", "Onboarding", "Welcome aboard."))
    assert title == "Handbook"
    assert secs[0].location == "Onboarding" and "Welcome aboard." in secs[0].text and "Policy team" in secs[0].text
    title, secs = extract("d.pptx", pptx_bytes([("Intro", "Hello"), ("Plan", "Ship it")]))
    assert title == "Intro" and [s.location for s in secs] == ["slide 1: Intro", "slide 2: Plan"]
    assert secs[1].anchor == "#slide=2" and "Ship it" in secs[1].text
    title, secs = extract("b.xlsx", xlsx_bytes({"Q1": [["a", 1]], "Q2": [["b", 2.5]]}))
    assert title == "b" and [s.location for s in secs] == ["sheet Q1", "sheet Q2"] and secs[1].text == "b | 2.5"


def test_office_extraction_without_the_extra_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import groundwire.extract as ex

    real = ex.importlib.import_module

    def fake(name: str, *a: Any) -> Any:
        if name in ("docx", "pptx", "openpyxl"):
            raise ImportError(name)
        return real(name, *a)

    monkeypatch.setattr(ex.importlib, "import_module", fake)
    for name in ("a.docx", "a.pptx", "a.xlsx"):
        with pytest.raises(ExtractionError, match=r"pip install 'groundwire\[sharepoint\]'"):
            extract(name, b"PK")


def test_broken_office_file_is_an_extraction_error() -> None:
    with pytest.raises(ExtractionError):
        extract("x.docx", b"not a zip")


def test_canvas_text() -> None:
    page = {
        "title": "Home",
        "canvasLayout": {
            "horizontalSections": [
                {
                    "columns": [
                        {
                            "webparts": [
                                {
                                    "@odata.type": "#microsoft.graph.textWebPart",
                                    "innerHtml": "<h2>News</h2><p>Big news.</p>",
                                },
                                {
                                    "@odata.type": "#microsoft.graph.standardWebPart",
                                    "data": {
                                        "title": "Hero",
                                        "serverProcessedContent": {
                                            "searchablePlainTexts": [{"key": "t", "value": "Hero text"}]
                                        },
                                    },
                                },
                            ]
                        }
                    ]
                }
            ],
            "verticalSection": {"webparts": [{"innerHtml": "<p>Side note.</p>"}]},
        },
    }
    secs = canvas_sections(page)
    assert [(s.location, s.text) for s in secs] == [
        ("News", "Big news."),
        ("Hero", "Hero text"),
        ("", "Side note."),
    ]
    assert canvas_sections({"title": "x"}) == []
