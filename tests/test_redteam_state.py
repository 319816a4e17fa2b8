"""Red-team probes of state a careless operator or a crash leaves behind (real files, real Chroma, real CLI,
real processes): a corrupted key file, a connector removed from the configuration, a sync SIGKILLed midway.

Each test names the input; the ones that found a bug failed on the code before its fix.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from pathlib import Path

import pytest
from groundwire import Grounder, GroundingRequest, UserContext, config_from_dict
from groundwire.cli import main

from .conftest import write
from .test_trust_audit import _write_toml
from .trust_helpers import make_config, new_key

QUESTION = "When is payday?"


@pytest.fixture(autouse=True)
def _no_entrypoint_commands(monkeypatch):
    monkeypatch.setenv("GROUNDWIRE_NO_PLUGIN_COMMANDS", "1")


def synced_encrypted(tmp_path: Path) -> tuple[Path, Path]:
    """A synced, encrypted data dir under ``tmp_path``: its config file and its (private) key file."""
    keyfile = tmp_path / "keys" / "g.keys"
    keyfile.parent.mkdir()
    keyfile.write_text(f"k1:{new_key()}\n")
    keyfile.chmod(0o600)
    cfg = tmp_path / "g.toml"
    _write_toml(cfg, make_config(tmp_path, encryption={"enabled": True, "provider": "file",
                                                       "options": {"path": str(keyfile)}}))
    assert main(["sync", "--config", str(cfg)]) == 0
    return cfg, keyfile


@pytest.fixture
def encrypted(tmp_path):
    """A synced, encrypted data dir, its config file and its (private) key file."""
    return synced_encrypted(tmp_path)


@pytest.mark.parametrize("damage", ["not-utf8", "duplicate-id"])
def test_a_corrupted_key_file_fails_closed_with_one_line_naming_it(encrypted, capsys, damage) -> None:
    """Hostile input: the key file overwritten with binary bytes (a disk error, a wrong file copied over it), or
    a second line reusing the current key's id with other key material (a hand edit). Every command must refuse
    with one ``error:`` line naming the key file and what to do, never a traceback or "internal error", and
    write nothing."""
    cfg, keyfile = encrypted
    if damage == "not-utf8":
        keyfile.write_bytes(b"\xff\xfe\x00\x9c" + b"k1:garbage\n")
    else:
        keyfile.write_text(keyfile.read_text() + f"k1:{new_key()}\n")
    audit = cfg.parent / "data" / "audit" / "acme.jsonl"
    before = audit.read_bytes()
    capsys.readouterr()
    for argv in (["ask", QUESTION, "--user", "sam"], ["sync"], ["audit", "verify"]):
        code = main([*argv, "--config", str(cfg)])
        err = capsys.readouterr().err.strip()
        assert code in (1, 2), (argv, code, err)
        assert err.startswith("error:") and "internal error" not in err and "Traceback" not in err, err
        assert len(err.splitlines()) == 1 and str(keyfile) in err, err
        wanted = "UTF-8" if damage == "not-utf8" else "'k1' twice"
        assert wanted in err, err
    assert audit.read_bytes() == before


# --- SIGKILL in the middle of a sync, then resume ---------------------------------------------------------

SPAWN = multiprocessing.get_context("spawn")
SAM = UserContext.of("sam", "acme")
OPS = UserContext.of("olga", "acme", groups=["ops"])


def _kill_config(root: Path, data: str = "data") -> dict:
    return {"data_dir": str(root / data), "default_tenant": "acme",
            "embedder": {"name": "hashing", "batch_size": 2}, "plugins": {"load_entrypoints": False},
            "connectors": {"kb": {"type": "knowledge_base", "tenant": "acme", "path": str(root / "corpus")}}}


def _sync_then_die(root: str, kill_in: str) -> None:
    """In a child process: sync, and SIGKILL this process inside the second call of the index method
    ``kill_in``, right after its Chroma write (the ACL store's rows and the connector state not yet set)."""
    from groundwire.index.handle import _TenantHandle
    from groundwire.index.writes import _TenantWrites

    real_write, method = _TenantHandle._write, getattr(_TenantWrites, kill_in)
    calls, inside = [0], [False]

    def counted(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        calls[0] += 1
        inside[0] = calls[0] >= 2
        try:
            return method(self, *args, **kwargs)
        finally:
            inside[0] = False

    def dying(self, op):  # noqa: ANN001, ANN202
        out = real_write(self, op)
        if inside[0]:
            os.kill(os.getpid(), signal.SIGKILL)
        return out

    _TenantHandle._write = dying  # type: ignore[method-assign]
    setattr(_TenantWrites, kill_in, counted)
    Grounder(config_from_dict(_kill_config(Path(root)), base_dir=Path(root))).sync()


def _state(g) -> set[tuple[str, str, str]]:
    got = g.index.tenant("acme").collection.get(include=["metadatas"])
    return {(i, str(m["content_hash"]), str(m["acl_fp"])) for i, m in zip(got["ids"], got["metadatas"], strict=True)}


def _readable_docs(g, user) -> set[str]:
    return {c.doc_id for c in g.retrieve(GroundingRequest(user=user, prompt="zqfile policy", top_k=50))}


@pytest.mark.parametrize("kill_in", ["add_documents", "update_acl"], ids=["during-edits", "during-revocation"])
def test_a_sync_killed_midway_resumes_to_exactly_a_clean_sync(tmp_path, kill_in) -> None:
    """Crash: ``kill -9`` of ``groundwire sync`` while it applies edits, deletions and a revocation (the folder
    ``b-ops`` narrowed from everyone to ``group:ops``). The next sync must take the lock the dead one held,
    finish the revocation and the deletions, and leave the index equal to a clean full sync of the final files.
    Before the fix a kill between an ACL update's Chroma write and its ACL-store write left that chunk's store
    row at the meet of the old and new ACL (here: nobody) for good: the resumed sync saw the new version in
    Chroma, skipped the file, and the ops group never read it again."""
    corpus = tmp_path / "corpus"
    write(corpus / ".groundwire-acl.toml", 'allow = ["everyone"]\n')
    for n in range(8):
        write(corpus / "a-pub" / f"p{n}.md", f"# P{n}\n\nThe zqfile policy number {n} says version one.\n")
    for n in range(4):
        write(corpus / "b-ops" / f"o{n}.md", f"# O{n}\n\nThe zqfile policy of ops team number {n}.\n")
    g = Grounder(config_from_dict(_kill_config(tmp_path), base_dir=tmp_path))
    assert all(r.ok for r in g.sync())
    assert {f"b-ops/o{n}.md" for n in range(4)} <= _readable_docs(g, SAM)

    for n in range(6):  # edits (re-embedded in batches of 2), deletions, a new file, a revocation
        write(corpus / "a-pub" / f"p{n}.md", f"# P{n}\n\nThe zqfile policy number {n} says version two now.\n")
    (corpus / "a-pub" / "p6.md").unlink()
    (corpus / "a-pub" / "p7.md").unlink()
    write(corpus / "a-pub" / "new.md", "# New\n\nThe zqfile policy added last.\n")
    write(corpus / "b-ops" / ".groundwire-acl.toml", 'allow = ["group:ops"]\n')
    child = SPAWN.Process(target=_sync_then_die, args=(str(tmp_path), kill_in))
    child.start()
    child.join(120)
    assert child.exitcode == -signal.SIGKILL, child.exitcode

    resumed = Grounder(config_from_dict(_kill_config(tmp_path), base_dir=tmp_path))
    assert all(r.ok for r in resumed.sync())  # the dead sync's lock is gone; no SyncBusy
    assert not {d for d in _readable_docs(resumed, SAM) if d.startswith("b-ops/")}, "the revocation was lost"
    assert {f"b-ops/o{n}.md" for n in range(4)} <= _readable_docs(resumed, OPS)
    clean = Grounder(config_from_dict(_kill_config(tmp_path, "clean"), base_dir=tmp_path))
    assert all(r.ok for r in clean.sync())
    assert _state(resumed) == _state(clean)
    assert _readable_docs(resumed, OPS) == _readable_docs(clean, OPS)
    assert not {"a-pub/p6.md", "a-pub/p7.md"} & _readable_docs(resumed, SAM)


# --- a connector removed from the configuration -----------------------------------------------------------


def test_a_removed_connector_is_never_served_again(tmp_path) -> None:
    """Careless operator: the administrator removes ``[connectors.hr-docs]`` (a leak was found) but does not
    purge its chunks, which stay in the tenant's collection. A Grounder built from the edited file must not
    serve them through ``ground``, ``retrieve`` (even when the caller names the connector), the LangChain
    retriever or review (a draft written from them before becomes unreviewable)."""
    from groundwire.errors import AccessDenied
    from groundwire.langchain import GroundwireRetriever

    corpus = tmp_path / "corpus"
    write(corpus / "pub" / "a.md", "# Pub\n\nThe zqremoved canteen opens at noon.\n")
    write(corpus / "hr" / "b.md", "# HR\n\nThe zqremoved bonus pool is 2 percent.\n")
    both = {"data_dir": str(tmp_path / "data"), "default_tenant": "acme", "embedder": {"name": "hashing"},
            "plugins": {"load_entrypoints": False}, "features": {"ask": ["*"], "review": ["reviewer"]},
            "generator": {"name": "extractive", "options": {"min_similarity": 0.0}},
            "connectors": {"pub-docs": {"type": "knowledge_base", "tenant": "acme", "path": str(corpus / "pub"),
                                        "default_allow": ["everyone"]},
                           "hr-docs": {"type": "knowledge_base", "tenant": "acme", "path": str(corpus / "hr"),
                                       "default_allow": ["everyone"]}}}
    cfg = tmp_path / "g.toml"
    _write_toml(cfg, both)
    before = Grounder.from_config(cfg)
    assert all(r.ok for r in before.sync())
    question = "What is the zqremoved bonus pool and when does the canteen open?"
    draft = before.ground(question, SAM)
    assert "hr-docs" in {c.connector for c in draft.citations}
    reviewer = UserContext.of("rita", "acme", roles=["reviewer"])
    assert draft.id in {i.id for i in before.reviews.list(reviewer)}

    _write_toml(cfg, dict(both, connectors={"pub-docs": both["connectors"]["pub-docs"]}))
    after = Grounder.from_config(cfg)
    assert after.index.tenant("acme").documents("hr-docs"), "the probe needs the chunks to still be stored"
    texts = [after.ground(question, SAM).text]
    texts += [c.text for c in after.retrieve(question, SAM, top_k=20)]
    texts += [c.text for c in after.retrieve(question, SAM, top_k=20, connectors=["hr-docs"])]
    texts += [d.page_content for d in GroundwireRetriever(grounder=after, user=SAM, k=20).invoke(question)]
    assert texts[0] and not any("bonus" in t for t in texts), texts
    assert draft.id not in {i.id for i in after.reviews.list(reviewer)}
    with pytest.raises(AccessDenied):
        after.reviews.get(draft.id, reviewer)


# --- a write limit hit in the middle of a sync (RLIMIT_FSIZE) ----------------------------------------------

_LIMITED_SYNC = """
import resource, sys
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[2]), int(sys.argv[2])))
from groundwire.cli import main
sys.exit(main(["sync", "--config", sys.argv[1]]))
"""


def test_a_sync_that_hits_a_file_size_limit_names_the_cause_and_a_resync_recovers(tmp_path) -> None:
    """Full disk, as a careless operator's ``ulimit -f`` (RLIMIT_FSIZE) in a real subprocess: the index's
    files may not grow past their size. The sync must fail with one line naming the cause and what to do
    (before the fix: a logged traceback and "InternalError: ... (code: 778) disk I/O error"), leave the index
    usable for asking, and a later unlimited sync must finish the revocation and equal a clean sync."""
    import subprocess
    import sys

    corpus = tmp_path / "corpus"
    write(corpus / ".groundwire-acl.toml", 'allow = ["everyone"]\n')
    for n in range(4):
        write(corpus / "ops" / f"o{n}.md", f"# O{n}\n\nThe zqfile policy of ops team number {n}.\n")
    cfg = tmp_path / "g.toml"
    _write_toml(cfg, _kill_config(tmp_path))
    assert main(["sync", "--config", str(cfg)]) == 0
    largest = max(p.stat().st_size for p in (tmp_path / "data").rglob("*") if p.is_file())
    write(corpus / "ops" / ".groundwire-acl.toml", 'allow = ["group:ops"]\n')
    for n in range(16):
        write(corpus / "pub" / f"p{n:02}.md", f"# P{n}\n\nThe zqfile policy page {n} is short.\n")
    run = subprocess.run([sys.executable, "-c", _LIMITED_SYNC, str(cfg), str(largest + 4096)],
                         capture_output=True, text=True, timeout=300, env={**os.environ, "COLUMNS": "200"})
    assert run.returncode == 1, (run.returncode, run.stderr[-2000:])
    assert "Traceback" not in run.stderr and "InternalError" not in run.stderr, run.stderr[-3000:]
    # whichever store reaches the limit first (the index, or the chunk ACL store written beside it)
    assert "ulimit" in run.stderr and ("could not write the index" in run.stderr
                                       or "could not write the chunk ACL store" in run.stderr), run.stderr[-2000:]
    g = Grounder(config_from_dict(_kill_config(tmp_path), base_dir=tmp_path))
    g.retrieve(GroundingRequest(user=SAM, prompt="zqfile policy", top_k=5))  # still readable
    assert all(r.ok for r in g.sync())
    assert not {d for d in _readable_docs(g, SAM) if d.startswith("ops/")}
    clean = Grounder(config_from_dict(_kill_config(tmp_path, "clean"), base_dir=tmp_path))
    assert all(r.ok for r in clean.sync())
    assert _state(g) == _state(clean)
