"""Issue 12: the saved delta state must not outlive the index data it describes. After the Chroma folder is
deleted, the next (not ``--full``) sync re-enumerates instead of trusting a delta token that says "no
changes"."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from .graph_double import GraphDouble
from .helpers import assert_index_matches, make_grounder
from .test_sharepoint_sync import SETTINGS, Intranet

pytestmark = pytest.mark.integration


def test_deleted_index_makes_the_next_sync_full(graph: GraphDouble, tmp_path: Path) -> None:
    from chromadb.api.shared_system_client import SharedSystemClient

    net = Intranet(graph)
    g = make_grounder(tmp_path, graph, [graph.site_url(net.hr)], **SETTINGS)
    [rep] = g.sync()
    assert rep.ok, rep.error
    assert_index_matches(g, net.expected())
    assert (tmp_path / "gw" / "state" / "acme" / "sp.json").exists()  # a delta token is saved

    shutil.rmtree(tmp_path / "gw" / "chroma")
    SharedSystemClient.clear_system_cache()  # as a new process would: no client of the deleted folder
    g2 = make_grounder(tmp_path, graph, [graph.site_url(net.hr)], **SETTINGS)
    [rep2] = g2.sync()
    assert rep2.ok, rep2.error
    assert rep2.added > 0
    assert_index_matches(g2, net.expected())
