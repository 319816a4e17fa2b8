"""A ready :class:`~groundwire.Grounder` over a tiny corpus, for testing hook plugins and integrations.

:func:`tiny_grounder` writes :data:`TINY_CORPUS` (five Markdown files with three ACL audiences) under a
folder, configures one ``knowledge_base`` connector for tenant ``acme`` with the offline hashing
embedder (no model to load) and the extractive generator, syncs
it, and returns it. Pass your plugin objects as ``plugins``; they are registered next to the built-ins
(entry points are not loaded, so only what the test names runs)::

    def test_my_hook(tmp_path):
        g = tiny_grounder(tmp_path, plugins=[MyPlugin()])
        draft = g.ground("How many days of annual leave?", EVERYONE_USER)
        assert ...
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ..config import config_from_dict
from ..models import UserContext
from ..pipeline import Grounder

__all__ = ["EVERYONE_USER", "HR_USER", "TINY_CORPUS", "tiny_grounder", "write_corpus"]

# path -> (text, allow list); the path's folder name is only for readability
TINY_CORPUS: dict[str, tuple[str, list[str]]] = {
    "handbook/leave.md": (
        "# Leave policy\n\n## Annual leave\n\nEvery employee receives 25 days of paid annual leave per year. "
        "Leave requests go through the HR portal.\n\n## Sick leave\n\nSick leave needs a doctor's note after "
        "three days of absence.\n\n## Parental leave\n\nParental leave lasts up to sixteen weeks at full pay.\n",
        ["everyone"],
    ),
    "handbook/pay.md": (
        "# Pay\n\n## Payday\n\nSalaries are paid on the 25th of every month. Overtime is paid with the next "
        "salary.\n\n## Expenses\n\nTravel expenses are reimbursed within ten working days of a claim.\n",
        ["everyone"],
    ),
    "handbook/travel.md": (
        "# Travel\n\n## Booking\n\nBook trains and hotels through the travel desk at least a week ahead. "
        "Annual leave days cannot be used for business travel.\n",
        ["everyone"],
    ),
    "hr/salaries.md": (
        "# Salary review\n\n## Budget\n\nThe salary review budget is 3.5 percent of payroll. Increases take "
        "effect in April.\n",
        ["group:hr"],
    ),
    "people/dana.md": ("# Dana\n\nDana's bonus is eleven thousand euros this year.\n", ["user:dana@example.com"]),
}
EVERYONE_USER = UserContext.of("sam@example.com", "acme")
HR_USER = UserContext.of("hana@example.com", "acme", groups=["hr"])


def write_corpus(root: Path, corpus: Mapping[str, tuple[str, list[str]]] = TINY_CORPUS) -> Path:
    """Write ``corpus`` (path -> (Markdown, allow list)) as files with ``.acl.toml`` sidecars under ``root``."""
    for rel, (text, allow) in corpus.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        (root / f"{rel}.acl.toml").write_text("allow = [" + ", ".join(f'"{a}"' for a in allow) + "]\n")
    return root


def tiny_grounder(
    tmp_path: Path,
    plugins: Iterable[object] = (),
    *,
    corpus: Mapping[str, tuple[str, list[str]]] = TINY_CORPUS,
    embedder: str = "hashing",
    sync: bool = True,
    **overrides: Any,
) -> Grounder:
    """A synced Grounder over ``corpus`` in ``tmp_path`` (see the module docstring).

    :param plugins: plugin objects (modules or instances with ``@hookimpl`` methods) to register
    :param overrides: top-level configuration keys to replace (``features``, ``plugins``, ``retrieval``...)
    """
    root = write_corpus(tmp_path / "corpus", corpus)
    data: dict[str, Any] = {
        "data_dir": str(tmp_path / "data"),
        "default_tenant": "acme",
        "embedder": {"name": embedder},
        "generator": {"name": "extractive"},
        "features": {"ask": ["*"]},
        "plugins": {"load_entrypoints": False},
        "connectors": {"handbook": {"type": "knowledge_base", "tenant": "acme", "path": str(root),
                                    "uri_prefix": "https://intranet.acme.example/kb"}},
    }
    data.update(overrides)
    g = Grounder(config_from_dict(data, base_dir=tmp_path), extra_plugins=tuple(plugins))
    if sync:
        g.sync()
    return g
