"""Red team, round 3: a knowledge base whose ACL settings are narrowed while its root cannot be read.

An unreadable root changes nothing (it must never look like "every file was deleted"), but it must not
keep serving documents under ACL settings (``default_allow``, ``acl`` globs, ``exclude``) the operator
has since replaced: those ACLs cannot be recomputed without the files, so the documents are withdrawn
until the root is readable again. Real folders, real embedded Chroma.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from groundwire import GroundingRequest, UserContext

from .conftest import kb, write


def _sees(g: Any, groups: tuple[str, ...]) -> bool:
    user = UserContext.of("sam@acme.example", "acme", groups=groups)
    return any(c.doc_id == "pay/bonus.md" for c in
               g.retrieve(GroundingRequest(user=user, prompt="margaybonus pool", top_k=5)))


@pytest.mark.parametrize("narrowing", [
    {"default_allow": ["group:payroll"]},
    {"default_allow": ["everyone"], "acl": {"pay/*": ["group:payroll"]}},
    {"default_allow": ["everyone"], "exclude": ["pay/*"]},
], ids=["default_allow", "acl-glob", "exclude"])
def test_narrowed_acl_settings_apply_while_the_root_is_unreadable(
    make_grounder: Any, tmp_path: Path, narrowing: dict[str, Any]
) -> None:
    root = tmp_path / "share"
    write(root / "pay" / "bonus.md", "# Bonus\n\nThe margaybonus pool is forty thousand.\n")
    g = make_grounder({"kb": kb(root, default_allow=["everyone"])})
    assert g.sync()[0].ok
    assert _sees(g, ())

    root.rename(tmp_path / "share-unmounted")  # the share is unmounted while the operator narrows access
    g = make_grounder({"kb": kb(root, **narrowing)})
    (rep,) = g.sync()
    assert not rep.ok and "does not exist" in (rep.error or "")
    assert not _sees(g, ()), "the document is still served under the ACL settings the operator replaced"
    assert "withdrawn" in (rep.error or ""), rep.error

    (tmp_path / "share-unmounted").rename(root)
    assert g.sync()[0].ok
    assert not _sees(g, ())
    assert _sees(g, ("payroll",)) == ("exclude" not in narrowing)


def test_an_unreadable_root_with_unchanged_settings_still_changes_nothing(make_grounder: Any, tmp_path: Path) -> None:
    root = tmp_path / "share"
    write(root / "pay" / "bonus.md", "# Bonus\n\nThe margaybonus pool is forty thousand.\n")
    g = make_grounder({"kb": kb(root, default_allow=["everyone"])})
    assert g.sync()[0].ok
    root.rename(tmp_path / "share-unmounted")
    (rep,) = g.sync()
    assert not rep.ok and "nothing was changed" in (rep.error or "")
    assert _sees(g, ())
