"""Latency of a whole ``Grounder.ground`` request with the extractive generator, with the sentence vectors
stored at sync (the default) and with them ignored (every retrieved sentence embedded per request, as before
issue 14). Prints p50/p95 of each and their ratio.

    python -m benchmarks.draft_latency [--corpus examples/corpus] [--requests 40] [--embedder minilm]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from groundwire import Grounder, config_from_dict
from groundwire.plugins import extractive

QUESTIONS = [
    "When do salary increases take effect and how big is the budget?",
    "How many days of annual leave do employees get?",
    "How do I claim travel expenses?",
    "When are salaries paid?",
    "Can I carry over unused leave?",
]


def _p(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", default="examples/corpus")
    ap.add_argument("--requests", type=int, default=40)
    ap.add_argument("--embedder", default="minilm")
    a = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="gw-draft-"))
    shutil.copytree(a.corpus, root / "corpus")
    g = Grounder(config_from_dict({
        "data_dir": str(root / "data"), "default_tenant": "acme", "embedder": {"name": a.embedder},
        "features": {"ask": ["*"]},
        "connectors": {"kb": {"type": "knowledge_base", "tenant": "acme", "path": str(root / "corpus"),
                              "default_allow": ["everyone"]}},
    }, base_dir=root))
    g.sync()
    g.warm_up()
    real = extractive.stored_sentences
    out = {}
    for label, fn in (("stored sentence vectors", real), ("embedded per request", lambda *a: None)):
        extractive.stored_sentences = fn  # type: ignore[assignment]
        for q in QUESTIONS:
            g.ground(q, "bench@example.com", groups=["hr"])  # warm caches of this mode
        times = []
        for i in range(a.requests):
            q = QUESTIONS[i % len(QUESTIONS)] + ("" if i < len(QUESTIONS) else f" ({i})")  # no query-cache hits
            t0 = time.perf_counter()
            g.ground(q, "bench@example.com", groups=["hr"])
            times.append((time.perf_counter() - t0) * 1000)
        out[label] = times
        print(f"{label:26s} p50 {statistics.median(times):7.1f} ms   p95 {_p(times, 0.95):7.1f} ms")
    extractive.stored_sentences = real
    ratio = statistics.median(out["embedded per request"]) / statistics.median(out["stored sentence vectors"])
    print(f"ratio (p50, per-request embedding / stored): {ratio:.1f}x")


if __name__ == "__main__":
    main()
