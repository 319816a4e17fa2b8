"""Red-team probes of principals and identities outside the HTTP service (real Chroma where a grounder is used).

Each test names the hostile or careless input; the ones that found a bug failed on the code before its fix.
"""

from __future__ import annotations

import pytest
from groundwire import AccessControl, UserContext
from groundwire.errors import InputError
from hypothesis import given, settings
from hypothesis import strategies as st

from .conftest import kb, write

# ids whose text holds the separators a naive serialisation would use ("|", "#") and even whole principals
_ids = st.lists(st.sampled_from(["a", "b", "|", "#", "|group:", "#group:"]), min_size=1, max_size=3).map(
    lambda parts: "group:" + "".join(parts))


@settings(max_examples=100, deadline=None)
@given(st.lists(_ids, min_size=1, max_size=4), st.lists(_ids, max_size=2), st.data())
def test_two_acls_share_a_fingerprint_only_when_they_are_equal(allow, deny, data) -> None:
    """The sync skips a document whose ACL fingerprint is unchanged, so equal fingerprints must mean equal
    ACLs (a collision leaves a revoked principal reading it). The second ACL re-cuts the first one's ids,
    joined by ``|`` or ``#``, at random separators: the inputs most likely to collide."""
    a = AccessControl.of(allow, deny)
    joined = "|".join(sorted(a.allow)) + "#" + "#".join(sorted(a.deny))
    cuts = [i for i, ch in enumerate(joined) if ch in "|#" and joined.startswith("group:", i + 1)]
    chosen = sorted(data.draw(st.sets(st.sampled_from(cuts), min_size=1)) if cuts else [])
    pieces = [joined[i + 1:j] for i, j in zip([-1, *chosen], [*chosen, len(joined)], strict=True)]
    split = data.draw(st.integers(0, len(pieces)))
    try:
        b = AccessControl.of(pieces[:split], pieces[split:])
    except ValueError:  # a piece that is not a principal
        return
    if a.fingerprint() == b.fingerprint():
        assert (a.allow, a.deny) == (b.allow, b.deny)


@pytest.mark.parametrize("field", ["groups", "roles"])
def test_a_single_string_for_groups_or_roles_is_refused_not_split_into_letters(make_grounder, tmp_path, field):
    """Careless caller: ``groups="hr"`` (a string, not a list) used to become the groups ``{"h", "r"}``: the user
    silently lost ``hr`` (a deny on ``group:hr`` no longer applied to them) and gained one-letter groups."""
    with pytest.raises(ValueError, match="list"):
        UserContext.of("sam@example.com", "acme", **{field: "hr"})
    with pytest.raises(ValueError, match="list"):
        UserContext("sam@example.com", "acme", **{field: "hr"})
    corpus = tmp_path / "corpus"
    write(corpus / "a.md", "# A\n\nThe zqletters office opens at 8.\n")
    write(corpus / "a.md.acl.toml", 'allow = ["group:h", "role:h"]\n')
    g = make_grounder({"kb": kb(corpus)})
    g.sync()
    with pytest.raises(InputError, match="list"):
        g.ground("When does the zqletters office open?", "sam@example.com", **{field: "hr"})
    assert UserContext.of("sam@example.com", "acme", **{field: ["hr"]}).principals() >= {"everyone"}
