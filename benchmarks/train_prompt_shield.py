"""Train the prompt-shield artefacts shipped in ``plugins/``.

    python -m benchmarks.train_prompt_shield --direct /path/direct.jsonl --indirect /path/indirect.jsonl

Writes ``plugins/prompt_shield_direct.npz`` and ``plugins/prompt_shield_indirect.npz`` (logistic-regression
weights, feature standardisation and the decision threshold, chosen on out-of-fold training scores for a
target false-positive rate). The data stays outside the repository; only the weights are shipped.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import numpy as np
from groundwire.plugins import prompt_shield as ps

from benchmarks.prompt_shield import extra_negatives, featurise_cached, fit, read_rows


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--direct")
    ap.add_argument("--indirect")
    ap.add_argument("--l2", type=float, default=1.0)
    ap.add_argument(
        "--cache-dir", default=None, help="reuse computed features (see benchmarks.prompt_shield)"
    )
    args = ap.parse_args(argv)
    for kind, path in (("direct", args.direct), ("indirect", args.indirect)):
        if not path:
            continue
        rows = read_rows(path)
        cache = f"{args.cache_dir}/{kind}.pkl" if args.cache_dir else None
        d = featurise_cached(rows, kind, extra_negatives(args.direct) if kind == "indirect" else (), cache)
        model = fit(d, np.arange(len(rows)), l2=args.l2)
        out = ps.ARTEFACT_DIR / f"prompt_shield_{kind}.npz"
        model.save(out)
        print(f"{kind}: trained on {len(rows)} rows, threshold={model.threshold:.3f} -> {out}")


if __name__ == "__main__":
    main()
