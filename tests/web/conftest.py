"""Fixtures of the web connector's tests: real static sites on loopback (see static_site.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .static_site import StaticSite, start_site


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
