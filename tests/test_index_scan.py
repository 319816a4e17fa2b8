"""``TenantIndex.scan`` reads the metadata (and with it the payload) of chunk 0 of each document only, the
chunk counts and stale chunks from ids: the same answer as reading every row's metadata, in every case."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from groundwire.index import PAYLOAD_KEY, take_payloads
from groundwire.testing import tiny_grounder


def _same(t, fp: str | None) -> tuple[dict, set]:
    fast = t.scan("handbook", fp)
    assert fast == t._scan_rows("handbook", fp)
    return fast


def test_scan_from_ids_matches_every_row_read(tmp_path: Path) -> None:
    g = tiny_grounder(tmp_path)
    t = g.index.tenant("acme")
    docs, stale = _same(t, "fp-now")
    assert docs and sum(s.chunks for s in docs.values()) == t.count() and len(stale) == t.count()
    got = t.collection.get(include=["metadatas"])
    ids, metas = got["ids"], got["metadatas"]
    fp = metas[0]["ann_fp"]
    assert _same(t, fp)[1] == {cid for cid, m in zip(ids, metas, strict=True) if m.get("ann_fp") != fp}

    # some rows with another fingerprint, one without any (as written before ann_fp existed)
    t.collection.update(ids=ids[:2], metadatas=[{"ann_fp": "older"}] * 2)
    row = take_payloads(t.collection.get(ids=[ids[-1]], include=["documents", "embeddings", "metadatas"]))
    meta = {k: v for k, v in row["metadatas"][0].items() if k != "ann_fp"}
    t.collection.delete(ids=[ids[-1]])
    t.collection.add(ids=[ids[-1]], embeddings=np.asarray(row["embeddings"]), documents=[""],
                     metadatas=[{**meta, PAYLOAD_KEY: row["documents"][0]}])
    assert _same(t, fp)[1] == {*ids[:2], ids[-1]}


def test_scan_of_ids_of_another_form_reads_every_row(tmp_path: Path) -> None:
    g = tiny_grounder(tmp_path)
    t = g.index.tenant("acme")
    got = take_payloads(t.collection.get(limit=1, where={"position": 0},
                                         include=["documents", "embeddings", "metadatas"]))
    meta = {**got["metadatas"][0], "doc_id": "custom.md", "doc_key": "custom", PAYLOAD_KEY: got["documents"][0]}
    t.collection.add(ids=["custom-chunk-id"], embeddings=np.asarray(got["embeddings"]), documents=[""],
                     metadatas=[meta])
    docs, _ = _same(t, None)
    assert docs["custom.md"].chunks == 1
