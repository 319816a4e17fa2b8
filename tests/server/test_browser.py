"""The reviewer page in a real headless Chromium (Debian's ``chromium``, driven by Playwright).

Signs in through the OIDC issuer double, lists, opens, edits and approves a draft, opens the XSS document's
draft (no script may run: ``window.__xss`` stays unset and no dialog opens) and checks what a reviewer
without access sees. Screenshots go to the test's tmp folder.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import Service

CHROMIUM = os.environ.get("GROUNDWIRE_CHROMIUM") or shutil.which("chromium") or (
    "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else ""
)
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM, reason="no chromium binary: apt-get install chromium (.ci/run does this)"),
]
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api", reason="needs playwright (pip install playwright)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


class Reviewer:
    def __init__(self, browser: Any, svc: Service, user: str, shots: Path) -> None:
        self.svc, self.user, self.shots = svc, user, shots
        self.context = browser.new_context()
        self.page = self.context.new_page()
        self.dialogs: list[str] = []
        self.page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        self.console: list[str] = []
        self.page.on("console", lambda m: self.console.append(m.text))

    def sign_in(self) -> None:
        self.svc.issuer.login_as = self.svc.issuer.claims(self.user)
        self.page.goto(f"{self.svc.url}/review")
        self.page.wait_for_url(f"{self.svc.url}/review")

    def shot(self, name: str) -> Path:
        path = self.shots / f"{self.user}-{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path


def _draft(svc: Service, user: str, prompt: str) -> str:
    with svc.client(user) as c:
        r = c.post("/v1/drafts", json={"prompt": prompt})
        assert r.status_code == 201
        return str(r.json()["id"])


def test_reviewer_signs_in_edits_and_approves(browser: Any, service: Service, tmp_path: Path) -> None:
    hr = _draft(service, "carol", "What is the salary review budget?")
    alice = Reviewer(browser, service, "alice", tmp_path)
    alice.sign_in()
    page = alice.page
    assert page.locator("#who").inner_text().startswith("oid-alice")
    row = page.locator(f'tr.draft-row[data-id="{hr}"]')
    assert row.count() == 1
    alice.shot("list")
    row.locator("a").click()
    page.wait_for_url(f"{service.url}/review/{hr}")
    citations = page.locator("li.citation")
    assert citations.count() >= 1
    first = citations.first
    assert first.locator(".n").inner_text() == "[1]"
    assert first.locator("a").get_attribute("href").startswith("https://intranet.example/kb")
    assert first.locator(".snippet").inner_text().strip()
    assert "[1]" in page.locator("#draft-text").inner_text()
    alice.shot("draft")
    page.fill("#edit-text", "The salary review budget is 3.5 percent of payroll [1].")
    with page.expect_navigation():
        page.click("#save-edit")
    alice.shot("after-edit")
    assert page.locator("#status").inner_text() == "edited"
    assert page.locator("#draft-text").inner_text() == "The salary review budget is 3.5 percent of payroll [1]."
    with page.expect_navigation():
        page.click("#approve")
    assert page.locator("#status").inner_text() == "approved"
    assert page.locator("#final").is_visible() and page.locator("#approve").count() == 0
    alice.shot("approved")
    decided = [e for e in service.audit() if e["kind"] == "review" and e["data"]["draft_id"] == hr]
    assert [(e["actor"], e["data"]["action"]) for e in decided] == [("oid-alice", "edit"), ("oid-alice", "approve")]
    assert not alice.dialogs
    alice.context.close()


def test_xss_document_never_runs(browser: Any, service: Service, tmp_path: Path) -> None:
    did = _draft(service, "bob", "Parking rules for visitors: where do visitors park?")
    alice = Reviewer(browser, service, "alice", tmp_path)
    alice.sign_in()
    page = alice.page
    page.goto(f"{service.url}/review/{did}")
    shown = page.locator("main").inner_text()
    assert "<script>" in shown and "onerror" in shown  # visible as text
    page.wait_for_timeout(300)  # give an injected onerror handler time to fire if it existed
    assert page.evaluate("typeof window.__xss") == "undefined"
    assert page.locator("main script").count() == 0 and page.locator("main img").count() == 0
    assert alice.dialogs == []
    alice.shot("xss")
    alice.context.close()


def test_reviewer_without_access_sees_neither_list_entry_nor_draft(
    browser: Any, service: Service, tmp_path: Path
) -> None:
    hr = _draft(service, "carol", "What is the salary review budget?")
    mine = _draft(service, "bob", "How many days of annual leave?")
    bob = Reviewer(browser, service, "bob", tmp_path)
    bob.sign_in()
    page = bob.page
    assert page.locator(f'tr.draft-row[data-id="{hr}"]').count() == 0
    assert page.locator(f'tr.draft-row[data-id="{mine}"]').count() == 1
    bob.shot("list")
    response = page.goto(f"{service.url}/review/{hr}")
    assert response is not None and response.status == 403
    assert "cannot read every source" in page.locator("#error-detail").inner_text()
    assert "salary" not in page.content().lower()
    bob.shot("denied")
    # a signed-in user without the reviewer role gets the feature refusal, not the list
    carol = Reviewer(browser, service, "carol", tmp_path)
    carol.sign_in()
    assert carol.page.locator("#error-status").inner_text() == "403"
    carol.shot("no-role")
    bob.context.close()
    carol.context.close()
