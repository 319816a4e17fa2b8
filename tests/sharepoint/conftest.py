"""Fixtures for the SharePoint connector tests: a Graph API double on 127.0.0.1 and a token for it."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from graph_double import GraphDouble  # noqa: E402

TOKEN_ENV = "GW_TEST_GRAPH_TOKEN"


@pytest.fixture
def graph(monkeypatch: pytest.MonkeyPatch) -> Iterator[GraphDouble]:
    """A running Graph double; the connector reads its bearer token from $GW_TEST_GRAPH_TOKEN."""
    with GraphDouble(token="double-token") as double:
        monkeypatch.setenv(TOKEN_ENV, double.token)
        yield double
