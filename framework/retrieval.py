"""Fast, permission-aware retrieval: an in-memory search layer per tenant in front of Chroma.

Chroma stays the durable store and the source of truth. :class:`FastRetriever` loads one tenant's
vectors and ACL metadata into memory and answers queries with the same permission semantics as
:meth:`groundwire.index.TenantIndex.query`: a chunk is eligible when its connector is one of the
requested connectors, its ``acl_allow`` list holds at least one of the caller's principals, and its
``acl_deny`` list holds none of them ("nobody:" is the empty-list sentinel and never matches).

Layout: rows are sorted by *ACL group* (connector, allow list, deny list), so each group is one
contiguous slice of the float32 matrix. Posting lists map each principal token to the sorted ids of
the groups that allow (or deny) it. A query unions the allow postings of the caller's principals,
removes deny hits and foreign connectors, and merges the surviving groups into contiguous row runs.

Planning by selectivity: when the permitted set has at most ``exact_max_rows`` rows, an exact
dot-product over the runs (no copy of the matrix) ranks them. Otherwise Chroma's unfiltered ANN query
is asked for ``k * overfetch / selectivity`` ids (ids and distances only, never payloads), the same
permission filter is applied in memory, and if fewer than ``k`` survive while ``k`` are permitted the
exact scan runs instead, so results are never short.

Invariants:
- Payloads are fetched only via :meth:`TenantIndex.get_chunks`, which filters by principals again in
  Chroma: a stale cache can drop a result, never leak one.
- Freshness: :class:`~groundwire.index.TenantIndex` bumps ``generation`` after every write made
  through it, and the cache reloads before the next query when the number differs (immediate for
  syncs in this process). Writes from another process are caught by comparing ``collection.count()``
  every ``refresh_seconds`` and by :meth:`FastRetriever.retrieve` reloading when Chroma rejects an id
  the cache thought permitted. ACL grants made by another process appear after the next reload.
- Scores are cosine similarities (``1 - chroma cosine distance``), also in hybrid mode, where the
  fused rank decides the order but ``score`` stays the dense cosine so ``min_score`` keeps its meaning.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from .errors import MissingExtra
from .index import NOBODY, TenantIndex
from .models import Chunk

__all__ = ["FastRetriever", "Hit", "SearchResult", "Snapshot", "load_snapshot"]

_PAGE = 5000
_MAX_RUNS = 512  # above this many row runs, gather the rows with one fancy index instead
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class Hit:
    id: str
    score: float


@dataclass(slots=True)
class SearchResult:
    hits: list[Hit]
    plan: str  # "empty" | "exact" | "ann" | "ann+exact"; with "+bm25" in hybrid mode
    permitted: int


@dataclass
class Snapshot:
    """An immutable in-memory copy of one tenant's collection (rows sorted by ACL group)."""

    generation: int
    count: int
    ids: list[str]
    row_of: dict[str, int]
    vectors: npt.NDArray[np.float32]  # (n, d), unit rows
    row_group: npt.NDArray[np.int32]  # (n,)
    group_start: IntArray  # (G,)
    group_end: IntArray  # (G,)
    group_connector: list[str]
    allow_post: dict[str, IntArray]
    deny_post: dict[str, IntArray]
    connector_names: list[str] = field(default_factory=list)
    group_connector_code: npt.NDArray[np.int32] = field(default_factory=lambda: np.zeros(0, dtype=np.int32))
    texts: list[str] | None = None
    bm25: Any = None
    loaded_at: float = field(default_factory=time.monotonic)

    @property
    def size(self) -> int:
        return len(self.ids)

    # --- permission filter ---------------------------------------------------------------------------

    def group_mask(self, principals: Iterable[str], connectors: Sequence[str]) -> npt.NDArray[np.bool_]:
        ps = sorted(set(principals) - {NOBODY})
        if not ps or not connectors:
            raise ValueError("a query needs at least one principal and one connector")
        g = len(self.group_start)
        mask = np.zeros(g, dtype=bool)
        for p in ps:
            post = self.allow_post.get(p)
            if post is not None:
                mask[post] = True
        for p in ps:
            post = self.deny_post.get(p)
            if post is not None:
                mask[post] = False
        names = self.connector_names
        if any(c not in connectors for c in names):
            codes = [i for i, c in enumerate(names) if c in connectors]
            mask &= np.isin(self.group_connector_code, codes)
        return mask

    def runs(self, gmask: npt.NDArray[np.bool_]) -> tuple[IntArray, IntArray]:
        """Contiguous ``[start, end)`` row runs covering the permitted groups (adjacent groups merged)."""
        sel = np.flatnonzero(gmask)
        if sel.size == 0:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty
        starts, ends = self.group_start[sel], self.group_end[sel]
        brk = np.flatnonzero(starts[1:] != ends[:-1]) + 1
        return starts[np.r_[0, brk]], ends[np.r_[brk - 1, sel.size - 1]]

    def rows(self, starts: IntArray, ends: IntArray) -> IntArray:
        if starts.size == 0:
            return np.zeros(0, dtype=np.int64)
        return np.concatenate([np.arange(s, e) for s, e in zip(starts.tolist(), ends.tolist(), strict=True)])

    # --- scoring -------------------------------------------------------------------------------------

    def exact(
        self, q: npt.NDArray[np.float32], starts: IntArray, ends: IntArray
    ) -> tuple[IntArray, npt.NDArray[np.float32]]:
        """Rows and cosine scores of every permitted row (slices of the matrix, no copy when few runs)."""
        total = int((ends - starts).sum())
        if starts.size > _MAX_RUNS:
            rows = self.rows(starts, ends)
            return rows, self.vectors[rows] @ q
        scores = np.empty(total, dtype=np.float32)
        rows = np.empty(total, dtype=np.int64)
        pos = 0
        for s, e in zip(starts.tolist(), ends.tolist(), strict=True):
            n = e - s
            scores[pos : pos + n] = self.vectors[s:e] @ q  # BLAS gemv; matmul(out=...) is far slower
            rows[pos : pos + n] = np.arange(s, e)
            pos += n
        return rows, scores


_BLAS: list[Any] = []  # the threadpoolctl controller, inspected once per process (about 1 ms)


def blas_threads(threads: int) -> contextlib.AbstractContextManager[Any]:
    """Limit BLAS (numpy's OpenBLAS) to ``threads`` threads inside the block; 0 leaves it alone.

    A permitted-rows scan is a matrix-vector product: a single BLAS thread does it in well under a
    millisecond at 10k rows, while a multi-threaded BLAS leaves its worker threads spinning after each
    call and takes the cores from the next query's embedding (ONNX Runtime or torch): on 2 cores the
    end-to-end p50 at 100k chunks went from 8 to 22 ms (benchmarks.run). The limit costs ~0.3 ms.
    """
    if threads <= 0:
        return contextlib.nullcontext()
    if not _BLAS:
        try:
            from threadpoolctl import ThreadpoolController

            _BLAS.append(ThreadpoolController())
        except ImportError:  # pragma: no cover - a dependency
            _BLAS.append(None)
    ctl = _BLAS[0]
    return contextlib.nullcontext() if ctl is None else ctl.limit(limits=threads, user_api="blas")


def _top(rows: IntArray, scores: npt.NDArray[Any], k: int) -> tuple[IntArray, npt.NDArray[Any]]:
    if rows.size > k:
        part = np.argpartition(-scores, k - 1)[:k]
        rows, scores = rows[part], scores[part]
    order = np.lexsort((rows, -scores))  # best first; ties by row for determinism
    return rows[order], scores[order]


def _unit(v: Any) -> npt.NDArray[np.float32]:
    a = np.asarray(v, dtype=np.float32)
    norms = np.linalg.norm(a, axis=-1, keepdims=True)
    norms[norms == 0] = 1.0
    return np.ascontiguousarray(a / norms, dtype=np.float32)


def load_snapshot(tindex: TenantIndex, with_text: bool = False) -> Snapshot:
    """Read the whole collection (paged) and build the in-memory layout."""
    for _ in range(5):
        generation = tindex.generation
        ids: list[str] = []
        vecs: list[Any] = []
        metas: list[dict[str, Any]] = []
        docs: list[str] = []
        include = ["embeddings", "metadatas"] + (["documents"] if with_text else [])
        offset = 0
        while True:
            got = tindex.collection.get(include=include, limit=_PAGE, offset=offset)
            page = got["ids"]
            ids += page
            if page:
                vecs.append(np.asarray(got["embeddings"], dtype=np.float32))
                metas += got["metadatas"]
                if with_text:
                    docs += got["documents"]
            if len(page) < _PAGE:
                break
            offset += _PAGE
        if tindex.generation == generation:
            break
    keys = [
        (str(m["connector"]), tuple(sorted(m["acl_allow"])), tuple(sorted(m["acl_deny"]))) for m in metas
    ]
    # deny lists first (rare), then allow lists: the rows a principal may read form few contiguous runs
    order = sorted(range(len(ids)), key=lambda i: (keys[i][2], keys[i][1], keys[i][0], ids[i]))
    group_of: dict[tuple[str, tuple[str, ...], tuple[str, ...]], int] = {}
    row_group = np.empty(len(ids), dtype=np.int32)
    starts: list[int] = []
    for row, i in enumerate(order):
        gid = group_of.setdefault(keys[i], len(group_of))
        if gid == len(starts):
            starts.append(row)
        row_group[row] = gid
    ends = starts[1:] + [len(ids)]
    allow: dict[str, list[int]] = {}
    deny: dict[str, list[int]] = {}
    for (_, a, d), gid in group_of.items():
        for p in a:
            if p != NOBODY:
                allow.setdefault(p, []).append(gid)
        for p in d:
            if p != NOBODY:
                deny.setdefault(p, []).append(gid)
    dim = vecs[0].shape[1] if vecs else 0
    matrix = _unit(np.concatenate(vecs)[order]) if vecs else np.zeros((0, dim), dtype=np.float32)
    sorted_ids = [ids[i] for i in order]
    snap = Snapshot(
        generation=generation,
        count=len(ids),
        ids=sorted_ids,
        row_of={cid: r for r, cid in enumerate(sorted_ids)},
        vectors=matrix,
        row_group=row_group,
        group_start=np.asarray(starts, dtype=np.int64),
        group_end=np.asarray(ends, dtype=np.int64),
        group_connector=[k[0] for k in group_of],
        allow_post={p: np.asarray(v, dtype=np.int64) for p, v in allow.items()},
        deny_post={p: np.asarray(v, dtype=np.int64) for p, v in deny.items()},
    )
    snap.connector_names = sorted(set(snap.group_connector))
    code = {c: i for i, c in enumerate(snap.connector_names)}
    snap.group_connector_code = np.asarray([code[c] for c in snap.group_connector], dtype=np.int32)
    if with_text:
        texts = []
        for i in order:
            payload = json.loads(tindex.codec.decode(docs[i], ids[i]))
            texts.append(f"{payload.get('title', '')}\n{payload.get('text', '')}")
        snap.texts = texts
        if texts:
            try:
                import bm25s
            except ImportError as exc:
                raise MissingExtra("hybrid retrieval", "hybrid") from exc
            bm = bm25s.BM25()
            bm.index(bm25s.tokenize(texts, stopwords="en", show_progress=False), show_progress=False)
            snap.bm25 = bm
    return snap


class FastRetriever:
    """Permission-aware search over one tenant, planned by filter selectivity (see module docstring)."""

    def __init__(
        self,
        tindex: TenantIndex,
        *,
        exact_max_rows: int = 20000,
        overfetch: float = 4.0,
        hybrid: bool = False,
        rrf_k: int = 60,
        dense_weight: float = 1.0,
        bm25_weight: float = 1.0,
        candidates: int = 50,
        refresh_seconds: float = 2.0,
        blas_threads: int = 1,
    ) -> None:
        self.tindex = tindex
        self.blas_threads = blas_threads
        self.exact_max_rows = exact_max_rows
        self.overfetch = overfetch
        self.hybrid = hybrid
        self.rrf_k = rrf_k
        self.dense_weight = dense_weight
        self.bm25_weight = bm25_weight
        self.candidates = candidates
        self.refresh_seconds = refresh_seconds
        self._snap: Snapshot | None = None
        self._checked = 0.0
        self._lock = threading.Lock()
        self.reloads = 0

    # --- cache ---------------------------------------------------------------------------------------

    def invalidate(self) -> None:
        with self._lock:
            self._snap = None

    def snapshot(self) -> Snapshot:
        """The current snapshot, reloaded when the index changed (generation or, periodically, count)."""
        snap = self._snap
        now = time.monotonic()
        stale = snap is None or snap.generation != self.tindex.generation
        if not stale and snap is not None and now - self._checked >= self.refresh_seconds:
            self._checked = now
            stale = self.tindex.count() != snap.count
        if not stale and snap is not None:
            return snap
        with self._lock:
            snap = self._snap
            if snap is None or snap.generation != self.tindex.generation or stale:
                snap = load_snapshot(self.tindex, with_text=self.hybrid)
                self._snap = snap
                self._checked = time.monotonic()
                self.reloads += 1
            return snap

    # --- search --------------------------------------------------------------------------------------

    def search(
        self,
        vector: Any,
        principals: Iterable[str],
        connectors: Sequence[str],
        k: int,
        text: str | None = None,
    ) -> SearchResult:
        """Ids and cosine scores of the best ``k`` permitted chunks (no payloads)."""
        with blas_threads(self.blas_threads):
            return self._search(vector, principals, connectors, k, text)

    def _search(
        self, vector: Any, principals: Iterable[str], connectors: Sequence[str], k: int, text: str | None
    ) -> SearchResult:
        principals = frozenset(principals)
        if k <= 0 or not connectors:
            return SearchResult([], "empty", 0)
        snap = self.snapshot()
        if snap.size == 0:
            return SearchResult([], "empty", 0)
        q = _unit(vector).reshape(-1)
        gmask = snap.group_mask(principals, connectors)
        starts, ends = snap.runs(gmask)
        permitted = int((ends - starts).sum())
        if permitted == 0:
            return SearchResult([], "empty", 0)
        want = max(k, self.candidates) if self.hybrid and text else k
        rows, scores, plan = self._dense(snap, q, gmask, starts, ends, permitted, want)
        if self.hybrid and text and snap.bm25 is not None:
            rows, plan = self._fuse(snap, q, text, rows, starts, ends, k), plan + "+bm25"
            scores = snap.vectors[rows] @ q
        rows, scores = rows[:k], scores[:k]
        hits = [Hit(snap.ids[r], float(s)) for r, s in zip(rows.tolist(), scores.tolist(), strict=True)]
        return SearchResult(hits, plan, permitted)

    def _dense(
        self,
        snap: Snapshot,
        q: npt.NDArray[np.float32],
        gmask: npt.NDArray[np.bool_],
        starts: IntArray,
        ends: IntArray,
        permitted: int,
        k: int,
    ) -> tuple[IntArray, npt.NDArray[np.float32], str]:
        if permitted > self.exact_max_rows:
            fetch = min(snap.size, int(np.ceil(k * self.overfetch * snap.size / permitted)))
            res = self.tindex.collection.query(query_embeddings=q.reshape(1, -1), n_results=fetch,
                                               include=["distances"])
            rows_l, scores_l = [], []
            for cid, dist in zip(res["ids"][0], res["distances"][0], strict=True):
                r = snap.row_of.get(cid)
                if r is not None and gmask[snap.row_group[r]]:
                    rows_l.append(r)
                    scores_l.append(1.0 - float(dist))
            if len(rows_l) >= k or len(rows_l) >= permitted:
                found = np.asarray(rows_l, dtype=np.int64)
                rows, scores = _top(found, np.asarray(scores_l, dtype=np.float32), k)
                return rows, scores, "ann"
            plan = "ann+exact"
        else:
            plan = "exact"
        rows, scores = snap.exact(q, starts, ends)
        rows, scores = _top(rows, scores, k)
        return rows, scores, plan

    def _fuse(
        self, snap: Snapshot, q: npt.NDArray[np.float32], text: str, dense_rows: IntArray,
        starts: IntArray, ends: IntArray, k: int,
    ) -> IntArray:
        """Reciprocal rank fusion of the dense candidates and BM25 over the permitted rows only."""
        import bm25s

        tokens = bm25s.tokenize([text], stopwords="en", return_ids=False, show_progress=False)[0]
        fused: dict[int, float] = {}
        for rank, r in enumerate(dense_rows.tolist()):
            fused[r] = fused.get(r, 0.0) + self.dense_weight / (self.rrf_k + rank + 1)
        if tokens:
            all_scores = snap.bm25.get_scores(list(tokens))
            rows = snap.rows(starts, ends)
            bm = np.asarray(all_scores, dtype=np.float32)[rows]
            keep = bm > 0
            rows, bm = _top(rows[keep], bm[keep], max(k, self.candidates))
            for rank, r in enumerate(rows.tolist()):
                fused[r] = fused.get(r, 0.0) + self.bm25_weight / (self.rrf_k + rank + 1)
        order = sorted(fused, key=lambda r: (-fused[r], r))
        return np.asarray(order, dtype=np.int64)

    def retrieve(
        self,
        vector: Any,
        principals: Iterable[str],
        connectors: Sequence[str],
        k: int,
        text: str | None = None,
    ) -> list[Chunk]:
        """Search, then fetch the payloads via :meth:`TenantIndex.get_chunks` (which filters again)."""
        principals = frozenset(principals)
        for attempt in range(2):
            result = self.search(vector, principals, connectors, k, text)
            ids = [h.id for h in result.hits]
            chunks = self.tindex.get_chunks(ids, principals, connectors)
            if len(chunks) == len(ids) or attempt == 1:
                break
            self.invalidate()  # Chroma rejected an id the cache permitted: changed by another process
        score = {h.id: h.score for h in result.hits}
        return [dataclasses.replace(c, score=score[c.id]) for c in chunks]
