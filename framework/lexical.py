"""BM25 whose statistics come only from the rows a caller may read (no side channel through hidden rows).

A tenant-wide BM25 index lets documents a user cannot read change the ranking of documents they can:
the inverse document frequency of a word falls when hidden documents contain it, and the average
document length moves with every hidden document. :class:`LexicalIndex` therefore keeps only raw,
per-row facts (term frequencies per row, row lengths) and computes every corpus statistic at query
time over the *permitted* rows:

- ``N``: the number of permitted rows (passed in; the permission filter counted them already),
- ``df(t)``: the number of permitted rows containing ``t`` (its postings masked by the permitted groups),
- ``avgdl``: the summed length of the permitted rows (integer prefix sums over the permitted row runs,
  so the sum is exact and independent of how hidden rows split the runs) divided by ``N``.

Invariant: for a fixed set of permitted rows (same texts, same relative order) the scores are the same
floats whatever else the tenant holds; only postings of permitted rows are ever scored.

Scoring is Lucene's BM25 (the ``bm25s`` default): ``idf = ln(1 + (N - df + 0.5) / (df + 0.5))`` and
``tf / (tf + k1 * (1 - b + b * dl / avgdl))``. Tokenization is ``bm25s.tokenize`` with English stop words,
for documents and queries alike. Cost per query: the postings of the query's terms (vectorised numpy).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from .errors import MissingExtra

__all__ = ["LexicalIndex", "tokenize"]

IntArray = npt.NDArray[np.int64]


def _bm25s() -> Any:
    try:
        import bm25s
    except ImportError as exc:
        raise MissingExtra("hybrid retrieval", "hybrid") from exc
    return bm25s


def tokenize(texts: Sequence[str]) -> tuple[list[list[int]], dict[str, int]]:
    """Token ids per text and the vocabulary (``bm25s.tokenize`` with English stop words)."""
    tok = _bm25s().tokenize(list(texts), stopwords="en", show_progress=False)
    return [list(map(int, ids)) for ids in tok.ids], {str(w): int(i) for w, i in tok.vocab.items()}


@dataclass(frozen=True)
class LexicalIndex:
    """Term postings of every row (rows in snapshot order) plus row lengths; statistics at query time."""

    vocab: dict[str, int]
    term_ptr: IntArray  # (V + 1,) postings of term t are post_row[term_ptr[t]:term_ptr[t + 1]]
    post_row: npt.NDArray[np.int32]
    post_tf: npt.NDArray[np.float32]
    row_len: IntArray  # (n,) tokens per row
    len_prefix: IntArray  # (n + 1,) prefix sums of row_len (exact integer sums over row runs)
    k1: float = 1.5
    b: float = 0.75

    @classmethod
    def build(cls, texts: Sequence[str]) -> LexicalIndex:
        ids, vocab = tokenize(texts) if texts else ([], {})
        return cls.from_tokens(ids, vocab)

    @classmethod
    def from_tokens(cls, ids: Sequence[Sequence[int]], vocab: dict[str, int]) -> LexicalIndex:
        n = len(ids)
        row_len = np.asarray([len(t) for t in ids], dtype=np.int64)
        if n and row_len.sum():
            rows = np.repeat(np.arange(n, dtype=np.int64), row_len)
            terms = np.concatenate([np.asarray(t, dtype=np.int64) for t in ids if len(t)])
            pairs = np.unique(terms * n + rows, return_counts=True)  # (term, row) sorted by term, then row
            key, tf = pairs
            post_term, post_row = key // n, key % n
        else:
            post_term = post_row = np.zeros(0, dtype=np.int64)
            tf = np.zeros(0, dtype=np.int64)
        vsize = max(vocab.values(), default=-1) + 1
        term_ptr = np.zeros(vsize + 1, dtype=np.int64)
        np.add.at(term_ptr, post_term + 1, 1)
        return cls(
            vocab=vocab,
            term_ptr=np.cumsum(term_ptr),
            post_row=post_row.astype(np.int32),
            post_tf=tf.astype(np.float32),
            row_len=row_len,
            len_prefix=np.concatenate([[0], np.cumsum(row_len)]).astype(np.int64),
        )

    def query_terms(self, text: str) -> list[int]:
        words = _bm25s().tokenize([text], stopwords="en", return_ids=False, show_progress=False)[0]
        # ordered by word, not by id: ids depend on every row's text, the summation order must not
        return [self.vocab[w] for w in sorted(set(words)) if w in self.vocab]

    def scores(
        self,
        text: str,
        group_allowed: npt.NDArray[np.bool_],
        row_group: npt.NDArray[np.int32],
        starts: IntArray,
        ends: IntArray,
    ) -> tuple[IntArray, npt.NDArray[np.float32]]:
        """Rows with a positive BM25 score among the permitted rows, and the scores (statistics over the
        permitted rows only). Row ``r`` is permitted iff ``group_allowed[row_group[r]]``; ``starts`` and
        ``ends`` are the permitted row runs (the same rows)."""
        terms = self.query_terms(text)
        permitted = int((ends - starts).sum())
        if not terms or permitted == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        total_len = int((self.len_prefix[ends] - self.len_prefix[starts]).sum())
        avgdl = total_len / permitted if total_len else 1.0
        acc_rows: list[npt.NDArray[np.int32]] = []
        acc_scores: list[npt.NDArray[np.float64]] = []
        for t in terms:
            lo, hi = int(self.term_ptr[t]), int(self.term_ptr[t + 1])
            rows = self.post_row[lo:hi]
            keep = group_allowed[row_group[rows]]
            rows = rows[keep]
            if rows.size == 0:
                continue
            tf = self.post_tf[lo:hi][keep].astype(np.float64)
            df = rows.size
            idf = np.log(1.0 + (permitted - df + 0.5) / (df + 0.5))
            dl = self.row_len[rows].astype(np.float64)
            acc_rows.append(rows)
            acc_scores.append(idf * tf / (tf + self.k1 * (1.0 - self.b + self.b * dl / avgdl)))
        if not acc_rows:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        rows_all = np.concatenate(acc_rows).astype(np.int64)
        uniq, inv = np.unique(rows_all, return_inverse=True)
        total = np.zeros(uniq.size, dtype=np.float64)
        np.add.at(total, inv, np.concatenate(acc_scores))  # terms in a fixed order: the same float sums
        keep = total > 0
        return uniq[keep], total[keep].astype(np.float32)
