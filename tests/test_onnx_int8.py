"""The int8 MiniLM backend (``backend = "onnx-int8"``): quantized offline once, atomically, hash-checked; its vectors
approximate fp32; ONNX Runtime thread settings follow the machine or the ``threads`` option."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from groundwire.plugins import embedders, onnx_minilm

pytestmark = pytest.mark.slow

TEXTS = [
    "How many days of annual leave do I get?",
    "Expenses are paid with the next monthly salary. " * 60,  # over the 256-token limit: truncated
    "The salary review budget is 3.5 percent of payroll.",
    "x",
    "Dense retrieval with sentence embeddings ranks passages by cosine similarity to the question.",
]


@pytest.fixture
def fp32_copy(tmp_path: Path) -> Path:
    """The exported fp32 model linked into a fresh folder, so the int8 file is made there (not in the cache)."""
    src = onnx_minilm.export_onnx(embedders.bundled_model_path())
    link = tmp_path / "model.onnx"
    link.symlink_to(src)
    return link


def test_int8_is_made_once_hash_checked_and_approximates_fp32(fp32_copy: Path) -> None:
    out = onnx_minilm.quantize_int8(fp32_copy)
    record = json.loads((out.parent / "model-int8.json").read_text())
    assert out.is_file() and record["sha256"] and not list(out.parent.glob(".*.tmp"))
    mtime = out.stat().st_mtime_ns
    assert onnx_minilm.quantize_int8(fp32_copy) == out and out.stat().st_mtime_ns == mtime  # reused
    out.write_bytes(b"damaged")  # a file that does not match its record is made again, never loaded
    assert onnx_minilm.quantize_int8(fp32_copy) == out and out.stat().st_size > 1_000_000
    model_dir = embedders.bundled_model_path()
    int8 = onnx_minilm.OnnxSentenceEncoder(model_dir, threads=1, quantized=True)
    fp32 = embedders.load_sentence_transformer(model_dir, "onnx")
    a, b = fp32.encode(TEXTS, batch_size=2), int8.encode(TEXTS, batch_size=2)
    assert a.shape == b.shape == (len(TEXTS), 384)
    assert np.allclose(np.linalg.norm(b, axis=1), 1.0, atol=1e-5)
    assert ((a * b).sum(axis=1)).min() > 0.97
    # one text per model run: a text's int8 vector is the same whatever it is embedded with, in the caller's order
    single = np.stack([int8.encode([t])[0] for t in TEXTS])
    assert np.array_equal(single, b)
    again = int8.encode(TEXTS[::-1] + TEXTS[:2], batch_size=8)
    assert np.array_equal(again[: len(TEXTS)][::-1], b) and np.array_equal(again[len(TEXTS) :], b[:2])
    vecs, states = int8.encode_tokens(TEXTS[:3], batch_size=3)
    assert np.array_equal(vecs, b[:3]) and [s.shape[0] for s in states] == [len(int8.tokenizer.encode(t).ids)
                                                                         for t in TEXTS[:3]]


def test_int8_backend_through_the_embedder_and_thread_settings() -> None:
    e = embedders.MiniLMEmbedder(backend="onnx-int8", threads=1)
    v = e.embed_documents(TEXTS[:3])
    assert v.shape == (3, 384) and e.model.quantized and e.model.path.name == "model-int8.onnx"
    opts = e.model.session.get_session_options()
    assert (opts.intra_op_num_threads, opts.inter_op_num_threads) == (1, 1)
    auto = embedders.load_sentence_transformer(embedders.bundled_model_path(), "onnx")
    assert auto.threads == onnx_minilm.physical_cores() >= 1
    assert auto.session.get_session_options().intra_op_num_threads == auto.threads
    with pytest.raises(ValueError, match="threads"):
        embedders.MiniLMEmbedder(threads=-1)


def test_int8_made_again_when_its_recorded_settings_differ(fp32_copy: Path) -> None:
    """A cache made by another recipe (recorded settings differ) is never loaded: the file is made again."""
    out = onnx_minilm.quantize_int8(fp32_copy)
    record_path = out.parent / "model-int8.json"
    record = json.loads(record_path.read_text())
    assert record["settings"] == onnx_minilm.INT8_SETTINGS
    record["settings"] = {**record["settings"], "per_channel": False}  # as an older recipe would have recorded
    record_path.write_text(json.dumps(record))
    mtime = out.stat().st_mtime_ns
    again = onnx_minilm.quantize_int8(fp32_copy)
    assert again == out and out.stat().st_mtime_ns != mtime
    assert json.loads(record_path.read_text())["settings"] == onnx_minilm.INT8_SETTINGS


def test_int8_vectors_stay_close_to_fp32_on_longer_texts() -> None:
    """Real multi-sentence prose (this repository's README paragraphs, 50-256 tokens): every int8 vector is
    within a cosine bound of its fp32 vector, and each text's int8 vector is nearest to its own fp32 one."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    paras = [" ".join(p.split()) for p in readme.split("\n\n") if len(p) > 300][:48]
    assert len(paras) >= 24
    model_dir = embedders.bundled_model_path()
    fp32 = embedders.load_sentence_transformer(model_dir, "onnx")
    int8 = embedders.load_sentence_transformer(model_dir, "onnx-int8")
    a, b = fp32.encode(paras, batch_size=16), int8.encode(paras, batch_size=16)
    cos = (a * b).sum(axis=1)
    assert cos.min() > 0.97 and cos.mean() > 0.985
    assert np.argmax(b @ a.T, axis=1).tolist() == list(range(len(paras)))


def test_cpu_int8_dot_reads_the_vnni_flags() -> None:
    """``backend = "auto"`` picks int8 only where the CPU has an int8 dot product (VNNI)."""
    line = "flags\t\t: fpu sse2 avx2 avx512f {}\nbogomips\t: 5192.24\n"
    assert onnx_minilm.cpu_int8_dot(line.format("avx512_vnni avx512bw")) == "avx512_vnni"
    assert onnx_minilm.cpu_int8_dot(line.format("avx_vnni")) == "avx_vnni"
    assert onnx_minilm.cpu_int8_dot(line.format("avx512bw")) is None
    assert onnx_minilm.cpu_int8_dot("processor\t: 0\n") is None


def test_auto_backend_resolves_by_cpu_and_can_be_pinned(monkeypatch: pytest.MonkeyPatch) -> None:
    expected = "onnx-int8" if onnx_minilm.cpu_int8_dot() else "onnx"
    monkeypatch.delenv("GROUNDWIRE_AUTO_BACKEND", raising=False)
    assert embedders.auto_backend() == expected
    enc = embedders.load_sentence_transformer(embedders.bundled_model_path(), "auto")
    assert enc.quantized == (expected == "onnx-int8")
    monkeypatch.setenv("GROUNDWIRE_AUTO_BACKEND", "onnx")
    assert embedders.auto_backend() == "onnx"
    assert not embedders.load_sentence_transformer(embedders.bundled_model_path(), "auto").quantized
