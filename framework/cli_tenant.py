"""``groundwire tenant``: tenant lifecycle commands (``purge``), registered from :mod:`groundwire.cli_trust`.

``groundwire tenant purge TENANT --by ADMIN [--yes] [--wait]`` destroys the tenant's data and crypto-shreds its
data key (:func:`groundwire.purge.purge_tenant`); without ``--yes`` it asks first. Exit codes: 0 purged,
1 refused (a sync holds the lock, declined), 2 usage errors (no ``--by``, unknown tenant).
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

from .cli_trust import _CFG, ConfigOpt, _grounder, console, err_console
from .terminal import escape

__all__ = ["tenant_app"]

tenant_app = typer.Typer(help="Tenants: purge (asset disposal).", no_args_is_help=True)


@tenant_app.command("purge")
def tenant_purge(
    tenant: Annotated[str, typer.Argument(help="The tenant whose data is destroyed.")],
    by: Annotated[str, typer.Option("--by", help="Your administrator id (recorded in the destruction record).")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    wait: Annotated[bool, typer.Option("--wait", help="Wait for a running sync instead of refusing.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the destruction record as JSON.")] = False,
    config: ConfigOpt = _CFG,
) -> None:
    """Delete TENANT's index collections, snapshots, connector state, drafts and quarantine entries, destroy its
    data key (crypto-shred), and write a destruction record to its audit log. Cannot be undone."""
    from .purge import purge_tenant

    g = _grounder(config)
    if not yes and not typer.confirm(
        f"Destroy every stored item of tenant {tenant!r} in {g.config.data_path}? This cannot be undone", err=True
    ):
        err_console.print("not purged")
        raise typer.Exit(1)
    record = purge_tenant(g, tenant, by, wait=wait, on_wait=lambda m: err_console.print(f"waiting: {escape(m)}"))
    if as_json:
        console.print_json(json.dumps(record.to_dict()))
        return
    d = record.destroyed
    console.print(
        f"purged tenant {tenant!r}: {d['chunks']} chunks of {d['documents']} documents in "
        f"{len(d['collections'])} collections, {d['drafts']} drafts, {d['quarantine_entries']} quarantine entries, "
        f"{d['state_files']} state files, {d['snapshot_files']} snapshot files; data key "
        f"{'destroyed (' + str(d['data_key']) + ')' if record.crypto_shredded else 'none (not crypto-shredded)'}; "
        "destruction record written to the audit log"
    )
    for note in record.notes:
        err_console.print(f"[yellow]note:[/] {escape(note)}")
