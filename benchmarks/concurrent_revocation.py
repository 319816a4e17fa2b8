"""Stress loop: an embedded-Chroma reader keeps querying while another process writes (adds, ACL grants and
revocations, deletions); counts forbidden answers during the writes and inexact answers after them.

    .venv/bin/python -m benchmarks.concurrent_revocation --runs 20

Each run: a fresh data dir with 40 chunks for ``group:hr``; a writer process applies 12 rounds of (add 20
chunks, grant ``d<j>`` to ann, revoke it again, every third round delete the added chunks); the reader asks as
ann the whole time. Printed: runs, queries, queries that failed closed (IndexError_), *leaks* (an answer
holding a chunk ann could never read), and runs whose answers after the writer finished were not exact
(a revoked ACL still served, or a grant missing). Exit status 1 if any leak or inexact run was seen.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

DIM = 8
WRITER = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    from groundwire import AccessControl
    from groundwire.index import Index, make_client
    from groundwire.models import Chunk
    from pathlib import Path

    path, ops = sys.argv[1], json.loads(sys.argv[2])
    t = Index(make_client("embedded", Path(path)), "test-model", 8).tenant("acme")
    for op in ops:
        if op[0] == "acl":
            t.update_acl("kb", op[1], AccessControl.of(op[2], []), "v2")
        elif op[0] == "add":
            rng = np.random.default_rng(op[2])
            cs = [Chunk(id=f"{op[1]}-{i}", doc_id=op[1], connector="kb", tenant="acme", text=f"new {i}", title="",
                        uri="file:///n", location="", acl=AccessControl.of(op[3], []), position=i)
                  for i in range(op[4])]
            t.add_document_chunks(cs, rng.normal(size=(op[4], 8)).astype(np.float32), "v1", "h")
        elif op[0] == "delete":
            t.delete_documents("kb", [op[1]])
    """
)


def one_run(path: Path) -> tuple[int, int, int, bool]:
    from groundwire import AccessControl
    from groundwire.errors import IndexError_
    from groundwire.index import Index, make_client
    from groundwire.models import Chunk
    from groundwire.retrieval import FastRetriever

    t = Index(make_client("embedded", path), "test-model", DIM).tenant("acme")
    rng = np.random.default_rng(0)
    t.add_document_chunks(
        [Chunk(id=f"d{i}", doc_id=f"d{i}", connector="kb", tenant="acme", text=f"chunk {i}", title="",
               uri=f"file:///d{i}", location="", acl=AccessControl.of(["group:hr"], []), position=0)
         for i in range(40)],
        rng.normal(size=(40, DIM)).astype(np.float32), "v1", "h")
    fast = FastRetriever(t, exact_max_rows=10_000, refresh_seconds=3600)
    ops: list[list[object]] = []
    for j in range(12):
        ops += [["add", f"n{j}", j, ["user:ann"] if j % 2 else ["group:hr"], 20], ["acl", f"d{j}", ["user:ann"]],
                ["acl", f"d{j}", ["group:hr"]]]
        if j % 3 == 0:
            ops.append(["delete", f"n{j}"])
    ever = {f"d{j}" for j in range(12)} | {f"n{j}-{i}" for j in range(1, 12, 2) for i in range(20)}
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path), json.dumps(ops)])
    queries = failed = leaks = 0

    def ask(k: int) -> set[str]:
        return {c.id for c in fast.retrieve(np.ones(DIM), {"user:ann"}, ["kb"], k)}

    while proc.poll() is None or queries < 3:
        try:
            got = ask(30)
        except IndexError_:
            failed += 1
            continue
        queries += 1
        leaks += not got <= ever
    if proc.wait() != 0:
        raise SystemExit("the writer process failed")
    exact = ask(1000) == {f"n{j}-{i}" for j in range(1, 12, 2) if j % 3 for i in range(20)}
    return queries, failed, leaks, exact


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=20)
    args = ap.parse_args()
    totals = [0, 0, 0]
    inexact = 0
    t0 = time.perf_counter()
    for n in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="gw-stress-") as tmp:
            q, f, leak, exact = one_run(Path(tmp) / "chroma")
        totals = [totals[0] + q, totals[1] + f, totals[2] + leak]
        inexact += not exact
        print(f"run {n + 1}: queries {q}, failed closed {f}, leaks {leak}, exact after: {exact}", flush=True)
    print(f"{args.runs} runs in {time.perf_counter() - t0:.0f} s: {totals[0]} queries, {totals[1]} failed closed, "
          f"{totals[2]} leaks, {inexact} runs inexact after the writer finished")
    sys.exit(1 if totals[2] or inexact else 0)


if __name__ == "__main__":
    main()
