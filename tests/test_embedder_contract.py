"""``EmbedderContract`` against the built-in embedders, and the framework refusing an embedder whose first
batch breaks the contract (issue 15), with a clear error before anything is indexed."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from groundwire import Embedder, GroundwireError, hookimpl
from groundwire.embedding import CachedEmbedder, EmbedderMismatch
from groundwire.plugins.embedders import HashingEmbedder, MiniLMEmbedder
from groundwire.testing import EVERYONE_USER, EmbedderContract, tiny_grounder


class TestHashingEmbedder(EmbedderContract):
    def make_embedder(self) -> Embedder:
        return HashingEmbedder()


@pytest.mark.slow
class TestMiniLMEmbedderOnnx(EmbedderContract):
    """The default backend (the torch backend gives the same vectors; tests/test_onnx_embedder.py)."""

    tolerance = 1e-3  # ONNX Runtime batches with padding: float noise only

    def make_embedder(self) -> Embedder:
        return MiniLMEmbedder(backend="onnx")


class _Broken(Embedder):
    """Declares 384 dimensions; ``fault`` says how it breaks the contract."""

    name = "broken"
    fault = ""

    def __init__(self) -> None:
        super().__init__()
        self.dimension = 384

    def embed_documents(self, texts: Sequence[str]) -> Any:
        dim = 128 if self.fault == "dimension" else self.dimension
        v = np.ones((len(texts), dim), dtype=np.float32)
        if self.fault == "nan":
            v[:, 0] = np.nan
        if self.fault != "norm":
            v /= np.sqrt(dim)
        return v


@pytest.mark.parametrize(("fault", "message"), [
    ("dimension", r"shape \(\d+, 128\), expected \(\d+, 384\)"),
    ("norm", "not unit length"),
    ("nan", "NaN or infinite"),
])
def test_a_mismatching_embedder_is_refused_before_indexing(tmp_path: Path, fault: str, message: str) -> None:
    broken = type("Broken", (_Broken,), {"fault": fault})

    class Plugin:
        @hookimpl
        def register_embedders(self, register: Any) -> None:
            register(broken)

    g = tiny_grounder(tmp_path, plugins=[Plugin()], embedder="broken", sync=False)
    (report,) = g.sync()  # the connector's sync fails with the cause; nothing is indexed
    assert re.search(message, report.error) and "embedder 'broken'" in report.error
    assert "EmbedderContract" in report.error and report.added == 0 and report.chunks == 0
    assert list(g.index.tenant("acme").documents("handbook")) == []
    with pytest.raises(EmbedderMismatch, match="embedder 'broken'") as err:  # and no query is searched with it
        g.ground("How many days of annual leave do employees get?", EVERYONE_USER)
    assert isinstance(err.value, GroundwireError) and err.value.embedder == "broken"


def test_a_bad_query_vector_is_refused(tmp_path: Path) -> None:
    class OddQuery(HashingEmbedder):
        name = "odd-query"

        def embed_query(self, text: str) -> Any:
            return super().embed_query(text)[:10]

    cached = CachedEmbedder(OddQuery())
    with pytest.raises(EmbedderMismatch, match=r"shape \(10,\), expected \(384,\)"):
        cached.embed_query("anything")
    g = tiny_grounder(tmp_path)
    assert "25 days" in g.ground("How many days of annual leave do employees get?", EVERYONE_USER).text


def test_the_check_also_runs_with_the_query_cache_off(tmp_path: Path) -> None:
    from groundwire import Grounder, config_from_dict
    from groundwire.testing import write_corpus

    broken = type("Broken", (_Broken,), {"fault": "dimension"})

    class Plugin:
        @hookimpl
        def register_embedders(self, register: Any) -> None:
            register(broken)

    root = write_corpus(tmp_path / "corpus")
    cfg = config_from_dict({
        "data_dir": str(tmp_path / "data"), "default_tenant": "acme",
        "embedder": {"name": "broken", "query_cache_size": 0},
        "plugins": {"load_entrypoints": False},
        "connectors": {"handbook": {"type": "knowledge_base", "tenant": "acme", "path": str(root)}},
    }, base_dir=tmp_path)
    (report,) = Grounder(cfg, extra_plugins=[Plugin()]).sync()
    assert "embedder 'broken'" in (report.error or "") and report.chunks == 0
