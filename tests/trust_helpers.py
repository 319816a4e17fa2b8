"""Shared set-up for the trust-control tests: two tenants with identical principal names, hashing embedder."""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

from groundwire import Grounder, config_from_dict

ACME_PUBLIC = "Acme payday is the 25th of every month. Acme salaries are paid by bank transfer."
ACME_HR = "Acme salary increases of 4 percent take effect in April; the raise budget is secret."
GLOBEX_PUBLIC = "Globex payday is the last Friday of the month. Globex pays salaries in cash."
GLOBEX_HR = "Globex salary increases are frozen this year; the Globex raise budget is zero."


def write_corpus(root: Path) -> None:
    for tenant, public, hr in (("acme", ACME_PUBLIC, ACME_HR), ("globex", GLOBEX_PUBLIC, GLOBEX_HR)):
        (root / tenant / "hr").mkdir(parents=True, exist_ok=True)
        (root / tenant / "payday.md").write_text(f"# Payday\n\n{public}\n", encoding="utf-8")
        (root / tenant / "hr" / "raises.md").write_text(f"# Raises\n\n{hr}\n", encoding="utf-8")


def make_config(root: Path, **extra: Any) -> dict[str, Any]:
    write_corpus(root / "corpus")
    acl = {"hr/*": ["group:hr"], "*": ["everyone"]}
    cfg: dict[str, Any] = {
        "data_dir": str(root / "data"),
        "default_tenant": "acme",
        "embedder": {"name": "hashing"},
        "generator": {"name": "extractive", "options": {"min_similarity": 0.0}},
        "features": {"ask": ["*"]},
        "plugins": {"load_entrypoints": False},
        "connectors": {
            "acme-docs": {
                "type": "knowledge_base",
                "tenant": "acme",
                "path": str(root / "corpus" / "acme"),
                "acl": acl,
            },
            "globex-docs": {
                "type": "knowledge_base",
                "tenant": "globex",
                "path": str(root / "corpus" / "globex"),
                "acl": acl,
            },
        },
    }
    cfg.update(extra)
    return cfg


def grounder(root: Path, **extra: Any) -> Grounder:
    return Grounder(config_from_dict(make_config(root, **extra), base_dir=root))


def new_key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def wrapped_by(data_dir: Path, tenant: str) -> str:
    """The master key id that wraps ``tenant``'s data key (``<data_dir>/keys/<tenant>.dek``)."""
    import json

    doc = json.loads((data_dir / "keys" / f"{tenant}.dek").read_text(encoding="utf-8"))
    return str(doc["wrapped"]).split(":")[1]


# Chroma's HNSW sidecar files; a hit in one of them is Chroma writing recycled heap memory, not a payload
_HNSW_FILES = {"length.bin", "header.bin", "data_level0.bin", "link_lists.bin", "index_metadata.pickle"}


def plaintext_in_files(folder: Path, texts: list[str], context: int = 48) -> list[str]:
    """One line per occurrence of any of ``texts`` (or of its first 24 characters) in any file under
    ``folder``, naming the file, its size, the offset and the bytes around it, so a rare leak can be
    diagnosed from the failure message alone. Files are searched one by one (never concatenated)."""
    out = []
    needles = {t.encode() for t in texts} | {t[:24].encode() for t in texts}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        raw = path.read_bytes()
        for needle in sorted(needles, key=len, reverse=True):
            at = raw.find(needle)
            if at < 0:
                continue
            hint = (" (an HNSW sidecar: Chroma persisted uninitialized heap memory, chroma-core/chroma#7688)"
                    if path.name in _HNSW_FILES else "")
            out.append(f"{path.relative_to(folder)} ({len(raw)} bytes) at offset {at}: "
                       f"{raw[max(0, at - context):at + len(needle) + context]!r}{hint}")
            break
    return out
