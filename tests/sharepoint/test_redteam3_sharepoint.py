"""Red team, round 3: SharePoint permissions that must never widen, and one unreadable item that must
never stop the revocations of the others.

The sync tests run the connector against the Graph double on 127.0.0.1 into a real embedded Chroma
index; the claim tests feed ``acl_from_permissions`` the login names SharePoint Online really uses.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from groundwire import EVERYONE
from groundwire.connectors.sharepoint import file_doc_id
from groundwire.connectors.sharepoint.permissions import acl_from_permissions
from groundwire.connectors.sharepoint.settings import SharePointSettings
from hypothesis import given, settings
from hypothesis import strategies as st

from ..loopback_bodies import BodyServer, serving
from .graph_double import GraphDouble, user_perm
from .helpers import index_state, make_grounder, retrieved_docs

pytestmark = pytest.mark.integration

ALICE = ("alice@contoso.com", "aaaaaaaa-0000-4000-8000-000000000001")
BOB = ("bob@contoso.com", "bbbbbbbb-0000-4000-8000-000000000002")
GROUP = "33333333-0000-4000-8000-00000000000c"


def _settings() -> SharePointSettings:
    return SharePointSettings(sites=["s"], access_token_env="X")


def _login(name: str) -> dict[str, Any]:
    return {"id": "p1", "roles": ["read"], "grantedToV2": {"siteUser": {"id": "9", "loginName": name}}}


# --- claims: whole tenant-wide claims only, owners are not members ----------------------------------------


def test_tenant_wide_claims_are_matched_whole_not_as_a_substring() -> None:
    s = _settings()
    everyone = ["c:0-.f|rolemanager|spo-grid-all-users/9188040d-6c67-4c5b-b112-36a304b66dad", "c:0(.s|true"]
    for claim in everyone:
        assert acl_from_permissions([_login(claim)], s).allow == {EVERYONE}, claim
    # a guest invited from the domain "spo-grid-all-users.example": their login name holds the text
    guest = "i:0#.f|membership|mallory_spo-grid-all-users.example#ext#@contoso.onmicrosoft.com"
    assert acl_from_permissions([_login(guest)], s).allow == {
        "user:mallory_spo-grid-all-users.example#ext#@contoso.onmicrosoft.com"
    }
    for lookalike in ("i:0#.f|membership|c:0(.s|true@contoso.com", "c:0-.f|rolemanager|spo-grid-all-users/x|y"):
        assert EVERYONE not in acl_from_permissions([_login(lookalike)], s).allow, lookalike


_UPN_TEXT = st.text(st.characters(codec="ascii", exclude_characters="|\r\n\t\x00"), min_size=1, max_size=20)
_CLAIM_WORDS = st.sampled_from(["spo-grid-all-users", "spo-grid-all-users/", "c:0(.s", "true", "rolemanager",
                                "everyone", "#ext#", "@contoso.onmicrosoft.com", "_"])
_UPNS = st.lists(st.one_of(_UPN_TEXT, _CLAIM_WORDS), min_size=1, max_size=6).map("".join)


@settings(max_examples=200, deadline=None)
@given(_UPNS)
def test_no_user_login_name_grants_the_whole_tenant(upn: str) -> None:
    """Property: whatever a user's (or guest's) name, a grant to that one user never becomes ``everyone``."""
    allow = acl_from_permissions([_login(f"i:0#.f|membership|{upn}")], _settings()).allow
    assert EVERYONE not in allow


def test_group_owners_claim_does_not_grant_the_groups_members() -> None:
    """``<group id>_o`` is the Microsoft 365 group's owners (the site's Owners): mapping it to the group
    would hand a document shared with the owners to every member."""
    s = _settings()
    owners = _login(f"c:0o.c|federateddirectoryclaimprovider|{GROUP}_o")
    members = _login(f"c:0o.c|federateddirectoryclaimprovider|{GROUP}")
    assert f"group:{GROUP}" not in acl_from_permissions([owners], s).allow
    assert acl_from_permissions([owners], s).allow == frozenset()
    assert acl_from_permissions([members], s).allow == {f"group:{GROUP}"}


@pytest.mark.parametrize("when", ["2024-13-45T25:00:00Z", "tomorrow", "", 1735689600, ["2099-01-01"]])
def test_an_unreadable_expiry_fails_closed(when: Any) -> None:
    """An expiring sharing grant whose ``expirationDateTime`` cannot be read is treated as expired: the
    old code kept it granting for ever."""
    perm = {"id": "p1", "roles": ["read"], "grantedToV2": {"group": {"id": GROUP}}, "expirationDateTime": when}
    assert acl_from_permissions([perm], _settings()).allow == frozenset()
    never = dict(perm, expirationDateTime="0001-01-01T00:00:00Z")
    assert acl_from_permissions([never], _settings()).allow == {f"group:{GROUP}"}
    assert acl_from_permissions([{k: v for k, v in perm.items() if k != "expirationDateTime"}], _settings()).allow


# --- one item whose permissions (or content) cannot be read ----------------------------------------------


@pytest.fixture
def attacker() -> Iterator[BodyServer]:
    """A loopback host that is not Graph (the attacker's): every request it gets is recorded."""
    with serving(lambda path: (b'{"value": []}', {"Content-Type": "application/json"})) as host:
        yield host


FAULTS = ["permissions-400", "permissions-500", "permissions-nextlink-elsewhere", "content-500"]


@pytest.mark.parametrize("fault", FAULTS)
def test_one_unreadable_item_neither_stops_revocations_nor_keeps_its_old_acl(
    graph: GraphDouble, tmp_path: Path, attacker: BodyServer, fault: str
) -> None:
    site = graph.add_site("/sites/legal", "Legal")
    drive = graph.add_drive(site, "Documents")
    broken = graph.add_file(drive, "a-contract.txt", "The okapiclause contract binds the vendor.",
                            perms=[user_perm(*ALICE)])
    revoked = graph.add_file(drive, "b-memo.txt", "The narwhalmemo explains the merger.", perms=[user_perm(*ALICE)])
    g = make_grounder(tmp_path, graph, [graph.site_url(site)], include_pages=False)
    assert g.sync()[0].ok
    contract, memo = file_doc_id(drive, broken), file_doc_id(drive, revoked)
    assert contract in retrieved_docs(g, ALICE[0], "okapiclause contract")
    assert memo in retrieved_docs(g, ALICE[0], "narwhalmemo merger")

    # Alice loses the memo; the contract changes (delta returns it) and reading it now fails
    graph.set_permissions(drive, revoked, [user_perm(*BOB)])
    graph.edit_file(drive, broken, "The okapiclause contract, amended, binds the vendor.")
    where, _, what = fault.partition("-")
    if what == "nextlink-elsewhere":
        graph.permission_page_extra[broken] = {"@odata.nextLink": f"{attacker.url}/v1.0/steal?page=2"}
    else:
        graph.item_faults[(broken, where)] = int(what)
    [rep] = g.sync()

    assert rep.ok, f"one unreadable item stopped the whole sync: {rep.error}"
    assert memo not in retrieved_docs(g, ALICE[0], "narwhalmemo merger"), "the revocation did not propagate"
    assert memo in retrieved_docs(g, BOB[0], "narwhalmemo merger")
    assert contract not in index_state(g), "the unreadable item kept its old ACL and text"
    assert any(item in (contract, graph.item_json(graph.drives[drive], graph.drives[drive].items[broken])["webUrl"])
               and "unreadable" in reason for item, reason in rep.skipped), rep.skipped
    assert attacker.seen == [], "a request (and the Graph token) went to a host that is not Graph"

    # once it can be read again, the next sync indexes it, although delta does not return it again
    graph.item_faults.clear()
    graph.permission_page_extra.clear()
    assert g.sync()[0].ok
    assert contract in retrieved_docs(g, ALICE[0], "okapiclause contract amended")
    assert contract not in retrieved_docs(g, BOB[0], "okapiclause contract amended")


# --- site pages: an empty pages_allow entry means nobody, not the "*" default ----------------------------


def test_an_empty_pages_allow_entry_is_nobody_not_the_default(graph: GraphDouble, tmp_path: Path) -> None:
    staff = graph.add_site("/sites/staff", "Staff")
    board = graph.add_site("/sites/board", "Board")
    graph.add_page(staff, "Canteen", "<p>The wombatcanteen opens at noon.</p>")
    graph.add_page(board, "Minutes", "<p>The board minutes discuss the pangolinmerger.</p>")
    allow = {"*": [f"group:{GROUP}"], graph.site_url(board): []}
    g = make_grounder(tmp_path, graph, [graph.site_url(staff), graph.site_url(board)], pages_allow=allow)
    [rep] = g.sync()
    assert rep.ok, rep.error
    member = "carol@contoso.com"
    assert any(d.startswith("page:") for d in retrieved_docs(g, member, "wombatcanteen noon", groups=(GROUP,)))
    leaked = [d for d in retrieved_docs(g, member, "pangolinmerger board minutes", groups=(GROUP,))
              if d.startswith(f"page:{board}/")]
    assert leaked == [], "the board's pages, allowed to nobody, were given to the '*' audience"
    assert not any(d.startswith(f"page:{board}/") for d in index_state(g))
    assert any("names nobody" in reason for _, reason in rep.skipped), rep.skipped


# --- settings that map permissions changed: no document keeps an ACL mapped under the old ones ------------


@pytest.mark.parametrize("case", ["site-unreadable", "changed-only-recheck"])
def test_turning_organization_links_off_reaches_every_document(graph: GraphDouble, tmp_path: Path, case: str) -> None:
    """``organization_links_grant_everyone = true -> false``: a file shared by an organization link must
    stop being readable by everyone at the next sync, also when its site cannot be read during that sync
    (its documents were kept with the old ACL) and with ``recheck_permissions = "changed_only"`` (only
    files delta returns were re-mapped)."""
    from .graph_double import org_link

    site = graph.add_site("/sites/sales", "Sales")
    drive = graph.add_drive(site, "Documents")
    item = graph.add_file(drive, "pricing.txt", "The tapirdiscount is thirty percent.",
                          perms=[org_link(), user_perm(*ALICE)])
    doc = file_doc_id(drive, item)
    extra = {"include_pages": False}
    if case == "changed-only-recheck":
        extra["recheck_permissions"] = "changed_only"
    g = make_grounder(tmp_path, graph, [graph.site_url(site)], organization_links_grant_everyone=True, **extra)
    assert g.sync()[0].ok
    carol = "carol@contoso.com"  # in the tenant, never named on the file
    assert doc in retrieved_docs(g, carol, "tapirdiscount percent")

    if case == "site-unreadable":
        graph.sites[site].status = 403
    g = make_grounder(tmp_path, graph, [graph.site_url(site)], organization_links_grant_everyone=False, **extra)
    (rep,) = g.sync()
    assert rep.ok, rep.error
    assert doc not in retrieved_docs(g, carol, "tapirdiscount percent"), "the old 'everyone' grant outlived its setting"
    if case == "site-unreadable":
        assert any("permission-mapping settings changed" in reason for _, reason in rep.skipped), rep.skipped
        graph.sites[site].status = 200
        assert g.sync()[0].ok
    assert doc in retrieved_docs(g, ALICE[0], "tapirdiscount percent")
    assert doc not in retrieved_docs(g, carol, "tapirdiscount percent")
    assert index_state(g)[doc]["allow"] == {f"user:{ALICE[0]}", f"user:{ALICE[1]}"}
