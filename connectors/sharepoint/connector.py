"""The SharePoint connector: configured sites -> document libraries -> items (delta) and site pages.

Document ids are stable: ``<drive id>/<item id>`` for files (a move or rename keeps the id) and
``page:<site id>/<page id>`` for site pages. ``version`` is ``<eTag>|<ACL fingerprint>``.

Sync, per configured site (only those; nothing is discovered):

1. Resolve the site (URL -> ``/sites/{host}:/{path}``, or id -> ``/sites/{id}``) and list its libraries
   (``/sites/{id}/drives``). A 403/404 skips that site with a warning (:class:`Skipped`); its documents
   stay as they are until the site is readable again.
2. Per library, ``/drives/{id}/root/delta`` from the saved ``@odata.deltaLink`` (or from the saved
   ``@odata.nextLink`` of an interrupted enumeration), following ``@odata.nextLink``. After every page a
   :class:`Checkpoint` saves the library's next/delta link, so a killed sync resumes at that page.
   Repeats inside a page keep the last occurrence; across pages, later changes simply win. Items with the
   ``deleted`` facet are deleted. A 410 (``resyncChangesApplyDifferences`` and friends) restarts the
   enumeration from the ``Location`` header as a *full* enumeration: the documents indexed when it began
   are kept in the state as *pending* until the enumeration returns them (so a kill during it is safe),
   and those it never returned are deleted at its end: nothing is lost or duplicated. A first sync, or
   one after ``sync --full``, is a full enumeration too (with nothing pending on a first sync).
3. Permissions: delta does not reliably report permission-only changes, so with
   ``recheck_permissions = "every_sync"`` (the default) every indexed file that delta did not return is
   re-checked with one ``/permissions`` call per sync. The content is downloaded again only when the
   ACL changed (the framework then updates the ACL in place without re-embedding); a file whose ACL
   became empty, or that is gone (404), is deleted. A file whose permissions or content cannot be read
   (an item-level error: any 4xx but 401/429, a 500, a body that is not JSON, a URL the client refuses)
   is skipped and withdrawn from the index (fail closed: its old ACL never outlives what Graph says),
   kept in the drive's state as ``retry`` and read again next sync; the rest of the sync goes on, so one
   broken item never holds back the others' revocations. Service-level errors (401, 429, 502-504 after
   retries) stop the sync, which resumes at its last checkpoint. ``"changed_only"`` reads permissions only for files
   delta returns (cheaper; revocations then wait until the file changes).
4. Site pages (``include_pages``): ``/sites/{id}/pages/microsoft.graph.sitePage`` is listed each sync
   and changed pages are fetched with ``$expand=canvasLayout``. Graph v1.0 exposes no per-page
   permissions, so pages are readable by the principals in ``pages_allow`` for the site (or ``"*"``);
   a site without an entry has its pages skipped (fail closed: they would be visible to nobody).
5. Documents of sites or libraries no longer configured or no longer existing are deleted.
6. The state records a digest of the settings that map permissions to principals (``mapping``). When it
   changed, every indexed file is re-checked whatever ``recheck_permissions`` says, and the documents of
   sites, libraries and page lists that cannot be read this sync are withdrawn instead of kept (their
   ACLs were mapped under the old settings); their libraries are then enumerated in full when readable.

Files are skipped (never silently) when their type has no extractor, when they exceed ``max_file_mb``,
when extraction fails, or when their permissions grant nobody Groundwire can represent.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
from groundwire import (
    AccessControl,
    Checkpoint,
    Connector,
    ConnectorContext,
    ConnectorError,
    Delete,
    Document,
    Skipped,
    Unchanged,
    Upsert,
)
from groundwire.connector import Change
from groundwire.extract import EXTRACTORS, ExtractionError, UnsupportedFormat, extract

from .auth import TokenProvider, make_token_provider
from .graph import FileTooLarge, GraphClient, GraphError, UrlRefused
from .pages import canvas_sections
from .permissions import acl_from_permissions
from .settings import SharePointSettings

__all__ = ["SharePointConnector", "file_doc_id", "page_doc_id"]

STATE_VERSION = 1
PAGE_PREFIX = "page:"
_MAX_RESYNCS = 3
_RECHECK_CHECKPOINT_EVERY = 100


def file_doc_id(drive_id: str, item_id: str) -> str:
    return f"{drive_id}/{item_id}"


def page_doc_id(site_id: str, page_id: str) -> str:
    return f"{PAGE_PREFIX}{site_id}/{page_id}"


def _q(segment: str) -> str:
    return quote(segment, safe=",.!-_~")


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


_REMAPPED = ("the permission-mapping settings changed since its documents were indexed and they cannot be "
             "re-read now: withdrawn (fail closed) until they can")


def _mapping_fingerprint(s: SharePointSettings) -> str:
    """Digest of the settings that turn Graph permissions into principals."""
    what = [s.organization_links_grant_everyone, s.anonymous_links_grant_everyone, s.site_groups, s.pages_allow]
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:16]


def _why(exc: GraphError | UrlRefused) -> str:
    if isinstance(exc, GraphError):
        own = exc.code.endswith("ContentEncoding")  # our own message (the coding refused), not Graph's text
        return f"HTTP {exc.status}" + (f" {exc.code}" if exc.code else "") + (f": {exc.message}" if own else "")
    return str(exc)


def _load_state(state: Mapping[str, Any]) -> dict[str, Any]:
    if state.get("version") != STATE_VERSION:
        return {"version": STATE_VERSION, "sites": {}, "drives": {}}
    st = copy.deepcopy(dict(state))
    st.setdefault("sites", {})
    st.setdefault("drives", {})
    return st


class SharePointConnector(Connector):
    """Microsoft 365 SharePoint Online through Microsoft Graph (app-only)."""

    type = "sharepoint"
    Settings = SharePointSettings

    def __init__(
        self,
        name: str,
        tenant: str,
        settings: SharePointSettings,
        context: ConnectorContext,
        *,
        token_provider: TokenProvider | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        """``token_provider``, ``transport`` and ``sleep`` are seams for tests and embedding apps; the
        framework passes none of them (the token then comes from msal or ``access_token_env``)."""
        super().__init__(name, tenant, settings, context)
        self.s = settings
        self._token_provider = token_provider
        self._transport = transport
        self._sleep = sleep
        self._graph: GraphClient | None = None

    @property
    def graph(self) -> GraphClient:
        if self._graph is None:
            tokens = self._token_provider or make_token_provider(self.s, self.name, self.context.config_dir)
            self._graph = GraphClient(self.s, tokens, self.name, transport=self._transport, sleep=self._sleep)
        return self._graph

    def close(self) -> None:
        if self._graph is not None:
            self._graph.close()
            self._graph = None

    # --- the sync -------------------------------------------------------------------------------------

    def changes(self, state: Mapping[str, Any]) -> Iterator[Change]:
        try:
            yield from self._changes(_load_state(state))
        except GraphError as exc:
            raise ConnectorError(self.name, f"{exc}; the sync stopped and resumes from its last checkpoint") from exc

    def _changes(self, st: dict[str, Any]) -> Iterator[Change]:
        self._indexed = dict(self.context.indexed)  # updated as changes are yielded
        self._acl_read: set[str] = set()  # files whose permissions were asked for this sync
        self._unreadable: set[str] = set()  # ... and could not be read (or their content): asked again next sync
        # the settings that map permissions to principals: when they change, no document may keep an ACL
        # computed under the old ones (see _withdrawn)
        self._mapping = _mapping_fingerprint(self.s)
        self._remapped = st.get("mapping") != self._mapping and bool(self._indexed)
        live_sites: set[str] = set()
        live_drives: set[str] = set()
        kept_sites: set[str] = set()  # unreadable this time: their documents are left alone
        for ref in self.s.sites:
            try:
                site = self.graph.get_json(self._site_path(ref))
                site_id = str(site["id"])
            except GraphError as exc:
                if exc.status not in (403, 404):
                    raise
                yield self._site_skipped(ref, exc)
                if ref in st["sites"]:
                    kept_sites.add(st["sites"][ref])
                continue
            st["sites"][ref] = site_id
            live_sites.add(site_id)
            try:
                drives = self.graph.get_all(f"/sites/{_q(site_id)}/drives")
            except GraphError as exc:
                if exc.status not in (403, 404):
                    raise
                yield self._site_skipped(ref, exc)
                kept_sites.add(site_id)
                continue
            for drive in drives:
                drive_id = str(drive["id"])
                live_drives.add(drive_id)
                yield from self._drive(site_id, drive_id, st)
            if self.s.include_pages:
                yield from self._pages(ref, site_id, st)
            else:
                for doc_id in sorted(k for k in self._indexed if k.startswith(page_doc_id(site_id, ""))):
                    yield self._delete(doc_id)
        if self._remapped:  # an unreadable site cannot be re-mapped: withdraw its documents (fail closed)
            for site_id in sorted(kept_sites):
                yield Skipped(f"site {site_id}", _REMAPPED)
            kept_sites.clear()
        # sites and libraries that are no longer configured or no longer exist
        for doc_id in sorted(self._indexed):
            if doc_id.startswith(PAGE_PREFIX):
                site_id = doc_id[len(PAGE_PREFIX) :].rsplit("/", 1)[0]
                gone = site_id not in live_sites and site_id not in kept_sites
            else:
                drive_id = doc_id.split("/", 1)[0]
                owner = st["drives"].get(drive_id, {}).get("site")
                gone = drive_id not in live_drives and owner not in kept_sites
            if gone:
                yield self._delete(doc_id)
        st["drives"] = {d: v for d, v in st["drives"].items() if d in live_drives or v.get("site") in kept_sites}
        st["sites"] = {ref: sid for ref, sid in st["sites"].items() if ref in self.s.sites}
        st["mapping"] = self._mapping  # only now: every document left was mapped under these settings
        yield Checkpoint(copy.deepcopy(st))

    @staticmethod
    def _site_path(ref: str) -> str:
        if "://" in ref:
            u = urlsplit(ref)
            path = u.path.rstrip("/")
            return f"/sites/{u.hostname}:{quote(path)}" if path else f"/sites/{u.hostname}"
        return f"/sites/{_q(ref)}"

    def _site_skipped(self, ref: str, exc: GraphError) -> Skipped:
        why = "access denied" if exc.status == 403 else "not found"
        self.log.warning("%s: site %s skipped (%s, HTTP %s)", self.name, ref, why, exc.status)
        return Skipped(
            f"site {ref}",
            f"{why} (HTTP {exc.status}): skipped this sync, its documents are kept; "
            "check the URL and the app's access to the site (Sites.Selected grant)",
        )

    def _delete(self, doc_id: str) -> Delete:
        self._indexed.pop(doc_id, None)
        return Delete(doc_id)

    def _gone(self, doc_id: str) -> Iterator[Change]:
        if doc_id in self._indexed:
            yield self._delete(doc_id)

    # --- libraries ------------------------------------------------------------------------------------

    def _delta_start(self, drive_id: str) -> str:
        top = f"?$top={self.s.delta_page_size}" if self.s.delta_page_size else ""
        return f"/drives/{_q(drive_id)}/root/delta{top}"

    def _drive(self, site_id: str, drive_id: str, st: dict[str, Any]) -> Iterator[Change]:
        d = st["drives"].setdefault(drive_id, {})
        d["site"] = site_id
        if d.get("next"):
            url, full = d["next"], bool(d.get("full"))
        elif d.get("delta"):
            url, full = d["delta"], False
        else:
            url, full = self._delta_start(drive_id), True
        if full and not d.get("next"):  # a full enumeration starts: everything indexed is pending
            d["pending"] = self._indexed_in(drive_id)
        pending: set[str] | None = set(d.get("pending", [])) if full else None
        touched: set[str] = set()
        resyncs = 0
        while url:
            try:
                page = self.graph.get_json(url)
            except GraphError as exc:
                if exc.status == 410:
                    if resyncs >= _MAX_RESYNCS:
                        raise ConnectorError(
                            self.name, f"library {drive_id} asked for a resync {resyncs} times in a row"
                        ) from exc
                    resyncs += 1
                    self.log.warning(
                        "%s: library %s needs a resync (%s); enumerating it again",
                        self.name,
                        drive_id,
                        exc.code or "410 Gone",
                    )
                    url, full, pending = (
                        exc.location or self._delta_start(drive_id),
                        True,
                        set(self._indexed_in(drive_id)),
                    )
                    continue
                if exc.status in (403, 404):
                    self.log.warning("%s: library %s skipped (HTTP %s)", self.name, drive_id, exc.status)
                    if self._remapped:
                        yield Skipped(f"library {drive_id}", f"HTTP {exc.status} reading its changes; {_REMAPPED}")
                        for doc_id in self._indexed_in(drive_id):
                            yield self._delete(doc_id)
                        d.clear()  # enumerated in full once readable, so the withdrawn files come back
                        d["site"] = site_id
                        return
                    yield Skipped(f"library {drive_id}", f"HTTP {exc.status} reading its changes; kept as is")
                    return
                raise
            items: dict[str, dict[str, Any]] = {}
            for item in page.get("value", []):
                if isinstance(item, dict) and item.get("id"):
                    items.pop(str(item["id"]), None)  # a repeat moves to its last position
                    items[str(item["id"])] = item
            for item in items.values():
                yield from self._item(site_id, drive_id, item, pending=pending, touched=touched)
            next_link, delta_link = page.get("@odata.nextLink"), page.get("@odata.deltaLink")
            if next_link:
                d.update(next=next_link, full=full, pending=sorted(pending or ()))
            else:
                for doc_id in sorted(pending or ()):  # indexed, but not returned by a full enumeration
                    yield from self._gone(doc_id)
                d.update(next=None, delta=delta_link, full=False, pending=[])
            self._note_retry(d, drive_id)
            yield Checkpoint(copy.deepcopy(st))
            url = next_link
        # files whose permissions were unreadable last time are read again, whatever the recheck mode
        todo = set(d.get("retry", ())) - touched
        if self.s.recheck_permissions == "every_sync" or self._remapped:  # remapped: every ACL is recomputed
            todo |= set(self._indexed_in(drive_id)) - touched
        yield from self._recheck(site_id, drive_id, sorted(todo), st)

    def _note_retry(self, d: dict[str, Any], drive_id: str) -> None:
        """Keep in the drive's state the files to read again next sync (see :meth:`_acl`)."""
        mine = {k for k in self._unreadable if k.startswith(f"{drive_id}/")}
        d["retry"] = sorted((set(d.get("retry", ())) - self._acl_read) | mine)

    def _indexed_in(self, drive_id: str) -> list[str]:
        prefix = f"{drive_id}/"
        return sorted(k for k in self._indexed if k.startswith(prefix))

    def _recheck(self, site_id: str, drive_id: str, todo: list[str], st: dict[str, Any]) -> Iterator[Change]:
        """Re-read the permissions of ``todo``: indexed files delta did not return (see the module
        docstring) and files whose permissions were unreadable last sync."""
        d = st["drives"][drive_id]
        for n, doc_id in enumerate(todo, 1):
            item_id = doc_id.split("/", 1)[1]
            acl = yield from self._acl(site_id, drive_id, item_id, doc_id)
            if acl is not None:
                old = self._indexed.get(doc_id, "")
                if f"{old.rsplit('|', 1)[0]}|{acl.fingerprint()}" == old:
                    yield Unchanged(doc_id)
                else:
                    try:
                        item = self.graph.get_json(f"/drives/{_q(drive_id)}/items/{_q(item_id)}")
                    except GraphError as exc:
                        if not exc.item_level:
                            raise
                        if exc.status != 404:
                            yield Skipped(doc_id, f"item unreadable ({_why(exc)}): its indexed version is "
                                          "withdrawn (fail closed)")
                        yield from self._gone(doc_id)
                    else:
                        yield from self._item(site_id, drive_id, item, acl=acl)
            if n % _RECHECK_CHECKPOINT_EVERY == 0:
                self._note_retry(d, drive_id)
                yield Checkpoint(copy.deepcopy(st))
        if todo:
            self._note_retry(d, drive_id)
            yield Checkpoint(copy.deepcopy(st))

    def _acl(self, site_id: str, drive_id: str, item_id: str, doc_id: str) -> Iterator[Change]:
        """Generator returning the item's ACL, or None after yielding why it is not indexed."""
        self._acl_read.add(doc_id)
        self._unreadable.discard(doc_id)
        try:
            perms = self.graph.get_all(f"/drives/{_q(drive_id)}/items/{_q(item_id)}/permissions")
        except (GraphError, UrlRefused) as exc:
            if isinstance(exc, GraphError) and not exc.item_level:
                raise  # throttling, an outage, credentials: stop; the next sync resumes at the checkpoint
            if not isinstance(exc, GraphError) or exc.status != 404:
                self._unreadable.add(doc_id)
                yield Skipped(doc_id, f"permissions unreadable ({_why(exc)}): not indexed, and any indexed "
                              "version withdrawn (fail closed); the next sync reads them again")
            yield from self._gone(doc_id)
            return None
        acl = acl_from_permissions(perms, self.s, site_id)
        if not acl.allow:
            yield Skipped(
                doc_id,
                "its permissions grant no user, group or tenant-wide principal Groundwire "
                "can represent: visible to nobody, so not indexed",
            )
            yield from self._gone(doc_id)
            return None
        return acl

    # --- one item -------------------------------------------------------------------------------------

    def _item(
        self,
        site_id: str,
        drive_id: str,
        item: Mapping[str, Any],
        *,
        pending: set[str] | None = None,
        touched: set[str] | None = None,
        acl: AccessControl | None = None,
    ) -> Iterator[Change]:
        item_id = str(item["id"])
        doc_id = file_doc_id(drive_id, item_id)
        if touched is not None:
            touched.add(doc_id)
        if pending is not None:
            pending.discard(doc_id)  # returned by the enumeration: handled here, whatever happens to it
        if item.get("deleted") is not None:
            yield from self._gone(doc_id)
            return
        if "file" not in item or "root" in item or "folder" in item or "package" in item:
            return  # folders, the root, OneNote packages: nothing to index
        name = str(item.get("name") or "")
        label = str(item.get("webUrl") or doc_id)
        ext = PurePosixPath(name).suffix.casefold()
        if ext not in EXTRACTORS:
            yield Skipped(label, f"unsupported file type {ext or '(none)'!r}")
            yield from self._gone(doc_id)
            return
        limit = int(self.s.max_file_mb * 1024 * 1024)
        size = item.get("size")
        if isinstance(size, int) and size > limit:
            yield Skipped(label, f"{size} bytes, larger than max_file_mb={self.s.max_file_mb}")
            yield from self._gone(doc_id)
            return
        if acl is None:
            acl = yield from self._acl(site_id, drive_id, item_id, doc_id)
            if acl is None:
                return
        tag = str(item.get("eTag") or item.get("cTag") or item.get("lastModifiedDateTime") or "")
        version = f"{tag}|{acl.fingerprint()}"
        if self._indexed.get(doc_id) == version:
            yield Unchanged(doc_id)
            return
        content_path = f"/drives/{_q(drive_id)}/items/{_q(item_id)}/content"
        source = item.get("@microsoft.graph.downloadUrl") or content_path
        try:
            data = self.graph.download(str(source), limit)
            mime = (item.get("file") or {}).get("mimeType")
            title, sections = extract(name, data, mime if isinstance(mime, str) else None)
        except FileTooLarge:
            reason = f"larger than max_file_mb={self.s.max_file_mb}"
        except (UnsupportedFormat, ExtractionError) as exc:
            reason = str(exc)
        except (GraphError, UrlRefused) as exc:
            if isinstance(exc, GraphError) and not exc.item_level:
                raise
            if not isinstance(exc, GraphError) or exc.status != 404:
                self._unreadable.add(doc_id)  # read again next sync
            reason = f"content unreadable ({_why(exc)})"
        else:
            self._indexed[doc_id] = version
            yield Upsert(
                Document(
                    id=doc_id,
                    title=title or PurePosixPath(name).stem,
                    uri=str(item.get("webUrl") or ""),
                    acl=acl,
                    sections=tuple(sections),
                    modified=_parse_time(item.get("lastModifiedDateTime")),
                    version=version,
                    metadata={"site": site_id, "drive": drive_id, "name": name},
                )
            )
            return
        yield Skipped(label, reason)
        yield from self._gone(doc_id)

    # --- site pages -----------------------------------------------------------------------------------

    def _pages(self, ref: str, site_id: str, st: dict[str, Any]) -> Iterator[Change]:
        prefix = page_doc_id(site_id, "")
        indexed = {k for k in self._indexed if k.startswith(prefix)}
        # the most specific entry decides, even an empty one (= nobody): "[]" never falls back to "*"
        key = next((k for k in (ref, site_id, "*") if k in self.s.pages_allow), None)
        allow = self.s.pages_allow[key] if key is not None else []
        if not allow:
            yield Skipped(
                f"pages of {ref}",
                (f"pages_allow[{key!r}] names nobody" if key is not None else "no pages_allow entry for this site")
                + ": its pages would be visible to nobody, so they are not indexed",
            )
            for doc_id in sorted(indexed):
                yield self._delete(doc_id)
            return
        acl = AccessControl.of(allow)
        base = f"/sites/{_q(site_id)}/pages"
        try:
            listed = self.graph.get_all(f"{base}/microsoft.graph.sitePage")
        except GraphError as exc:
            if exc.status not in (403, 404):
                raise
            if self._remapped:
                yield Skipped(f"pages of {ref}", f"HTTP {exc.status} listing site pages; {_REMAPPED}")
                for doc_id in sorted(indexed):
                    yield self._delete(doc_id)
                return
            yield Skipped(f"pages of {ref}", f"HTTP {exc.status} listing site pages; kept as they are")
            return
        present: set[str] = set()
        for page in listed:
            doc_id = page_doc_id(site_id, str(page["id"]))
            present.add(doc_id)
            tag = str(page.get("eTag") or page.get("lastModifiedDateTime") or "")
            version = f"{tag}|{acl.fingerprint()}"
            if self._indexed.get(doc_id) == version:
                yield Unchanged(doc_id)
                continue
            try:
                page_path = f"{base}/{_q(str(page['id']))}/microsoft.graph.sitePage"
                full = self.graph.get_json(f"{page_path}?$expand=canvasLayout")
            except GraphError as exc:
                if not exc.item_level:
                    raise
                present.discard(doc_id)
                if exc.status != 404:
                    yield Skipped(doc_id, f"page unreadable ({_why(exc)}): not indexed (fail closed)")
                continue
            sections = canvas_sections(full)
            if not sections:
                present.discard(doc_id)
                yield Skipped(str(full.get("webUrl") or doc_id), "page has no text")
                continue
            self._indexed[doc_id] = version
            yield Upsert(
                Document(
                    id=doc_id,
                    title=str(full.get("title") or full.get("name") or "page"),
                    uri=str(full.get("webUrl") or ""),
                    acl=acl,
                    sections=tuple(sections),
                    modified=_parse_time(full.get("lastModifiedDateTime")),
                    version=version,
                    metadata={"site": site_id, "kind": "page"},
                )
            )
        for doc_id in sorted(indexed - present):
            yield self._delete(doc_id)
        yield Checkpoint(copy.deepcopy(st))
