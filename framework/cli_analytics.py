"""``groundwire analytics``: activity figures from the audit log (see :mod:`groundwire.analytics`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from .terminal import escape

__all__ = ["register"]

console = Console(soft_wrap=True)


def analytics(
    config: Annotated[Path, typer.Option("--config", "-c", envvar="GROUNDWIRE_CONFIG",
                                         help="Configuration file (TOML).")] = Path("groundwire.toml"),
    since: Annotated[str | None, typer.Option(help="ISO date or time, e.g. 2026-01-01.")] = None,
    tenant: Annotated[str | None, typer.Option(help="Only this tenant.")] = None,
    html: Annotated[Path | None, typer.Option("--html", help="Also write a self-contained page with plots.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object.")] = False,
) -> None:
    """Requests per feature and day, blocked and withheld rates, latency percentiles and the most cited
    sources, from the (decrypted) audit log."""
    from .analytics import summarize, write_html
    from .cli_exports import parse_since
    from .pipeline import Grounder

    s = summarize(Grounder.from_config(config), parse_since(since) if since else None, tenant)
    if html is not None:
        write_html(s, html)
    if as_json:
        typer.echo(json.dumps(s.to_dict(), sort_keys=True))
        return
    console.print(f"{s.requests} requests ({s.tenant}, since {s.since or 'the beginning'}): "
                  f"blocked {s.blocked} ({s.blocked_rate:.1%}), withheld {s.withheld} ({s.withheld_rate:.1%}), "
                  f"denied {s.denied}")
    t = Table(title="Requests per day")
    features = sorted({f for c in s.per_day.values() for f in c})
    for col in ("day", *features):
        t.add_column(escape(col))
    for day, c in s.per_day.items():
        t.add_row(day, *(str(c.get(f, 0)) for f in features))
    console.print(t)
    t = Table(title="Latency (ms)")
    for col in ("feature", "n", "p50", "p90", "p99"):
        t.add_column(col)
    for f, v in s.latency_ms.items():
        t.add_row(escape(f), f"{v['n']:.0f}", str(v["p50"]), str(v["p90"]), str(v["p99"]))
    console.print(t)
    t = Table(title="Most cited sources")
    t.add_column("source", overflow="fold")
    t.add_column("citations")
    for name, n in s.top_sources:
        t.add_row(escape(name), str(n))
    console.print(t)
    if html is not None:
        console.print(f"wrote {escape(str(html))}")


def register(cli: typer.Typer) -> None:
    cli.command("analytics")(analytics)
