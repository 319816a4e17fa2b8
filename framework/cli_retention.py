"""``groundwire retention apply [--dry-run]``: enforce ``[retention]`` (see :mod:`groundwire.retention`)."""

from __future__ import annotations

import getpass
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

__all__ = ["register"]

console = Console(soft_wrap=True)

retention_app = typer.Typer(help="Retention of audit lines, drafts and quarantine entries: apply.",
                            no_args_is_help=True)


@retention_app.command("apply")
def retention_apply(
    config: Annotated[Path, typer.Option("--config", "-c", envvar="GROUNDWIRE_CONFIG",
                                         help="Configuration file (TOML).")] = Path("groundwire.toml"),
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Count what would be removed; change nothing.")] = False,
    by: Annotated[str | None, typer.Option("--by", help="Who applies it (default: the OS user).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object.")] = False,
) -> None:
    """Remove audit lines, review drafts and quarantine entries older than the [retention] limits. Audit logs
    keep verifying (a keyed anchor stands in for the removed lines); each tenant's log gets a 'retention'
    record with the counts."""
    from .pipeline import Grounder
    from .retention import apply_retention

    g = Grounder.from_config(config)
    rep = apply_retention(g, dry_run, by or getpass.getuser())
    if as_json:
        typer.echo(json.dumps({"dry_run": dry_run, "policy": rep.policy, "totals": rep.totals(),
                               "audit": {t: r.to_dict() for t, r in rep.audit.items()},
                               "reviews": rep.reviews, "quarantine": rep.quarantine}, sort_keys=True))
        return
    t = Table(title="Retention" + (" (dry run: nothing removed)" if dry_run else ""))
    for col in ("tenant", "audit lines", "drafts", "quarantine entries"):
        t.add_column(col)
    for tenant in rep.tenants():
        a = rep.audit.get(tenant)
        t.add_row(tenant, str(a.removed) if a else "kept", str(sum(rep.reviews.get(tenant, {}).values())),
                  str(sum(rep.quarantine.get(tenant, {}).values())))
    console.print(t)
    p = rep.policy
    console.print(f"policy: audit {p['audit_days']} d, reviews {p['reviews_days']} d, quarantine "
                  f"{p['quarantine_days']} d (0 = forever)")


def register(cli: typer.Typer) -> None:
    cli.add_typer(retention_app, name="retention")
