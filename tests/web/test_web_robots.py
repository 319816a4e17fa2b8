"""robots.txt matching as RFC 9309 specifies it, read from a real loopback site through the connector's
own fetcher and rules cache; and the two failures of ``urllib.robotparser`` (issue 15) in a real crawl:
an explicitly allowed page under a disallowed folder was refused, and a ``/*.pdf$`` file was fetched."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from groundwire.connectors.web.fetch import AddressPolicy, Fetcher
from groundwire.connectors.web.robots import RobotsCache

from ..files import make_pdf
from .static_site import StaticSite, page
from .test_web_crawl import grounder
from .test_web_safety import settings_for

pytestmark = pytest.mark.integration
Serve = Callable[..., StaticSite]

# RFC 9309 section 5.1, verbatim
RFC_SIMPLE = """User-Agent: *
Disallow: *.gif$
Disallow: /example/
Allow: /publications/

User-Agent: foobot
Disallow:/
Allow:/example/page.html
Allow:/example/allowed.gif

User-Agent: barbot
User-Agent: bazbot
Disallow: /example/page.html

User-Agent: quxbot

EOF
"""
# RFC 9309 section 5.2, verbatim
RFC_LONGEST = """User-Agent: foobot
Allow: /example/page/
Disallow: /example/page/disallowed.gif
"""
# RFC 9309 sections 2.2.2 (equivalent rules: allow wins) and 2.2.3 (special characters, percent-encoding)
RFC_SPECIAL = """User-Agent: *
Allow: /folder
Disallow: /folder
Disallow: /*.pdf$
Disallow: /path/file-with-a-%2A.html
Disallow: /another/path/file-with-a-%24
Disallow: /foo/bar/%E3%83%84
Allow: /only-root$
"""

CASES: list[tuple[str, str, str, bool]] = [
    # (robots.txt, user agent, path, allowed)
    (RFC_SIMPLE, "foobot", "/", False),
    (RFC_SIMPLE, "foobot", "/example/page.html", True),
    (RFC_SIMPLE, "foobot", "/example/allowed.gif", True),
    (RFC_SIMPLE, "foobot", "/publications/", False),  # a matching group replaces the * group entirely
    (RFC_SIMPLE, "FooBot/1.2", "/example/page.html", True),  # product token, case-insensitive
    (RFC_SIMPLE, "barbot", "/example/page.html", False),  # two user-agent lines, one group
    (RFC_SIMPLE, "bazbot", "/example/page.html", False),
    (RFC_SIMPLE, "bazbot", "/example/other.gif", True),
    (RFC_SIMPLE, "quxbot", "/example/page.html", True),  # an empty group allows everything
    (RFC_SIMPLE, "otherbot", "/example/page.html", False),
    (RFC_SIMPLE, "otherbot", "/publications/a.html", True),
    (RFC_SIMPLE, "otherbot", "/images/logo.gif", False),  # * and $ wildcards
    (RFC_SIMPLE, "otherbot", "/images/logo.gif?size=2", True),  # $ anchors the end of path and query
    (RFC_SIMPLE, "otherbot", "/robots.txt", True),  # robots.txt itself is always allowed
    (RFC_LONGEST, "foobot", "/example/page/", True),
    (RFC_LONGEST, "foobot", "/example/page/disallowed.gif", False),  # the longest match decides
    (RFC_LONGEST, "foobot", "/example/page/allowed.gif", True),
    (RFC_SPECIAL, "mybot", "/folder/page.html", True),  # allow wins over an equivalent disallow
    (RFC_SPECIAL, "mybot", "/reports/q1.pdf", False),
    (RFC_SPECIAL, "mybot", "/reports/q1.pdf.html", True),
    (RFC_SPECIAL, "mybot", "/path/file-with-a-*.html", False),  # %2A is a literal *
    (RFC_SPECIAL, "mybot", "/path/file-with-a-x.html", True),  # ... not a wildcard
    (RFC_SPECIAL, "mybot", "/another/path/file-with-a-$", False),  # %24 is a literal $
    (RFC_SPECIAL, "mybot", "/foo/bar/%E3%83%84", False),  # percent-encoded UTF-8 matches itself
    (RFC_SPECIAL, "mybot", "/foo/bar/ツ", False),  # ... and its unencoded form
    (RFC_SPECIAL, "mybot", "/only-root", True),
]


@pytest.fixture
def fetcher() -> Iterator[Fetcher]:
    f = Fetcher(user_agent="GroundwireTest/1.0", policy=AddressPolicy([ipaddress.ip_network("127.0.0.1/32")]),
                timeout=5, max_bytes=1 << 20, max_redirects=3, interval=0, per_host=4, connections=4)
    try:
        yield f
    finally:
        f.close()


def test_rfc9309_examples(serve: Serve, fetcher: Fetcher) -> None:
    """Every case of the table, each robots.txt served by a real site and read by the rules cache."""
    sites = {}
    for text in (RFC_SIMPLE, RFC_LONGEST, RFC_SPECIAL):
        sites[text] = site = serve(f"site{len(sites)}")
        site.write("/robots.txt", text)
    wrong = []
    for text, agent, path, allowed in CASES:
        cache = RobotsCache(fetcher, agent, max_delay=0)
        got = cache.disallowed(sites[text].url(path)) is None
        if got != allowed:
            wrong.append((agent, path, f"expected {'allowed' if allowed else 'disallowed'}"))
    assert wrong == []
    assert all(site.paths() == ["/robots.txt"] * sum(c[0] == t for c in CASES) for t, site in sites.items())


def test_allowed_page_under_a_disallowed_folder_is_crawled_and_pdf_wildcard_is_not(
    tmp_path: Path, serve: Serve
) -> None:
    """The two failures of issue 15: urllib.robotparser took the first matching rule (so the later,
    longer ``Allow`` lost) and had no ``*``/``$`` (so ``/*.pdf$`` matched nothing)."""
    site = serve()
    site.write("/robots.txt", "User-agent: *\nDisallow: /docs/\nAllow: /docs/public/\nDisallow: /*.pdf$\n")
    site.write("/index.html", page("Start", "<p>The start page of the site.</p>"
                                   "<a href='docs/public/leave.html'>leave</a><a href='docs/secret.html'>s</a>"
                                   "<a href='files/report.pdf'>report</a><a href='files/notes.html'>notes</a>"))
    site.write("/docs/public/leave.html", page("Leave", "<p>Annual leave is 25 days.</p>"))
    site.write("/docs/secret.html", page("Secret", "<p>Not for crawlers.</p>"))
    site.write("/files/report.pdf", make_pdf(["A quarterly report nobody may crawl."]))
    site.write("/files/notes.html", page("Notes", "<p>Meeting notes.</p>"))
    (report,) = grounder(tmp_path, settings_for(site, allow_networks=["127.0.0.1/32"], sitemaps=False)).sync()
    requested = set(site.paths())
    assert {"/docs/public/leave.html", "/files/notes.html"} <= requested
    assert not requested & {"/docs/secret.html", "/files/report.pdf"}
    skipped = dict(report.skipped)
    assert skipped[site.url("/files/report.pdf")] == "refused: disallowed by robots.txt"
    assert skipped[site.url("/docs/secret.html")] == "refused: disallowed by robots.txt"
    assert report.added == 3
