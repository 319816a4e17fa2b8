"""The ONNX Runtime backend of the bundled MiniLM: same vectors as torch, exported once, offline, safe fallback."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from groundwire import ConfigError, Grounder, config_from_dict
from groundwire.plugins import embedders, onnx_minilm

pytestmark = pytest.mark.slow

TEXTS = [
    "How many days of annual leave do I get?",
    "Expenses are paid with the next monthly salary. " * 60,  # over the 256-token limit: truncated
    "Ünïcödé, 日本語のテキスト and emoji 🚀",
    "x",
    "",
    "The salary review budget is 3.5 percent of payroll.",
]


def _model_copy(tmp_path: Path) -> str:
    """The bundled model under another path: a new cache key in this process and a new export."""
    src = Path(embedders.bundled_model_path())
    dst = tmp_path / "minilm"
    for p in src.rglob("*"):
        if p.is_file():
            target = dst / p.relative_to(src)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(p)
    return str(dst)


@pytest.fixture
def model_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("GROUNDWIRE_MODEL_CACHE", str(cache))
    return cache


def test_onnx_vectors_equal_torch_vectors() -> None:
    path = embedders.bundled_model_path()
    onnx = embedders.load_sentence_transformer(path, "onnx")
    torch = embedders.load_sentence_transformer(path, "torch")
    assert isinstance(onnx, onnx_minilm.OnnxSentenceEncoder)
    a = onnx.encode(TEXTS, batch_size=2)  # several batches, formed by length: order must come back right
    b = np.asarray(torch.encode(TEXTS, normalize_embeddings=True, show_progress_bar=False))
    assert a.shape == b.shape == (len(TEXTS), 384)
    assert np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    cosines = (a * b).sum(axis=1)
    assert cosines.min() > 0.9999, cosines
    # one at a time (the query path, no padding) gives the same vectors as batched (with padding)
    single = np.stack([onnx.encode([t])[0] for t in TEXTS])
    assert np.allclose(single, a, atol=1e-5)


def test_embedder_backends_interchangeable() -> None:
    """An index built with one backend is queried with the other: same model id, same vectors."""
    e_onnx = embedders.MiniLMEmbedder(backend="onnx")
    e_torch = embedders.MiniLMEmbedder(backend="torch")
    assert e_onnx.model_id == e_torch.model_id
    d = e_onnx.embed_documents(TEXTS[:3])
    q = e_torch.embed_query(TEXTS[0])
    assert float(d[0] @ q) > 0.9999


def test_export_once_into_cache_then_no_torch(
    tmp_path: Path, model_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GROUNDWIRE_AUTO_BACKEND", "onnx")  # the fp32 export (on a VNNI CPU auto runs int8)
    path = _model_copy(tmp_path)
    enc = embedders.load_sentence_transformer(path, "auto")
    assert isinstance(enc, onnx_minilm.OnnxSentenceEncoder)
    exported = onnx_minilm.onnx_model_path(path)
    assert enc.path == exported and exported.is_file()
    assert exported.is_relative_to(model_cache)
    assert (exported.parent / "manifest.json").is_file()
    assert not [p for p in exported.parent.iterdir() if p.name.endswith(".tmp")]  # written then renamed
    mtime = exported.stat().st_mtime_ns

    # a new process finds the export and never imports torch
    code = (
        "import sys\n"
        "from groundwire.plugins.embedders import load_sentence_transformer\n"
        f"v = load_sentence_transformer({path!r}, 'auto').encode(['hello world'])\n"
        "assert v.shape == (1, 384), v.shape\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ}, timeout=120, check=True
    )
    assert out.stdout.strip() == "False", out.stderr
    assert exported.stat().st_mtime_ns == mtime  # not exported again


def test_auto_falls_back_to_torch_and_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setenv("GROUNDWIRE_MODEL_CACHE", str(blocker / "models"))
    path = _model_copy(tmp_path)
    with caplog.at_level(logging.WARNING, logger="groundwire.plugins.embedders"):
        enc = embedders.load_sentence_transformer(path, "auto")
    assert not isinstance(enc, onnx_minilm.OnnxSentenceEncoder)
    assert "ONNX embedder unavailable" in caplog.text and "using torch" in caplog.text
    v = enc.encode(["hello"], normalize_embeddings=True)
    assert np.asarray(v).shape == (1, 384)
    # an explicit onnx backend does not fall back silently
    with pytest.raises(OSError):
        embedders.load_sentence_transformer(_model_copy(tmp_path / "second"), "onnx")


def test_unknown_backend_is_a_config_error(tmp_path: Path) -> None:
    cfg = config_from_dict(
        {"data_dir": str(tmp_path / "data"), "embedder": {"name": "minilm", "options": {"backend": "cuda"}}},
        base_dir=tmp_path,
    )
    with pytest.raises(ConfigError) as err:
        _ = Grounder(cfg).embedder
    assert "embedder.options" in str(err.value) and "cuda" in str(err.value)


def test_unwritable_home_cache_falls_back_to_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GROUNDWIRE_MODEL_CACHE", raising=False)
    blocker = tmp_path / "home-cache"
    blocker.write_text("not a folder")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    target = onnx_minilm.onnx_model_path(embedders.bundled_model_path())
    assert not target.is_relative_to(blocker)
    assert target.is_relative_to(Path(__import__("tempfile").gettempdir()))


def test_encode_spans_reads_sentences_from_the_same_run() -> None:
    """``encode_spans``: the texts' vectors are ``encode``'s; each span's vector is the mean of its tokens'
    hidden states in context (unit length); a span past the 256-token window is read from a second run over
    the text from that span on, and a blank span falls back to the whole text's vector."""
    from groundwire.sentences import sentence_spans

    enc = embedders.load_sentence_transformer(embedders.bundled_model_path(), "onnx")
    long = " ".join(f"Sentence {i} of the policy covers topic {i % 7} and its exceptions." for i in range(60))
    texts = [TEXTS[0] + " " + TEXTS[5], long, "   "]
    spans = [sentence_spans(texts[0]), sentence_spans(long), [(0, 3)]]
    vecs, per = enc.encode_spans(texts, spans, batch_size=2)
    assert np.allclose(vecs, enc.encode(texts, batch_size=2), atol=1e-5)
    assert [len(p) for p in per] == [len(s) for s in spans]
    assert all(np.allclose(np.linalg.norm(p, axis=1), 1.0, atol=1e-4) for p in per)
    # in context, not alone: close to the sentence's own vector but not equal to it
    alone = enc.encode([texts[0][a:b] for a, b in spans[0]])
    cos = (alone * per[0]).sum(axis=1)
    assert (cos > 0.5).all() and (cos < 0.999).all(), cos
    # the sentences past the window are read from a run over the text from the first of them on
    e = enc.tokenizer.encode(long)
    covered = max(b for (a, b), sp in zip(e.offsets, e.special_tokens_mask, strict=True) if not sp)
    assert covered < len(long)
    late = [i for i, (_, b) in enumerate(spans[1]) if b > covered]
    t0 = spans[1][late[0]][0]
    _, tail = enc.encode_spans([long[t0:]], [[(a - t0, b - t0) for a, b in spans[1][late[0]:]]])
    assert np.allclose(per[1][late[0]:], tail[0], atol=1e-5)
    assert not np.allclose(per[1][late[0] - 1], tail[0][0], atol=1e-3)
    assert np.allclose(per[2][0], vecs[2], atol=1e-5)
    with pytest.raises(ValueError, match="span lists"):
        enc.encode_spans(["a"], [])
