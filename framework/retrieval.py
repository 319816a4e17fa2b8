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
is asked for ``max(k, ann_min_candidates) * overfetch / selectivity`` ids (ids only, never payloads),
the same permission filter is applied in memory, the survivors are re-scored exactly from the
snapshot, and if fewer than ``k`` survive while ``k`` are permitted the exact scan runs instead, so
results are never short.

Invariants:
- Payloads are fetched only via :meth:`TenantIndex.get_chunks`, which filters by principals again in
  Chroma: a stale cache can drop a result, never leak one.
- Freshness: every write bumps the tenant's generation (persisted in the data dir when there is one,
  see groundwire.freshness), and :meth:`FastRetriever.snapshot` compares it on every query, so writes
  by this or any other process sharing the data dir (ACL-only updates too) apply to the next query.
  Where the generation may not cover every writer (no state dir, or the HTTP backend with writers on
  other hosts), ``collection.count()`` is also compared every ``refresh_seconds``, and
  :meth:`FastRetriever.retrieve` reloads when Chroma rejects an id.
- Snapshots are loaded from the memory-mapped file of the current generation when one is intact
  (groundwire.snapfile), else from Chroma, which then writes that file for the next process.
- Hybrid mode: BM25 statistics come from the permitted rows only (groundwire.lexical), so rows a
  caller cannot read cannot change that caller's ranking on the exact plan.
- Scores are cosine similarities (``1 - chroma cosine distance``), also in hybrid mode, where the
  fused rank decides the order but ``score`` stays the dense cosine so ``min_score`` keeps its meaning.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from . import snapfile
from .index import NOBODY, TenantIndex
from .lexical import LexicalIndex
from .models import Chunk

__all__ = [
    "FastRetriever", "Hit", "SearchResult", "Snapshot", "load_snapshot", "snapshot_from_chroma", "snapshot_from_rows",
    "write_snapshot_file",
]

_log = logging.getLogger(__name__)

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

    generation: str
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
    lexical: LexicalIndex | None = None
    groups: list[tuple[str, tuple[str, ...], tuple[str, ...]]] = field(default_factory=list)  # (conn, allow, deny)
    source: str = "chroma"  # or "file": mapped from the snapshot file beside Chroma
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


def _read_chroma(tindex: TenantIndex, include: list[str]) -> tuple[str, dict[str, list[Any]]]:
    """Every row of the collection (paged) and the generation it is consistent with (retried while a
    write in this process or another moves the generation during the read)."""
    for _ in range(5):
        generation = tindex.generation
        out: dict[str, list[Any]] = {"ids": [], **{k: [] for k in include}}
        offset = 0
        while True:
            got = tindex.page(include, offset)
            page = got["ids"]
            out["ids"] += page
            for key in include:
                if page:
                    out[key].append(np.asarray(got[key], dtype=np.float32)) if key == "embeddings" \
                        else out[key].extend(got[key])
            if len(page) < _PAGE:
                break
            offset += _PAGE
        if tindex.generation == generation:
            break
    return generation, out


def _payload_texts(tindex: TenantIndex, ids: list[str], docs: list[str]) -> list[str]:
    texts = []
    for cid, stored in zip(ids, docs, strict=True):
        payload = json.loads(tindex.codec.decode(stored, cid))
        texts.append(f"{payload.get('title', '')}\n{payload.get('text', '')}")
    return texts


def _layout(
    generation: str, sorted_ids: list[str], matrix: npt.NDArray[np.float32], row_group: npt.NDArray[np.int32],
    starts: IntArray, ends: IntArray, groups: list[tuple[str, tuple[str, ...], tuple[str, ...]]],
) -> Snapshot:
    allow: dict[str, list[int]] = {}
    deny: dict[str, list[int]] = {}
    for gid, (_, a, d) in enumerate(groups):
        for p in a:
            if p != NOBODY:
                allow.setdefault(p, []).append(gid)
        for p in d:
            if p != NOBODY:
                deny.setdefault(p, []).append(gid)
    snap = Snapshot(
        generation=generation,
        count=len(sorted_ids),
        ids=sorted_ids,
        row_of={cid: r for r, cid in enumerate(sorted_ids)},
        vectors=matrix,
        row_group=row_group,
        group_start=starts,
        group_end=ends,
        group_connector=[g[0] for g in groups],
        allow_post={p: np.asarray(v, dtype=np.int64) for p, v in allow.items()},
        deny_post={p: np.asarray(v, dtype=np.int64) for p, v in deny.items()},
        groups=groups,
    )
    snap.connector_names = sorted(set(snap.group_connector))
    code = {c: i for i, c in enumerate(snap.connector_names)}
    snap.group_connector_code = np.asarray([code[c] for c in snap.group_connector], dtype=np.int32)
    return snap


def _group_key(meta: Any) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
    """(connector, allow, deny) of a row; a row with missing or malformed ACL metadata (read while another
    process rewrote it) goes into a group nobody can read: fail closed until the next reload."""
    try:
        allow, deny = meta["acl_allow"], meta["acl_deny"]
        if isinstance(allow, list) and isinstance(deny, list) and deny:
            return str(meta["connector"]), tuple(sorted(map(str, allow))), tuple(sorted(map(str, deny)))
    except (KeyError, TypeError):
        pass
    return "", (NOBODY,), (NOBODY,)


def snapshot_from_chroma(tindex: TenantIndex, with_text: bool = False) -> Snapshot:
    """Read the whole collection (paged) and build the in-memory layout."""
    include = ["embeddings", "metadatas"] + (["documents"] if with_text else [])
    generation, got = _read_chroma(tindex, include)
    return snapshot_from_rows(tindex, generation, got["ids"], got["embeddings"], got["metadatas"],
                              got["documents"] if with_text else None)


def snapshot_from_rows(
    tindex: TenantIndex, generation: str, ids: list[str], vecs: list[Any], metas: list[Any],
    docs: list[str] | None,
) -> Snapshot:
    """The layout of rows as Chroma returns them (``vecs``: pages of vectors; ``docs``: stored payloads,
    for hybrid mode)."""
    keys = [_group_key(m) for m in metas]
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
    dim = vecs[0].shape[1] if vecs else 0
    matrix = _unit(np.concatenate(vecs)[order]) if vecs else np.zeros((0, dim), dtype=np.float32)
    snap = _layout(generation, [ids[i] for i in order], matrix, row_group, np.asarray(starts, dtype=np.int64),
                   np.asarray(ends, dtype=np.int64), list(group_of))
    if docs is not None:
        texts = _payload_texts(tindex, [ids[i] for i in order], [docs[i] for i in order])
        snap.lexical = LexicalIndex.build(texts)
    return snap


def load_snapshot(tindex: TenantIndex, with_text: bool = False) -> Snapshot:
    """The snapshot at the tenant's current generation: from the memory-mapped file beside Chroma when
    one of this generation is intact, else from Chroma (then written to the file for the next process)."""
    base = tindex.snapshot_dir
    if base is None:
        return snapshot_from_chroma(tindex, with_text)
    snap = _from_file(tindex, base, with_text)
    if snap is not None:
        return snap
    with snapfile.build_lock(base):
        snap = _from_file(tindex, base, with_text)  # another worker may have built it while we waited
        if snap is not None:
            return snap
        snap = snapshot_from_chroma(tindex, with_text)
        if snap.generation == tindex.generation:  # still current: worth sharing
            write_snapshot_file(tindex, base, snap)
        return snap


def write_snapshot_file(tindex: TenantIndex, base: Path, snap: Snapshot) -> None:
    """Write ``snap`` as the tenant's snapshot file at ``snap.generation`` (see groundwire.snapfile)."""
    arrays: dict[str, np.ndarray] = {
        "vectors": snap.vectors, "row_group": snap.row_group, "group_start": snap.group_start,
        "group_end": snap.group_end,
        "ids": np.frombuffer("\x00".join(snap.ids).encode("utf-8"), dtype=np.uint8),
    }
    mapped = {"vectors"}
    meta: dict[str, Any] = {
        "count": snap.count, "dim": int(snap.vectors.shape[1]) if snap.vectors.ndim == 2 else 0,
        "groups": [[c, list(a), list(d)] for c, a, d in snap.groups],
    }
    lex = snap.lexical
    if lex is not None and tindex.codec.name == "identity":  # words only where Chroma holds them in clear
        arrays.update({"lex_term_ptr": lex.term_ptr, "lex_post_row": lex.post_row, "lex_post_tf": lex.post_tf,
                       "lex_row_len": lex.row_len})
        mapped |= {"lex_term_ptr", "lex_post_row", "lex_post_tf", "lex_row_len"}
        meta["vocab"] = lex.vocab
    try:
        snapfile.save(base, snap.generation, arrays, meta, frozenset(mapped))
    except OSError as exc:  # a read-only or full disk: serve from memory, say why once
        _log.warning("could not write the retrieval snapshot file under %s (%s); each process loads from Chroma",
                     base, exc)


def _from_file(tindex: TenantIndex, base: Path, with_text: bool) -> Snapshot | None:
    generation = tindex.generation
    got = snapfile.load(base, generation)
    if got is None:
        return None
    arrays, meta = got
    try:
        n, dim = int(meta["count"]), int(meta["dim"])
        ids = bytes(arrays["ids"]).decode("utf-8").split("\x00") if n else []
        groups = [(str(c), tuple(a), tuple(d)) for c, a, d in meta["groups"]]
        vectors, row_group = arrays["vectors"], arrays["row_group"]
        starts, ends = arrays["group_start"].astype(np.int64), arrays["group_end"].astype(np.int64)
        if (len(ids) != n or vectors.shape != (n, dim) or vectors.dtype != np.float32
                or row_group.shape != (n,) or len(starts) != len(groups) or len(ends) != len(groups)):
            return None
        snap = _layout(generation, ids, vectors, row_group.astype(np.int32), starts, ends, groups)
        snap.source = "file"
        if with_text:
            snap.lexical = _lexical_from_file(arrays, meta, n)
            if snap.lexical is None:  # not stored (encrypted payloads): words from Chroma, layout from file
                _, got_docs = _read_chroma(tindex, ["documents"])
                row = snap.row_of
                docs: list[str] = [""] * n
                for cid, stored in zip(got_docs["ids"], got_docs["documents"], strict=True):
                    r = row.get(cid)
                    if r is None:
                        return None  # changed meanwhile: rebuild
                    docs[r] = stored
                snap.lexical = LexicalIndex.build(_payload_texts(tindex, ids, docs))
    except (KeyError, TypeError, ValueError, UnicodeDecodeError):
        return None
    return snap if tindex.generation == generation else None


def _lexical_from_file(arrays: dict[str, np.ndarray], meta: dict[str, Any], n: int) -> LexicalIndex | None:
    if "lex_post_row" not in arrays or "vocab" not in meta:
        return None
    row_len = arrays["lex_row_len"]
    post_row, post_tf, term_ptr = arrays["lex_post_row"], arrays["lex_post_tf"], arrays["lex_term_ptr"]
    vocab = {str(w): int(i) for w, i in meta["vocab"].items()}
    if (row_len.shape != (n,) or post_row.shape != post_tf.shape or term_ptr.ndim != 1
            or len(term_ptr) != max(vocab.values(), default=-1) + 2 or int(term_ptr[-1]) != post_row.size
            or (post_row.size and (int(post_row.max()) >= n or int(post_row.min()) < 0))):
        return None
    return LexicalIndex(vocab=vocab, term_ptr=np.asarray(term_ptr), post_row=post_row, post_tf=post_tf,
                        row_len=np.asarray(row_len),
                        len_prefix=np.concatenate([[0], np.cumsum(row_len)]).astype(np.int64))


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
        ann_min_candidates: int = 25,
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
        self.ann_min_candidates = ann_min_candidates
        self._snap: Snapshot | None = None
        self._checked = 0.0
        self._lock = threading.Lock()
        self.reloads = 0

    # --- cache ---------------------------------------------------------------------------------------

    def invalidate(self) -> None:
        with self._lock:
            self._snap = None

    def snapshot(self) -> Snapshot:
        """The current snapshot, reloaded when the index changed: its persisted generation (checked on
        every call: one small file read) and, unless that covers every writer (embedded store), its count
        every ``refresh_seconds``."""
        snap = self._snap
        now = time.monotonic()
        stale = snap is None or snap.generation != self.tindex.generation
        if (not stale and snap is not None and not self.tindex.sees_all_writes
                and now - self._checked >= self.refresh_seconds):
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
        if self.hybrid and text and snap.lexical is not None:
            rows, plan = self._fuse(snap, text, rows, gmask, starts, ends, k), plan + "+bm25"
            scores = self.vectors_at(snap, rows) @ q
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
            # a larger candidate set than k raises HNSW's recall (its ef grows with n_results); the
            # candidates are then re-scored exactly from the snapshot, so scores match the exact plan
            want = max(k, self.ann_min_candidates) * self.overfetch * snap.size / permitted
            fetch = min(snap.size, int(np.ceil(want)))
            cids, _ = self.tindex.nearest(q, fetch)
            row_of, row_group = snap.row_of, snap.row_group
            rows_l = [r for r in (row_of.get(c) for c in cids) if r is not None and gmask[row_group[r]]]
            if len(rows_l) >= k or len(rows_l) >= permitted:
                found = np.unique(np.asarray(rows_l, dtype=np.int64))
                rows, scores = _top(found, self.vectors_at(snap, found) @ q, k)
                return rows, scores, "ann"
            plan = "ann+exact"
        else:
            plan = "exact"
        rows, scores = snap.exact(q, starts, ends)
        rows, scores = _top(rows, scores, k)
        return rows, scores, plan

    @staticmethod
    def vectors_at(snap: Snapshot, rows: IntArray) -> npt.NDArray[np.float32]:
        return np.asarray(snap.vectors[rows], dtype=np.float32)

    def _fuse(
        self, snap: Snapshot, text: str, dense_rows: IntArray, gmask: npt.NDArray[np.bool_],
        starts: IntArray, ends: IntArray, k: int,
    ) -> IntArray:
        """Reciprocal rank fusion of the dense candidates and BM25 over the permitted rows only, with
        BM25's statistics (N, df, average length) from the permitted rows (groundwire.lexical)."""
        assert snap.lexical is not None
        fused: dict[int, float] = {}
        for rank, r in enumerate(dense_rows.tolist()):
            fused[r] = fused.get(r, 0.0) + self.dense_weight / (self.rrf_k + rank + 1)
        rows, bm = snap.lexical.scores(text, gmask, snap.row_group, starts, ends)
        if rows.size:
            rows, bm = _top(rows, bm, max(k, self.candidates))
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
        fetch: int | None = None,
    ) -> list[Chunk]:
        """Search, then fetch the payloads via :meth:`TenantIndex.get_chunks` (which filters again); with
        ``fetch``, only those of the first ``fetch`` of the ``k`` hits (the same ranking as without it)."""
        principals = frozenset(principals)
        for attempt in range(2):
            result = self.search(vector, principals, connectors, k, text)
            ids = [h.id for h in result.hits][:fetch]
            chunks = self.tindex.get_chunks(ids, principals, connectors)
            if len(chunks) == len(ids) or attempt == 1:
                break
            self.invalidate()  # Chroma rejected an id the cache permitted: changed by another process
        score = {h.id: h.score for h in result.hits}
        return [dataclasses.replace(c, score=score[c.id]) for c in chunks]
