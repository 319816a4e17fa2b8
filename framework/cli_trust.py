"""Trust commands for the ``groundwire`` CLI: ``keys``, ``audit``, ``review``, ``quarantine`` and ``trust-report``.

Registered through the built-in ``trust_cli`` plugin's ``register_commands`` hook. Exit codes: 0 ok,
1 a check failed (tampered audit line, failing control, access denied), 2 configuration errors.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from . import cli_analytics, cli_exports, cli_retention
from .terminal import escape

__all__ = ["register"]

console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)

ConfigOpt = Annotated[
    Path, typer.Option("--config", "-c", envvar="GROUNDWIRE_CONFIG", help="Configuration file (TOML).")
]
_CFG = Path("groundwire.toml")


def _grounder(config: Path) -> Any:
    from .pipeline import Grounder

    return Grounder.from_config(config)


def repeated_ids(values: list[str] | None, option: str) -> list[str]:
    """The ids given by repeating ``option`` (``--groups a --groups b``). A comma in one value is an error:
    ``--groups "book-club, hr"`` must not silently grant ``hr`` (nor be one group named so)."""
    for v in values or []:
        if "," in v:
            raise typer.BadParameter(
                f"{v!r} contains a comma; give one id per option: "
                + " ".join(f"{option} {p.strip()!r}" for p in v.split(",") if p.strip()),
                param_hint=option,
            )
    return list(values or [])


def _split(values: list[str] | None, option: str = "--groups") -> list[str]:
    return repeated_ids(values, option)


keys_app = typer.Typer(help="Encryption keys: generate, rotate.", no_args_is_help=True)
audit_app = typer.Typer(help="The audit log: verify, export.", no_args_is_help=True)
review_app = typer.Typer(help="Review drafts: list, show, approve, edit, reject.", no_args_is_help=True)
quarantine_app = typer.Typer(
    help="Chunks kept aside by document screening: list, release.", no_args_is_help=True
)


@keys_app.command("generate")
def keys_generate(
    key_id: Annotated[str, typer.Option("--id", help="Key id.")] = "",
    file: Annotated[
        Path | None, typer.Option("--file", help="Append the key to this key file (created with mode 0600).")
    ] = None,
) -> None:
    """Make a new random 256-bit key: print '<id>:<base64>' (for the env provider), or with --file append it
    to a private key file, where it becomes the current key (then run 'groundwire keys rotate')."""
    from .crypto import generate_key
    from .keyfile import add_key, new_key_id

    kid = key_id or new_key_id()
    if file is None:
        console.print(f"{kid}:{generate_key()}", soft_wrap=True)
        return
    add_key(file, kid, generate_key())
    console.print(f"Added key {kid!r} to {file} (mode 0600); it is now the current key.")


@keys_app.command("rotate")
def keys_rotate(config: ConfigOpt = _CFG) -> None:
    """Re-encrypt stored chunk payloads, audit lines and drafts with the current key."""
    from .synclock import sync_lock
    from .trust import rotate_keys

    g = _grounder(config)
    # re-encrypting chunk payloads while a sync writes them would lose one side's writes
    with sync_lock(g.config.data_path, wait=True,
                   on_wait=lambda msg: err_console.print(f"waiting: {escape(msg)}")):
        counts = rotate_keys(g)
    console.print(
        f"re-encrypted with key {g.codec.current!r}: " + ", ".join(f"{v} {k}" for k, v in counts.items())
    )


@audit_app.command("verify")
def audit_verify(
    config: ConfigOpt = _CFG, tenant: Annotated[str | None, typer.Option(help="Only this tenant.")] = None
) -> None:
    """Check the hash chain of every audit log; exit 1 naming the file and line of any tampering."""
    from .trust import audit_reports

    results = audit_reports(_grounder(config), tenant)
    bad = 0
    for path, report in results.items():
        for p in report.notes:
            console.print(f"[yellow]note[/] {escape(str(path))}:{p.line}: {escape(p.problem)}")
        for p in report.problems:
            bad += 1
            err_console.print(f"[red]TAMPERED[/] {escape(str(path))}:{p.line}: {escape(p.problem)}")
        if report.ok:
            console.print(f"ok {escape(str(path))} ({report.records} records)")
    if not results:
        console.print("no audit logs yet")
    if bad:
        raise typer.Exit(1)


def _reviewer(
    g: Any, reviewer: str, tenant: str | None, groups: list[str] | None, roles: list[str] | None
) -> Any:
    return g.make_user(reviewer, tenant, _split(groups, "--groups"), _split(roles, "--roles"))


Reviewer = Annotated[str, typer.Option("--reviewer", help="The reviewer's user id.")]
Groups = Annotated[list[str] | None, typer.Option("--groups", "-g", help="The reviewer's groups (repeat).")]
Roles = Annotated[list[str] | None, typer.Option("--roles", "-r", help="The reviewer's roles (repeat).")]
Tenant = Annotated[str | None, typer.Option(help="Tenant (default: default_tenant).")]


@review_app.command("list")
def review_list(
    reviewer: Reviewer,
    config: ConfigOpt = _CFG,
    tenant: Tenant = None,
    groups: Groups = None,
    roles: Roles = None,
    status: Annotated[str | None, typer.Option(help="pending_review, edited, approved, rejected.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines.")] = False,
) -> None:
    """List the drafts this reviewer may review (ids, author, status; no text)."""
    g = _grounder(config)
    items = g.reviews.list(_reviewer(g, reviewer, tenant, groups, roles), status)
    if as_json:
        for item in items:
            typer.echo(
                json.dumps(
                    {
                        k: v
                        for k, v in item.to_dict().items()
                        if k in ("id", "tenant", "author", "status", "created_at", "updated_at")
                    }
                )
            )
        return
    t = Table(title="Drafts")
    t.add_column("id", no_wrap=True, min_width=32)
    for col in ("status", "author", "created", "updated"):
        t.add_column(col)
    for item in items:
        t.add_row(item.id, item.status, item.author, item.created_at[:19], item.updated_at[:19])
    console.print(t)


@review_app.command("show")
def review_show(
    draft_id: str,
    reviewer: Reviewer,
    config: ConfigOpt = _CFG,
    tenant: Tenant = None,
    groups: Groups = None,
    roles: Roles = None,
) -> None:
    """Show a draft (only to a reviewer who can read all its sources)."""
    g = _grounder(config)
    item = g.reviews.get(draft_id, _reviewer(g, reviewer, tenant, groups, roles))
    console.print_json(json.dumps(item.to_dict()))


def _decision(name: str) -> Any:
    def cmd(
        draft_id: str,
        reviewer: Reviewer,
        config: ConfigOpt = _CFG,
        tenant: Tenant = None,
        groups: Groups = None,
        roles: Roles = None,
        note: Annotated[str, typer.Option(help="A note or reason.")] = "",
        text: Annotated[str | None, typer.Option(help="The edited text (edit only).")] = None,
    ) -> None:
        g = _grounder(config)
        user = _reviewer(g, reviewer, tenant, groups, roles)
        if name == "edit":
            if text is None:
                raise typer.BadParameter("edit needs --text", param_hint="--text")
            item = g.reviews.edit(draft_id, user, text, note)
        else:
            item = getattr(g.reviews, name)(draft_id, user, note)
        console.print(f"draft {item.id}: {item.status} by {user.user_id}")

    cmd.__doc__ = f"{name.capitalize()} a draft (audited with the reviewer's id)."
    return cmd


for _name in ("approve", "edit", "reject"):
    review_app.command(_name)(_decision(_name))


_Q_FIELDS = ("chunk_id", "status", "doc_id", "connector", "plugin", "score", "reason", "hits", "first_seen",
             "last_seen", "released_by", "released_at", "note", "text_hash", "tenant")


@quarantine_app.command("list")
def quarantine_list(
    by: Annotated[str, typer.Option("--by", help="The administrator's user id.")],
    config: ConfigOpt = _CFG,
    tenant: Tenant = None,
    status: Annotated[str | None, typer.Option(help="quarantined or released.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines.")] = False,
    groups: Annotated[list[str] | None, typer.Option("--groups", "-g", help="The administrator's groups.")] = None,
    roles: Annotated[
        list[str] | None,
        typer.Option("--roles", "-r", help="The administrator's roles; one needs the quarantine_admin feature."),
    ] = None,
) -> None:
    """List quarantined (and released) chunks the administrator can read: ids, plugin, reason, hits; never
    document text. Needs the quarantine_admin feature for a role."""
    g = _grounder(config)
    admin = g.make_user(by, tenant, _split(groups, "--groups"), _split(roles, "--roles"))
    try:
        entries = g.quarantine.list(admin, status)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--status") from None
    if as_json:
        for e in entries:
            d = e.to_dict()
            typer.echo(json.dumps({k: d[k] for k in _Q_FIELDS}, ensure_ascii=False))
        return
    t = Table(title="Quarantine")
    for col in ("chunk", "status", "hits", "last seen"):
        t.add_column(col, no_wrap=True)
    t.add_column("document", overflow="fold")
    t.add_column("why")
    for e in entries:
        t.add_row(
            escape(e.chunk_id), e.status, str(e.hits), e.last_seen[:10], escape(f"{e.connector}:{e.doc_id}"),
            escape(f"{e.plugin}: {e.reason}"),
        )
    console.print(t)


@quarantine_app.command("release")
def quarantine_release(
    chunk_id: str,
    by: Annotated[str, typer.Option("--by", help="The administrator's user id.")],
    config: ConfigOpt = _CFG,
    tenant: Tenant = None,
    roles: Annotated[
        list[str] | None,
        typer.Option("--roles", "-r", help="The administrator's roles; one needs the quarantine_admin feature."),
    ] = None,
    note: Annotated[str, typer.Option(help="Why it is safe to use (stored, not audited).")] = "",
    groups: Annotated[list[str] | None, typer.Option("--groups", "-g", help="The administrator's groups.")] = None,
) -> None:
    """Release a quarantined chunk (its current text only) that the administrator can read. Needs the
    quarantine_admin feature for a role."""
    g = _grounder(config)
    user = g.make_user(by, tenant, _split(groups, "--groups"), _split(roles, "--roles"))
    entry = g.quarantine.release(chunk_id, user, note)
    console.print(f"released {escape(entry.chunk_id)} ({escape(entry.connector)}:{escape(entry.doc_id)}) "
                  f"in tenant {entry.tenant} by {escape(entry.released_by)}")


def trust_report(config: ConfigOpt = _CFG, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Print each trust control, the configuration in force and whether its self-check passes."""
    from .trust import trust_checks

    checks = trust_checks(_grounder(config))
    if as_json:
        typer.echo(json.dumps([c.to_dict() for c in checks]))
    else:
        t = Table(title="Trust controls")
        for col in ("control", "configuration", "self-check", "detail"):
            t.add_column(col)
        for c in checks:
            t.add_row(
                c.control, escape(c.config), "[green]pass[/]" if c.ok else "[red]FAIL[/]", escape(c.detail)
            )
        console.print(t)
    if not all(c.ok for c in checks):
        raise typer.Exit(1)


def register(cli: typer.Typer) -> None:
    """Add the trust commands to ``cli`` (idempotent)."""
    existing = {g.name for g in cli.registered_groups} | {c.name for c in cli.registered_commands}
    if "keys" in existing:
        return
    cli.add_typer(keys_app, name="keys")
    cli.add_typer(audit_app, name="audit")
    cli.add_typer(review_app, name="review")
    cli.add_typer(quarantine_app, name="quarantine")
    from .cli_tenant import tenant_app  # tenant purge (groundwire.purge)
    cli.add_typer(tenant_app, name="tenant")
    cli.command("trust-report")(trust_report)
    cli_exports.register(cli, keys_app, audit_app, review_app)
    cli_retention.register(cli)
    cli_analytics.register(cli)
    from .cli_ops import register as register_ops

    register_ops(cli)
