"""Concurrency: a Grounder shared by threads and asyncio tasks from its very first call (issue 12).

Each test syncs in a child process (so this process has never opened the Chroma store: the race is on
the first client), then builds a fresh Grounder over the same data dir (nothing built yet: no index,
embedder, generator, review queue, quarantine or retriever) and fires the first calls concurrently.
Real embedded Chroma, the hashing embedder (fast, no model load).
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from groundwire import Grounder, UserContext, config_from_dict

from .conftest import kb, write

N = 4


def _fresh(tmp_path: Path, corpus: Path) -> Grounder:
    data: dict[str, Any] = {
        "data_dir": str(tmp_path / "data"),
        "default_tenant": "acme",
        "embedder": {"name": "hashing"},
        "plugins": {"load_entrypoints": False},
        "connectors": {"kb": kb(corpus)},
    }
    return Grounder(config_from_dict(data, base_dir=tmp_path))


def _sync_in_child(tmp_path: Path, corpus: Path) -> None:
    code = (
        "import sys; from pathlib import Path; from tests.test_concurrency import _fresh; "
        "r = _fresh(Path(sys.argv[1]), Path(sys.argv[2])).sync(); "
        "sys.exit(0 if all(x.ok for x in r) and r[0].chunks else 3)"
    )
    root = Path(__file__).resolve().parent.parent
    subprocess.run([sys.executable, "-c", code, str(tmp_path), str(corpus)], check=True, cwd=root, timeout=120)


@pytest.fixture(scope="module")
def synced_once(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One child-process sync for the module; each test copies its data dir."""
    base = tmp_path_factory.mktemp("synced")
    corpus = base / "corpus"
    write(corpus / ".groundwire-acl.toml", 'allow = ["everyone"]\n')
    write(corpus / "handbook" / "leave.md", "# Leave policy\n\nEvery employee receives 25 days of paid "
          "annual leave per year. Requests go through the HR portal.\n")
    _sync_in_child(base, corpus)
    return base


def _synced(tmp_path: Path, synced_once: Path) -> Path:
    """A copy of the synced data dir under ``tmp_path``; returns the corpus path to configure."""
    shutil.copytree(synced_once / "data", tmp_path / "data")
    return synced_once / "corpus"


def test_concurrent_first_aground_calls(tmp_path: Path, synced_once: Path) -> None:
    corpus = _synced(tmp_path, synced_once)
    g = _fresh(tmp_path, corpus)

    async def run() -> list[Any]:
        return await asyncio.gather(
            *(g.aground("How many days of annual leave?", "alice") for _ in range(N)), return_exceptions=True
        )

    results = asyncio.run(run())
    errors = [r for r in results if isinstance(r, BaseException)]
    assert not errors, errors
    assert all(r.citations for r in results)
    assert g.reviews.count("acme") == N


def test_concurrent_first_ground_from_threads(tmp_path: Path, synced_once: Path) -> None:
    corpus = _synced(tmp_path, synced_once)
    g = _fresh(tmp_path, corpus)
    barrier = threading.Barrier(N)
    results: list[Any] = [None] * N

    def worker(i: int) -> None:
        barrier.wait()
        try:
            results[i] = g.ground("How many days of annual leave?", "alice")
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            results[i] = exc

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(N)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    errors = [r for r in results if isinstance(r, BaseException)]
    assert not errors, errors
    assert all(r.citations for r in results)
    # one of each lazily built part, shared by every thread
    assert len({id(g.index), id(g.embedder), id(g.reviews), id(g.quarantine)}) == 4


def test_first_langchain_batch(tmp_path: Path, synced_once: Path) -> None:
    from groundwire.langchain import GroundwireRetriever

    corpus = _synced(tmp_path, synced_once)
    g = _fresh(tmp_path, corpus)
    retriever = GroundwireRetriever(grounder=g, user=UserContext.of("alice", "acme"))
    out = retriever.batch(["annual leave", "leave policy", "HR portal", "paid leave"])
    assert len(out) == 4
    assert all(docs and docs[0].metadata["tenant"] == "acme" for docs in out)
