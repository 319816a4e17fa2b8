"""Shared benchmark fixtures: cached synthetic corpora in real Chroma, ground truth, the LangChain baseline.

A synthetic corpus of ``n`` chunks has clustered 384-d vectors and nested ACL audiences: the principal
``group:sel<s>`` may read a fraction ``s`` of the rows (0.1%, 1%, 10%, 50%); every row also has an owner
``user:owner<j>``, two connectors, and 2% of rows deny ``user:bench`` (the benchmark user holds it).
Collections are built once through :class:`groundwire.index.TenantIndex` and cached on disk under
``benchmarks/.cache/synthetic-<n>/`` together with the vectors and the measured insertion rate.
"""

from __future__ import annotations

import json
import resource
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from groundwire import AccessControl
from groundwire.index import Index, TenantIndex, make_client, principal_filter
from groundwire.models import Chunk

CACHE = Path(__file__).parent / ".cache"
RESULTS = Path(__file__).parent / "results"
DIM = 384
SELECTIVITIES = (0.001, 0.01, 0.1, 0.5)
CONNECTORS = ["kb", "wiki"]
K = 10
TENANT = "bench"


def sel_token(s: float) -> str:
    return f"group:sel{s:g}"


def user_principals(s: float) -> frozenset[str]:
    return frozenset({sel_token(s), "user:bench"})


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@dataclass
class Corpus:
    n: int
    client: Any
    tindex: TenantIndex
    vectors: np.ndarray  # (n, DIM) unit rows, row i is chunk id f"s{i}"
    allow_u: np.ndarray  # row i readable by group:sel<s> iff allow_u[i] < s
    denied: np.ndarray  # row i denies user:bench
    insert_per_s: float

    def allowed_mask(self, s: float) -> np.ndarray:
        return (self.allow_u < s) & ~self.denied

    def queries(self, count: int, seed: int = 7) -> np.ndarray:
        rng = np.random.default_rng(seed)
        q = self.vectors[rng.integers(0, self.n, count)] + rng.normal(scale=0.05, size=(count, DIM))
        return (q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float32)

    def truth(self, q: np.ndarray, s: float, k: int = K) -> list[str]:
        rows = np.flatnonzero(self.allowed_mask(s))
        scores = self.vectors[rows] @ q
        top = rows[np.argsort(-scores)[:k]]
        return [f"s{i}" for i in top]

    def where(self, s: float) -> dict[str, Any]:
        return principal_filter(user_principals(s), CONNECTORS)


def _synthetic(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centroids = rng.normal(size=(max(8, n // 500), DIM))
    vec = centroids[rng.integers(0, len(centroids), n)] + rng.normal(scale=0.6, size=(n, DIM))
    vec = (vec / np.linalg.norm(vec, axis=1, keepdims=True)).astype(np.float32)
    return vec, rng.random(n), rng.random(n) < 0.02, rng.random(n) < 0.1


def load_corpus(n: int, progress: bool = True) -> Corpus:
    """Build (once) or reopen the cached synthetic corpus of ``n`` chunks."""
    folder = CACHE / f"synthetic-{n}"
    vec, allow_u, denied, wiki = _synthetic(n)
    client = make_client("embedded", folder / "chroma")
    tindex = Index(client, "synthetic-384", DIM).tenant(TENANT)
    meta_file = folder / "meta.json"
    if meta_file.is_file() and tindex.count() == n:
        meta = json.loads(meta_file.read_text())
    else:
        t0 = time.perf_counter()
        step = 5000
        for start in range(0, n, step):
            chunks = []
            for i in range(start, min(n, start + step)):
                allow = [sel_token(s) for s in SELECTIVITIES if allow_u[i] < s] + [f"user:owner{i % 997}"]
                chunks.append(
                    Chunk(id=f"s{i}", doc_id=f"d{i}", connector="wiki" if wiki[i] else "kb", tenant=TENANT,
                          text=f"synthetic chunk {i}", title=f"doc {i}", uri=f"https://example.test/{i}",
                          location="", acl=AccessControl.of(allow, ["user:bench"] if denied[i] else []),
                          position=0)
                )
            tindex.add_document_chunks(chunks, vec[start : start + len(chunks)], "v1", "h")
            if progress:
                print(f"  built {start + len(chunks)}/{n} chunks", flush=True)
        meta = {"insert_per_s": n / (time.perf_counter() - t0)}
        meta_file.write_text(json.dumps(meta))
    return Corpus(n, client, tindex, vec, allow_u, denied, float(meta["insert_per_s"]))


def langchain_baseline(corpus: Corpus) -> Any:
    """LangChain's Chroma vector store over the same collection (no embedding function needed)."""
    from langchain_chroma import Chroma

    return Chroma(client=corpus.client, collection_name=corpus.tindex.collection.name,
                  create_collection_if_not_exists=False)


def baseline_search(store: Any, q: np.ndarray, where: dict[str, Any], k: int = K) -> list[str]:
    docs = store.similarity_search_by_vector(q.tolist(), k=k, filter=where)
    return [str(d.id) for d in docs]


def recall(got: list[str], truth: list[str]) -> float:
    return len(set(got) & set(truth)) / max(1, len(truth))
