"""Audit appends per second under the cross-process lock, with the keyed checkpoint (issue 12).

    python -m benchmarks.audit_append [--events 500] [--processes 1 2] [--encrypted] [--no-fsync]

Each process appends ``--events`` request-sized events to one log in a temporary directory (on the disk of
``--dir``, default the system temp dir); prints appends/s in total and the p50/p95 latency of one append,
then checks the log with ``verify_log`` (records must equal appends). Every append takes the file lock,
reads the tail, writes and fsyncs the line, and replaces the checkpoint (temp file + fsync + rename).
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import tempfile
import time
from pathlib import Path

from groundwire.audit import AuditLog, verify_log

EVENT = {"kind": "request", "tenant": "bench", "actor": "user@example.com", "request_id": "r" * 32, "at": "",
         "data": {"feature": "ask", "sources": [{"chunk": "c" * 40, "doc": "d" * 20, "connector": "kb"}] * 8,
                  "verdicts": [], "latency_ms": 12.5}}


def _codec(encrypted: bool):  # noqa: ANN202 - AesGcmCodec or None
    if not encrypted:
        return None
    from groundwire.crypto import AesGcmCodec, Keyring

    return AesGcmCodec(Keyring({"k1": b"\1" * 32}, "k1"))


def _worker(path: str, n: int, encrypted: bool, fsync: bool) -> tuple[list[float], float]:
    log = AuditLog(Path(path), _codec(encrypted), fsync=fsync)
    log.append(EVENT)  # warm-up (key derivation, first open); not counted
    out = []
    start = time.perf_counter()
    for _ in range(n):
        t0 = time.perf_counter()
        log.append(EVENT)
        out.append(time.perf_counter() - t0)
    return out, time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=500, help="appends per process")
    ap.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--encrypted", action="store_true")
    ap.add_argument("--no-fsync", action="store_true")
    ap.add_argument("--dir", default=None)
    args = ap.parse_args(argv)
    ctx = multiprocessing.get_context("spawn")
    for procs in args.processes:
        with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
            path = Path(tmp) / "bench.jsonl"
            with ctx.Pool(procs) as pool:
                runs = pool.starmap(_worker, [(str(path), args.events, args.encrypted, not args.no_fsync)] * procs)
            lat = [x for r, _ in runs for x in r]
            wall = max(t for _, t in runs)  # the slowest worker's appending time (process start not counted)
            report = verify_log(path, _codec(args.encrypted))
            assert report.ok and report.records == procs * (args.events + 1), (report.problems, report.records)
            q = statistics.quantiles(lat, n=20)
            print(f"{procs} process(es) x {args.events} appends: {len(lat) / wall:.0f} appends/s, "
                  f"append p50 {statistics.median(lat) * 1000:.2f} ms, p95 {q[18] * 1000:.2f} ms "
                  f"(encrypted={args.encrypted}, fsync={not args.no_fsync}); verify ok, {report.records} records")


if __name__ == "__main__":
    main()
