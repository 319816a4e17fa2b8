"""Review workflow: drafts persisted pending_review; approve / edit / reject audited; unauthorised
reviewers (other tenant, cannot read a cited source) are refused."""

from __future__ import annotations

import json
import sqlite3

import pytest
from groundwire import AccessDenied, DraftStatus, UserContext
from groundwire.cli import main
from groundwire.review import ReviewStateError
from groundwire.trust import export_audit

from .test_trust_audit import _write_toml
from .trust_helpers import grounder, make_config


@pytest.fixture
def g(tmp_path):
    g = grounder(tmp_path)
    g.sync()
    return g


def _hr_draft(g):
    draft = g.ground("When do salary increases take effect?", "hana", tenant="acme", groups=["hr"])
    assert draft.status is DraftStatus.PENDING_REVIEW and draft.citations
    assert any(c.doc_id == "hr/raises.md" for c in draft.citations)
    return draft


def test_drafts_are_persisted_pending_review(g):
    draft = _hr_draft(g)
    items = g.reviews.list(UserContext.of("rita", "acme", groups=["hr"]))
    assert [i.id for i in items] == [draft.id] and items[0].status == "pending_review"
    assert items[0].author == "hana" and items[0].text == ""  # list shows no text
    assert g.reviews.list(UserContext.of("rita", "globex", groups=["hr"])) == []


def test_approve_by_authorised_reviewer_is_audited(g):
    draft = _hr_draft(g)
    reviewer = UserContext.of("rita", "acme", groups=["hr"])
    item = g.reviews.approve(draft.id, reviewer, note="checked")
    assert item.status == "approved" and item.history[-1]["reviewer"] == "rita"
    ev = [e for e in export_audit(g, None, "acme") if e["kind"] == "review"][-1]
    assert (
        ev["actor"] == "rita" and ev["data"]["draft_id"] == draft.id and ev["data"]["decision"] == "approve"
    )
    with pytest.raises(ReviewStateError, match="final"):
        g.reviews.reject(draft.id, reviewer)


def test_edit_then_approve(g):
    draft = _hr_draft(g)
    reviewer = UserContext.of("rita", "acme", groups=["hr"])
    g.reviews.edit(draft.id, reviewer, "Raises take effect in April [1].")
    assert g.reviews.get(draft.id, reviewer).text == "Raises take effect in April [1]."
    assert g.reviews.approve(draft.id, reviewer).status == "approved"
    kinds = [e["data"]["decision"] for e in export_audit(g, None, "acme") if e["kind"] == "review"]
    assert kinds == ["edit", "approve"]


def test_reviewer_who_cannot_read_a_cited_source_is_refused(g):
    draft = _hr_draft(g)
    outsider = UserContext.of("sam", "acme")  # not in group hr
    for action in (
        lambda: g.reviews.approve(draft.id, outsider),
        lambda: g.reviews.edit(draft.id, outsider, "anything"),
        lambda: g.reviews.reject(draft.id, outsider),
        lambda: g.reviews.get(draft.id, outsider),
    ):
        with pytest.raises(AccessDenied, match="cannot read every source"):
            action()
    assert g.reviews.list(UserContext.of("rita", "acme", groups=["hr"]))[0].status == "pending_review"
    assert g.reviews.list(outsider) == []
    denied = [e for e in export_audit(g, None, "acme") if e["kind"] == "review_denied"]
    assert len(denied) == 4 and {e["actor"] for e in denied} == {"sam"}


def test_reviewer_of_another_tenant_with_same_group_is_refused(g):
    draft = _hr_draft(g)
    other = UserContext.of("rita", "globex", groups=["hr"])
    with pytest.raises(AccessDenied, match="no draft with this id"):
        g.reviews.approve(draft.id, other)
    with pytest.raises(AccessDenied, match="no draft with this id"):
        g.reviews.approve("does-not-exist", other)  # same message: existence is not revealed


def test_revoked_access_blocks_later_approval(g, tmp_path):
    draft = _hr_draft(g)
    reviewer = UserContext.of("rita", "acme", groups=["hr"])
    # the HR document is re-permissioned to a single user: the HR group loses access at the next sync
    (tmp_path / "corpus" / "acme" / "hr" / "raises.md.acl.toml").write_text('allow = ["user:hana"]\n')
    g.sync()
    with pytest.raises(AccessDenied):
        g.reviews.approve(draft.id, reviewer)


def test_blocked_or_sourceless_drafts(g):
    d = g.ground("What is the capital of Mongolia?", "sam", tenant="acme", connectors=[])
    assert d.status is DraftStatus.PENDING_REVIEW
    # a draft without sources can be reviewed by anyone in the tenant
    assert g.reviews.reject(d.id, UserContext.of("x", "acme"), "no sources").status == "rejected"


def test_review_cli(g, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("GROUNDWIRE_NO_PLUGIN_COMMANDS", "1")
    draft = _hr_draft(g)
    cfg = tmp_path / "gw.toml"
    _write_toml(cfg, make_config(tmp_path))
    assert main(["review", "list", "--reviewer", "rita", "-g", "hr", "--json", "--config", str(cfg)]) == 0
    rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [(r["id"], r["status"]) for r in rows] == [(draft.id, "pending_review")]
    assert main(["review", "approve", draft.id, "--reviewer", "sam", "--config", str(cfg)]) == 1
    assert "cannot read every source" in capsys.readouterr().err
    assert (
        main(
            [
                "review",
                "edit",
                draft.id,
                "--reviewer",
                "rita",
                "-g",
                "hr",
                "--text",
                "New text",
                "--config",
                str(cfg),
            ]
        )
        == 0
    )
    assert main(["review", "show", draft.id, "--reviewer", "rita", "-g", "hr", "--config", str(cfg)]) == 0
    assert "New text" in capsys.readouterr().out
    assert main(["review", "approve", draft.id, "--reviewer", "rita", "-g", "hr", "--config", str(cfg)]) == 0
    db = sqlite3.connect(tmp_path / "data" / "reviews.sqlite3")
    assert db.execute("SELECT status FROM drafts WHERE id = ?", (draft.id,)).fetchone() == ("approved",)
    db.close()
