"""Docs meta-tests (datasette's test_plugin_hooks_are_documented): every hook has a README entry with its
description, combination rule, arguments and example, and the README's reference is exactly what
``groundwire.hookdocs`` generates from ``hookspecs.py`` (so it cannot drift)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from groundwire import hookspecs
from groundwire.hookdocs import BEGIN, END, hook_docs, parse_hookspecs

README = Path(__file__).resolve().parents[1] / "README.md"
SPECS = sorted(n for n in dir(hookspecs) if getattr(getattr(hookspecs, n), "groundwire_spec", None) is not None)


def test_every_hookspec_is_parsed() -> None:
    assert sorted(d.name for d in parse_hookspecs()) == SPECS and "annotate_chunks" in SPECS


@pytest.mark.parametrize("name", SPECS)
def test_plugin_hooks_are_documented(name: str) -> None:
    headings = re.findall(r"^#### `(\w+)\(", README.read_text(encoding="utf-8"), re.M)
    assert name in headings, f"README has no '#### `{name}(...)`' entry: run python -m groundwire.hookdocs README.md"


@pytest.mark.parametrize("doc", parse_hookspecs(), ids=lambda d: d.name)
def test_each_hook_states_its_arguments_how_results_combine_and_an_example(doc) -> None:
    assert doc.text, "a summary line"
    assert set(doc.params) == set(doc.args), "a :param: line for every argument, and none for others"
    assert all(doc.params.values())
    assert doc.firstresult or any(p.startswith("Combined") for p in doc.text), "a 'Combined...' paragraph"
    assert f"def {doc.name}(" in doc.example and "@hookimpl" in doc.example
    compile(doc.example, doc.name, "exec")  # the example is valid Python


def test_readme_reference_is_the_generated_one() -> None:
    text = README.read_text(encoding="utf-8")
    block = text[text.index(BEGIN) : text.index(END) + len(END)]
    assert block == hook_docs(), "the README's hook reference is stale: run python -m groundwire.hookdocs README.md"


def test_cli_prints_the_reference() -> None:
    env = {"GROUNDWIRE_NO_PLUGIN_COMMANDS": "1", "PATH": "", "ANONYMIZED_TELEMETRY": "False"}
    out = subprocess.run([sys.executable, "-m", "groundwire", "plugins", "--docs"], capture_output=True, text=True,
                         check=True, env=env)
    assert out.stdout.strip() == hook_docs().strip()
