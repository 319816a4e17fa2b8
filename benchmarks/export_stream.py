"""Encrypted export throughput and retention rewrite time (issue 16).

    python -m benchmarks.export_stream [--mb 64] [--lines 20000]

Encrypts ``--mb`` MiB of JSON lines for an X25519 recipient into a temporary file with the same writer as
``groundwire audit export``, decrypts it back (checking the SHA-256 of the plaintext), and prints MiB/s each
way and the peak resident memory of the process (stays near one chunk plus the interpreter whatever ``--mb``).
Then builds an audit log of ``--lines`` lines (half of them a year old), trims the old half with
``trim_log`` and prints the time the rewrite took and that ``verify_log`` passes after it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import resource
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from groundwire.audit import AuditLog, verify_log
from groundwire.audit_anchor import trim_log
from groundwire.exports import ExportKey, ExportWriter, decrypt_stream
from groundwire.models import utcnow

LINE = json.dumps({"kind": "request", "tenant": "bench", "actor": "user@example.com", "request_id": "r" * 32,
                   "data": {"sources": [{"chunk": "c" * 40, "doc": "d" * 20, "connector": "kb"}] * 8}}) + "\n"


class _Sha:
    def __init__(self) -> None:
        self.h = hashlib.sha256()

    def write(self, b: bytes) -> int:
        self.h.update(b)
        return len(b)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=64)
    ap.add_argument("--lines", type=int, default=20000)
    args = ap.parse_args(argv)
    ident = X25519PrivateKey.generate()
    line = LINE.encode()
    n = args.mb * 1024 * 1024 // len(line)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.gwx"
        want = hashlib.sha256()
        t0 = time.perf_counter()
        with path.open("wb") as f, ExportWriter(f, ExportKey(recipient=ident.public_key()), "bench") as w:
            for _ in range(n):
                w.write(line)
                want.update(line)
        enc_s = time.perf_counter() - t0
        size_mb = n * len(line) / 2**20
        got = _Sha()
        t0 = time.perf_counter()
        with path.open("rb") as f:
            decrypt_stream(f, got, ident)  # type: ignore[arg-type]
        dec_s = time.perf_counter() - t0
        assert got.h.digest() == want.digest()
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"export: {size_mb:.0f} MiB encrypted at {size_mb / enc_s:.0f} MiB/s, decrypted at "
              f"{size_mb / dec_s:.0f} MiB/s; peak RSS {rss:.0f} MiB")

        log = AuditLog(Path(tmp) / "audit" / "bench.jsonl", None, fsync=False)
        now = utcnow()
        for i in range(args.lines):
            at = now - timedelta(days=365 if i < args.lines // 2 else 0)
            log.append({"kind": "request", "tenant": "bench", "actor": "u", "request_id": str(i),
                        "at": at.isoformat(), "data": {"i": i}})
        t0 = time.perf_counter()
        res = trim_log(log, now - timedelta(days=30))
        trim_s = time.perf_counter() - t0
        ok = verify_log(log.path).ok
        print(f"retention: removed {res.removed} of {args.lines} audit lines in {trim_s * 1000:.0f} ms "
              f"(verify + rewrite under the lock); verify after: {'ok' if ok else 'FAILED'}")


if __name__ == "__main__":
    main()
