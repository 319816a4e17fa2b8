"""Per-tenant data keys (DEKs) wrapped by the master key: the key hierarchy behind crypto-shredding.

::

    master keyring (key provider, [encryption])
      └─ wraps one random 256-bit data key per tenant: <data_dir>/keys/<tenant>.dek
           ├─ encrypts that tenant's chunk payloads, review drafts and quarantine entries (``gw2:<dek id>:...``)
           └─ HKDF -> the tenant's metadata key: HMAC of the content hashes kept in Chroma metadata
    audit lines stay under the master key (``gw1:``): their hash chain, and the destruction record written
    when a tenant is purged, must still verify after that tenant's data key is gone.

Invariants:
- A DEK exists on disk only wrapped (AES-GCM under the master keyring's current key, associated data
  ``dek:<tenant>:<dek id>``), in a 0600 file of a 0700 folder. It is created once: the file is written
  complete under a temporary name and ``os.link``-ed to its final name, which fails if another process
  made it first; the loser unlinks its temporary file and uses the winner's key. So two processes creating
  a tenant's first key end with one key, and no reader ever sees a half-written file.
- Ciphertexts under a DEK name it (``gw2:<dek id>:<base64 nonce+ciphertext>``); a tenant's codec decodes only
  its own DEK's values and, for data written before data keys existed, values under the master key
  (``gw1:``, dual read). ``groundwire keys rotate`` re-wraps every DEK under the new master key (atomic
  replace) and re-encrypts what it re-encrypts under the tenant's DEK, migrating ``gw1`` payloads.
- :meth:`DataKeys.destroy` overwrites the wrapped key file, fsyncs and unlinks it: afterwards nothing in the
  data dir can decrypt that tenant's payloads. Backups made earlier still hold the wrapped key; rotating the
  master key and destroying the old one makes those unreadable too.
- Key material is never printed or logged; errors name tenants, key ids and files only.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import os
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .atomic import atomic_write, create_once, fsync_dir
from .crypto import AesGcmCodec, DecryptionError, EncryptionError, Keyring

__all__ = ["DEK_PREFIX", "DataKey", "DataKeys", "MasterCodec", "TenantCodec", "tenant_codec"]

DEK_PREFIX = "gw2"
_FORMAT = "groundwire-dek/1"
_MAC_INFO = b"groundwire metadata hmac v1"
_RECHECK_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class DataKey:
    tenant: str
    id: str
    key: bytes
    created: str


def _wrap_aad(tenant: str, dek_id: str) -> str:
    return f"dek:{tenant}:{dek_id}"


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fsync_dir(folder)


class DataKeys:
    """The wrapped data keys of one data dir (``<data_dir>/keys``), unwrapped with ``master``."""

    def __init__(self, folder: Path, master: AesGcmCodec) -> None:
        self.folder = folder
        self.master = master
        self._lock = threading.Lock()
        self._cache: dict[str, DataKey] = {}

    def path(self, tenant: str) -> Path:
        from .models import validate_tenant

        return self.folder / f"{validate_tenant(tenant)}.dek"

    def _read(self, path: Path) -> tuple[dict[str, Any], DataKey]:
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            tenant, dek_id, wrapped = str(doc["tenant"]), str(doc["id"]), str(doc["wrapped"])
            if doc.get("format") != _FORMAT:
                raise ValueError("unknown format")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise EncryptionError(
                f"the data key file {path} is unreadable or damaged ({type(exc).__name__}); restore it from a "
                "backup (without it that tenant's data cannot be decrypted)"
            ) from None
        try:
            raw = base64.b64decode(self.master.decode(wrapped, _wrap_aad(tenant, dek_id)), validate=True)
        except DecryptionError as exc:
            raise DecryptionError(f"the data key of tenant {tenant!r} ({path}) cannot be unwrapped: {exc}") from None
        except (binascii.Error, ValueError):
            raise EncryptionError(f"the data key file {path} is damaged; restore it from a backup") from None
        return doc, DataKey(tenant, dek_id, raw, str(doc.get("created", "")))

    def get(self, tenant: str, create: bool = False) -> DataKey | None:
        """The tenant's data key (created when missing and ``create``), or None."""
        with self._lock:
            found = self._cache.get(tenant)
        if found is not None:
            return found
        path = self.path(tenant)
        if not path.exists():
            if not create:
                return None
            self._create(tenant, path)
        _, key = self._read(path)
        if key.tenant != tenant:
            raise EncryptionError(f"the data key file {path} names tenant {key.tenant!r}, not {tenant!r}")
        with self._lock:
            self._cache[tenant] = key
        return key

    def _create(self, tenant: str, path: Path) -> None:
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        dek_id = "d" + secrets.token_hex(8)
        raw = secrets.token_bytes(32)
        doc = {
            "format": _FORMAT, "tenant": tenant, "id": dek_id,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "wrapped": self.master.encode(base64.b64encode(raw).decode(), _wrap_aad(tenant, dek_id)),
        }
        create_once(path, json.dumps(doc))  # another process made the tenant's key first: use that one

    def by_id(self, dek_id: str) -> DataKey | None:
        """The data key with this id, from any tenant's file (for checks that have no tenant at hand)."""
        with self._lock:
            for key in self._cache.values():
                if key.id == dek_id:
                    return key
        for tenant in self.tenants():
            found = self.get(tenant)
            if found is not None and found.id == dek_id:
                return found
        return None

    def tenants(self) -> list[str]:
        """Tenants that have a data key file."""
        return sorted(p.stem for p in self.folder.glob("*.dek")) if self.folder.is_dir() else []

    def exists(self, tenant: str) -> bool:
        return self.path(tenant).exists()

    def samples(self) -> list[tuple[str, str, str]]:
        """``(where, associated data, wrapped key)`` of every key file, for :mod:`groundwire.keycheck`."""
        out = []
        for tenant in self.tenants():
            with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
                doc = json.loads(self.path(tenant).read_text(encoding="utf-8"))
                out.append((f"data key of tenant {tenant!r}", _wrap_aad(str(doc["tenant"]), str(doc["id"])),
                            str(doc["wrapped"])))
        return out

    def rewrap(self, master: AesGcmCodec) -> int:
        """Re-wrap every data key under ``master``'s current key (atomic replace per file). Returns the count."""
        n = 0
        for tenant in self.tenants():
            path = self.path(tenant)
            doc, key = self._read(path)
            doc["wrapped"] = master.encode(base64.b64encode(key.key).decode(), _wrap_aad(key.tenant, key.id))
            atomic_write(path, json.dumps(doc))  # durable: file and folder entry flushed
            n += 1
        self.master = master
        return n

    def destroy(self, tenant: str) -> str | None:
        """Crypto-shred: overwrite, fsync and unlink the tenant's key file. Returns the key id destroyed."""
        path = self.path(tenant)
        with self._lock:
            self._cache.pop(tenant, None)
        if not path.exists():
            return None
        dek_id: str | None = None
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            dek_id = str(json.loads(path.read_text(encoding="utf-8"))["id"])
        size = path.stat().st_size
        fd = os.open(path, os.O_WRONLY | getattr(os, "O_NOFOLLOW", 0))
        try:
            os.write(fd, secrets.token_bytes(size))
            os.fsync(fd)
        finally:
            os.close(fd)
        path.unlink()
        _fsync_dir(self.folder)
        return dek_id

    def forget(self, tenant: str) -> None:
        """Drop the cached key of ``tenant`` (another process destroyed it)."""
        with self._lock:
            self._cache.pop(tenant, None)


def _split(stored: str) -> tuple[str, str, str]:
    prefix, _, rest = stored.partition(":")
    kid, sep, body = rest.partition(":")
    return prefix, (kid if sep else ""), body


class TenantCodec:
    """AES-GCM under one tenant's data key; decodes its own ``gw2`` values and legacy ``gw1`` master values.

    ``mac`` keys metadata hashes (HMAC-SHA256 under a key derived from the DEK with HKDF)."""

    name = "aes-gcm"

    def __init__(self, keys: DataKeys, tenant: str) -> None:
        self.keys = keys
        self.tenant = tenant
        self._checked = 0.0
        self._key: DataKey | None = None

    @property
    def keyring(self) -> Keyring:
        return self.keys.master.keyring

    @property
    def current(self) -> str:
        return self.keys.master.current

    def _dek(self) -> DataKey:
        now = time.monotonic()
        if self._key is None or now - self._checked > _RECHECK_SECONDS:
            if self._key is not None and not self.keys.exists(self.tenant):  # purged by another process
                self.keys.forget(self.tenant)
            key = self.keys.get(self.tenant, create=True)
            assert key is not None
            self._key, self._checked = key, now
        return self._key

    def _aead(self, key: DataKey) -> Any:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        return AESGCM(key.key)

    def encode(self, plaintext: str, aad: str) -> str:
        key = self._dek()
        nonce = os.urandom(12)
        ct = self._aead(key).encrypt(nonce, plaintext.encode(), aad.encode())
        return f"{DEK_PREFIX}:{key.id}:{base64.b64encode(nonce + ct).decode()}"

    def key_id(self, stored: str) -> str:
        prefix, kid, _ = _split(stored)
        if prefix == DEK_PREFIX and kid:
            return kid
        return self.keys.master.key_id(stored)

    def decode(self, stored: str, aad: str) -> str:
        prefix, kid, body = _split(stored)
        if prefix != DEK_PREFIX:
            return self.keys.master.decode(stored, aad)  # written before data keys existed
        key = self.keys.get(self.tenant)
        if key is None or key.id != kid:
            raise DecryptionError(
                f"stored data of tenant {self.tenant!r} was encrypted with data key {kid!r}, which is not this "
                "tenant's data key (destroyed by a purge, or the keys folder was replaced); restore "
                f"{self.keys.path(self.tenant)} from a backup"
            )
        return _open(key, body, aad, kid)

    def mac(self, value: str) -> str:
        """A keyed hash of ``value`` (``h1:<hex>``): confirms nothing to someone without the tenant's key."""
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.kdf.hkdf import HKDF

        key = self._dek()
        mk = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_MAC_INFO + self.tenant.encode()).derive(
            key.key)
        return "h1:" + hmac.new(mk, value.encode(), hashlib.sha256).hexdigest()


def _open(key: DataKey, body: str, aad: str, kid: str) -> str:
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    try:
        blob = base64.b64decode(body, validate=True)
        return AESGCM(key.key).decrypt(blob[:12], blob[12:], aad.encode()).decode()
    except (InvalidTag, binascii.Error, ValueError):
        raise DecryptionError(
            f"stored data for {aad!r} does not decrypt with data key {kid!r}: the data was tampered with or "
            "moved, or the key file was replaced"
        ) from None


class MasterCodec(AesGcmCodec):
    """The master-key codec of a data dir, which also hands out per-tenant codecs (:meth:`for_tenant`).

    Its own ``encode`` writes under the master key (audit lines, wrapped keys); ``decode`` also reads any
    tenant's ``gw2`` value by the data key it names (for keyring checks)."""

    def __init__(self, keyring: Keyring, keys_dir: Path) -> None:
        super().__init__(keyring)
        self.data_keys = DataKeys(keys_dir, self)
        self._tenants: dict[str, TenantCodec] = {}
        self._tlock = threading.Lock()

    def for_tenant(self, tenant: str) -> TenantCodec:
        with self._tlock:
            found = self._tenants.get(tenant)
            if found is None:
                found = self._tenants[tenant] = TenantCodec(self.data_keys, tenant)
            return found

    def destroy_tenant(self, tenant: str) -> str | None:
        """Crypto-shred ``tenant`` (:meth:`DataKeys.destroy`); its codec makes a new key if it writes again."""
        with self._tlock:
            old = self._tenants.pop(tenant, None)
        if old is not None:
            old._key = None
        return self.data_keys.destroy(tenant)

    def decode(self, stored: str, chunk_id: str) -> str:
        prefix, kid, body = _split(stored)
        if prefix != DEK_PREFIX:
            return super().decode(stored, chunk_id)
        key = self.data_keys.by_id(kid)
        if key is None:
            raise DecryptionError(
                f"stored data was encrypted with data key {kid!r}, which no file under {self.data_keys.folder} "
                "holds (destroyed by a purge, or the keys folder is missing); restore it from a backup"
            )
        return _open(key, body, chunk_id, kid)


def tenant_codec(codec: Any, tenant: str) -> Any:
    """``codec.for_tenant(tenant)`` when the codec has data keys, else ``codec`` itself (identity, custom)."""
    f = getattr(codec, "for_tenant", None)
    return f(tenant) if callable(f) else codec
