"""The embedder contract: text in, L2-normalised float32 vectors out.

Embedders are registered by plugins (``register_embedders``) and chosen by ``[embedder] name``.
The core wraps the chosen one in :class:`CachedEmbedder` so repeated queries are not re-embedded.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

__all__ = ["CachedEmbedder", "Embedder", "Vectors"]

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


class CachedEmbedder(Embedder):
    """An LRU cache of query embeddings in front of another embedder (thread-safe)."""

    name = "cached"

    def __init__(self, inner: Embedder, size: int = 1024) -> None:
        super().__init__()
        self.inner = inner
        self.dimension = inner.dimension
        self.size = size
        self._cache: OrderedDict[str, Vectors] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @property
    def model_id(self) -> str:
        return self.inner.model_id

    def warm_up(self) -> None:
        self.inner.warm_up()

    def embed_documents(self, texts: Sequence[str]) -> Vectors:
        return self.inner.embed_documents(texts)

    def embed_query(self, text: str) -> Vectors:
        with self._lock:
            hit = self._cache.get(text)
            if hit is not None:
                self._cache.move_to_end(text)
                self.hits += 1
                return hit
        vec = self.inner.embed_query(text)
        vec.setflags(write=False)
        with self._lock:
            self.misses += 1
            self._cache[text] = vec
            if len(self._cache) > self.size:
                self._cache.popitem(last=False)
        return vec
