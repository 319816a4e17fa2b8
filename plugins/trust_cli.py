"""Adds the trust commands (``keys``, ``audit``, ``review``, ``trust-report``) to the command line."""

from __future__ import annotations

from typing import Any

from groundwire import hookimpl


@hookimpl
def register_commands(cli: Any) -> None:
    from groundwire.cli_trust import register

    register(cli)
