"""Encryption at rest: an AES-GCM :class:`~groundwire.index.Codec`, key rings and key providers.

Invariants:
- Every stored value gets a fresh random 96-bit nonce; the associated data is the value's identity
  (the chunk id for index payloads, ``audit:<tenant>:<seq>`` for audit lines, ``review:<id>`` for
  drafts, ``quarantine:<tenant>:<chunk id>`` for quarantine entries), so a ciphertext moved to another
  chunk or line does not decrypt.
- Ciphertexts name the key id that encrypted them (``gw1:<key id>:<base64 nonce+ciphertext>``):
  decryption uses any key the provider knows, encryption always the *current* key, so keys rotate
  without downtime (``groundwire keys rotate`` re-encrypts stored payloads with the current key).
- Without the right key nothing is readable and the error names what to configure; key material is
  never printed or logged. A keyring that cannot decrypt the data already stored is refused by
  :func:`codec_for` before anything is written (:class:`KeyringMismatch`, naming the key ids found and
  provided; see :mod:`groundwire.keycheck`).

Key providers are classes registered through the ``register_key_providers`` hook; the built-ins are
``env`` (``GROUNDWIRE_KEYS`` = ``id:base64key[,id:base64key...]``) and ``file`` (one ``id:base64key``
per line). In both the *last* key listed is the current one unless ``current = "<id>"`` is given.
"""

from __future__ import annotations

import base64
import binascii
import functools
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from .errors import GroundwireError

if TYPE_CHECKING:
    from .config import GroundwireConfig

__all__ = [
    "PREFIX",
    "AesGcmCodec",
    "DecryptionError",
    "EncryptionError",
    "EnvKeyProvider",
    "FileKeyProvider",
    "KeyProvider",
    "Keyring",
    "KeyringMismatch",
    "codec_for",
    "generate_key",
    "parse_keys",
]

PREFIX = "gw1"
_KID_RE = re.compile(r"^[A-Za-z0-9_.-]{1,40}$")
DEFAULT_ENV = "GROUNDWIRE_KEYS"


class EncryptionError(GroundwireError):
    """Keys are missing or malformed, or encryption is misconfigured."""


class DecryptionError(EncryptionError):
    """A stored value could not be decrypted (no such key, wrong key, or tampered data)."""


class KeyringMismatch(DecryptionError):
    """The configured keyring cannot read the data already stored; refused before anything is written
    (see :mod:`groundwire.keycheck`). The message names the key ids found and the ids provided."""


@dataclass(frozen=True, slots=True)
class Keyring:
    """Known keys by id; ``current`` encrypts, any of them decrypts."""

    keys: Mapping[str, bytes]
    current: str

    def __post_init__(self) -> None:
        if not self.keys:
            raise EncryptionError("the key provider returned no keys")
        if self.current not in self.keys:
            raise EncryptionError(f"the current key id {self.current!r} is not among the provided keys")
        for kid, key in self.keys.items():
            if not _KID_RE.match(kid):
                raise EncryptionError(f"invalid key id {kid!r}: use 1-40 letters, digits, '.', '_' or '-'")
            if len(key) not in (16, 24, 32):
                raise EncryptionError(
                    f"key {kid!r} must be 16, 24 or 32 bytes (base64 of 32 bytes recommended)"
                )


def generate_key() -> str:
    """A new random 256-bit key, base64-encoded."""
    return base64.b64encode(secrets.token_bytes(32)).decode()


def parse_keys(entries: list[str], where: str, current: str | None = None) -> Keyring:
    """Parse ``id:base64`` entries (a bare ``base64`` gets the id ``k<n>``); the last is current."""
    keys: dict[str, bytes] = {}
    order: list[str] = []
    for n, raw in enumerate(entries, 1):
        entry = raw.strip()
        if not entry or entry.startswith("#"):
            continue
        kid, sep, b64 = entry.partition(":")
        if not sep:
            kid, b64 = f"k{n}", entry
        try:
            key = base64.b64decode(b64.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise EncryptionError(f"{where}: key {kid!r} is not valid base64") from None
        kid = kid.strip()
        if kid in keys:  # a silent last-wins would decrypt nothing written under the first one
            raise EncryptionError(
                f"{where} holds the key id {kid!r} twice; key ids must be unique: keep the line whose key the "
                "data was written with (restore the file from a backup if unsure) and give a new key a new id"
            )
        keys[kid] = key
        order.append(kid)
    if not order:
        raise EncryptionError(f"{where} holds no keys; create one with 'groundwire keys generate'")
    return Keyring(keys, current or order[-1])


class KeyProvider:
    """Base class of key providers: ``name`` is the registry key used by ``[encryption] provider``."""

    name: ClassVar[str]

    def __init__(self, **options: Any) -> None:
        self.options = options

    def keyring(self) -> Keyring:  # pragma: no cover - abstract
        raise NotImplementedError


class EnvKeyProvider(KeyProvider):
    """Keys from an environment variable (``variable``, default ``GROUNDWIRE_KEYS``), comma-separated."""

    name = "env"

    def keyring(self) -> Keyring:
        var = str(self.options.get("variable", DEFAULT_ENV))
        value = os.environ.get(var, "")
        if not value.strip():
            raise EncryptionError(
                f"encryption is enabled but the environment variable {var} is not set; set it to "
                "'<key id>:<base64 key>' (create a key with 'groundwire keys generate')"
            )
        return parse_keys(value.split(","), f"environment variable {var}", self.options.get("current"))


class FileKeyProvider(KeyProvider):
    """Keys from a file (``path``), one ``id:base64key`` per line; ``#`` starts a comment.

    The file must be private (a regular file of this user, mode 0600: see :mod:`groundwire.keyfile`);
    ``create = true`` makes a missing file with one new key on first use."""

    name = "file"

    def keyring(self) -> Keyring:
        from .keyfile import add_key, key_file_problem, new_key_id

        path = self.options.get("path")
        if not path:
            raise EncryptionError("the 'file' key provider needs [encryption.options] path = '<key file>'")
        p = Path(str(path)).expanduser()
        if self.options.get("create") is True and not os.path.lexists(p):
            # first use (the demo, `groundwire init`): a fresh key in a new 0600 file; a key file that was
            # lost while data exists is caught by the keyring check, never silently replaced
            add_key(p, new_key_id(), generate_key())
        problem = key_file_problem(p)
        if problem:
            raise EncryptionError(problem)
        try:
            text = p.read_bytes().decode("utf-8")
        except UnicodeDecodeError:
            raise EncryptionError(f"the key file {p} is not UTF-8 text, so it is not a key file (damaged or "
                                  "overwritten?); restore it from a backup") from None
        except OSError as exc:
            raise EncryptionError(f"the key file {p} cannot be read: {exc.strerror or exc}; check the file and "
                                  "its permissions") from None
        return parse_keys(text.splitlines(), f"key file {p}", self.options.get("current"))


BUILTIN_PROVIDERS: dict[str, type[KeyProvider]] = {"env": EnvKeyProvider, "file": FileKeyProvider}


class AesGcmCodec:
    """AES-GCM with a random 96-bit nonce per value and the value's id as associated data."""

    name = "aes-gcm"

    def __init__(self, keyring: Keyring) -> None:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        self.keyring = keyring
        self._aead = {kid: AESGCM(key) for kid, key in keyring.keys.items()}

    @property
    def current(self) -> str:
        return self.keyring.current

    def encode(self, plaintext: str, chunk_id: str) -> str:
        nonce = os.urandom(12)
        ct = self._aead[self.keyring.current].encrypt(nonce, plaintext.encode(), chunk_id.encode())
        return f"{PREFIX}:{self.keyring.current}:{base64.b64encode(nonce + ct).decode()}"

    def key_id(self, stored: str) -> str:
        prefix, _, rest = stored.partition(":")
        kid, sep, _ = rest.partition(":")
        if prefix != PREFIX or not sep:
            raise DecryptionError(
                "a stored value is not encrypted (or not in a known format); the store was written without "
                "encryption: re-index with 'groundwire sync --rebuild' or disable [encryption]"
            )
        return kid

    def decode(self, stored: str, chunk_id: str) -> str:
        from cryptography.exceptions import InvalidTag

        kid = self.key_id(stored)
        aead = self._aead.get(kid)
        if aead is None:
            raise DecryptionError(
                f"stored data was encrypted with key id {kid!r}, which the configured key provider does not "
                "provide; add that key to the provider configured under [encryption]"
            )
        try:
            blob = base64.b64decode(stored.rsplit(":", 1)[1], validate=True)
            return aead.decrypt(blob[:12], blob[12:], chunk_id.encode()).decode()
        except (InvalidTag, binascii.Error, ValueError):
            raise DecryptionError(
                f"stored data for {chunk_id!r} does not decrypt with key {kid!r}: the key is wrong or the "
                "data was tampered with or moved; check the key configured under [encryption]"
            ) from None


# provider classes collected by Grounders (incl. plugins passed as ``extra_plugins``), so the audit
# plugin, which only receives the configuration, resolves the same provider; classes only, never keys
_SEEN: dict[str, type[KeyProvider]] = {}


def provider_types(config: GroundwireConfig) -> dict[str, type[KeyProvider]]:
    """Built-in providers plus those registered by installed plugins."""
    if config.encryption.provider in BUILTIN_PROVIDERS:
        return dict(BUILTIN_PROVIDERS)
    if config.encryption.provider in _SEEN:
        return dict(_SEEN)
    return dict(
        _plugin_provider_types(config.plugins.load_entrypoints, tuple(sorted(config.plugins.disabled)))
    )


@functools.lru_cache(maxsize=8)
def _plugin_provider_types(load_entrypoints: bool, disabled: tuple[str, ...]) -> dict[str, type[KeyProvider]]:
    from .pluginmanager import collect_registry, make_plugin_manager

    pm = make_plugin_manager(load_entrypoints, disabled)
    return collect_registry(pm, "register_key_providers", lambda c: c.name)


def codec_for(config: GroundwireConfig, providers: Mapping[str, type[KeyProvider]] | None = None) -> Any:
    """The codec configured by ``[encryption]``: AES-GCM when enabled (a :class:`~groundwire.datakeys.MasterCodec`
    whose ``for_tenant`` gives each tenant's data-key codec), else the identity codec."""
    from .index import IdentityCodec
    from .keycheck import check_data_keys

    enc = config.encryption
    if not enc.enabled:
        identity = IdentityCodec()
        check_data_keys(config.data_path, identity)  # encrypted data while encryption is off: refused
        return identity
    if providers is not None:
        _SEEN.update(providers)
    types = dict(providers) if providers is not None else provider_types(config)
    cls = types.get(enc.provider)
    if cls is None:
        raise config.error(
            "encryption.provider",
            f"unknown key provider {enc.provider!r}",
            f"installed: {', '.join(sorted(types))}",
        )
    options = dict(enc.options)
    if "path" in options:
        options["path"] = str(config.resolve(options["path"]))
    from .datakeys import MasterCodec

    codec = MasterCodec(cls(**options).keyring(), config.data_path / "keys")  # + per-tenant data keys
    check_data_keys(config.data_path, codec)
    return codec
