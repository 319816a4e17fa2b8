"""Built-in key providers for encryption at rest: ``env`` (environment variable) and ``file``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from groundwire import hookimpl
from groundwire.crypto import EnvKeyProvider, FileKeyProvider


@hookimpl
def register_key_providers(register: Callable[[type[Any]], None]) -> None:
    register(EnvKeyProvider)
    register(FileKeyProvider)
