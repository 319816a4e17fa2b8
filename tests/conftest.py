"""Shared fixtures: fresh plugin managers, temporary corpora and grounders on real (embedded) Chroma."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from groundwire import AccessControl, Chunk, Grounder, config_from_dict, make_plugin_manager


@pytest.fixture
def pm():
    """A fresh plugin manager per test (no entry points: tests control exactly what is registered)."""
    return make_plugin_manager(load_entrypoints=False)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    """A small knowledge base with three audiences: everyone, group hr, user dana."""
    root = tmp_path / "corpus"
    write(root / ".groundwire-acl.toml", 'allow = ["everyone"]\n')
    write(root / "hr" / ".groundwire-acl.toml", 'allow = ["group:hr"]\n')
    write(
        root / "handbook" / "leave.md",
        """
        # Leave policy

        ## Annual leave

        Every employee receives 25 days of paid annual leave per year. Requests go through the HR portal.
        """,
    )
    write(
        root / "hr" / "salaries.md",
        """
        # Salary review

        ## Budget

        The salary review budget is 3.5 percent of payroll. Increases take effect in April.
        """,
    )
    write(root / "people" / "dana.md", "# Dana\n\nDana's bonus is eleven thousand euros this year.\n")
    write(root / "people" / "dana.md.acl.toml", 'allow = ["user:dana@example.com"]\n')
    return root


@pytest.fixture
def make_grounder(tmp_path: Path) -> Iterator[Callable[..., Grounder]]:
    """Build a Grounder over a config dict (hashing embedder by default: fast, no model load)."""
    made: list[Grounder] = []

    def _make(connectors: dict[str, Any], extra_plugins: tuple[object, ...] = (), **overrides: Any) -> Grounder:
        data: dict[str, Any] = {
            "data_dir": str(tmp_path / "data"),
            "default_tenant": "acme",
            "embedder": {"name": "hashing"},
            "plugins": {"load_entrypoints": False},
            "connectors": connectors,
        }
        data.update(overrides)
        g = Grounder(config_from_dict(data, base_dir=tmp_path), extra_plugins=extra_plugins)
        made.append(g)
        return g

    yield _make


def pay_and_office_corpus(tmp_path: Path) -> Path:
    """Two files: pay.md readable by group:hr, open.md by everyone (the revocation tests change pay.md's ACL)."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "pay.md").write_text("# Pay\n\nSalary is paid on the 25th of each month.\n")
    (corpus / "pay.md.acl.toml").write_text('allow = ["group:hr"]\n')
    (corpus / "open.md").write_text("# Office\n\nThe office opens at 8 and closes at 18.\n")
    (corpus / "open.md.acl.toml").write_text('allow = ["everyone"]\n')
    return corpus


def kb(path: Path, tenant: str = "acme", **extra: Any) -> dict[str, Any]:
    return {"type": "knowledge_base", "tenant": tenant, "path": str(path), **extra}


def make_chunk(cid: str, text: str, allow: tuple[str, ...] = ("everyone",), tenant: str = "acme") -> Chunk:
    """A chunk for plugin unit tests (the id doubles as doc id and title)."""
    return Chunk(id=cid, doc_id=cid, connector="kb", tenant=tenant, text=text, title=cid, uri="u", location="",
                 acl=AccessControl.of(allow))
