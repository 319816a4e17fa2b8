"""Integration tests: the SharePoint connector syncing from the Graph double into a real index.

Each test starts the double on 127.0.0.1 and a Grounder with the hashing embedder and embedded Chroma.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from groundwire.connectors.sharepoint import file_doc_id, page_doc_id

from .graph_double import (
    GraphDouble,
    anonymous_link,
    group_perm,
    org_link,
    site_group_perm,
    user_perm,
    users_link,
)
from .helpers import (
    assert_index_matches,
    cited_docs,
    docx_bytes,
    expected_state,
    index_state,
    make_grounder,
    pdf_bytes,
    pptx_bytes,
    retrieved_docs,
    xlsx_bytes,
)

pytestmark = pytest.mark.integration

HR = "11111111-0000-4000-8000-00000000000a"
FIN = "22222222-0000-4000-8000-00000000000b"
ALICE = ("alice@contoso.com", "aaaaaaaa-0000-4000-8000-000000000001")
BOB = ("bob@contoso.com", "bbbbbbbb-0000-4000-8000-000000000002")
PAGES = frozenset({f"group:{HR}"})


class Intranet:
    """One HR site (configured) and one Finance site (not configured) in the double."""

    def __init__(self, graph: GraphDouble) -> None:
        g = graph
        self.g = g
        self.hr = g.add_site("/sites/hr", "HR")
        self.fin = g.add_site("/sites/finance", "Finance")
        self.docs = g.add_drive(self.hr, "Documents", perms=[group_perm(HR, "HR staff")])
        self.policies = g.add_folder(self.docs, "Policies")
        self.private = g.add_folder(self.docs, "Private", perms=[user_perm(*ALICE)])
        self.archive = g.add_folder(self.docs, "Archive")
        self.f = {
            "handbook": g.add_file(
                self.docs,
                "handbook.docx",
                docx_bytes("Employee handbook", "Onboarding", "Every zebracorn joins the onboarding walkthrough."),
                parent=self.policies,
            ),
            "leave": g.add_file(
                self.docs, "leave.md", "# Leave\n\nAnnual quokkaleave is 30 days.\n", parent=self.policies
            ),
            "budget": g.add_file(
                self.docs,
                "budget.xlsx",
                xlsx_bytes({"Plan": [["item", "amount"], ["narwhalbudget", 1200]]}),
                perms=[group_perm(FIN, "Finance")],
            ),
            "review": g.add_file(
                self.docs, "review.txt", "Alice axolotlreview: exceeds expectations.", parent=self.private
            ),
            "deck": g.add_file(
                self.docs,
                "deck.pptx",
                pptx_bytes([("Kickoff", "The pangolinplan for 2026.")]),
                perms=[org_link(), group_perm(HR)],
            ),
            "guide": g.add_file(self.docs, "guide.pdf", pdf_bytes("The capybaraguide explains expenses.")),
            "faq": g.add_file(
                self.docs, "faq.html", "<html><body><h1>FAQ</h1><p>Ask the okapifaq desk.</p></body></html>"
            ),
            "old": g.add_file(self.docs, "old.txt", "The dodoarchive memo.", parent=self.archive),
            "shared": g.add_file(
                self.docs, "shared.txt", "The tapirshare note.", perms=[users_link(BOB), anonymous_link()]
            ),
            "web": g.add_file(self.docs, "notes.aspx", "<%@ Page %>"),
            "big": g.add_file(self.docs, "big.txt", "x" * 150_000),
        }
        self.fin_docs = g.add_drive(self.fin, "Documents", perms=[org_link()])
        g.add_file(self.fin_docs, "secret.txt", "The finance wombatsecret is not configured.")
        self.page = g.add_page(self.hr, "Welcome", "<h1>Welcome</h1><p>The lemurwelcome page for HR.</p>")

    def expected(self) -> dict[str, dict]:
        return expected_state(self.g, [self.hr], pages_allow=PAGES, max_bytes=100_000)

    def doc(self, key: str) -> str:
        return file_doc_id(self.docs, self.f[key])


SETTINGS = {"max_file_mb": 100_000 / (1024 * 1024), "pages_allow": {"*": sorted(PAGES)}, "delta_page_size": 3}


def test_full_then_incremental_sync_matches_the_source(graph: GraphDouble, tmp_path: Path) -> None:
    net = Intranet(graph)
    g = make_grounder(tmp_path, graph, [graph.site_url(net.hr)], **SETTINGS)
    [rep] = g.sync()
    assert rep.ok, rep.error
    got = assert_index_matches(g, net.expected())
    skipped = dict(rep.skipped)
    assert any("unsupported file type '.aspx'" in r for r in skipped.values())
    assert any("larger than max_file_mb" in r for r in skipped.values())
    # extraction of every format reached the index
    for key, word in [
        ("handbook", "zebracorn"),
        ("leave", "quokkaleave"),
        ("budget", "narwhalbudget"),
        ("deck", "pangolinplan"),
        ("guide", "capybaraguide"),
        ("faq", "okapifaq"),
    ]:
        assert word in got[net.doc(key)]["text"], key
    assert "lemurwelcome" in got[page_doc_id(net.hr, net.page)]["text"]
    # only the configured site: nothing from Finance
    assert not any(d.startswith(net.fin_docs) for d in got)
    assert got[net.doc("shared")]["allow"] == {
        f"user:{BOB[0]}",
        f"user:{BOB[1]}",
    }  # anonymous link not counted

    # --- adds, edits, moves, deletes and permission changes at the source ---
    graph.add_file(net.docs, "remote.md", "Remote work: the ibexremote rule.", parent=net.policies)
    graph.edit_file(net.docs, net.f["leave"], "# Leave\n\nAnnual quokkaleave is now 32 days (revised).\n")
    graph.move(net.docs, net.f["deck"], parent=net.policies, name="kickoff.pptx")
    graph.delete(net.docs, net.f["budget"])
    graph.delete(net.docs, net.archive)  # a folder: its file goes too
    graph.set_permissions(net.docs, net.f["review"], [user_perm(*BOB)])  # Alice loses access
    graph.set_permissions(net.docs, net.policies, [group_perm(FIN)])  # inherited by its files
    graph.edit_page(net.hr, net.page, "<h1>Welcome</h1><p>The lemurwelcome page, second edition.</p>")
    new_page = graph.add_page(net.hr, "News", "<p>The civetnews of the week.</p>")

    [rep2] = g.sync()
    assert rep2.ok, rep2.error
    got = assert_index_matches(g, net.expected())
    assert "32 days" in got[net.doc("leave")]["text"] and "30 days" not in got[net.doc("leave")]["text"]
    assert got[net.doc("deck")]["uri"].endswith("/Policies/kickoff.pptx")
    assert got[net.doc("handbook")]["allow"] == {f"group:{FIN}"}
    assert got[net.doc("review")]["allow"] == {f"user:{BOB[0]}", f"user:{BOB[1]}"}
    assert "second edition" in got[page_doc_id(net.hr, net.page)]["text"]
    assert page_doc_id(net.hr, new_page) in got
    assert rep2.deleted == 2 and rep2.acl_updated >= 2  # budget + old; handbook and review re-ACLed

    # --- a third sync with nothing changed writes nothing ---
    [rep3] = g.sync()
    assert (rep3.added, rep3.updated, rep3.acl_updated, rep3.deleted) == (0, 0, 0, 0)
    assert_index_matches(g, net.expected())


def test_user_who_lost_access_no_longer_sees_the_document(graph: GraphDouble, tmp_path: Path) -> None:
    net = Intranet(graph)
    g = make_grounder(tmp_path, graph, [graph.site_url(net.hr)], **SETTINGS)
    assert g.sync()[0].ok
    prompt = "Alice axolotlreview: exceeds expectations?"
    review = net.doc("review")
    assert review in retrieved_docs(g, ALICE[0], prompt)
    assert review in cited_docs(g, ALICE[0], prompt)
    assert review not in retrieved_docs(g, BOB[0], prompt)
    assert review not in retrieved_docs(g, "mallory@contoso.com", prompt, groups=(HR,))

    graph.set_permissions(net.docs, net.f["review"], [user_perm(*BOB)])
    assert g.sync()[0].ok
    assert review not in retrieved_docs(g, ALICE[0], prompt)
    assert review not in cited_docs(g, ALICE[0], prompt)
    assert review not in retrieved_docs(g, ALICE[1], prompt)  # nor by object id
    assert review in cited_docs(g, BOB[0], prompt)
    assert review in retrieved_docs(g, BOB[1], prompt)

    # revoking every grant removes the document for everybody
    graph.set_permissions(net.docs, net.f["review"], [])
    [rep] = g.sync()
    assert review not in index_state(g)
    assert any(item == review and "visible to nobody" in reason for item, reason in rep.skipped)


def test_entra_groups_match_the_users_groups_at_query_time(graph: GraphDouble, tmp_path: Path) -> None:
    net = Intranet(graph)
    g = make_grounder(tmp_path, graph, [graph.site_url(net.hr)], **SETTINGS)
    assert g.sync()[0].ok
    prompt = "How many days of quokkaleave?"
    assert net.doc("leave") in retrieved_docs(g, "carol@contoso.com", prompt, groups=(HR,))
    assert net.doc("leave") not in retrieved_docs(g, "carol@contoso.com", prompt, groups=(FIN,))


def test_sync_under_30_percent_throttling_loses_and_duplicates_nothing(graph: GraphDouble, tmp_path: Path) -> None:
    net = Intranet(graph)
    for i in range(12):
        graph.add_file(net.docs, f"bulk-{i}.txt", f"Bulk document number {i} about gecko{i}.", parent=net.policies)
    graph.fault_rate = 0.3
    g = make_grounder(tmp_path, graph, [graph.site_url(net.hr)], max_retries=20, **SETTINGS)
    [rep] = g.sync()
    assert rep.ok, rep.error
    assert graph.faults > 10
    assert_index_matches(g, net.expected())
    for i in range(6):
        graph.edit_file(net.docs, net.f["leave"], f"# Leave\n\nRevision {i} of quokkaleave.\n")
        graph.delete(net.docs, graph.live_files([net.hr])[-1][1].id)
        graph.add_file(net.docs, f"late-{i}.md", f"Late addition {i}.")
    graph.set_permissions(net.docs, net.f["review"], [user_perm(*BOB)])
    faults = graph.faults
    [rep2] = g.sync()
    assert rep2.ok, rep2.error
    assert graph.faults > faults
    assert_index_matches(g, net.expected())


class Killed(BaseException):
    """Stands for the process being killed (not an Exception: nothing may catch it)."""


def test_killed_sync_resumes_from_saved_delta_tokens(graph: GraphDouble, tmp_path: Path) -> None:
    net = Intranet(graph)
    for i in range(10):
        graph.add_file(net.docs, f"bulk-{i}.txt", f"Bulk document number {i}.")
    g = make_grounder(tmp_path, graph, [graph.site_url(net.hr)], **SETTINGS)
    seen = {"n": 0}

    def kill_after_some_upserts(name: str, report: object) -> None:
        seen["n"] += 1
        if getattr(report, "added", 0) >= 5:
            raise Killed

    with pytest.raises(Killed):
        g.sync(progress=kill_after_some_upserts)
    from groundwire.ingest import StateStore

    state = StateStore(tmp_path / "gw" / "state").load("acme", "sp")  # the connector's part of the file
    assert state["drives"][net.docs]["next"], "the interrupted enumeration's nextLink was saved"
    indexed_before = set(index_state(g))
    assert 0 < len(indexed_before) < len(net.expected())

    graph.log.clear()
    g2 = make_grounder(tmp_path, graph, [graph.site_url(net.hr)], **SETTINGS)  # a new process
    [rep] = g2.sync()
    assert rep.ok, rep.error
    assert_index_matches(g2, net.expected())
    fresh_start = [p for p, _ in graph.log if "/root/delta" in p and "token=" not in p]
    assert not fresh_start, "the resumed sync must not start the enumeration again"
    resumed_at = state["drives"][net.docs]["next"].removeprefix(graph.url)
    assert resumed_at in {p for p, _ in graph.log}, "the resumed sync continues at the saved nextLink"
    downloads = [p for p, _ in graph.log if p.startswith("/download/")]
    assert len(downloads) < len(net.expected()), "documents indexed before the kill are not fetched again"


def test_410_resync_reenumerates_without_losing_or_duplicating(graph: GraphDouble, tmp_path: Path) -> None:
    net = Intranet(graph)
    g = make_grounder(tmp_path, graph, [graph.site_url(net.hr)], **SETTINGS)
    assert g.sync()[0].ok
    graph.delete(net.docs, net.f["faq"])
    graph.add_file(net.docs, "new.txt", "A brand new jerboanote.")
    graph.edit_file(net.docs, net.f["leave"], "# Leave\n\nQuokkaleave changed during the outage.\n")
    graph.invalidate_delta_tokens(net.docs)
    [rep] = g.sync()
    assert rep.ok, rep.error
    assert any(status == 410 for _, status in graph.log)
    got = assert_index_matches(g, net.expected())
    assert net.doc("faq") not in got
    assert "outage" in got[net.doc("leave")]["text"]
    [rep2] = g.sync()  # and the new deltaLink works
    assert rep2.ok and rep2.added == rep2.updated == rep2.deleted == 0


def test_unreadable_site_is_skipped_not_the_whole_sync(graph: GraphDouble, tmp_path: Path) -> None:
    net = Intranet(graph)
    other = graph.add_site("/sites/legal", "Legal")
    legal = graph.add_drive(other, perms=[group_perm(HR)])
    graph.add_file(legal, "contract.txt", "The legal marmotclause.")
    sites = [graph.site_url(net.hr), graph.site_url(other), "https://contoso.sharepoint.com/sites/missing"]
    g = make_grounder(tmp_path, graph, sites, **SETTINGS)
    graph.sites[other].status = 403
    [rep] = g.sync()
    assert rep.ok, rep.error
    reasons = dict(rep.skipped)
    assert "access denied (HTTP 403)" in reasons[f"site {graph.site_url(other)}"]
    assert "not found (HTTP 404)" in reasons["site https://contoso.sharepoint.com/sites/missing"]
    assert_index_matches(g, net.expected())

    graph.sites[other].status = 200
    assert g.sync()[0].ok
    both = expected_state(graph, [net.hr, other], pages_allow=PAGES, max_bytes=100_000)
    assert_index_matches(g, both)
    graph.sites[other].status = 403  # unreadable again: its documents are kept, not deleted
    [rep] = g.sync()
    assert rep.ok
    assert_index_matches(g, both)


def test_site_groups_map_to_configured_principals(graph: GraphDouble, tmp_path: Path) -> None:
    site = graph.add_site("/sites/projects")
    drive = graph.add_drive(site, perms=[site_group_perm("5", "Projects Members", expect=[f"group:{HR}"])])
    item = graph.add_file(drive, "plan.txt", "The project meerkatplan.")
    g = make_grounder(
        tmp_path,
        graph,
        [graph.site_url(site)],
        include_pages=False,
        site_groups={"Projects Members": [f"group:{HR}"]},
    )
    assert g.sync()[0].ok
    assert index_state(g)[file_doc_id(drive, item)]["allow"] == {f"group:{HR}"}
    assert_index_matches(g, expected_state(graph, [site]))


def test_unmapped_site_group_and_no_pages_allow_fail_closed(graph: GraphDouble, tmp_path: Path) -> None:
    site = graph.add_site("/sites/closed")
    drive = graph.add_drive(site, perms=[site_group_perm("3", "Closed Members")])
    graph.add_file(drive, "x.txt", "Nobody may read this.")
    graph.add_page(site, "Home", "<p>Home page.</p>")
    g = make_grounder(tmp_path, graph, [graph.site_url(site)])
    [rep] = g.sync()
    assert rep.ok
    assert index_state(g) == {}
    reasons = " ".join(r for _, r in rep.skipped)
    assert "visible to nobody" in reasons and "pages_allow" in reasons


def test_killed_resync_keeps_its_pending_deletions(graph: GraphDouble, tmp_path: Path) -> None:
    net = Intranet(graph)
    for i in range(8):
        graph.add_file(net.docs, f"bulk-{i}.txt", f"Bulk document number {i}.")
    g = make_grounder(tmp_path, graph, [graph.site_url(net.hr)], **SETTINGS)
    assert g.sync()[0].ok
    graph.delete(net.docs, net.f["leave"])
    graph.invalidate_delta_tokens(net.docs)

    def kill_during_resync(name: str, report: object) -> None:
        if getattr(report, "unchanged", 0) >= 4:
            raise Killed

    with pytest.raises(Killed):
        g.sync(progress=kill_during_resync)
    from groundwire.ingest import StateStore

    state = StateStore(tmp_path / "gw" / "state").load("acme", "sp")
    assert net.doc("leave") in state["drives"][net.docs]["pending"]
    [rep] = make_grounder(tmp_path, graph, [graph.site_url(net.hr)], **SETTINGS).sync()
    assert rep.ok, rep.error
    assert_index_matches(g, net.expected())
    assert net.doc("leave") not in index_state(g)
