"""Export commands: ``audit export``, ``review export``, ``keys recipient`` and ``export decrypt``.

Exports are encrypted by default (:mod:`groundwire.exports`): ``--recipient PUBKEY`` (X25519, from ``groundwire
keys recipient``) or ``--passphrase-env VAR`` (Argon2id). ``--plaintext`` writes clear JSON lines and is the
only way to get them; it is audited (who, what, where, when) before anything is written. Giving no key option
is an error naming the options; so is giving more than one. Every export, encrypted or not, is audited first.
"""

from __future__ import annotations

import getpass
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from .terminal import escape

__all__ = ["register"]

console = Console(soft_wrap=True, stderr=True)

ConfigOpt = Annotated[
    Path, typer.Option("--config", "-c", envvar="GROUNDWIRE_CONFIG", help="Configuration file (TOML).")
]
_CFG = Path("groundwire.toml")
Recipient = Annotated[
    Path | None, typer.Option("--recipient", help="Encrypt for this X25519 public key file (keys recipient).")
]
PassEnv = Annotated[
    str | None, typer.Option("--passphrase-env", help="Encrypt with the passphrase in this environment variable.")
]
Plaintext = Annotated[
    bool, typer.Option("--plaintext", help="Write clear JSON lines instead (audited before writing).")
]

export_app = typer.Typer(help="Encrypted exports: decrypt.", no_args_is_help=True)


def _passphrase(var: str) -> str:
    value = os.environ.get(var)
    if not value:
        from .exports import ExportError

        raise ExportError(f"the environment variable {var} (--passphrase-env) is unset or empty; set it to the "
                          "passphrase")
    return value


def export_key(recipient: Path | None, passphrase_env: str | None, plaintext: bool) -> Any:
    """The :class:`~groundwire.exports.ExportKey` the options ask for, or None for ``--plaintext``."""
    from .exports import ExportError, ExportKey, load_recipient

    given = [n for n, v in (("--recipient", recipient), ("--passphrase-env", passphrase_env),
                            ("--plaintext", plaintext or None)) if v is not None]
    if not given:
        raise ExportError("exports are encrypted: pass --recipient PUBLIC_KEY_FILE (make one with 'groundwire keys "
                          "recipient --out id.key') or --passphrase-env VAR; --plaintext writes clear text "
                          "(audited)")
    if len(given) > 1:
        raise ExportError(f"give only one of {', '.join(given)}")
    if plaintext:
        return None
    if recipient is not None:
        return ExportKey(recipient=load_recipient(recipient))
    assert passphrase_env is not None
    return ExportKey(passphrase=_passphrase(passphrase_env))


def _record(g: Any, tenants: list[str], actor: str, content: str, key: Any, out: Path | None,
            extra: dict[str, Any]) -> None:
    """Audit the export in each tenant's log before anything is written (a failure stops the export)."""
    from .audit_event import AuditEvent

    data = {"content": content, "plaintext": key is None, "encryption": "none" if key is None else key.describe,
            "destination": str(out.resolve()) if out is not None else "stdout", **extra}
    for t in tenants:
        g._audit(AuditEvent("export", t, actor, data=data))


def _emit(out: Path | None, key: Any, content: str, lines: Any) -> int:
    from .exports import write_export

    if out is None:
        n = 0
        for line in lines:
            typer.echo(line)
            n += 1
        return n
    return write_export(out, key, content, lines)


def _need_out(out: Path | None, key: Any) -> None:
    if out is None and key is not None:
        from .exports import ExportError

        raise ExportError("an encrypted export is binary: pass --out FILE")


def audit_export(
    since: Annotated[str, typer.Option(help="ISO date or time, e.g. 2026-01-01 or 2026-01-01T09:00:00Z.")],
    config: ConfigOpt = _CFG,
    tenant: Annotated[str | None, typer.Option(help="Only this tenant.")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Write here (required unless --plaintext).")] = None,
    recipient: Recipient = None,
    passphrase_env: PassEnv = None,
    plaintext: Plaintext = False,
    by: Annotated[str | None, typer.Option("--by", help="Who exports (default: the OS user).")] = None,
) -> None:
    """Export audit events since a time (decrypted from the log), encrypted for a recipient or passphrase; with
    --plaintext as JSON lines (to stdout without --out)."""
    from .pipeline import Grounder
    from .trust import audit_paths, export_audit

    t = parse_since(since)
    key = export_key(recipient, passphrase_env, plaintext)
    _need_out(out, key)
    g = Grounder.from_config(config)
    tenants = [p.stem for p in audit_paths(g, tenant)] or ([tenant] if tenant else [])
    _record(g, tenants, by or getpass.getuser(), "audit", key, out, {"since": t.isoformat(), "tenant": tenant or "*"})
    lines = (json.dumps(ev, ensure_ascii=False, sort_keys=True) for ev in export_audit(g, t, tenant))
    n = _emit(out, key, "audit", lines)
    if out is not None:
        console.print(f"wrote {n} audit events to {escape(str(out))} ({'PLAINTEXT' if key is None else key.describe})")


def review_export(
    reviewer: Annotated[str, typer.Option("--reviewer", help="The reviewer's user id.")],
    out: Annotated[Path, typer.Option("--out", help="Write here.")],
    config: ConfigOpt = _CFG,
    tenant: Annotated[str | None, typer.Option(help="Tenant (default: default_tenant).")] = None,
    groups: Annotated[list[str] | None, typer.Option("--groups", "-g", help="The reviewer's groups (repeat).")] = None,
    roles: Annotated[list[str] | None, typer.Option("--roles", "-r", help="The reviewer's roles (repeat).")] = None,
    status: Annotated[str | None, typer.Option(help="pending_review, edited, approved, rejected.")] = None,
    recipient: Recipient = None,
    passphrase_env: PassEnv = None,
    plaintext: Plaintext = False,
) -> None:
    """Export the drafts this reviewer may review (as 'review show' gives them, trimmed like 'review list'),
    encrypted for a recipient or passphrase; with --plaintext as JSON lines."""
    from .cli_trust import repeated_ids
    from .pipeline import Grounder

    key = export_key(recipient, passphrase_env, plaintext)
    g = Grounder.from_config(config)
    user = g.make_user(reviewer, tenant, repeated_ids(groups, "--groups"), repeated_ids(roles, "--roles"))
    items = g.reviews.list(user, status)
    _record(g, [user.tenant], user.user_id, "reviews", key, out, {"status": status or "*", "drafts": len(items)})
    lines = (json.dumps(g.reviews.get(i.id, user).to_dict(), ensure_ascii=False, sort_keys=True) for i in items)
    n = _emit(out, key, "reviews", lines)
    console.print(f"wrote {n} drafts to {escape(str(out))} ({'PLAINTEXT' if key is None else key.describe})")


def keys_recipient(
    out: Annotated[Path, typer.Option("--out", help="The private key file to create (mode 0600); the public "
                                                    "key goes to <out>.pub.")],
) -> None:
    """Make an X25519 keypair for encrypted exports: give <out>.pub to whoever exports (--recipient) and keep
    <out> to decrypt (export decrypt --identity)."""
    from .exports import fingerprint, write_identity

    pub = write_identity(out)
    console.print(f"identity {escape(str(out))} (keep private); public key {escape(str(out))}.pub "
                  f"({fingerprint(pub)})")


@export_app.command("decrypt")
def export_decrypt(
    file: Annotated[Path, typer.Argument(help="The encrypted export.")],
    identity: Annotated[Path | None, typer.Option("--identity", help="The recipient's private key file.")] = None,
    passphrase_env: Annotated[str | None, typer.Option("--passphrase-env",
                                                       help="The environment variable holding the passphrase.")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Write the plaintext here (default: stdout).")] = None,
) -> None:
    """Decrypt an export made by 'audit export' or 'review export'. A wrong key, a modified or a truncated file
    is an error; with --out nothing is written unless the whole file authenticates."""
    from .exports import ExportError, decrypt_file, decrypt_stream, load_identity

    if (identity is None) == (passphrase_env is None):
        raise ExportError("pass exactly one of --identity KEY_FILE (for a recipient export) or --passphrase-env "
                          "VAR (for a passphrase export)")
    ident = load_identity(identity) if identity is not None else None
    phrase = _passphrase(passphrase_env) if passphrase_env is not None else None
    if not file.is_file():
        raise ExportError(f"{file} is not a file")
    if out is not None:
        n = decrypt_file(file, out, ident, phrase)
        console.print(f"decrypted {n} bytes to {escape(str(out))}")
        return
    with file.open("rb") as f:
        decrypt_stream(f, sys.stdout.buffer, ident, phrase)
    sys.stdout.buffer.flush()


def parse_since(since: str) -> datetime:
    try:
        t = datetime.fromisoformat(since.replace("Z", "+00:00"))
    except ValueError:
        raise typer.BadParameter(f"{since!r} is not an ISO date/time", param_hint="--since") from None
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


def register(cli: typer.Typer, keys_app: typer.Typer, audit_app: typer.Typer, review_app: typer.Typer) -> None:
    """Add the export commands to the trust command groups and ``export`` to ``cli``."""
    audit_app.command("export")(audit_export)
    review_app.command("export")(review_export)
    keys_app.command("recipient")(keys_recipient)
    cli.add_typer(export_app, name="export")
