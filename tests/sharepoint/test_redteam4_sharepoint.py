"""Red team, round 4: SharePoint downloads (and Graph JSON) that are compression bombs.

httpx inflates every network read whole and, with ``zstandard`` installed (langsmith pulls it in), asks
for ``zstd`` too: a 32 KiB zstd body or a 2 KiB ``gzip, gzip`` stack is a gigabyte after one read, long
before ``max_file_mb`` is compared. The connector must bound what it *inflates*, as the web connector does.

The memory test runs the connector's Graph client in a child process whose address space is capped a
little above what it already uses, against a real loopback server: the old decoding dies of
``MemoryError``; a bounded one refuses the body. The sync test runs the whole connector against the Graph
double into a real Chroma index: the bombs are skipped with their reason, the other file is served.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import subprocess
import sys
import textwrap
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from groundwire.connectors.sharepoint import file_doc_id

from ..loopback_bodies import BodyServer, serving
from .graph_double import GraphDouble, user_perm
from .helpers import index_state, make_grounder, retrieved_docs

pytestmark = pytest.mark.integration

ALICE = ("alice@contoso.com", "aaaaaaaa-0000-4000-8000-000000000001")
_MIB = 1 << 20
_HAS_ZSTD = importlib.util.find_spec("zstandard") is not None


def _gzip_stream(blocks: int, level: int = 6) -> bytes:
    """gzip of ``blocks`` MiB of zeros, compressed block by block (never the whole input in memory)."""
    c = zlib.compressobj(level, zlib.DEFLATED, 31)
    zero = bytes(_MIB)
    return b"".join([c.compress(zero) for _ in range(blocks)] + [c.flush()])


def _zstd_stream(blocks: int) -> bytes:
    import zstandard

    c = zstandard.ZstdCompressor(level=3).compressobj()
    zero = bytes(_MIB)
    return b"".join([c.compress(zero) for _ in range(blocks)] + [c.flush()])


@pytest.fixture(scope="module")
def bombs() -> dict[str, tuple[bytes, str]]:
    """name -> (body, Content-Encoding): each inflates to 512 MiB (stacked gzip) or 1 GiB (zstd)."""
    once = _gzip_stream(512)
    out = {"gzip-stack": (gzip.compress(once, 9), "gzip, gzip"), "gzip": (once, "gzip")}
    if _HAS_ZSTD:
        out["zstd"] = (_zstd_stream(1024), "zstd")
    return out


@pytest.fixture
def bomb_server(bombs: dict[str, tuple[bytes, str]]) -> Iterator[BodyServer]:
    """Loopback server answering ``/<name>`` with the named bomb (its encoding header, true length)."""

    def answer(path: str) -> tuple[bytes, dict[str, str]]:
        body, coding = bombs[path.lstrip("/").split("?")[0]]
        return body, {"Content-Encoding": coding}

    with serving(answer) as server:
        yield server


_CHILD = textwrap.dedent(
    """
    import json, resource, sys
    from groundwire.connectors.sharepoint.graph import GraphClient, GraphError, FileTooLarge
    from groundwire.connectors.sharepoint.settings import SharePointSettings

    class Tokens:
        def token(self): return "t"
        def invalidate(self): pass

    base, names = sys.argv[1], sys.argv[2:]
    s = SharePointSettings(sites=["s"], access_token_env="X", graph_url=base + "/v1.0",
                           allow_http_hosts=["127.0.0.1"], max_retries=0)
    client = GraphClient(s, Tokens(), "sp")
    with open("/proc/self/statm") as f:
        vsz = int(f.read().split()[0]) * resource.getpagesize()
    cap = vsz + 256 * 1024 * 1024  # a 512 MiB or 1 GiB inflated body cannot fit
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    out = {}
    for name in names:
        try:
            client.download(f"{base}/{name}", 1024 * 1024)
            out[name] = "read"
        except FileTooLarge:
            out[name] = "too large"
        except GraphError as exc:
            out[name] = f"refused: {exc}"
        except MemoryError:
            out[name] = "MemoryError"
    print(json.dumps(out))
    """
)


def test_download_bombs_are_refused_within_bounded_memory(bomb_server: BodyServer,
                                                          bombs: dict[str, tuple[bytes, str]]) -> None:
    proc = subprocess.run([sys.executable, "-c", _CHILD, bomb_server.url, *bombs], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "MemoryError" not in got.values(), f"a compressed body was inflated without a limit: {got}"
    assert got["gzip"] == "too large", got  # one gzip layer: inflated in steps, stopped past the limit
    assert got["gzip-stack"].startswith("refused: ") and "gzip, gzip" in got["gzip-stack"], got
    if _HAS_ZSTD:
        assert got["zstd"].startswith("refused: ") and "zstd" in got["zstd"], got


class _BombGraph(GraphDouble):
    """The Graph double, serving some files' downloads with a content coding."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.encoded: dict[str, tuple[bytes, str]] = {}  # item id -> (body, Content-Encoding)

    def _download(self, path: str) -> tuple[int, Any, dict[str, str]]:
        status, body, headers = super()._download(path)
        item_id = path.split("/")[3].split("?")[0]
        if status == 200 and item_id in self.encoded:
            body, coding = self.encoded[item_id]
            headers = {**headers, "Content-Encoding": coding}
        return status, body, headers


def test_a_sync_skips_bombs_with_their_reason_and_serves_the_rest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                  bombs: dict[str, tuple[bytes, str]]) -> None:
    from .graph_double import TOKEN_ENV

    with _BombGraph(token="double-token") as graph:
        monkeypatch.setenv(TOKEN_ENV, graph.token)
        site = graph.add_site("/sites/legal", "Legal")
        drive = graph.add_drive(site, "Documents")
        ok = graph.add_file(drive, "ok.txt", "The quokkaclause binds the vendor.", perms=[user_perm(*ALICE)])
        small = b"The wombatnotice is gzip encoded but small."
        gz = graph.add_file(drive, "small-gz.txt", small, perms=[user_perm(*ALICE)])
        graph.encoded[gz] = (gzip.compress(small), "gzip")
        bad = {}
        for name, (body, coding) in bombs.items():
            item = graph.add_file(drive, f"bomb-{name}.txt", "x", perms=[user_perm(*ALICE)])
            graph.encoded[item] = (body, coding)
            bad[item] = name
        g = make_grounder(tmp_path, graph, [graph.site_url(site)], include_pages=False, max_file_mb=1)
        [rep] = g.sync()
        assert rep.ok, rep.error
        state = index_state(g)
        assert file_doc_id(drive, ok) in state
        assert "wombatnotice" in state[file_doc_id(drive, gz)]["text"], "a small gzip body was not inflated"
        assert not {file_doc_id(drive, i) for i in bad} & set(state)
        reasons = " | ".join(reason for _, reason in rep.skipped)
        assert "larger than max_file_mb=1" in reasons, reasons
        assert "gzip, gzip" in reasons and "not read" in reasons, reasons
        assert file_doc_id(drive, ok) in retrieved_docs(g, ALICE[0], "quokkaclause vendor")
