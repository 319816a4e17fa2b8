"""Shared benchmark fixtures: cached synthetic corpora in real Chroma, ground truth, the LangChain baseline.

A synthetic corpus of ``n`` chunks has clustered 384-d vectors and nested ACL audiences: the principal
``group:sel<s>`` may read a fraction ``s`` of the rows (0.1%, 1%, 10%, 50%); every row also has an owner
``user:owner<j>``, two connectors, and 2% of rows deny ``user:bench`` (the benchmark user holds it).
Collections are built once through :class:`groundwire.index.TenantIndex` and cached on disk under
``benchmarks/.cache/synthetic-<n>/`` together with the vectors and the measured insertion rate.

A *real* corpus (``load_real_corpus``) has the same ACL layout over SciFact abstracts cut into chunks the
way ingestion cuts them, embedded with the bundled MiniLM (vectors cached under
``benchmarks/.cache/scifact-<n>/``); its queries are the MiniLM embeddings of SciFact's claims.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import resource
import time
from collections.abc import Sequence
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
# SciFact (BEIR format) lives in ../shared/data beside the clone; SCIFACT=... points elsewhere
SCIFACT = os.environ.get("SCIFACT", str(Path(__file__).resolve().parents[2] / "shared" / "data" / "scifact"))


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
    kind: str = "synthetic"
    query_vectors: np.ndarray | None = None  # real corpora: embedded questions

    def allowed_mask(self, s: float) -> np.ndarray:
        return (self.allow_u < s) & ~self.denied

    def queries(self, count: int, seed: int = 7) -> np.ndarray:
        if self.query_vectors is not None:
            return self.query_vectors[:count]
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


def _open_or_build(
    folder: Path, n: int, vec: np.ndarray, allow_u: np.ndarray, denied: np.ndarray, wiki: np.ndarray,
    texts: list[str] | None, progress: bool,
) -> tuple[Any, TenantIndex, float]:
    client = make_client("embedded", folder / "chroma")
    tindex = Index(client, "synthetic-384", DIM).tenant(TENANT)
    meta_file = folder / "meta.json"
    if meta_file.is_file() and tindex.count() == n:
        return client, tindex, float(json.loads(meta_file.read_text())["insert_per_s"])
    t0 = time.perf_counter()
    step = 5000
    for start in range(0, n, step):
        chunks = []
        for i in range(start, min(n, start + step)):
            allow = [sel_token(s) for s in SELECTIVITIES if allow_u[i] < s] + [f"user:owner{i % 997}"]
            chunks.append(
                Chunk(id=f"s{i}", doc_id=f"d{i}", connector="wiki" if wiki[i] else "kb", tenant=TENANT,
                      text=texts[i] if texts else f"synthetic chunk {i}", title=f"doc {i}",
                      uri=f"https://example.test/{i}", location="",
                      acl=AccessControl.of(allow, ["user:bench"] if denied[i] else []), position=0)
            )
        tindex.add_document_chunks(chunks, vec[start : start + len(chunks)], "v1", "h")
        if progress:
            print(f"  built {start + len(chunks)}/{n} chunks", flush=True)
    rate = n / (time.perf_counter() - t0)
    meta_file.write_text(json.dumps({"insert_per_s": rate}))
    return client, tindex, rate


def load_corpus(n: int, progress: bool = True) -> Corpus:
    """Build (once) or reopen the cached synthetic corpus of ``n`` chunks."""
    vec, allow_u, denied, wiki = _synthetic(n)
    client, tindex, rate = _open_or_build(CACHE / f"synthetic-{n}", n, vec, allow_u, denied, wiki, None, progress)
    return Corpus(n, client, tindex, vec, allow_u, denied, rate)


def scifact_chunks(limit: int, size: int = 800, overlap: int = 120) -> list[str]:
    """SciFact abstracts cut into chunks as ingestion cuts them (title line first, as ingestion embeds)."""
    from groundwire.chunking import split_text

    from benchmarks.beir import load_corpus as load_beir

    out: list[str] = []
    for body in load_beir(SCIFACT).values():
        out.extend(split_text(body, size, overlap))
        if len(out) >= limit:
            break
    if len(out) < limit:
        raise SystemExit(f"SciFact at {SCIFACT} gives only {len(out)} chunks; ask for at most that many")
    return out[:limit]


def load_real_corpus(n: int, progress: bool = True, queries: int = 300) -> Corpus:
    """``n`` SciFact chunks with real MiniLM vectors (embedded once, cached) and the synthetic ACL layout."""
    from groundwire.plugins.embedders import MiniLMEmbedder

    from benchmarks.beir import load_queries

    folder = CACHE / f"scifact-{n}"
    folder.mkdir(parents=True, exist_ok=True)
    texts = scifact_chunks(n)
    vec_file, q_file = folder / "vectors.npy", folder / "queries.npy"
    bigger = sorted(
        (p for p in CACHE.glob("scifact-*") if p.name[8:].isdigit() and int(p.name[8:]) > n
         and (p / "vectors.npy").is_file() and (p / "queries.npy").is_file()),
        key=lambda p: int(p.name[8:]),
    )
    if not (vec_file.is_file() and q_file.is_file()) and bigger:  # the same chunks lead a bigger corpus
        np.save(vec_file, np.load(bigger[0] / "vectors.npy")[:n])
        np.save(q_file, np.load(bigger[0] / "queries.npy"))
    if not (vec_file.is_file() and q_file.is_file()):
        emb = MiniLMEmbedder()
        if progress:
            print(f"  embedding {n} SciFact chunks with MiniLM (cached afterwards) ...", flush=True)
        parts = []
        for start in range(0, n, 512):
            parts.append(emb.embed_documents(texts[start : start + 512]))
            if progress:
                print(f"  embedded {min(n, start + 512)}/{n}", flush=True)
        np.save(vec_file, np.vstack(parts).astype(np.float32))
        np.save(q_file, emb.embed_documents(list(load_queries(SCIFACT).values())[:queries]))
    vec = np.load(vec_file)
    _, allow_u, denied, wiki = _synthetic(n)
    client, tindex, rate = _open_or_build(folder, n, vec, allow_u, denied, wiki, texts, progress)
    return Corpus(n, client, tindex, vec, allow_u, denied, rate, kind="scifact", query_vectors=np.load(q_file))


def langchain_baseline(corpus: Corpus) -> Any:
    """LangChain's Chroma vector store over the same collection (no embedding function needed)."""
    from langchain_chroma import Chroma

    # the index's current client: it reopens its embedded client when needed (e.g. the first ACL-store read),
    # which closes the one the corpus was opened with
    client = getattr(getattr(corpus.tindex, "_owner", None), "client", None) or corpus.client
    return Chroma(client=client, collection_name=corpus.tindex.collection.name,
                  create_collection_if_not_exists=False)


def baseline_search(store: Any, q: np.ndarray, where: dict[str, Any], k: int = K) -> list[str]:
    docs = store.similarity_search_by_vector(q.tolist(), k=k, filter=where)
    return [str(d.id) for d in docs]


def recall(got: list[str], truth: list[str]) -> float:
    return len(set(got) & set(truth)) / max(1, len(truth))



class DiskMemo:
    """Values computed per text, memoised on disk: keys are a BLAKE2b digest of each text; the pickle at ``path``
    is read once per process; only texts not seen before go to ``compute`` (texts -> one value each), ``batch``
    at a time. The pickle is rewritten after each batch when ``save_each_batch`` (a long run stopped halfway
    keeps what it computed), else once per call. :meth:`values` returns the stored values in the caller's order."""

    def __init__(self, path: Path, compute: Any, batch: int, save_each_batch: bool = False) -> None:
        self.path, self.compute, self.batch, self.save_each_batch = path, compute, batch, save_each_batch
        self._store: dict[str, Any] | None = None

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_bytes(pickle.dumps(self._store))

    def values(self, texts: Sequence[str]) -> list[Any]:
        if self._store is None:
            self._store = pickle.loads(self.path.read_bytes()) if self.path.exists() else {}
        store = self._store
        keys = [hashlib.blake2b(t.encode(), digest_size=12).hexdigest() for t in texts]
        miss = sorted({k: t for k, t in zip(keys, texts, strict=True) if k not in store}.items())
        for i in range(0, len(miss), self.batch):
            part = miss[i : i + self.batch]
            store.update(zip([k for k, _ in part], self.compute([t for _, t in part]), strict=True))
            if self.save_each_batch:
                self._save()
        if miss and not self.save_each_batch:
            self._save()
        return [store[k] for k in keys]


class EmbeddingMemo(DiskMemo):
    """Bundled-MiniLM vectors of texts as ``prompt_shield.embed`` gives them (always more than one text per call,
    so the shield's query memo is not used), memoised by :class:`DiskMemo`, stored as ``dtype``; calling it
    returns a float32 ``(n, 384)`` array."""

    def __init__(self, path: Path, batch: int, dtype: Any = np.float32, save_each_batch: bool = False) -> None:
        super().__init__(path, self._embed, batch, save_each_batch)
        self.dtype = dtype

    def _embed(self, texts: list[str]) -> list[np.ndarray]:
        from groundwire.plugins import prompt_shield as ps

        return [np.asarray(v, dtype=self.dtype) for v in ps.embed([*texts, "", ""])[: len(texts)]]

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        rows = self.values(texts)
        return np.stack(rows).astype(np.float32, copy=False) if rows else np.zeros((0, 384), np.float32)
