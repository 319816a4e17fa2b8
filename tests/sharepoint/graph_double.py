"""A Microsoft Graph test double for the SharePoint connector: a real HTTP server on 127.0.0.1.

It follows the documented v1.0 response shapes the connector relies on:

- ``GET /sites/{hostname}:/{path}`` and ``GET /sites/{id}``: a ``site`` (403/404 injectable per site);
- ``GET /sites/{id}/drives``: document libraries, paged with ``@odata.nextLink``;
- ``GET /drives/{id}/root/delta``: driveItems in change order, ``$top`` pages with ``@odata.nextLink``,
  an ``@odata.deltaLink`` (``?token=``) on the last page; later calls with the token return only what
  changed since (latest state of each item, ``deleted`` facet for removals, ``name`` omitted on deletes as
  OneDrive for Business does). An item changed while an enumeration runs shows up again on a later page
  (the repeat the docs warn about). Permission-only changes do not appear in delta (the connector must
  not rely on them). :meth:`GraphDouble.invalidate_delta_tokens` makes old tokens answer ``410 Gone``
  with ``resyncChangesApplyDifferences`` and a ``Location`` that starts a fresh enumeration;
- ``GET /drives/{d}/items/{i}`` with ``@microsoft.graph.downloadUrl`` (pre-authenticated, no bearer
  token needed or accepted), ``/content`` answering 302 to it, and ``/permissions`` with ``grantedToV2``
  / ``grantedToIdentitiesV2`` sharePointIdentitySets and ``link`` facets; items without permissions of
  their own inherit their folder's;
- ``GET /sites/{id}/pages/microsoft.graph.sitePage`` and ``.../{page}/microsoft.graph.sitePage`` with
  ``$expand=canvasLayout`` (textWebPart ``innerHtml``);
- every Graph call needs ``Authorization: Bearer <token>`` (else 401);
- faults: with probability ``fault_rate`` any request answers 429 or 503, with ``Retry-After`` as
  seconds, as an HTTP date, or absent (503 only); ``item_faults`` makes one item's ``/permissions`` or
  content answer a fixed error status (Graph's error body) every time.

Permissions are built with the helpers at the bottom; each carries the principals a correct mapping must
produce (``expect``), computed here from what the test put in, independently of the connector's code.
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import hmac
import itertools
import json
import random
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

__all__ = [
    "TOKEN_ENV",
    "GraphDouble",
    "Perm",
    "anonymous_link",
    "group_perm",
    "org_link",
    "site_group_perm",
    "user_perm",
    "users_link",
]

#: the environment variable the connector under test reads its bearer token from
TOKEN_ENV = "GW_TEST_GRAPH_TOKEN"

_ids = itertools.count(1)


def _new_id(prefix: str) -> str:
    return f"{prefix}{next(_ids):06d}"


@dataclass
class Perm:
    """A Graph permission resource and the principals it must map to (``expect``)."""

    body: dict[str, Any]
    expect: frozenset[str]


@dataclass
class Item:
    id: str
    name: str
    parent: str | None
    folder: bool
    content: bytes = b""
    perms: list[Perm] | None = None  # None: inherit from the parent folder
    seq: int = 0
    etag: int = 1
    ctag: int = 1
    deleted: bool = False
    modified: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass
class Drive:
    id: str
    site_id: str
    name: str
    root: str
    items: dict[str, Item] = field(default_factory=dict)
    seq: int = 0
    generation: int = 0


@dataclass
class Page:
    id: str
    name: str
    title: str
    html: str
    etag: int = 1
    modified: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass
class Site:
    id: str
    hostname: str
    path: str
    name: str
    drives: list[str] = field(default_factory=list)
    pages: dict[str, Page] = field(default_factory=dict)
    status: int = 200  # 403 or 404 to make the site unreadable


class GraphDouble:
    """The double's state and its HTTP server. Use as a context manager or call :meth:`stop`."""

    def __init__(self, token: str = "test-token", page_size: int = 3, seed: int = 7) -> None:
        self.token = token
        self.page_size = page_size
        self.sites: dict[str, Site] = {}
        self.drives: dict[str, Drive] = {}
        self.lock = threading.RLock()
        self.fault_rate = 0.0
        self.faults = 0
        self.rng = random.Random(seed)
        self.log: list[tuple[str, int]] = []
        # per-item faults: (item id, "permissions" | "content") -> status answered every time, and extra
        # fields merged into an item's /permissions page (e.g. an ``@odata.nextLink`` to another host)
        self.item_faults: dict[tuple[str, str], int] = {}
        self.permission_page_extra: dict[str, dict[str, Any]] = {}
        self.secret = b"double-signing-key"
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.graph_url = f"{self.url}/v1.0"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), name="graph-double", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)

    def __enter__(self) -> GraphDouble:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- building and changing the source ---------------------------------------------------------------

    def add_site(self, path: str, name: str = "", hostname: str = "contoso.sharepoint.com") -> str:
        with self.lock:
            sid = f"{hostname},{_new_id('s-')},{_new_id('w-')}"
            self.sites[sid] = Site(sid, hostname, path, name or path.rsplit("/", 1)[-1])
            return sid

    def site_url(self, site_id: str) -> str:
        s = self.sites[site_id]
        return f"https://{s.hostname}{s.path}"

    def add_drive(self, site_id: str, name: str = "Documents", perms: list[Perm] | None = None) -> str:
        with self.lock:
            did = "b!" + _new_id("d")
            root = Item(_new_id("01ROOT"), "root", None, True, perms=perms or [])
            drive = Drive(did, site_id, name, root.id)
            self.drives[did] = drive
            self.sites[site_id].drives.append(did)
            self._touch(drive, root)
            return did

    def _touch(self, drive: Drive, item: Item) -> None:
        drive.seq += 1
        item.seq = drive.seq
        item.modified = datetime.now(UTC)
        drive.items[item.id] = item

    def add_folder(self, drive_id: str, name: str, parent: str | None = None, perms: list[Perm] | None = None) -> str:
        with self.lock:
            d = self.drives[drive_id]
            item = Item(_new_id("01F"), name, parent or d.root, True, perms=perms)
            self._touch(d, item)
            return item.id

    def add_file(
        self,
        drive_id: str,
        name: str,
        content: bytes | str,
        parent: str | None = None,
        perms: list[Perm] | None = None,
    ) -> str:
        with self.lock:
            d = self.drives[drive_id]
            data = content.encode() if isinstance(content, str) else content
            item = Item(_new_id("01I"), name, parent or d.root, False, data, perms)
            self._touch(d, item)
            return item.id

    def edit_file(self, drive_id: str, item_id: str, content: bytes | str) -> None:
        with self.lock:
            d = self.drives[drive_id]
            item = d.items[item_id]
            item.content = content.encode() if isinstance(content, str) else content
            item.etag += 1
            item.ctag += 1
            self._touch(d, item)

    def move(self, drive_id: str, item_id: str, parent: str | None = None, name: str | None = None) -> None:
        with self.lock:
            d = self.drives[drive_id]
            item = d.items[item_id]
            if parent is not None:
                item.parent = parent
            if name is not None:
                item.name = name
            item.etag += 1
            self._touch(d, item)

    def delete(self, drive_id: str, item_id: str) -> None:
        """Delete an item; a folder's descendants are reported deleted too."""
        with self.lock:
            d = self.drives[drive_id]
            for it in [d.items[item_id], *self._descendants(d, item_id)]:
                if not it.deleted:
                    it.deleted = True
                    self._touch(d, it)

    def set_permissions(self, drive_id: str, item_id: str, perms: list[Perm] | None) -> None:
        """A permission-only change: like SharePoint, it is not guaranteed to show in delta (here: never)."""
        with self.lock:
            self.drives[drive_id].items[item_id].perms = perms

    def invalidate_delta_tokens(self, drive_id: str) -> None:
        """Old delta/next links now answer 410 Gone (resyncChangesApplyDifferences)."""
        with self.lock:
            self.drives[drive_id].generation += 1

    def add_page(self, site_id: str, title: str, html: str) -> str:
        with self.lock:
            pid = _new_id("p-")
            self.sites[site_id].pages[pid] = Page(pid, title.replace(" ", "-") + ".aspx", title, html)
            return pid

    def edit_page(self, site_id: str, page_id: str, html: str) -> None:
        with self.lock:
            p = self.sites[site_id].pages[page_id]
            p.html, p.etag, p.modified = html, p.etag + 1, datetime.now(UTC)

    def delete_page(self, site_id: str, page_id: str) -> None:
        with self.lock:
            del self.sites[site_id].pages[page_id]

    # --- what the index should hold ---------------------------------------------------------------------

    def _descendants(self, d: Drive, item_id: str) -> list[Item]:
        out: list[Item] = []
        for it in d.items.values():
            if it.parent == item_id:
                out.append(it)
                if it.folder:
                    out.extend(self._descendants(d, it.id))
        return out

    def effective_perms(self, d: Drive, item: Item) -> list[Perm]:
        while item.perms is None and item.parent is not None:
            item = d.items[item.parent]
        return item.perms or []

    def live_files(self, site_ids: Iterable[str] | None = None) -> list[tuple[str, Item]]:
        """(drive id, item) of every file that exists now, in the given sites (default: all)."""
        with self.lock:
            wanted = set(site_ids) if site_ids is not None else set(self.sites)
            return [
                (d.id, it)
                for d in self.drives.values()
                if d.site_id in wanted
                for it in d.items.values()
                if not it.folder and not it.deleted
            ]

    def expected_allow(self, drive_id: str, item_id: str) -> frozenset[str]:
        with self.lock:
            d = self.drives[drive_id]
            return frozenset().union(*(p.expect for p in self.effective_perms(d, d.items[item_id])))

    # --- JSON shapes ------------------------------------------------------------------------------------

    def _path_of(self, d: Drive, item: Item) -> str:
        parts: list[str] = []
        while item.parent is not None:
            parts.append(item.name)
            item = d.items[item.parent]
        return "/".join(reversed(parts))

    def _sign(self, drive_id: str, item_id: str) -> str:
        return hmac.new(self.secret, f"{drive_id}/{item_id}".encode(), hashlib.sha256).hexdigest()[:24]

    def item_json(self, d: Drive, item: Item) -> dict[str, Any]:
        ref = {"driveId": d.id, "driveType": "documentLibrary"}
        if item.parent:
            ref["id"] = item.parent
        if item.deleted:
            return {"id": item.id, "deleted": {"state": "deleted"}, "parentReference": ref}
        site = self.sites[d.site_id]
        out: dict[str, Any] = {
            "id": item.id,
            "name": item.name,
            "eTag": f'"{{{item.id}}},{item.etag}"',
            "cTag": f'"c:{{{item.id}}},{item.ctag}"',
            "lastModifiedDateTime": item.modified.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "webUrl": f"https://{site.hostname}{site.path}/{quote(d.name)}/{quote(self._path_of(d, item))}",
            "parentReference": ref,
            "size": len(item.content),
        }
        if item.parent is None:
            out["root"] = {}
            out["name"] = "root"
        if item.folder:
            out["folder"] = {"childCount": sum(1 for c in d.items.values() if c.parent == item.id and not c.deleted)}
        else:
            out["file"] = {
                "mimeType": "application/octet-stream",
                "hashes": {"quickXorHash": base64.b64encode(hashlib.sha1(item.content).digest()).decode()},
            }
            out["@microsoft.graph.downloadUrl"] = (
                f"{self.url}/download/{quote(d.id)}/{item.id}?sig={self._sign(d.id, item.id)}&v={item.ctag}"
            )
        return out

    def site_json(self, s: Site) -> dict[str, Any]:
        return {
            "id": s.id,
            "name": s.name,
            "displayName": s.name,
            "webUrl": f"https://{s.hostname}{s.path}",
            "siteCollection": {"hostname": s.hostname},
        }

    def page_json(self, s: Site, p: Page, expand: bool) -> dict[str, Any]:
        out: dict[str, Any] = {
            "@odata.type": "#microsoft.graph.sitePage",
            "id": p.id,
            "name": p.name,
            "title": p.title,
            "eTag": f'"{{{p.id}}},{p.etag}"',
            "lastModifiedDateTime": p.modified.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "webUrl": f"https://{s.hostname}{s.path}/SitePages/{p.name}",
            "pageLayout": "article",
            "publishingState": {"level": "published", "versionId": f"{p.etag}.0"},
        }
        if expand:
            out["canvasLayout"] = {
                "horizontalSections": [
                    {
                        "id": "1",
                        "layout": "oneColumn",
                        "emphasis": "none",
                        "columns": [
                            {
                                "id": "1",
                                "width": 12,
                                "webparts": [
                                    {
                                        "@odata.type": "#microsoft.graph.textWebPart",
                                        "id": f"wp-{p.id}",
                                        "innerHtml": p.html,
                                    }
                                ],
                            }
                        ],
                    }
                ]
            }
        return out

    # --- delta ------------------------------------------------------------------------------------------

    def _token(self, d: Drive, base: int, cursor: int) -> str:
        raw = json.dumps({"g": d.generation, "b": base, "c": cursor}).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    def _delta_url(self, d: Drive, base: int, cursor: int, top: int) -> str:
        token = self._token(d, base, cursor)
        return f"{self.graph_url}/drives/{quote(d.id)}/root/delta?token={token}&$top={top}"

    def delta(self, d: Drive, token: str | None, top: int) -> tuple[int, dict[str, Any], dict[str, str]]:
        base = cursor = 0
        if token:
            try:
                t = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
            except ValueError:
                return 400, _err("invalidRequest", "bad token"), {}
            if t["g"] != d.generation:
                fresh = self._delta_url(d, 0, 0, top)
                body = _err(
                    "resyncRequired",
                    "Resync required. Replace any local items with the server's version (including deletes).",
                    inner="resyncChangesApplyDifferences",
                )
                return 410, body, {"Location": fresh}
            base, cursor = t["b"], t["c"]
        start = max(base, cursor)
        todo = sorted((it for it in d.items.values() if it.seq > start), key=lambda it: it.seq)
        if base == 0 and cursor == 0:
            todo = [it for it in todo if not it.deleted]  # a first enumeration lists what exists
        page = todo[:top]
        body: dict[str, Any] = {
            "@odata.context": f"{self.graph_url}/$metadata#Collection(driveItem)",
            "value": [self.item_json(d, it) for it in page],
        }
        if len(todo) > top:
            body["@odata.nextLink"] = self._delta_url(d, base, page[-1].seq, top)
        else:
            body["@odata.deltaLink"] = self._delta_url(d, d.seq, 0, top)
        return 200, body, {}

    # --- request handling -------------------------------------------------------------------------------

    def _fault(self) -> tuple[int, dict[str, Any], dict[str, str]] | None:
        if self.fault_rate <= 0 or self.rng.random() >= self.fault_rate:
            return None
        self.faults += 1
        status = self.rng.choice((429, 503))
        style = self.rng.choice(("seconds", "fraction", "date", "none"))
        headers: dict[str, str] = {}
        if style == "seconds":
            headers["Retry-After"] = "0"
        elif style == "fraction":
            headers["Retry-After"] = "0.01"
        elif style == "date":
            headers["Retry-After"] = email.utils.format_datetime(datetime.now(UTC) - timedelta(seconds=5), usegmt=True)
        elif status == 429:
            headers["Retry-After"] = "0"
        code = "TooManyRequests" if status == 429 else "serviceNotAvailable"
        return status, _err(code, "injected fault"), headers

    def handle(self, path: str, query: dict[str, str], auth: str) -> tuple[int, Any, dict[str, str]]:
        with self.lock:
            fault = self._fault()
            if fault:
                return fault
            if path.startswith("/download/"):
                return self._download(path)
            if not path.startswith("/v1.0/"):
                return 404, _err("itemNotFound", "no such path"), {}
            if auth != f"Bearer {self.token}":
                return 401, _err("InvalidAuthenticationToken", "Access token is empty or invalid."), {}
            return self._graph(path[len("/v1.0") :], query)

    def _download(self, path: str) -> tuple[int, Any, dict[str, str]]:
        parts = path.split("/")
        drive_id, item_id = unquote(parts[2]), parts[3].split("?")[0]
        d = self.drives.get(drive_id)
        item = d.items.get(item_id) if d else None
        if d is None or item is None or item.deleted:
            return 404, _err("itemNotFound", "gone"), {}
        if (item_id, "content") in self.item_faults:
            return self.item_faults[(item_id, "content")], _err("generalException", "injected item fault"), {}
        return 200, item.content, {"Content-Type": "application/octet-stream"}

    def _graph(self, path: str, q: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
        segs = [unquote(s) for s in path.strip("/").split("/")]
        if segs[0] == "sites" and len(segs) >= 2:
            return self._sites(segs, q)
        if segs[0] == "drives" and len(segs) >= 3:
            d = self.drives.get(segs[1])
            if d is None or self.sites[d.site_id].status != 200:
                return 404, _err("itemNotFound", "drive not found"), {}
            if segs[2:] == ["root", "delta"]:
                top = int(q.get("$top") or self.page_size)
                return self.delta(d, q.get("token"), min(top, self.page_size))
            if segs[2] == "items" and len(segs) >= 4:
                item = d.items.get(segs[3])
                if item is None or item.deleted:
                    return 404, _err("itemNotFound", "The resource could not be found."), {}
                rest = segs[4:]
                if not rest:
                    return 200, self.item_json(d, item), {}
                if rest == ["permissions"]:
                    if (item.id, "permissions") in self.item_faults:
                        status = self.item_faults[(item.id, "permissions")]
                        return status, _err("invalidRequest", "injected item fault"), {}
                    perms = self.effective_perms(d, item)
                    body = {"value": [dict(p.body, id=f"perm{i}") for i, p in enumerate(perms)]}
                    return 200, {**body, **self.permission_page_extra.get(item.id, {})}, {}
                if rest == ["content"]:
                    return 302, b"", {"Location": self.item_json(d, item)["@microsoft.graph.downloadUrl"]}
        return 404, _err("itemNotFound", "no such resource"), {}

    def _sites(self, segs: list[str], q: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
        key = segs[1]
        if ":" in key and len(segs) >= 2:  # /sites/{hostname}:/{server-relative path}
            host = key.split(":", 1)[0]
            path = "/" + "/".join(segs[2:]).rstrip(":")
            found = [s for s in self.sites.values() if s.hostname == host and s.path == path]
            if not found:
                return 404, _err("itemNotFound", "Requested site could not be found"), {}
            site = found[0]
            segs = ["sites", site.id]
        site = self.sites.get(segs[1])
        if site is None:
            return 404, _err("itemNotFound", "Requested site could not be found"), {}
        if site.status != 200:
            code = "accessDenied" if site.status == 403 else "itemNotFound"
            return site.status, _err(code, "site unavailable"), {}
        rest = segs[2:]
        if not rest:
            return 200, self.site_json(site), {}
        if rest == ["drives"]:
            return (
                200,
                self._paged(
                    q,
                    [
                        {
                            "id": d,
                            "name": self.drives[d].name,
                            "driveType": "documentLibrary",
                            "webUrl": f"{self.site_url(site.id)}/{quote(self.drives[d].name)}",
                        }
                        for d in site.drives
                    ],
                    f"/sites/{quote(site.id)}/drives",
                ),
                {},
            )
        if rest == ["pages", "microsoft.graph.sitePage"]:
            pages = [self.page_json(site, p, False) for p in site.pages.values()]
            return 200, self._paged(q, pages, f"/sites/{quote(site.id)}/pages/microsoft.graph.sitePage"), {}
        if len(rest) == 3 and rest[0] == "pages" and rest[2] == "microsoft.graph.sitePage":
            page = site.pages.get(rest[1])
            if page is None:
                return 404, _err("itemNotFound", "page not found"), {}
            return 200, self.page_json(site, page, q.get("$expand") == "canvasLayout"), {}
        return 404, _err("itemNotFound", "no such resource"), {}

    def _paged(self, q: dict[str, str], values: list[dict[str, Any]], path: str) -> dict[str, Any]:
        skip = int(q.get("$skiptoken") or 0)
        out: dict[str, Any] = {"value": values[skip : skip + self.page_size]}
        if skip + self.page_size < len(values):
            out["@odata.nextLink"] = f"{self.graph_url}{path}?$skiptoken={skip + self.page_size}"
        return out


def _err(code: str, message: str, inner: str = "") -> dict[str, Any]:
    e: dict[str, Any] = {"code": code, "message": message}
    if inner:
        e["innerError"] = {"code": inner}
    return {"error": e}


def _handler(double: GraphDouble) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            u = urlsplit(self.path)
            query = {k: v[-1] for k, v in parse_qs(u.query).items()}
            if u.path.startswith("/download/"):
                if query.get("sig") != double._sign(unquote(u.path.split("/")[2]), u.path.split("/")[3]):
                    status, body, headers = 401, _err("unauthenticated", "bad signature"), {}
                else:
                    status, body, headers = double.handle(u.path, query, "")
            else:
                status, body, headers = double.handle(u.path, query, self.headers.get("Authorization", ""))
            with double.lock:
                double.log.append((self.path, status))
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(status)
            if not isinstance(body, bytes):
                self.send_header("Content-Type", "application/json")
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet test output
            pass

    return Handler


# --- permission builders ----------------------------------------------------------------------------------


def user_perm(email_addr: str, object_id: str, roles: tuple[str, ...] = ("read",)) -> Perm:
    """A direct grant to a user (sharePointIdentitySet with user and siteUser)."""
    body = {
        "roles": list(roles),
        "grantedToV2": {
            "user": {"id": object_id, "displayName": email_addr.split("@")[0].title(), "email": email_addr},
            "siteUser": {
                "id": "7",
                "displayName": email_addr,
                "loginName": f"i:0#.f|membership|{email_addr}",
            },
        },
    }
    return Perm(body, frozenset({f"user:{email_addr.casefold()}", f"user:{object_id.casefold()}"}))


def group_perm(group_id: str, name: str = "Group") -> Perm:
    """A direct grant to an Entra group."""
    body = {"roles": ["read"], "grantedToV2": {"group": {"id": group_id, "displayName": name}}}
    return Perm(body, frozenset({f"group:{group_id.casefold()}"}))


def site_group_perm(group_id: str, name: str, expect: Iterable[str] = ()) -> Perm:
    """A grant to a SharePoint site group; maps to what the test configured for it in site_groups."""
    body = {
        "roles": ["read"],
        "grantedToV2": {"siteGroup": {"id": group_id, "displayName": name, "loginName": name}},
    }
    return Perm(body, frozenset(expect))


def org_link(tenant_wide: bool = True) -> Perm:
    """An organization sharing link (everyone in the tenant, if the connector is configured so)."""
    body = {
        "roles": ["read"],
        "link": {
            "scope": "organization",
            "type": "view",
            "webUrl": "https://contoso.sharepoint.com/:w:/s/x/org",
        },
    }
    return Perm(body, frozenset({"everyone"}) if tenant_wide else frozenset())


def anonymous_link(counted: bool = False) -> Perm:
    body = {
        "roles": ["read"],
        "link": {
            "scope": "anonymous",
            "type": "view",
            "webUrl": "https://contoso.sharepoint.com/:w:/s/x/anon",
        },
    }
    return Perm(body, frozenset({"everyone"}) if counted else frozenset())


def users_link(*users: tuple[str, str]) -> Perm:
    """A specific-people link: grantedToIdentitiesV2 lists the (email, object id) users."""
    ids = [
        {
            "user": {"id": oid, "displayName": e, "email": e},
            "siteUser": {"id": str(i), "displayName": e, "loginName": f"i:0#.f|membership|{e}"},
        }
        for i, (e, oid) in enumerate(users, 20)
    ]
    body = {
        "roles": ["read"],
        "grantedToIdentitiesV2": ids,
        "link": {"scope": "users", "type": "view", "webUrl": "https://contoso.sharepoint.com/:w:/s/x/ppl"},
    }
    expect = {f"user:{e.casefold()}" for e, _ in users} | {f"user:{o.casefold()}" for _, o in users}
    return Perm(body, frozenset(expect))
