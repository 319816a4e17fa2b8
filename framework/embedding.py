"""The embedder contract: text in, L2-normalised float32 vectors out.

Embedders are registered by plugins (``register_embedders``) and chosen by ``[embedder] name``.
The core wraps the chosen one in :class:`CachedEmbedder` so repeated queries are not re-embedded; it
checks the first document batch and the first query vector (:func:`check_vectors`: declared dimension,
finite, unit length) and refuses a mismatching embedder with :class:`EmbedderMismatch` before anything
is indexed or searched. ``groundwire.testing.EmbedderContract`` runs the full contract in a test suite.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from .errors import GroundwireError

__all__ = ["CachedEmbedder", "Embedder", "EmbedderMismatch", "MemoEmbedder", "Vectors", "check_vectors"]

UNIT_TOLERANCE = 1e-3


class EmbedderMismatch(GroundwireError):
    """An embedder returned vectors that break its contract (shape, dimension, finiteness, unit length)."""

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"embedder {name!r} {problem}; fix the embedder (run groundwire.testing.EmbedderContract "
                         "against it) or choose another one in [embedder] name")
        self.embedder = name
        self.problem = problem


def check_vectors(embedder: Embedder, vectors: Any, rows: int | None) -> None:
    """Raise :class:`EmbedderMismatch` unless ``vectors`` is ``(rows, dimension)`` (or ``(dimension,)``
    for ``rows=None``, a query), floating point, finite and of unit length row by row."""
    name = getattr(embedder, "name", type(embedder).__name__)
    dim = getattr(embedder, "dimension", None)
    if not isinstance(dim, int) or dim < 1:
        raise EmbedderMismatch(name, f"declares no positive integer dimension (got {dim!r})")
    arr = np.asarray(vectors)
    want = (dim,) if rows is None else (rows, dim)
    if arr.shape != want:
        raise EmbedderMismatch(name, f"returned an array of shape {arr.shape}, expected {want} "
                                     f"(declared dimension {dim})")
    if not np.issubdtype(arr.dtype, np.floating):
        raise EmbedderMismatch(name, f"returned {arr.dtype} values, expected floats")
    if not np.all(np.isfinite(arr)):
        raise EmbedderMismatch(name, "returned NaN or infinite values")
    norms = np.linalg.norm(arr.reshape(-1, dim), axis=1)
    off = np.abs(norms - 1.0) > UNIT_TOLERANCE
    if np.any(off):
        raise EmbedderMismatch(name, f"returned vectors that are not unit length (norm {float(norms[off][0]):.4f}); "
                                     "cosine similarity is computed as a dot product")

Vectors = npt.NDArray[np.float32]


class Embedder(ABC):
    """Base class of embedders; ``name`` is the registry key, ``dimension`` the vector size."""

    name: ClassVar[str]
    dimension: int

    def __init__(self, **options: Any) -> None:
        self.options = options

    @property
    def model_id(self) -> str:
        """Identifies the vector space; stored with the index so a model change is detected."""
        return self.name

    def warm_up(self) -> None:
        """Load models now (e.g. before a progress bar starts) rather than on first use."""

    @abstractmethod
    def embed_documents(self, texts: Sequence[str]) -> Vectors:
        """Embed passages; returns an ``(n, dimension)`` array of unit vectors."""

    def embed_query(self, text: str) -> Vectors:
        """Embed one query; returns a ``(dimension,)`` unit vector."""
        vec: Vectors = self.embed_documents([text])[0]
        return vec

    #: whether :meth:`embed_with_spans` reads spans in their text's context from the same model run
    #: (``True``: "late chunking") or embeds each span's text on its own (the default implementation)
    pools_spans: bool = False

    def embed_with_spans(
        self, texts: Sequence[str], spans: Sequence[Sequence[tuple[int, int]]]
    ) -> tuple[Vectors, list[Vectors]]:
        """The texts' vectors (exactly :meth:`embed_documents`') and one unit vector per ``(start, end)``
        character span of each text. This default embeds each span's text on its own (a second model run);
        an embedder that can pool its token states per span overrides it and sets :attr:`pools_spans`."""
        if len(spans) != len(texts):
            raise ValueError(f"{len(spans)} span lists for {len(texts)} texts")
        vecs = self.embed_documents(texts)
        flat = [t[a:b].strip() or t for t, ss in zip(texts, spans, strict=True) for a, b in ss]
        distinct = list(dict.fromkeys(flat))  # a sentence repeated by chunk overlap is embedded once
        got = self.embed_documents(distinct) if distinct else np.zeros((0, self.dimension), np.float32)
        row = {t: i for i, t in enumerate(distinct)}
        out: list[Vectors] = []
        k = 0
        for ss in spans:
            out.append(np.asarray(np.asarray(got)[[row[t] for t in flat[k : k + len(ss)]]], dtype=np.float32))
            k += len(ss)
        return vecs, out


class _Wrapper(Embedder, ABC):
    """An embedder in front of another one (``inner``): same vector space (``model_id``, ``dimension``), same
    ``pools_spans``; ``warm_up`` loads the inner one."""

    def __init__(self, inner: Embedder) -> None:
        super().__init__()
        self.inner = inner
        self.dimension = inner.dimension

    @property
    def model_id(self) -> str:
        return self.inner.model_id

    @property
    def pools_spans(self) -> bool:  # type: ignore[override]
        return bool(self.inner.pools_spans)

    def warm_up(self) -> None:
        self.inner.warm_up()


class CachedEmbedder(_Wrapper):
    """An LRU cache of query embeddings in front of another embedder (thread-safe); ``size = 0`` turns the cache
    off but keeps the check of the first document batch and query vector (:func:`check_vectors`)."""

    name = "cached"

    def __init__(self, inner: Embedder, size: int = 1024) -> None:
        super().__init__(inner)
        self.size = size
        self._cache: OrderedDict[str, Vectors] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0
        self._checked_documents = False
        self._checked_query = False


    def embed_documents(self, texts: Sequence[str]) -> Vectors:
        vectors = self.inner.embed_documents(texts)
        if not self._checked_documents and texts:
            check_vectors(self.inner, vectors, len(texts))
            self._checked_documents = True
        return vectors

    def embed_with_spans(
        self, texts: Sequence[str], spans: Sequence[Sequence[tuple[int, int]]]
    ) -> tuple[Vectors, list[Vectors]]:
        if not self.inner.pools_spans:  # spans embedded alone: through this wrapper's embed_documents
            return super().embed_with_spans(texts, spans)
        vectors, per = self.inner.embed_with_spans(texts, spans)
        if not self._checked_documents and texts:
            check_vectors(self.inner, vectors, len(texts))
            rows = [p for p in per if len(p)]
            if rows:
                check_vectors(self.inner, np.vstack(rows), sum(len(p) for p in rows))
            self._checked_documents = True
        return vectors, per

    def embed_query(self, text: str) -> Vectors:
        with self._lock:
            hit = self._cache.get(text)
            if hit is not None:
                self._cache.move_to_end(text)
                self.hits += 1
                return hit
        vec = self.inner.embed_query(text)
        if not self._checked_query:
            check_vectors(self.inner, vec, None)
            self._checked_query = True
        vec.setflags(write=False)
        if self.size <= 0:  # cache off: only the contract check
            return vec
        with self._lock:
            self.misses += 1
            self._cache[text] = vec
            if len(self._cache) > self.size:
                self._cache.popitem(last=False)
        return vec


class MemoEmbedder(_Wrapper):
    """A memo in front of another embedder for one ingestion batch: each distinct text goes through the
    model once, however often it is asked for (two plugins embedding the same sentences, or sentences
    repeated by chunk overlap). ``seed`` pre-fills it (a chunk's index text -> its vector).

    Invariants: ``embed_documents`` returns exactly what the inner embedder returns for each text (rows
    are copied from the inner result, in the caller's order); queries are passed through unmemoised;
    ``model_id`` and ``dimension`` are the inner embedder's. Not shared across threads. ``calls`` and
    ``texts_embedded`` count what reached the inner embedder.
    """

    name = "memo"

    def __init__(self, inner: Embedder, seed: Mapping[str, Vectors] | None = None) -> None:
        super().__init__(inner)
        self._memo: dict[str, Vectors] = dict(seed or {})
        self.calls = 0
        self.texts_embedded = 0


    def embed_documents(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        missing = list(dict.fromkeys(t for t in texts if t not in self._memo))
        if missing:
            fresh = np.asarray(self.inner.embed_documents(missing), dtype=np.float32)
            self.calls += 1
            self.texts_embedded += len(missing)
            if fresh.shape[0] != len(missing):
                raise EmbedderMismatch(getattr(self.inner, "name", "?"), f"returned {fresh.shape[0]} vectors "
                                       f"for {len(missing)} texts")
            for t, v in zip(missing, fresh, strict=True):
                self._memo[t] = v
        return np.stack([self._memo[t] for t in texts]).astype(np.float32, copy=False)

    def embed_with_spans(
        self, texts: Sequence[str], spans: Sequence[Sequence[tuple[int, int]]]
    ) -> tuple[Vectors, list[Vectors]]:
        """The inner embedder's (not memoised: span vectors depend on their text); counted in ``calls``."""
        self.calls += 1
        self.texts_embedded += len(texts)
        vectors, per = self.inner.embed_with_spans(texts, spans)
        for t, v in zip(texts, np.asarray(vectors, dtype=np.float32), strict=True):
            self._memo.setdefault(t, v)
        return vectors, per

    def embed_query(self, text: str) -> Vectors:
        return self.inner.embed_query(text)
