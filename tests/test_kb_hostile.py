"""Hostile knowledge-base sources through the whole Grounder (real files, real embedded Chroma).

Each test names the leak of issue 11 it closes; each failed on the code before the fix: links out of the
root were read and cited, one bad sidecar or one undecodable name aborted the sync (so later revocations and
deletions never happened), a file sidecar dropped a folder deny, and ``groundwire init`` wrote a ``"*"`` glob
that outranked folder ACLs.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from groundwire import ConfigError, UserContext
from groundwire.cli import main
from groundwire.connectors.knowledge_base import KnowledgeBaseSettings

from .conftest import kb, write

SAM = "sam@example.com"  # a regular user: sees only what everyone may read


def _docs(g, connector: str = "kb", tenant: str = "acme") -> set[str]:
    return set(g.index.tenant(tenant).documents(connector))


def _visible(draft) -> str:
    return " ".join([draft.text] + [f"{c.title} {c.uri} {c.snippet} {c.location} {c.doc_id}" for c in draft.citations])


def _sees(g, user: str | UserContext, question: str, doc_id: str, **kw) -> bool:
    return any(c.doc_id == doc_id for c in g.ground(question, user, **kw).citations)


def _guarded(fn, timeout: float = 30.0):
    box: dict = {}
    t = threading.Thread(target=lambda: box.setdefault("r", fn()), daemon=True)
    t.start()
    t.join(timeout)
    assert not t.is_alive(), f"sync hung for {timeout}s"
    return box["r"]


# --- links and special files --------------------------------------------------------------------------


def test_links_to_etc_passwd_and_to_another_tenants_folder_are_never_served(make_grounder, corpus, tmp_path) -> None:
    other = tmp_path / "globex-kb"
    write(other / ".groundwire-acl.toml", 'allow = ["everyone"]\n')
    write(other / "hr" / "pay.md", "# Globex pay\n\nGlobex pays its zqglobex engineers on the first Friday.\n")
    ask_pay = "Globex pays its zqglobex engineers on the first Friday"  # would retrieve it, were it readable
    (corpus / "handbook" / "pay.md").symlink_to(other / "hr" / "pay.md")
    (corpus / "handbook" / "passwd.md").symlink_to("/etc/passwd")
    (corpus / "handbook" / "globex").symlink_to(other, target_is_directory=True)
    g = make_grounder({"kb": kb(corpus), "globex": kb(other, tenant="globex")})
    reports = _guarded(g.sync)
    assert all(r.ok for r in reports), [r.error for r in reports]
    acme = reports[0]
    assert {"handbook/pay.md", "handbook/passwd.md", "handbook/globex"} <= {i for i, _ in acme.skipped}
    assert all("symbolic link" in r for i, r in acme.skipped if i.startswith("handbook/p"))
    assert not {"handbook/pay.md", "handbook/passwd.md"} & _docs(g)
    for q in (ask_pay, "root x 0 0 root /root /bin/bash daemon nologin"):
        seen = _visible(g.ground(q, SAM))
        assert "zqglobex" not in seen and "root:" not in seen and str(other) not in seen and "/etc/" not in seen
    # the other tenant's own connector still serves its own users
    assert _sees(g, UserContext.of("gia@globex.example", "globex"), ask_pay, "hr/pay.md")


def test_follow_symlinks_allows_only_links_inside_the_root_and_keeps_the_targets_acl(make_grounder, corpus,
                                                                                      tmp_path) -> None:
    (corpus / "handbook" / "budget.md").symlink_to(corpus / "hr" / "salaries.md")  # public folder -> HR file
    (corpus / "handbook" / "passwd.md").symlink_to("/etc/passwd")
    g = make_grounder({"kb": kb(corpus, follow_symlinks=True, exclude=["hr/*"])})  # read only via the link
    r = g.sync()[0]
    assert r.ok, r.error
    assert "handbook/budget.md" in _docs(g) and "handbook/passwd.md" not in _docs(g)
    assert "outside the configured root" in dict(r.skipped)["handbook/passwd.md"]
    assert not _sees(g, SAM, "salary review budget percent", "handbook/budget.md")  # the link cannot widen
    hr_view = g.ground("salary review budget percent", "hana@example.com", groups=["hr"])
    assert any(c.doc_id == "handbook/budget.md" for c in hr_view.citations)
    for c in hr_view.citations:  # no uri_prefix: file URIs, always of a path inside the root
        assert c.uri.startswith(corpus.resolve().as_uri() + "/")


def test_fifo_named_md_and_link_to_dev_zero_do_not_hang_or_get_read(make_grounder, corpus) -> None:
    fifo = corpus / "handbook" / "pipe.md"
    os.mkfifo(fifo)
    (corpus / "handbook" / "zero.md").symlink_to("/dev/zero")
    g = make_grounder({"kb": kb(corpus, follow_symlinks=True)})
    try:
        r = _guarded(lambda: g.sync()[0], timeout=30)
    finally:
        try:
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))  # unblock a regressed reader
        except OSError:
            pass
    assert r.ok, r.error
    reasons = dict(r.skipped)
    assert "FIFO" in reasons["handbook/pipe.md"] and "outside the configured root" in reasons["handbook/zero.md"]
    assert "handbook/leave.md" in _docs(g)


def test_max_file_size_is_enforced(make_grounder, corpus) -> None:
    write(corpus / "handbook" / "big.md", "# Big\n\n" + "All work and no play. " * 60_000)
    g = make_grounder({"kb": kb(corpus, max_file_mb=1)})
    r = g.sync()[0]
    assert "max_file_mb" in dict(r.skipped)["handbook/big.md"] and "handbook/big.md" not in _docs(g)


def test_cli_sync_report_shows_each_skip_with_its_reason(tmp_path, corpus, monkeypatch, capsys) -> None:
    (corpus / "handbook" / "passwd.md").symlink_to("/etc/passwd")
    cfg = tmp_path / "gw.toml"
    cfg.write_text(f'data_dir = "d"\n[embedder]\nname = "hashing"\n[plugins]\nload_entrypoints = false\n'
                   f'[connectors.kb]\ntype = "knowledge_base"\ntenant = "acme"\npath = "{corpus.as_posix()}"\n')
    assert main(["sync", "--config", str(cfg)]) == 0
    err = capsys.readouterr().err
    assert "kb:handbook/passwd.md" in err and "symbolic link" in err


# --- malformed sidecars: skip only what they govern, keep going, fail closed --------------------------

BAD_SIDECARS = {
    "int in allow": ("allow = [1]\n", "allow[0]"),
    "nested list": ('allow = [["group:hr"]]\n', "allow[0]"),
    "date": ("allow = [1979-05-27]\n", "allow[0]"),
    "string not list": ('allow = "everyone"\n', "allow"),
    "deny string": ('allow = ["everyone"]\ndeny = "user:x@example.com"\n', "deny"),
    "bad toml": ('allow = ["everyone"\n', "TOML"),
    "unknown key": ('alow = ["everyone"]\n', "alow"),
    "bad principal": ('allow = ["admins"]\n', "allow"),
    "not utf-8": (b'allow = ["\xff"]\n', "UTF-8"),
}


def _mutate_after_bad_sidecar(corpus: Path) -> None:
    """The changes that must still propagate in the same sync, all walked after the bad sidecar."""
    write(corpus / "people" / "dana.md.acl.toml", 'allow = ["group:hr"]\n')  # revoke dana
    (corpus / "hr" / "salaries.md").unlink()  # delete


@pytest.mark.parametrize("kind", sorted(BAD_SIDECARS))
def test_bad_file_sidecar_fails_its_file_closed_and_the_sync_goes_on(make_grounder, corpus, kind) -> None:
    g = make_grounder({"kb": kb(corpus)})
    assert g.sync()[0].ok
    assert _sees(g, SAM, "how many days of annual leave", "handbook/leave.md")
    text, key = BAD_SIDECARS[kind]
    sidecar = corpus / "handbook" / "leave.md.acl.toml"
    sidecar.write_bytes(text if isinstance(text, bytes) else text.encode())
    _mutate_after_bad_sidecar(corpus)
    r = g.sync()[0]
    assert r.ok, r.error
    reason = dict(r.skipped)["handbook/leave.md"]
    assert "handbook/leave.md.acl.toml" in reason and key in reason, reason
    assert "handbook/leave.md" not in _docs(g), "a file whose sidecar broke must be removed (fail closed)"
    assert not _sees(g, SAM, "how many days of annual leave", "handbook/leave.md")
    assert not _sees(g, "dana@example.com", "Dana bonus euros", "people/dana.md"), "revocation was skipped"
    assert "hr/salaries.md" not in _docs(g), "deletion was skipped"


@pytest.mark.parametrize("kind", ["int in allow", "bad toml", "unknown key"])
def test_bad_folder_sidecar_fails_its_whole_subtree_closed(make_grounder, corpus, kind) -> None:
    write(corpus / "hr" / "sub" / "bands.md", "# Bands\n\nBand L3 starts at sixty thousand.\n")
    g = make_grounder({"kb": kb(corpus)})
    g.sync()
    assert {"hr/salaries.md", "hr/sub/bands.md"} <= _docs(g)
    (corpus / "hr" / ".groundwire-acl.toml").write_text(BAD_SIDECARS[kind][0])
    write(corpus / "people" / "dana.md.acl.toml", 'allow = ["group:hr"]\n')
    r = g.sync()[0]
    assert r.ok, r.error
    for doc in ("hr/salaries.md", "hr/sub/bands.md"):
        assert "hr/.groundwire-acl.toml" in dict(r.skipped)[doc]
        assert doc not in _docs(g)
    assert "handbook/leave.md" in _docs(g)
    assert not _sees(g, "dana@example.com", "Dana bonus euros", "people/dana.md")


def test_sidecar_that_is_a_link_or_a_fifo_fails_closed_without_hanging(make_grounder, corpus, tmp_path) -> None:
    outside = write(tmp_path / "elsewhere.acl.toml", 'allow = ["everyone"]\n')
    (corpus / "people" / "dana.md.acl.toml").unlink()
    (corpus / "people" / "dana.md.acl.toml").symlink_to(outside)  # would widen dana's review to everyone
    fifo = corpus / "hr" / ".groundwire-acl.toml"
    fifo.unlink()
    os.mkfifo(fifo)
    g = make_grounder({"kb": kb(corpus)})
    try:
        r = _guarded(lambda: g.sync()[0])
    finally:
        try:
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            pass
    assert r.ok, r.error
    reasons = dict(r.skipped)
    assert "symbolic link" in reasons["people/dana.md"] and "FIFO" in reasons["hr/salaries.md"]
    assert _docs(g) == {"handbook/leave.md"}


# --- non-UTF-8 names ----------------------------------------------------------------------------------


def test_non_utf8_name_is_skipped_and_edit_and_restrict_in_the_same_sync_apply(make_grounder, corpus) -> None:
    g = make_grounder({"kb": kb(corpus)})
    g.sync()
    raw = os.fsencode(corpus / "handbook") + b"/notes\xff.md"
    with open(raw, "wb") as f:
        f.write(b"# Notes\n\nThe zqnotes canteen menu changes weekly.\n")
    write(corpus / "handbook" / "leave.md", "# Leave policy\n\nEvery employee receives 30 days of leave now.\n")
    write(corpus / "people" / "dana.md.acl.toml", 'allow = ["group:hr"]\n')
    r = g.sync()[0]
    assert r.ok, r.error
    assert dict(r.skipped)["handbook/notes\\xff.md"].startswith("file name is not valid UTF-8")
    leave = g.ground("how many days of leave", SAM)
    assert "30 days" in leave.text and "25 days" not in leave.text
    assert not _sees(g, "dana@example.com", "Dana bonus euros", "people/dana.md")
    assert "zqnotes" not in _visible(g.ground("canteen menu", SAM))


# --- ACL precedence ----------------------------------------------------------------------------------


def test_a_folder_deny_survives_a_file_sidecar(make_grounder, corpus) -> None:
    write(corpus / "hr" / ".groundwire-acl.toml", 'allow = ["group:hr"]\ndeny = ["user:intern@example.com"]\n')
    write(corpus / "hr" / "salaries.md.acl.toml", 'allow = ["group:hr", "user:ceo@example.com"]\n')
    g = make_grounder({"kb": kb(corpus)})
    g.sync()
    q = "salary review budget percent"
    assert _sees(g, "ceo@example.com", q, "hr/salaries.md")  # the file sidecar's allow applies
    assert not _sees(g, "intern@example.com", q, "hr/salaries.md", groups=["hr"])  # the folder's deny too


def test_a_root_folder_deny_applies_below_a_nearer_folder_acl(make_grounder, corpus) -> None:
    write(corpus / ".groundwire-acl.toml", 'allow = ["everyone"]\ndeny = ["user:contractor@example.com"]\n')
    g = make_grounder({"kb": kb(corpus)})
    g.sync()
    assert not _sees(g, "contractor@example.com", "salary review budget percent", "hr/salaries.md", groups=["hr"])
    assert _sees(g, "hana@example.com", "salary review budget percent", "hr/salaries.md", groups=["hr"])


def test_a_glob_deny_survives_a_file_sidecar_and_deny_only_globs_keep_the_folder_allow(make_grounder, corpus) -> None:
    write(corpus / "hr" / "salaries.md.acl.toml", 'allow = ["group:hr"]\n')
    g = make_grounder({"kb": kb(corpus, acl={"hr/*": {"deny": ["user:intern@example.com"]}})})
    g.sync()
    q = "salary review budget percent"
    assert not _sees(g, "intern@example.com", q, "hr/salaries.md", groups=["hr"])
    assert _sees(g, "hana@example.com", q, "hr/salaries.md", groups=["hr"])


def test_equal_length_conflicting_globs_are_a_config_error_naming_file_and_key(make_grounder, corpus) -> None:
    with pytest.raises(ValueError, match="same length"):
        KnowledgeBaseSettings.model_validate({"path": ".", "acl": {"hr/*": ["group:hr"], "*/x*": ["everyone"]}})
    with pytest.raises(ValueError, match="same length"):  # "hr/" means "hr/*"
        KnowledgeBaseSettings.model_validate({"path": ".", "acl": {"hr/": ["group:hr"], "hr/*": ["everyone"]}})
    # no overlap, or the same allow list: no conflict
    KnowledgeBaseSettings.model_validate({"path": ".", "acl": {"hr/*": ["group:hr"], "it/*": ["everyone"]}})
    KnowledgeBaseSettings.model_validate({"path": ".", "acl": {"hr/*": ["group:hr"], "*/a*": ["GROUP:HR"]}})
    g = make_grounder({"kb": kb(corpus, acl={"hr/*": ["group:hr"], "*/s*": ["everyone"]})})
    with pytest.raises(ConfigError) as e:
        g.ingester().build_connector("kb", {})
    assert "connectors.kb.acl" in str(e.value) and "<dict>" in str(e.value)
    r = g.sync()[0]
    assert not r.ok and "connectors.kb.acl" in r.error and _docs(g) == set()


def test_init_writes_no_blanket_rule_that_outranks_folder_acls(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "docs" / "a.md", "# A\n\nThe office opens at nine.\n")
    write(tmp_path / "docs" / "hr" / "pay.md", "# Pay\n\nThe zqpay salaries are paid on the 25th.\n")
    q = "The zqpay salaries are paid on the 25th"
    write(tmp_path / "docs" / "hr" / ".groundwire-acl.toml", 'allow = ["group:hr"]\n')
    assert main(["init", "docs", "--tenant", "acme"]) == 0
    text = (tmp_path / "groundwire.toml").read_text()
    assert '"*" =' not in text.split("[connectors.docs]")[1].replace('# "', "")
    (tmp_path / "groundwire.toml").write_text(text.replace('name = "minilm"', 'name = "hashing"'))
    assert main(["sync"]) == 0
    capsys.readouterr()
    assert main(["ask", q, "--user", "x@example.com", "--json"]) == 0
    assert "zqpay" not in capsys.readouterr().out
    assert main(["ask", q, "--user", "h@example.com", "--groups", "hr", "--json"]) == 0
    assert "zqpay" in capsys.readouterr().out
    assert main(["ask", "when does the office open", "--user", "x@example.com", "--json"]) == 0
    assert "nine" in capsys.readouterr().out  # default_allow still makes the rest readable to everyone
