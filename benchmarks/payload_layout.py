"""Where a chunk's encrypted payload costs least in Chroma: ``python -m benchmarks.payload_layout``.

Options: ``[--rows 2000] [--payload-bytes 3150] [--batch 500]``.

Upserts ``--rows`` rows with random vectors and a base64 payload of ``--payload-bytes`` random bytes (3,150 is
what a SciFact chunk's encrypted payload decodes to with annotation version 3; 7,500 before) into a fresh local
Chroma collection, once per layout: ``documents`` (layout 1: Chroma full-text-indexes the field, FTS5 trigram),
``documents, FTS off`` (the same with the collection ``Schema`` disabling that index, which chromadb's local
backend does not honour), ``metadata`` (layout 2: the ``gw_payload`` key, ``documents`` blank, what the index
writes). Prints the upsert time, the time to read every row's metadata, the data dir's size; then, for layout 2,
the reads of :meth:`groundwire.index.TenantIndex.scan` (chunk 0's metadata, ids, current-fingerprint ids)
against reading every row's metadata.
"""

from __future__ import annotations

import argparse
import base64
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["main", "measure"]


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _pages(col: Any, **kw: Any) -> int:
    n = offset = 0
    while True:
        got = col.get(limit=5000, offset=offset, **kw)
        n += len(got["ids"])
        if len(got["ids"]) < 5000:
            return n
        offset += 5000


def measure(rows: int = 2000, payload_bytes: int = 3150, batch: int = 500) -> dict[str, Any]:
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    import chromadb
    from chromadb.api.types import FtsIndexConfig, Schema

    rng = np.random.default_rng(0)
    payloads = [base64.b64encode(rng.bytes(payload_bytes)).decode() for _ in range(rows)]
    vecs = rng.standard_normal((rows, 384)).astype(np.float32)
    ids = [f"k{i // 5}:{i % 5}" for i in range(rows)]
    metas = [{"doc_id": f"d{i // 5}", "doc_key": f"k{i // 5}", "connector": "bench", "position": i % 5,
              "ann_fp": "fp", "acl_allow": ["everyone"], "acl_deny": ["nobody:"]} for i in range(rows)]
    out: dict[str, Any] = {"rows": rows, "payload_chars": len(payloads[0])}
    with tempfile.TemporaryDirectory(prefix="gw-payload-layout-") as tmp:
        for name in ("documents", "documents, FTS off", "metadata"):
            path = Path(tmp) / name.replace(",", "").replace(" ", "-")
            client = chromadb.PersistentClient(str(path), settings=chromadb.Settings(anonymized_telemetry=False))
            kw: dict[str, Any] = {}
            if name == "documents, FTS off":
                kw["schema"] = Schema().delete_index(config=FtsIndexConfig(), key="#document")
            col = client.create_collection("gw-bench", **kw)
            t0 = time.perf_counter()
            for i in range(0, rows, batch):
                j = i + batch
                if name == "metadata":
                    col.upsert(ids=ids[i:j], embeddings=vecs[i:j], documents=[""] * len(ids[i:j]),
                               metadatas=[{**m, "gw_payload": p} for m, p in zip(metas[i:j], payloads[i:j],
                                                                                    strict=True)])
                else:
                    col.upsert(ids=ids[i:j], embeddings=vecs[i:j], documents=payloads[i:j], metadatas=metas[i:j])
            upsert = time.perf_counter() - t0
            t0 = time.perf_counter()
            _pages(col, where={"connector": "bench"}, include=["metadatas"])
            scan_all = time.perf_counter() - t0
            out[name] = {"upsert_seconds": upsert, "metadata_read_seconds": scan_all, "disk_mb": _size(path) / 1e6}
            if name == "metadata":
                t0 = time.perf_counter()
                _pages(col, where={"$and": [{"connector": "bench"}, {"position": 0}]}, include=["metadatas"])
                _pages(col, where={"connector": "bench"}, include=[])
                _pages(col, where={"$and": [{"connector": "bench"}, {"ann_fp": "fp"}]}, include=[])
                out["scan_from_ids_seconds"] = time.perf_counter() - t0
    return out


def report(res: dict[str, Any]) -> str:
    lines = [f"{res['rows']} rows, payload {res['payload_chars']} base64 characters each"]
    for name in ("documents", "documents, FTS off", "metadata"):
        r = res[name]
        lines.append(f"  {name:<20} upsert {r['upsert_seconds']:7.2f} s   read every row's metadata "
                     f"{r['metadata_read_seconds']:6.2f} s   data dir {r['disk_mb']:6.1f} MB")
    lines.append(f"  metadata layout, scan's reads (chunk 0's metadata, ids, current ids): "
                 f"{res['scan_from_ids_seconds']:.2f} s")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description="cost of a chunk payload in Chroma's documents vs a metadata key")
    ap.add_argument("--rows", type=int, default=2000)
    ap.add_argument("--payload-bytes", type=int, default=3150)
    ap.add_argument("--batch", type=int, default=500)
    args = ap.parse_args(argv)
    res = measure(args.rows, args.payload_bytes, args.batch)
    print(report(res))
    return res


if __name__ == "__main__":
    main()
