"""Progress of a real ``groundwire sync`` (a subprocess, so stderr is not a terminal): plain lines with the
totals, counts and rate, and a final line whose figures are the index's."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from groundwire import Grounder

from .conftest import write


def test_non_terminal_sync_prints_totals_counts_rate_and_a_final_line(tmp_path: Path) -> None:
    root = tmp_path / "kb"
    for i in range(7):
        write(root / f"doc{i}.md", f"# Doc {i}\n\n" + f"Sentence {i} of the progress test corpus. " * (20 + 30 * i))
    write(root / "empty.md", "")  # an empty file: an item with no chunk
    write(root / ".hidden.md", "# Hidden\n\nNot an item: hidden files are not walked.\n")
    cfg = tmp_path / "groundwire.toml"
    cfg.write_text(
        'data_dir = "data"\ndefault_tenant = "acme"\n[embedder]\nname = "hashing"\n'
        '[plugins]\nload_entrypoints = false\n'
        f'[connectors.handbook]\ntype = "knowledge_base"\ntenant = "acme"\npath = "{root.as_posix()}"\n'
        'default_allow = ["everyone"]\n', encoding="utf-8")
    env = dict(os.environ, ANONYMIZED_TELEMETRY="False", HF_HUB_OFFLINE="1", COLUMNS="200")
    proc = subprocess.run([sys.executable, "-m", "groundwire", "sync", "--config", str(cfg), "--progress-every", "0"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("sync handbook:")]
    running = [re.fullmatch(r"sync handbook: (\d+)/(\d+) items, (\d+) chunks, ([\d.]+) chunks/s(, ETA \d+ s)?", ln)
               for ln in lines[:-1]]
    assert running and all(running), lines
    assert {int(m.group(2)) for m in running if m} == {8}  # the total: every file the walk finds, known up front
    done = [int(m.group(1)) for m in running if m]
    assert done == sorted(done) and done[-1] == 8  # counts only grow, up to the total
    chunk_counts = [int(m.group(3)) for m in running if m]
    assert chunk_counts == sorted(chunk_counts) and chunk_counts[-1] > 0  # chunks written while it runs
    assert any(float(m.group(4)) > 0 for m in running if m) and any(m.group(5) for m in running if m)
    final = re.fullmatch(r"sync handbook: done: (\d+) items, (\d+) chunks in ([\d.]+) s, ([\d.]+) chunks/s", lines[-1])
    assert final, lines[-1]
    g = Grounder.from_config(cfg)
    stored = g.index.tenant("acme").count()
    assert int(final.group(1)) == 8 and int(final.group(2)) == stored == chunk_counts[-1]
    assert len(g.index.tenant("acme").documents("handbook")) == 7
