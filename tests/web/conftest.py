"""Fixtures of the web connector's tests: real static sites on loopback (see static_site.py)."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from groundwire.connectors.web.fetch import AddressPolicy, Fetcher

from .static_site import StaticSite, start_site


def loopback_fetcher(timeout: float) -> Fetcher:
    """The connector's own fetcher, allowed to reach 127.0.0.1 only, with ``timeout`` per request."""
    return Fetcher(user_agent="GroundwireTest/1.0", policy=AddressPolicy([ipaddress.ip_network("127.0.0.1/32")]),
                   timeout=timeout, max_bytes=1 << 20, max_redirects=3, interval=0, per_host=4, connections=4)


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., StaticSite]]:
    """``serve(name="site", host="127.0.0.1")`` starts a :class:`StaticSite`; all stop at teardown."""
    stops: list[Callable[[], None]] = []

    def start(name: str = "site", host: str = "127.0.0.1") -> StaticSite:
        site, stop = start_site(tmp_path / name, host)
        stops.append(stop)
        return site

    try:
        yield start
    finally:
        for stop in stops:
            stop()
