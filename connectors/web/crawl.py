"""One sync of the web connector: admit URLs, fetch them level by level, turn pages into changes.

Order and determinism: the crawl is breadth-first. Level 0 is the start URLs, then the sitemap URLs;
each further level is the links of the level before, in the order they were found. Pages of a level
are fetched concurrently but applied in level order, so de-duplication, the page limit and therefore
the document ids do not depend on which response arrives first.

Documents: a page's id and citation URI are the URL that answered (after redirects). A page whose
``<link rel=canonical>`` names another allowed URL is not indexed itself: the canonical URL is crawled
instead. A page with the same content as one already delivered is a duplicate. A document's version is
its content hash and ACL fingerprint, so an unchanged page is :class:`Unchanged` even without validators.

Incremental sync: the state keeps, per URL that answered, the validators (ETag, Last-Modified), the
content hash, the document id and the page's links; and the redirects and sitemap URLs last seen. A URL
is asked conditionally only while its document is in the index at the version that state describes
(and the settings are unchanged), so a 304 can safely become :class:`Unchanged`; its stored links keep
the crawl going. A document that was not reached, is gone (404/410), now refused, ``noindex``, a
canonical alias or a duplicate is deleted at the end. A transient failure (network, timeout, 5xx)
keeps the indexed version, and the stored links, redirect and sitemap URLs stand in for what could
not be read; an origin whose robots.txt is unreadable keeps all its pages. An outage never empties
the index, except of what was indexed under another ACL than the configured one (the audience was
narrowed meanwhile): that is withdrawn, never kept readable by whom the settings no longer name.
"""

from __future__ import annotations

import dataclasses
import mimetypes
import threading
from collections import deque
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urljoin, urlsplit

from groundwire import Checkpoint, Delete, Document, Section, Skipped, Unchanged, Upsert
from groundwire.connector import Change
from groundwire.extract import ExtractionError, UnsupportedFormat, extract

from .fetch import Fetcher, FetchError, Refused, Response
from .page import decode, parse_html, robots_directives, trafilatura_module
from .robots import SITEMAP_MAX_BYTES, RobotsCache, parse_sitemap, same_origin_hop
from .urls import normalize_url, origin_of

if TYPE_CHECKING:
    from . import WebConnector, WebSettings

__all__ = ["STATE_FORMAT", "Crawl"]

STATE_FORMAT = 1
MAX_SITEMAPS = 50
HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
SUPPORTED_TYPES = HTML_TYPES | {"text/plain", "application/pdf"}
TRANSIENT_STATUS = frozenset({408, 425, 429})


@dataclass(slots=True)
class _Visit:
    """What fetching one admitted URL produced (built in a worker thread, applied in the crawl's)."""

    url: str
    final: str  # the URL that answered, after redirects
    kind: str = "skip"  # page | unchanged | nodoc (noindex, alias) | transient | redirect | skip
    reason: str = ""
    doc: Document | None = None
    entry: dict[str, Any] | None = None  # the state entry for ``final``
    links: list[str] = field(default_factory=list)


def _title_from_url(url: str) -> str:
    parts = urlsplit(url)
    name = unquote(PurePosixPath(parts.path).name)
    return PurePosixPath(name).stem.replace("-", " ").replace("_", " ") or parts.hostname or url


class Crawl:
    """The state of one sync; :meth:`run` yields its changes. Not reusable."""

    def __init__(self, connector: WebConnector, state: Mapping[str, Any]) -> None:
        self.c = connector
        s: WebSettings = connector.settings  # type: ignore[assignment]
        self.s = s
        self.indexed = connector.context.indexed
        self.scope = connector.scope
        last: Mapping[str, Any] = state if state.get("format") == STATE_FORMAT else {}
        self.old: dict[str, dict[str, Any]] = dict(last.get("pages") or {})
        self.old_redirects: dict[str, str] = dict(last.get("redirects") or {})
        self.old_sitemaps: dict[str, dict[str, Any]] = dict(last.get("sitemaps") or {})
        self.conditional = state.get("fingerprint") == connector.fingerprint
        self.agent_token = s.user_agent.split("/")[0].strip().casefold()
        self.use_trafilatura = s.extractor != "html" and trafilatura_module() is not None
        self.fetcher = Fetcher(
            user_agent=s.user_agent,
            policy=connector.address_policy,
            timeout=s.timeout_seconds,
            max_bytes=int(s.max_page_mb * 1024 * 1024),
            max_redirects=s.max_redirects,
            interval=1.0 / s.requests_per_second,
            per_host=s.per_host_concurrency,
            connections=s.concurrency * 2,
        )
        self.robots = RobotsCache(self.fetcher, s.user_agent, s.max_crawl_delay)
        self.pool = ThreadPoolExecutor(s.concurrency, thread_name_prefix=f"gw-web-{connector.name}")
        self.claimed: set[str] = set()  # URLs admitted or reached by a redirect: requested at most once
        self.reported: set[str] = set()  # refused URLs already reported
        self.pages: dict[str, dict[str, Any]] = {}  # the new state: URL -> entry
        self.redirects: dict[str, str] = {}  # the new state: redirecting URL -> the URL that answered
        self.sitemaps: dict[str, dict[str, Any]] = {}  # the new state: sitemap URL -> its URLs
        self.kept: set[str] = set()  # doc ids delivered (upserted or unchanged) or kept this sync
        self.by_hash: dict[str, str] = {}  # content hash -> doc id, for de-duplication
        self._lock = threading.Lock()

    def version(self, content_hash: str) -> str:
        return f"{content_hash}:{self.c.acl.fingerprint()}"

    # --- the crawl thread --------------------------------------------------------------------------

    def run(self) -> Iterator[Change]:
        try:
            level: list[str] = []
            for url in self.s.start_urls:
                yield from self._admit(url, level)
            if self.s.sitemaps:
                yield from self._sitemaps(level)
            budget = self.s.max_pages
            for depth in range(self.s.max_depth + 1):
                if not level:
                    break
                if len(level) > budget:
                    left = len(level) - budget
                    yield Skipped(f"{left} more URLs", f"not crawled: max_pages={self.s.max_pages}")
                    level = level[:budget]
                budget -= len(level)
                futures = [self.pool.submit(self._visit, url) for url in level]
                level = []
                for fut in futures:
                    visit = fut.result()
                    yield from self._apply(visit)
                    if depth < self.s.max_depth:
                        for link in visit.links:
                            yield from self._admit(link, level)
            yield from self._deletes()
            yield Checkpoint(
                {
                    "format": STATE_FORMAT,
                    "fingerprint": self.c.fingerprint,
                    "last_sync": datetime.now(UTC).isoformat(),
                    "pages": self.pages,
                    "redirects": self.redirects,
                    "sitemaps": self.sitemaps,
                }
            )
        finally:
            self.close()

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.fetcher.close()

    def _keepable(self, entry: Mapping[str, Any]) -> bool:
        """Whether the indexed document of ``entry`` may stand in for a page that cannot be read now: only
        if it was indexed under the current ACL. A page indexed for an audience the settings no longer
        name is withdrawn instead (fail closed), until it can be read again."""
        doc_id = entry.get("id")
        return doc_id in self.indexed and self.indexed[doc_id] == self.version(str(entry.get("hash", "")))

    def _deletes(self) -> Iterator[Change]:
        for url, entry in self.old.items():  # robots.txt unreadable: keep what the origin had
            doc_id = entry.get("id")
            if doc_id in self.indexed and doc_id not in self.kept and self.robots.was_unavailable(doc_id):
                self.pages.setdefault(url, entry)
                if self._keepable(entry):
                    self.kept.add(doc_id)
                else:
                    yield Skipped(str(doc_id), _WITHDRAWN)
        for gone in sorted(set(self.indexed) - self.kept):
            yield Delete(gone)

    def _keep_old(self, v: _Visit) -> None:
        """A transient failure: keep the last good entry of what ``v`` reached, and follow its links."""
        for url in (v.final, self.old_redirects.get(v.final)):
            old = self.old.get(url) if url else None
            if url and old is not None:
                self.pages[url] = old
                if url != v.url:
                    self.redirects[v.url] = url
                v.links = list(old.get("links", []))
                if self._keepable(old):
                    self.kept.add(old["id"])
                    v.reason += "; the indexed version is kept"
                elif old.get("id") in self.indexed:
                    v.reason += "; " + _WITHDRAWN
                return

    def _refuse(self, url: str, reason: str) -> Iterator[Change]:
        if url not in self.reported:
            self.reported.add(url)
            self.c.log.info("refused %s: %s", url, reason)
            yield Skipped(url, f"refused: {reason}")

    def _admit(self, raw: str, level: list[str]) -> Iterator[Change]:
        """Queue ``raw`` on ``level`` if it is in scope, allowed by robots.txt and new; else report it."""
        url = normalize_url(raw, self.s.drop_query_params)
        if url is None:
            return  # mailto:, javascript:, credentials in the URL...: not a page to crawl
        with self._lock:
            if url in self.claimed:
                return
        reason = self.scope.refusal(url) or self.robots.disallowed(url)
        if reason:
            yield from self._refuse(url, reason)
            return
        with self._lock:
            if url in self.claimed:
                return
            self.claimed.add(url)
        level.append(url)

    def _sitemaps(self, level: list[str]) -> Iterator[Change]:
        todo: deque[str] = deque()
        for origin in sorted(self.scope.origins):
            rules = self.robots.rules(origin + "/")
            if not rules.unavailable and not rules.denied:
                todo.extend(rules.sitemaps or [origin + "/sitemap.xml"])
        done: set[str] = set()
        while todo and len(done) < MAX_SITEMAPS:
            url = normalize_url(todo.popleft())
            if url is None or url in done or not self.scope.origin_allowed(url):
                continue
            if self.robots.disallowed(url):
                continue
            done.add(url)
            try:
                hop = same_origin_hop(origin_of(url))
                resp = self.fetcher.get(url, next_hop=hop, max_bytes=SITEMAP_MAX_BYTES)
                if resp.status in (404, 410):
                    continue
                if not 200 <= resp.status < 300:
                    transient = resp.status in TRANSIENT_STATUS or resp.status >= 500
                    raise FetchError(f"HTTP {resp.status}", transient)
                pages, nested = parse_sitemap(resp.body)
            except (FetchError, ValueError) as exc:
                reason = exc.reason if isinstance(exc, FetchError) else str(exc)
                old = self.old_sitemaps.get(url) if isinstance(exc, FetchError) and exc.transient else None
                if old is None:
                    yield Skipped(url, f"sitemap not read: {reason}")
                    continue
                yield Skipped(url, f"sitemap not read: {reason}; its last known URLs are used")
                pages, nested = list(old.get("pages", [])), list(old.get("sitemaps", []))
            self.sitemaps[url] = {"pages": pages[: self.s.max_pages], "sitemaps": nested}
            todo.extend(nested)
            for page in pages:
                yield from self._admit(page, level)

    def _apply(self, v: _Visit) -> Iterator[Change]:
        if v.final != v.url and v.kind in ("page", "unchanged", "nodoc"):
            self.redirects[v.url] = v.final
        if v.kind == "page":
            assert v.doc is not None and v.entry is not None
            doc = v.doc
            dup = doc.id if doc.id in self.kept else self.by_hash.get(v.entry["hash"])
            self.pages[v.final] = v.entry
            if dup:
                v.entry["id"] = dup
                yield Skipped(v.url, f"duplicate of {dup}")
                return
            self.kept.add(doc.id)
            self.by_hash[v.entry["hash"]] = doc.id
            yield Unchanged(doc.id) if self.indexed.get(doc.id) == doc.version else Upsert(doc)
        elif v.kind == "unchanged":
            assert v.entry is not None
            self.pages[v.final] = v.entry
            doc_id = v.entry.get("id")
            if doc_id is None:  # noindex or a canonical alias, unchanged: still nothing to index
                yield Skipped(v.url, str(v.entry.get("reason", "not indexed")))
                return
            if doc_id in self.kept:
                yield Skipped(v.url, f"duplicate of {doc_id}")
                return
            self.kept.add(doc_id)
            self.by_hash[v.entry["hash"]] = doc_id
            yield Unchanged(doc_id)
        elif v.kind == "nodoc":
            assert v.entry is not None
            self.pages[v.final] = v.entry
            yield Skipped(v.url, v.reason)
        elif v.kind == "transient":
            self._keep_old(v)
            yield Skipped(v.url, v.reason)
        elif v.kind != "redirect":
            yield Skipped(v.url, v.reason)

    # --- worker threads ----------------------------------------------------------------------------

    def _visit(self, url: str) -> _Visit:
        v = _Visit(url, url)
        unavailable = self.robots.unavailable(url)
        if unavailable:
            v.kind, v.reason = "transient", unavailable
            return v

        def next_hop(current: str, location: str) -> str:
            target = normalize_url(urljoin(current, location), self.s.drop_query_params)
            if target is None:
                raise Refused(f"redirects to {location}, which is not crawlable")
            reason = self.scope.refusal(target) or self.robots.disallowed(target)
            if reason:
                self.c.log.info("refused redirect %s -> %s: %s", current, target, reason)
                raise Refused(f"redirects to {target}: {reason}")
            v.final = target
            unavailable = self.robots.unavailable(target)
            if unavailable:
                raise FetchError(unavailable, transient=True)
            with self._lock:
                if target in self.claimed:
                    raise _Claimed(target)
                self.claimed.add(target)
            return target

        try:
            resp = self.fetcher.get(url, next_hop=next_hop, headers_for=self._validators, accept=self._accept)
        except _Claimed:
            v.kind = "redirect"  # the target is crawled on its own
            return v
        except FetchError as exc:
            v.kind = "transient" if exc.transient else "skip"
            v.reason = f"refused: {exc.reason}" if isinstance(exc, Refused) else exc.reason
            return v
        v.final = resp.url
        status = resp.status
        if status == 304:
            entry = self.old.get(resp.url)
            if entry is None or not self._validators(resp.url):
                v.reason = "HTTP 304 to an unconditional request"
                return v
            v.kind, v.entry, v.links = "unchanged", entry, list(entry.get("links", []))
        elif 200 <= status < 300:
            try:
                self._read(v, resp)
            except Exception as exc:  # noqa: BLE001 - one unparsable page must not stop the crawl
                v.kind, v.reason = "skip", f"could not be parsed: {type(exc).__name__}: {exc}"
                self.c.log.warning("%s could not be parsed", resp.url, exc_info=True)
        elif status in TRANSIENT_STATUS or status >= 500:
            v.kind, v.reason = "transient", f"HTTP {status}"
        else:
            v.reason = f"gone (HTTP {status})" if status in (404, 410) else f"HTTP {status}"
        return v

    def _validators(self, url: str) -> dict[str, str]:
        entry = self.old.get(url)
        if not self.conditional or not isinstance(entry, dict):
            return {}
        doc_id = entry.get("id")
        if doc_id is not None and self.indexed.get(doc_id) != self.version(str(entry.get("hash", ""))):
            return {}  # the index does not hold what the validators describe: fetch in full
        headers = {}
        if entry.get("etag"):
            headers["If-None-Match"] = str(entry["etag"])
        if entry.get("modified"):
            headers["If-Modified-Since"] = str(entry["modified"])
        return headers

    @staticmethod
    def _media_type(resp: Response) -> str:
        return resp.media_type or (mimetypes.guess_type(urlsplit(resp.url).path)[0] or "")

    def _accept(self, resp: Response) -> str | None:
        media = self._media_type(resp)
        return None if media in SUPPORTED_TYPES else f"unsupported content type {media or '(none)'}"

    def _read(self, v: _Visit, resp: Response) -> None:
        """Turn a 2xx response into a document (or a reason not to index it) and its links."""
        media = self._media_type(resp)
        ctype = resp.headers.get("content-type", "")
        x_robots = ", ".join(resp.headers.get_list("x-robots-tag"))
        noindex, nofollow = robots_directives(x_robots, self.agent_token)
        title, canonical = _title_from_url(resp.url), None
        sections: list[Section] = []
        links: list[str] = []
        if media in HTML_TYPES:
            page = parse_html(
                decode(resp.body, ctype, html=True), resp.url,
                agent_token=self.agent_token, use_trafilatura=self.use_trafilatura, fallback_title=title,
            )
            title, sections, links, canonical = page.title, page.sections, page.links, page.canonical
            noindex, nofollow = noindex or page.noindex, nofollow or page.nofollow
        elif media == "text/plain":
            text = decode(resp.body, ctype, html=False).strip()
            sections = [Section(text=text)] if text else []
        else:
            try:
                title, sections = extract(PurePosixPath(urlsplit(resp.url).path).name, resp.body, media)
            except (UnsupportedFormat, ExtractionError) as exc:
                v.reason = str(exc)
                return
        canonical = self._canonical_elsewhere(canonical, resp.url)
        normal = (normalize_url(link, self.s.drop_query_params) for link in ([] if nofollow else links))
        v.links = list(dict.fromkeys([u for u in normal if u] + ([canonical] if canonical else [])))
        doc = Document(
            id=resp.url, title=title, uri=resp.url, acl=self.c.acl, sections=tuple(sections),
            modified=_http_date(resp.headers.get("last-modified")), metadata={"content_type": media},
        )
        # content only (not the URL): two URLs serving the same page are duplicates
        content_hash = dataclasses.replace(doc, uri="").content_hash()[:32]
        v.entry = {
            "id": resp.url,
            "hash": content_hash,
            "etag": resp.headers.get("etag"),
            "modified": resp.headers.get("last-modified"),
            "links": v.links,
        }
        if noindex or canonical:
            v.kind = "nodoc"
            v.reason = "not indexed: " + (f"its canonical URL is {canonical}" if canonical else "noindex")
            v.entry.update(id=None, reason=v.reason)
        elif not doc.text.strip():
            v.reason = "no text to index"
        else:
            v.kind, v.doc = "page", dataclasses.replace(doc, version=self.version(content_hash))


    def _canonical_elsewhere(self, raw: str | None, url: str) -> str | None:
        """The page's canonical URL if it is another URL that may be crawled; else the page is canonical."""
        canonical = normalize_url(raw, self.s.drop_query_params) if raw else None
        if canonical is None or canonical == url or self.scope.refusal(canonical):
            return None
        return None if self.robots.disallowed(canonical) else canonical


_WITHDRAWN = ("the indexed version is withdrawn: it was indexed for another audience than the one configured "
              "now, and the page cannot be read again this sync (it returns once it can)")


class _Claimed(Exception):
    """A redirect reached a URL that this sync requests anyway."""


def _http_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
