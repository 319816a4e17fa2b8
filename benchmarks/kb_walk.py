"""What the confined knowledge-base walk costs (issue 11): enumerate, check and read a folder of files.

    python -m benchmarks.kb_walk --folders 20 --files 100 [--repeat 5]

Builds ``folders x files`` Markdown files with one root ``.groundwire-acl.toml`` in a temporary folder and
drains the connector's changes (no index, no embedding): a full pass (every file read through
``ConfinedRoot`` and extracted) and an incremental pass (every file unchanged: only walked and its ACL
resolved). Prints the median seconds of each and the per-file cost.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from groundwire import ConnectorContext
from groundwire.connectors.knowledge_base import KnowledgeBaseConnector, KnowledgeBaseSettings
from groundwire.testing import run_changes


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--folders", type=int, default=20)
    ap.add_argument("--files", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "kb"
        for d in range(args.folders):
            (root / f"d{d}").mkdir(parents=True)
            for i in range(args.files):
                (root / f"d{d}" / f"f{i}.md").write_text(f"# Note {d}-{i}\n\nBody of note {i} in folder {d}.\n")
        (root / ".groundwire-acl.toml").write_text('allow = ["everyone"]\n')
        settings = KnowledgeBaseSettings.model_validate({"path": str(root)})

        def run(indexed: dict[str, str]) -> tuple[float, dict[str, str], int]:
            ctx = ConnectorContext(indexed=indexed, data_dir=Path(tmp), config_dir=Path(tmp))
            t0 = time.perf_counter()
            out = run_changes(KnowledgeBaseConnector("kb", "acme", settings, ctx))
            return time.perf_counter() - t0, {d.id: d.version for d in out.upserts.values()}, len(out.unchanged)

        fulls, incs = [], []
        indexed: dict[str, str] = {}
        for _ in range(args.repeat):
            t, indexed, _ = run({})
            fulls.append(t)
            t, _, unchanged = run(indexed)
            incs.append(t)
        n = len(indexed)
        assert unchanged == n, "the incremental pass must find every file unchanged"
        for label, xs in (("full (read + extract)", fulls), ("incremental (unchanged)", incs)):
            med = statistics.median(xs)
            print(f"{label:26s} {n} files: {med:.3f} s median of {args.repeat}, {med / n * 1e6:.0f} us per file")


if __name__ == "__main__":
    main()
