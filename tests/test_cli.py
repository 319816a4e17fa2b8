"""The command line, run in-process through groundwire.cli.main (exit codes and output)."""

from __future__ import annotations

import json
from pathlib import Path

from groundwire.cli import main


def _config(tmp_path: Path, corpus: Path) -> Path:
    p = tmp_path / "g.toml"
    p.write_text(
        f'data_dir = "{(tmp_path / "data").as_posix()}"\ndefault_tenant = "acme"\n'
        '[embedder]\nname = "hashing"\n[plugins]\nload_entrypoints = false\n'
        f'[connectors.kb]\ntype = "knowledge_base"\ntenant = "acme"\npath = "{corpus.as_posix()}"\n'
    )
    return p


def test_sync_then_ask_json(tmp_path, corpus, capsys) -> None:
    cfg = _config(tmp_path, corpus)
    assert main(["sync", "--config", str(cfg), "--json"]) == 0
    reports = json.loads(capsys.readouterr().out)
    assert reports[0]["added"] == 3
    assert main(["ask", "salary review budget", "--user", "hana@example.com", "--groups", "hr",
                 "--config", str(cfg), "--json"]) == 0
    draft = json.loads(capsys.readouterr().out)
    assert draft["status"] == "pending_review" and draft["notice"]
    assert any(c["doc_id"] == "hr/salaries.md" for c in draft["citations"])


def test_ask_prints_draft_citations_and_notice(tmp_path, corpus, capsys) -> None:
    cfg = _config(tmp_path, corpus)
    main(["sync", "--config", str(cfg)])
    capsys.readouterr()
    assert main(["ask", "annual leave days", "--user", "sam@example.com", "--config", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert "Sources" in out and "[1]" in out and "human review" in out


def test_config_error_exit_code_and_message(tmp_path, capsys) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[retrieval]\ntop_k = -1\n")
    assert main(["sync", "--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "retrieval.top_k" in err and str(bad.name) in err


def test_init_writes_a_working_config(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("# A\n\nThe office opens at nine.\n")
    assert main(["init", "docs", "--tenant", "acme"]) == 0
    assert main(["init", "docs"]) == 2  # refuses to overwrite
    text = (tmp_path / "groundwire.toml").read_text()
    (tmp_path / "groundwire.toml").write_text(text.replace('name = "minilm"', 'name = "hashing"'))
    assert main(["sync", "--json"]) == 0
    capsys.readouterr()
    assert main(["ask", "when does the office open", "--user", "x@example.com", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["citations"]


def test_plugins_command_lists_builtins(capsys) -> None:
    assert main(["plugins", "--json"]) == 0
    names = {p["name"]: p for p in json.loads(capsys.readouterr().out)}
    assert names["access"]["hooks"] == ["filter_chunks"] and names["access"]["builtin"]
    assert "register_connectors" in names["knowledge_base"]["hooks"]


def test_unknown_tenant_is_denied_without_detail(tmp_path, corpus, capsys) -> None:
    cfg = _config(tmp_path, corpus)
    assert main(["ask", "x", "--user", "u@example.com", "--tenant", "other", "--config", str(cfg)]) == 1
    assert "not configured" in capsys.readouterr().err


def test_usage_errors_exit_2_with_a_message_not_a_traceback(tmp_path, capsys) -> None:
    assert main(["review", "list", "--bogus"]) == 2
    err = capsys.readouterr().err
    assert "No such option: --bogus" in err and "Traceback" not in err
    assert main(["audit", "export", "--since", "not-a-date"]) == 2
    assert "not an ISO date/time" in capsys.readouterr().err
