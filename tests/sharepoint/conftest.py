"""Fixtures for the SharePoint connector tests: a Graph API double on 127.0.0.1 and a token for it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .graph_double import TOKEN_ENV, GraphDouble


@pytest.fixture
def graph(monkeypatch: pytest.MonkeyPatch) -> Iterator[GraphDouble]:
    """A running Graph double; the connector reads its bearer token from $GW_TEST_GRAPH_TOKEN."""
    with GraphDouble(token="double-token") as double:
        monkeypatch.setenv(TOKEN_ENV, double.token)
        yield double
