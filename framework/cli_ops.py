"""Operations commands for the ``groundwire`` CLI: ``doctor`` (failure detection) and ``inventory``.

Registered by :func:`groundwire.cli_trust.register`. Exit codes: 0 all ok, 1 a doctor check failed,
2 configuration errors.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from .terminal import escape

__all__ = ["register"]

console = Console(soft_wrap=True)

ConfigOpt = Annotated[
    Path, typer.Option("--config", "-c", envvar="GROUNDWIRE_CONFIG", help="Configuration file (TOML).")
]
_CFG = Path("groundwire.toml")


def _grounder(config: Path) -> Any:
    from .pipeline import Grounder

    return Grounder.from_config(config)


def doctor(
    config: ConfigOpt = _CFG,
    as_json: Annotated[bool, typer.Option("--json", help="The checks as a JSON list.")] = False,
    min_free_mb: Annotated[int, typer.Option("--min-free-mb", help="Free space data_dir needs (MiB).")] = 500,
) -> None:
    """Check stores, keys, disk space, model files, connector sources, the audit chain and Chroma: one line
    per check, with what to do when it fails. Exit 1 if any check fails."""
    from .doctor import doctor_checks

    checks = doctor_checks(_grounder(config), min_free_mb=min_free_mb)
    if as_json:
        typer.echo(json.dumps([c.to_dict() for c in checks]))
    else:
        for c in checks:
            mark = "[green]ok  [/]" if c.ok else "[red]FAIL[/]"
            fix = f"\n       -> {escape(c.fix)}" if not c.ok and c.fix else ""
            console.print(f"{mark} {escape(c.name)}: {escape(c.detail)}{fix}")
    if not all(c.ok for c in checks):
        raise typer.Exit(1)


def _size(n: int | None) -> str:
    if n is None:
        return "n.a."
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)  # pragma: no cover


def inventory(
    config: ConfigOpt = _CFG,
    as_json: Annotated[bool, typer.Option("--json", help="The inventory as one JSON object.")] = False,
) -> None:
    """List every store and asset: collections per tenant, files under data_dir with their encryption status,
    key ids and ages, connectors with last sync and item counts, plugins with versions and file hashes."""
    from .inventory import build_inventory

    inv = build_inventory(_grounder(config))
    if as_json:
        typer.echo(json.dumps(inv, ensure_ascii=False))
        return
    t = Table(title=f"Collections ({escape(inv['data_dir'])})")
    for col in ("tenant", "collection", "live", "chunks", "vectors on disk", "payloads"):
        t.add_column(col)
    for c in inv["collections"]:
        t.add_row(c["tenant"], c["name"], "yes" if c["live"] else "no", str(c["chunks"]), _size(c["vector_bytes"]),
                  c["payloads"])
    console.print(t)
    t = Table(title="Files under data_dir")
    for col in ("path", "size", "encryption", "modified"):
        t.add_column(col, overflow="fold")
    for f in inv["files"]:
        t.add_row(escape(f["path"]), _size(f["bytes"]), f["encryption"], (f["modified"] or "")[:19])
    console.print(t)
    t = Table(title="Keys")
    for col in ("id", "current", "provider", "created", "age (days)"):
        t.add_column(col)
    for k in inv["keys"]:
        t.add_row(escape(k["id"]), "yes" if k["current"] else "", k["provider"], k["created"] or "unknown",
                  "" if k["age_days"] is None else str(k["age_days"]))
    console.print(t)
    t = Table(title="Connectors")
    for col in ("name", "type", "tenant", "last sync", "items"):
        t.add_column(col)
    for c in inv["connectors"]:
        t.add_row(c["name"], c["type"], c["tenant"], (c["last_sync"] or "never")[:19],
                  "" if c["items"] is None else str(c["items"]))
    console.print(t)
    t = Table(title="Plugins")
    for col in ("name", "version", "sha256", "file"):
        t.add_column(col, overflow="fold")
    for p in inv["plugins"]:
        t.add_row(p["name"], p["version"], (p["sha256"] or "n.a.")[:16], escape(p["file"] or ""))
    console.print(t)
    for problem in inv["problems"]:
        console.print(f"[yellow]could not read:[/] {escape(problem)}")


def register(cli: typer.Typer) -> None:
    """Add ``doctor`` and ``inventory`` to ``cli``."""
    existing = {c.name for c in cli.registered_commands}
    if "doctor" not in existing:
        cli.command("doctor")(doctor)
        cli.command("inventory")(inventory)
