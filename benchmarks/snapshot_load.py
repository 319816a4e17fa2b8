"""Snapshot start-up: ``python -m benchmarks.snapshot_load --size 100000``.

Each measurement runs in a fresh process over the cached synthetic corpus (benchmarks.common), so RSS
is that process's own: (1) the snapshot read from Chroma (what every process paid before the snapshot
file existed; it also writes the file), (2) the snapshot mapped from the file at the same generation,
then 20 queries at 10% selectivity (RSS after load and after the queries; VmRSS from /proc). Prints
seconds per 100k chunks and RSS in MB.

``--file-only N`` measures only the mapped-file start-up at sizes where building a Chroma collection
would take too long here (1M chunks): the same ACL layout and vectors as the synthetic corpus, laid out
by ``snapshot_from_rows`` and written with ``write_snapshot_file`` beside an empty collection whose
generation it carries, then loaded by ``load_snapshot`` in a fresh process (the production path once the
file exists). The Chroma load time is not measured that way.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np


def _rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _child(size: int, source: str) -> dict[str, Any]:
    from groundwire.retrieval import FastRetriever, load_snapshot, snapshot_from_chroma

    from benchmarks.common import CONNECTORS, K, load_corpus, user_principals

    corpus = load_corpus(size, progress=False)
    base = corpus.tindex.snapshot_dir
    assert base is not None
    rss0 = _rss_mb()
    t0 = time.perf_counter()
    snap = snapshot_from_chroma(corpus.tindex) if source == "chroma" else load_snapshot(corpus.tindex)
    seconds = time.perf_counter() - t0
    out = {"source": snap.source, "rows": snap.size, "seconds": seconds, "rss_before_mb": rss0,
           "rss_after_load_mb": _rss_mb()}
    if source == "file":
        fast = FastRetriever(corpus.tindex)
        fast._snap = snap
        for q in corpus.queries(20):
            fast.search(q, user_principals(0.1), CONNECTORS, K)
        out["rss_after_20_queries_mb"] = _rss_mb()
    return out


def _file_only_child(folder: str) -> dict[str, Any]:
    from groundwire.index import Index, make_client
    from groundwire.retrieval import FastRetriever, load_snapshot

    from benchmarks.common import CONNECTORS, DIM, TENANT, K, user_principals

    tindex = Index(make_client("embedded", Path(folder) / "chroma"), "synthetic-384", DIM).tenant(TENANT)
    rss0 = _rss_mb()
    t0 = time.perf_counter()
    snap = load_snapshot(tindex)
    seconds = time.perf_counter() - t0
    out: dict[str, Any] = {"source": snap.source, "rows": snap.size, "seconds": seconds, "rss_before_mb": rss0,
                           "rss_after_load_mb": _rss_mb()}
    fast = FastRetriever(tindex, exact_max_rows=10**9)  # exact scans: ANN would need the Chroma rows
    fast._snap = snap
    rng = np.random.default_rng(3)
    for _ in range(20):
        fast.search(rng.normal(size=DIM), user_principals(0.01), CONNECTORS, K)
    out["rss_after_20_queries_mb"] = _rss_mb()
    return out


def measure_file_only(size: int) -> dict[str, float]:
    """Mapped-file start-up at ``size`` rows without a Chroma collection of that size (see module doc)."""
    from groundwire.index import Index, make_client
    from groundwire.retrieval import snapshot_from_rows, write_snapshot_file

    from benchmarks.common import DIM, SELECTIVITIES, TENANT, _synthetic, sel_token

    vec, allow_u, denied, wiki = _synthetic(size)
    metas = [
        {"connector": "wiki" if wiki[i] else "kb",
         "acl_allow": [sel_token(s) for s in SELECTIVITIES if allow_u[i] < s] + [f"user:owner{i % 997}"],
         "acl_deny": ["user:bench"] if denied[i] else ["nobody:"]}
        for i in range(size)
    ]
    with tempfile.TemporaryDirectory(dir=Path(__file__).parent) as folder:
        tindex = Index(make_client("embedded", Path(folder) / "chroma"), "synthetic-384", DIM).tenant(TENANT)
        snap = snapshot_from_rows(tindex, tindex.generation, [f"s{i}" for i in range(size)], [vec], metas, None)
        del metas, vec
        base = tindex.snapshot_dir
        assert base is not None
        write_snapshot_file(tindex, base, snap)
        del snap
        proc = subprocess.run([sys.executable, "-m", "benchmarks.snapshot_load", "--file-child", folder],
                              check=True, capture_output=True, text=True)
        got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["source"] == "file" and got["rows"] == size, got
    return {
        f"snapshot_load_s_per_100k[file,{size},no-chroma]": got["seconds"] * 100_000 / size,
        f"rss_mb_before_load[{size},no-chroma]": got["rss_before_mb"],
        f"rss_mb_after_load[file,{size},no-chroma]": got["rss_after_load_mb"],
        f"rss_mb_after_20_queries[file,{size},no-chroma,1%]": got["rss_after_20_queries_mb"],
    }


def measure(size: int) -> dict[str, float]:
    """Snapshot load figures for the synthetic corpus of ``size`` chunks (built and cached if needed)."""
    from benchmarks.common import load_corpus

    corpus = load_corpus(size)
    base = corpus.tindex.snapshot_dir
    if base is not None:
        shutil.rmtree(base, ignore_errors=True)  # measure a cold build, then the file it wrote
    del corpus
    res: dict[str, dict[str, Any]] = {}
    for source in ("chroma", "file", "file"):  # the first "file" run builds the file from Chroma
        proc = subprocess.run([sys.executable, "-m", "benchmarks.snapshot_load", "--child", source,
                               "--size", str(size)], check=True, capture_output=True, text=True)
        res[source if source not in res else "file_mapped"] = json.loads(proc.stdout.strip().splitlines()[-1])
    mapped = res["file_mapped"]
    assert mapped["source"] == "file", mapped
    per = 100_000 / size
    return {
        f"snapshot_load_s_per_100k[chroma,{size}]": res["chroma"]["seconds"] * per,
        f"snapshot_load_s_per_100k[file,{size}]": mapped["seconds"] * per,
        f"snapshot_first_build_and_write_s[{size}]": res["file"]["seconds"],
        f"rss_mb_after_load[chroma,{size}]": res["chroma"]["rss_after_load_mb"],
        f"rss_mb_after_load[file,{size}]": mapped["rss_after_load_mb"],
        f"rss_mb_after_20_queries[file,{size}]": mapped["rss_after_20_queries_mb"],
        f"rss_mb_before_load[{size}]": mapped["rss_before_mb"],
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=100_000)
    ap.add_argument("--file-only", type=int, default=0, help="also: mapped-file start-up at this many rows")
    ap.add_argument("--child", choices=["chroma", "file"], help=argparse.SUPPRESS)
    ap.add_argument("--file-child", help=argparse.SUPPRESS)
    ap.add_argument("--skip-chroma", action="store_true", help="only the --file-only figure")
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(_child(args.size, args.child)))
        return
    if args.file_child:
        print(json.dumps(_file_only_child(args.file_child)))
        return
    figures = {} if args.skip_chroma else measure(args.size)
    if args.file_only:
        figures.update(measure_file_only(args.file_only))
    for key, val in figures.items():
        print(f"{key}: {val:.3f}")


if __name__ == "__main__":
    main()
