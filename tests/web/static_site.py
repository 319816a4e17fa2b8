"""A real static web site on 127.0.0.1 for the web connector's tests, with a request log.

``StaticSite`` serves files from a folder over HTTP/1.1 with strong ETags (content hashes) and
Last-Modified, answers conditional GETs with 304 (If-None-Match first, as RFC 9110 says), and can be
told to redirect, answer a status, stall, stream an endless page or drip one slowly. Every request is
logged with its status, whether it was conditional, the user agent and how many body bytes went out.
"""

from __future__ import annotations

import hashlib
import mimetypes
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import formatdate, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from ..files import make_pdf


@dataclass
class Hit:
    method: str
    path: str  # path and query as requested
    conditional: bool
    user_agent: str
    start: float
    status: int = 0  # 0 until the status line is sent (a stalled request)
    body_bytes: int = 0
    aborted: bool = False  # the client hung up before the body was complete


class StaticSite:
    def __init__(self, root: Path, host: str = "127.0.0.1") -> None:
        self.root = root
        self.host = host
        self.types: dict[str, str] = {}  # path -> Content-Type
        self.redirects: dict[str, tuple[int, str]] = {}  # path -> (status, Location)
        self.status: dict[str, int] = {}  # path -> forced status, empty body
        self.stall: dict[str, float] = {}  # path -> seconds to wait before answering
        self.delay: dict[str, float] = {}  # path -> seconds to wait before answering (short, for pacing)
        self.endless: set[str] = set()  # paths streaming HTML without Content-Length, 64 KiB at a time
        self.drip: dict[str, tuple[int, float]] = {}  # path -> (chunks of 100 bytes, seconds between)
        self.no_etag: set[str] = set()  # paths answered without an ETag (Last-Modified only)
        self.keep_alive = True  # False: every response closes its connection
        self.hits: list[Hit] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.port = 0

    @property
    def base(self) -> str:
        return f"http://{self.host}:{self.port}"

    def url(self, path: str) -> str:
        return self.base + path

    def write(self, path: str, content: str | bytes, encoding: str = "utf-8") -> None:
        f = self.root / path.lstrip("/")
        f.parent.mkdir(parents=True, exist_ok=True)
        data = content.encode(encoding) if isinstance(content, str) else content
        f.write_bytes(data)
        st = f.stat()  # a new second for Last-Modified, so validators change even without ETags
        os.utime(f, ns=(st.st_atime_ns, max(st.st_mtime_ns, time.time_ns()) + 1_000_000_000))

    def remove(self, path: str) -> None:
        (self.root / path.lstrip("/")).unlink()

    def mark(self) -> int:
        with self.lock:
            return len(self.hits)

    def since(self, mark: int) -> list[Hit]:
        with self.lock:
            return list(self.hits[mark:])

    def paths(self, mark: int = 0) -> list[str]:
        return [h.path for h in self.since(mark)]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
        pass

    def send_response(self, code: int, message: str | None = None) -> None:
        hit = getattr(self, "hit", None)
        if hit is not None:
            hit.status = code
        super().send_response(code, message)
        if not self.server.site.keep_alive:
            self.send_header("Connection", "close")
            self.close_connection = True

    def _write(self, data: bytes) -> None:
        self.wfile.write(data)
        self.hit.body_bytes += len(data)

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        site = self.server.site
        h = self.headers
        self.hit = Hit("GET", self.path, "If-None-Match" in h or "If-Modified-Since" in h,
                       h.get("User-Agent", ""), time.monotonic())
        with site.lock:
            site.hits.append(self.hit)
            site.in_flight += 1
            site.max_in_flight = max(site.max_in_flight, site.in_flight)
        try:
            self._serve(site, unquote(urlsplit(self.path).path))
        except (BrokenPipeError, ConnectionResetError):
            self.hit.aborted = True
            self.close_connection = True
        finally:
            with site.lock:
                site.in_flight -= 1

    def _empty(self, status: int, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _serve(self, site: StaticSite, path: str) -> None:
        if path in site.stall and site.stop.wait(site.stall[path]):
            self.close_connection = True
            return
        if path in site.delay:
            time.sleep(site.delay[path])
        if path in site.status:
            return self._empty(site.status[path])
        if path in site.redirects:
            code, location = site.redirects[path]
            return self._empty(code, {"Location": location})
        if path in site.endless or path in site.drip:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            self._write(b"<html><body><h1>Big</h1>")
            if path in site.endless:
                while not site.stop.is_set():
                    self._write(b"<p>" + b"x" * 65_000 + b"</p>")
            else:
                chunks, pause = site.drip[path]
                for _ in range(chunks):
                    if site.stop.wait(pause):
                        return
                    self._write(b"<p>" + b"y" * 93 + b"</p>\n")
            return None
        f = (site.root / path.lstrip("/")).resolve()
        if f.is_dir():
            f = f / "index.html"
        if site.root.resolve() not in f.parents or not f.is_file():
            return self._empty(404)
        data = f.read_bytes()
        mtime = int(f.stat().st_mtime)
        etag = '"' + hashlib.sha256(data).hexdigest()[:20] + '"'
        validators = {"Last-Modified": formatdate(mtime, usegmt=True)}
        if path not in site.no_etag:
            validators["ETag"] = etag
        inm, ims = self.headers.get("If-None-Match"), self.headers.get("If-Modified-Since")
        if inm is not None:
            fresh = path not in site.no_etag and etag in [t.strip() for t in inm.split(",")]
        elif ims is not None:
            try:
                fresh = mtime <= int(parsedate_to_datetime(ims).timestamp())
            except (TypeError, ValueError):
                fresh = False
        else:
            fresh = False
        if fresh:
            return self._empty(304, validators)
        ctype = site.types.get(path) or mimetypes.guess_type(f.name)[0] or "application/octet-stream"
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for k, v in validators.items():
            self.send_header(k, v)
        self.end_headers()
        self._write(data)
        return None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    site: StaticSite

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # a client that hung up on purpose
            super().handle_error(request, client_address)


def start_site(root: Path, host: str = "127.0.0.1") -> tuple[StaticSite, Callable[[], None]]:
    """Serve ``root`` on ``host`` (a free port); returns the site and its stop function."""
    site = StaticSite(root, host)
    root.mkdir(parents=True, exist_ok=True)
    server = _Server((host, 0), _Handler)
    server.site = site
    site.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()

    def stop() -> None:
        site.stop.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

    return site, stop


GUIDE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Pay guide</title></head>
<body>
<nav><a href="index.html">Handbook</a> | <a href="guide.html">Pay guide</a></nav>
<main>
<h1>Pay guide</h1>
<p>This guide explains how and when Acme pays its staff, and whom to ask about pay.</p>
<h2 id="pay-dates">Pay dates</h2>
<p>Salaries are paid on the 25th of every month. When the 25th falls on a weekend, salaries are paid
on the Friday before.</p>
<h2>Overtime rules</h2>
<p>{overtime}</p>
<section id="bonus"><h2>Bonus scheme</h2>
<p>Bonuses are paid in March, after the annual review cycle closes. Managers propose the amounts.</p>
</section>
</main>
<footer>Copyright Acme. <a href="../outside/legal.html">Legal</a></footer>
</body></html>
"""
OVERTIME = "Overtime is paid with the next salary at one and a half times the hourly rate."


def page(title: str, body: str, head: str = "") -> str:
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title>{head}</head>"
            f"<body><main><h1>{title}</h1>{body}</main></body></html>")


def build_docs_site(site: StaticSite) -> None:
    """The crawl fixture: see test_web_crawl.py for what each page is for."""
    site.write("/robots.txt", f"""User-agent: OtherBot
Disallow: /

User-agent: *
Disallow: /docs/drafts/
Disallow: /private/

Sitemap: {site.base}/sitemap.xml
""")
    site.write("/sitemap.xml", f"""<?xml version="1.0" encoding="UTF-8"?>
<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
  <url><loc>{site.base}/docs/orphan.html</loc></url>
  <url><loc>{site.base}/docs/guide.html</loc></url>
  <url><loc>{site.base}/outside/from-sitemap.html</loc></url>
  <url><loc>{site.base}/docs/drafts/from-sitemap.html</loc></url>
</urlset>
""")
    links = [
        "guide.html", "guide.html#pay-dates", "guide.html?utm_source=mail", "./index.html",
        "latin1.html", "cp1252.html", "broken.html", "notes.txt", "manual.pdf", "noindex.html", "d1.html",
        "drafts/wip.html", "../private/secret.html", "../outside/page.html", "https://example.com/",
        "mailto:hr@acme.example", "old-guide", "moved", "leave", "canonical-variant.html",
        "slow.html", "huge.html", "big.html", "drip.html", "missing.html", "gone.html", "logo.png",
    ]
    items = "".join(f'<li><a href="{href}">{href}</a></li>' for href in links)
    site.write("/docs/index.html", page(
        "Acme handbook",
        "<p>The Acme handbook collects the policies every employee should know about.</p>"
        f"<ul>{items}</ul>",
    ))
    site.write("/docs/guide.html", GUIDE.format(overtime=OVERTIME))
    site.write("/docs/latin1.html", page(
        "Kantine", "<p>Caf\u00e9 cr\u00e8me and cr\u00e8me br\u00fbl\u00e9e are served in Z\u00fcrich every "
        "Friday at the canteen.</p>").replace("<meta charset='utf-8'>", ""), encoding="latin-1")
    site.types["/docs/latin1.html"] = "text/html; charset=ISO-8859-1"
    fee = "<p>The \u201ctravel fee\u201d \u2013 50 \u20ac per trip \u2013 is refunded within a month.</p>"
    cp1252 = page("Geb\u00fchren", fee).replace("charset='utf-8'", "charset='windows-1252'")
    site.write("/docs/cp1252.html", cp1252, encoding="cp1252")
    site.write("/docs/broken.html", "<html><head><title>Travel rules</title><body><div class=x id=top>"
               "<h2>Trains</h2><p>Book trains for trips under 500 km.<div><p>Keep every <b>receipt for the "
               "expense report</div></div></div><h2>Hotels</h2><ul><li>Book hotels through the portal.<li>"
               "Breakfast is refunded <i>up to 15 euros</p>")
    site.write("/docs/notes.txt", "Office notes\n\nThe office closes at 18:00 on Fridays during the summer.")
    site.write("/docs/manual.pdf", make_pdf(["Safety manual: wear a helmet in the warehouse at all times."]))
    site.write("/docs/noindex.html", page(
        "Internal draft", "<p>Not for the index.</p><a href='d1.html'>d1</a>",
        "<meta name='robots' content='noindex'>"))
    site.write("/docs/d1.html", page("Depth one", "<p>The first level of the depth chain.</p>"
                                     "<a href='d2.html'>next</a>"))
    site.write("/docs/d2.html", page("Depth two", "<p>The second level of the depth chain.</p>"
                                     "<a href='d3.html'>next</a>"))
    site.write("/docs/d3.html", page("Depth three", "<p>The third level of the depth chain.</p>"
                                     "<a href='d4.html'>next</a>"))
    site.write("/docs/d4.html", page("Depth four", "<p>Too deep to be crawled.</p>"))
    site.write("/docs/orphan.html", page("Orphan page", "<p>Only the sitemap lists the parking policy.</p>"))
    site.write("/docs/new-home.html", page("New home", "<p>The moved page about the office in Leeds.</p>"))
    site.write("/docs/canonical-variant.html", page(
        "Pay guide (print)", "<p>Printer-friendly pay guide.</p>",
        "<link rel='canonical' href='guide.html'>"))
    site.write("/docs/big.html", page("Big", "<p>" + "z" * 1_200_000 + "</p>"))
    site.write("/docs/logo.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 64)
    site.write("/docs/drafts/wip.html", page("Draft", "<p>Work in progress.</p>"))
    site.write("/docs/drafts/from-sitemap.html", page("Draft", "<p>Work in progress.</p>"))
    site.write("/private/secret.html", page("Secret", "<p>Secret.</p>"))
    for name in ("page", "landing", "from-sitemap", "legal"):
        site.write(f"/outside/{name}.html", page("Outside", "<p>Outside the allow-list.</p>"))
    site.redirects["/docs/old-guide"] = (301, "/docs/guide.html")
    site.redirects["/docs/moved"] = (301, "new-home.html")
    site.redirects["/docs/leave"] = (302, "/outside/landing.html")
    site.status["/docs/gone.html"] = 410
    site.stall["/docs/slow.html"] = 30
    site.endless.add("/docs/huge.html")
    site.drip["/docs/drip.html"] = (40, 0.1)


def docs_settings(site: StaticSite, **overrides: Any) -> dict[str, Any]:
    settings: dict[str, Any] = {
        "start_urls": [site.url("/docs/")],
        "allow": [site.url("/docs/")],
        "audience": ["everyone"],
        "allow_http_hosts": ["127.0.0.1"],
        "allow_networks": ["127.0.0.1/32"],
        "user_agent": "GroundwireTest/1.0",
        "requests_per_second": 500,
        "concurrency": 4,
        "per_host_concurrency": 4,
        "timeout_seconds": 1.5,
        "max_page_mb": 1,
        "max_depth": 3,
    }
    settings.update(overrides)
    return settings
