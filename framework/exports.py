"""Encrypted portable media: the file format of ``audit export`` and ``review export``, and its self-check.

An export leaves the data dir (a laptop, a USB stick, a ticket attachment), so it is encrypted by default and
plaintext is written only with an explicit ``--plaintext``, which is audited first. Everything here uses the
``cryptography`` library's primitives (AES-256-GCM, X25519, HKDF-SHA256, Argon2id); nothing is hand-rolled
except the framing, which follows the STREAM construction (Hoang, Reyhanitabar, Rogaway, Vizár 2015, as used by
age and Tink's streaming AEAD).

File format (version 1)::

    magic    8 bytes   b"GWEXPORT"
    version  1 byte    1
    hlen     4 bytes   big-endian length of the header
    header   hlen      UTF-8 JSON, sorted keys:
                         {"v": 1, "alg": "AES-256-GCM-STREAM", "chunk": 65536,
                          "content": "audit" | "reviews" | ..., "created_at": ISO time,
                          "salt": base64(32 random bytes), "nonce_prefix": base64(7 random bytes),
                          "kdf": {"name": "argon2id", "memory_kib": m, "iterations": t, "lanes": p}
                              or {"name": "x25519-hkdf-sha256", "ephemeral": base64(32-byte public key),
                                  "recipient": fingerprint of the recipient's public key}}
    chunks   each  AES-GCM(key, nonce, plaintext[i], aad) = ciphertext of ``chunk`` bytes (the last one
                   shorter, possibly empty) + a 16-byte tag

- ``key = HKDF-SHA256(ikm, salt, info=b"groundwire export v1")``; ``ikm`` is Argon2id(passphrase, salt) for a
  passphrase, or the X25519 shared secret of a fresh ephemeral key and the recipient's key, followed by both
  public keys, for a recipient. Every export has a fresh salt, hence a fresh key.
- ``nonce = nonce_prefix (7) || chunk counter (4, big-endian) || last flag (1: 0x01 on the last chunk, else
  0x00)``; ``aad = SHA-256(magic || version || hlen || header)``. So a modified header, reordered, dropped or
  modified chunks, and truncation (even at a chunk boundary: the new last chunk lacks the flag) all fail
  authentication. Bytes after the final chunk are refused.
- Memory stays bounded by one chunk whatever the size of the export.
- Decrypting to a file writes a temporary file and renames it only when the whole stream has authenticated, so
  a damaged export never leaves partial plaintext at the destination.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from .atomic import atomic_output
from .crypto import DecryptionError, EncryptionError
from .errors import GroundwireError, os_error_cause
from .models import utcnow

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

    from .pipeline import Grounder

__all__ = [
    "CHUNK",
    "MAGIC",
    "ExportError",
    "ExportKey",
    "ExportWriter",
    "Kdf",
    "decrypt_stream",
    "encrypt_lines",
    "fingerprint",
    "load_identity",
    "load_recipient",
    "read_header",
    "self_check",
    "write_identity",
]

MAGIC = b"GWEXPORT"
VERSION = 1
CHUNK = 64 * 1024
_TAG = 16
_INFO = b"groundwire export v1"
_ALG = "AES-256-GCM-STREAM"
_MAX_HEADER = 64 * 1024
MIN_PASSPHRASE = 8


class ExportError(GroundwireError):
    """An export cannot be written or read: no key option, a bad key file, a wrong key, a damaged file."""


@dataclass(frozen=True, slots=True)
class Kdf:
    """Argon2id cost for passphrases. The default is OWASP's minimum recommendation (19 MiB, 2 passes,
    1 lane: ~0.3 s on one core)."""

    memory_kib: int = 19456
    iterations: int = 2
    lanes: int = 1


@dataclass(frozen=True, slots=True)
class ExportKey:
    """How an export is encrypted: exactly one of ``recipient`` (an X25519 public key) or ``passphrase``."""

    recipient: X25519PublicKey | None = None
    passphrase: str | None = None
    kdf: Kdf = Kdf()

    def __post_init__(self) -> None:
        if (self.recipient is None) == (self.passphrase is None):
            raise ExportError("give exactly one of a recipient public key or a passphrase")
        if self.passphrase is not None and len(self.passphrase) < MIN_PASSPHRASE:
            raise ExportError(f"the passphrase is shorter than {MIN_PASSPHRASE} characters; use a longer one")

    @property
    def describe(self) -> str:
        if self.recipient is not None:
            return f"recipient {fingerprint(self.recipient)}"
        return "passphrase (Argon2id)"


# --- keys ---------------------------------------------------------------------------------------------------


def _raw_public(pub: X25519PublicKey) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def fingerprint(pub: X25519PublicKey) -> str:
    """A short, stable name for a recipient key: ``x25519:`` + the first 16 hex digits of SHA-256(raw key)."""
    return "x25519:" + hashlib.sha256(_raw_public(pub)).hexdigest()[:16]


def write_identity(path: Path) -> X25519PublicKey:
    """Make an X25519 keypair: the private key as PKCS#8 PEM at ``path`` (mode 0600, never overwritten) and
    the public key as PEM at ``<path>.pub``. Returns the public key."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    key = X25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    pub_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    pub_path = path.with_name(path.name + ".pub")
    from .atomic import atomic_write, create_once

    # whole or not at all: a full disk or ``ulimit -f`` used to leave a torn private key that a re-run then
    # refused to replace ("already exists")
    try:
        if not create_once(path, pem, mode=0o600):
            raise ExportError(f"{path} already exists; choose another --out (an identity is never overwritten)")
    except OSError as exc:
        raise ExportError(f"cannot create {path}: {os_error_cause(exc)}; nothing was written (free space or lift "
                          "the limit, then run the command again)") from None
    try:
        atomic_write(pub_path, pub_pem, mode=0o644)
    except OSError as exc:
        path.unlink(missing_ok=True)  # this call made it: without its public half it is of no use
        raise ExportError(f"cannot write {pub_path}: {os_error_cause(exc)}; nothing was kept (free space or lift "
                          "the limit, then run the command again)") from None
    return key.public_key()


def _read_pem(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ExportError(f"cannot read the {what} {path}: {exc.strerror or exc}") from None


def load_recipient(path: Path) -> X25519PublicKey:
    """The X25519 public key in ``path`` (PEM, as written by ``groundwire keys recipient``)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

    data = _read_pem(path, "recipient public key")
    try:
        pub = serialization.load_pem_public_key(data)
    except ValueError:
        if b"PRIVATE KEY" in data:
            raise ExportError(f"{path} is a private key; give the recipient's public key ({path.name}.pub)") from None
        raise ExportError(f"{path} is not a PEM public key; make one with 'groundwire keys recipient'") from None
    if not isinstance(pub, X25519PublicKey):
        raise ExportError(f"{path} is not an X25519 key; make one with 'groundwire keys recipient'")
    return pub


def load_identity(path: Path) -> X25519PrivateKey:
    """The X25519 private key in ``path`` (PKCS#8 PEM, as written by ``groundwire keys recipient``)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    data = _read_pem(path, "identity")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise ExportError(f"{path} is not an unencrypted PEM private key; give the file made by "
                          "'groundwire keys recipient --out'") from None
    if not isinstance(key, X25519PrivateKey):
        raise ExportError(f"{path} is not an X25519 private key")
    return key


def _hkdf(ikm: bytes, salt: bytes) -> bytes:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=_INFO).derive(ikm)


def _argon2(passphrase: str, salt: bytes, kdf: Kdf) -> bytes:
    from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

    return Argon2id(salt=salt, length=32, iterations=kdf.iterations, lanes=kdf.lanes,
                    memory_cost=kdf.memory_kib).derive(passphrase.encode("utf-8"))


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode("ascii")


def _unb64(s: Any, what: str, size: int) -> bytes:
    try:
        out = base64.b64decode(str(s), validate=True)
    except (ValueError, TypeError):
        raise ExportError(f"the export header's {what} is not base64 (damaged file)") from None
    if len(out) != size:
        raise ExportError(f"the export header's {what} has {len(out)} bytes, expected {size} (damaged file)")
    return out


# --- writing ------------------------------------------------------------------------------------------------


class ExportWriter:
    """Encrypts a byte stream into ``out`` in chunks (see the module docstring). Use as a context manager;
    ``close()`` writes the final chunk, without which the export does not decrypt."""

    def __init__(self, out: IO[bytes], key: ExportKey, content: str, chunk: int = CHUNK) -> None:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        salt, prefix = secrets.token_bytes(32), secrets.token_bytes(7)
        header: dict[str, Any] = {"v": VERSION, "alg": _ALG, "chunk": chunk, "content": content,
                                  "created_at": utcnow().isoformat(), "salt": _b64(salt),
                                  "nonce_prefix": _b64(prefix)}
        if key.recipient is not None:
            from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

            eph = X25519PrivateKey.generate()
            eph_pub, rcpt = _raw_public(eph.public_key()), _raw_public(key.recipient)
            ikm = eph.exchange(key.recipient) + eph_pub + rcpt
            header["kdf"] = {"name": "x25519-hkdf-sha256", "ephemeral": _b64(eph_pub),
                             "recipient": fingerprint(key.recipient)}
        else:
            assert key.passphrase is not None
            ikm = _argon2(key.passphrase, salt, key.kdf)
            header["kdf"] = {"name": "argon2id", "memory_kib": key.kdf.memory_kib,
                             "iterations": key.kdf.iterations, "lanes": key.kdf.lanes}
        body = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
        prelude = MAGIC + bytes([VERSION]) + struct.pack(">I", len(body)) + body
        self._out, self._aead = out, AESGCM(_hkdf(ikm, salt))
        self._aad, self._prefix, self._chunk = hashlib.sha256(prelude).digest(), prefix, chunk
        self._buf, self._n, self._closed = bytearray(), 0, False
        out.write(prelude)

    def _emit(self, data: bytes, last: bool) -> None:
        if self._n >= 2**32:
            raise ExportError("the export is too large (2^32 chunks)")
        nonce = self._prefix + struct.pack(">I", self._n) + (b"\x01" if last else b"\x00")
        self._out.write(self._aead.encrypt(nonce, data, self._aad))
        self._n += 1

    def write(self, data: bytes) -> int:
        if self._closed:
            raise ValueError("write to a closed export")
        self._buf += data
        while len(self._buf) > self._chunk:  # keep at least one byte back: the last chunk is never empty-by-luck
            self._emit(bytes(self._buf[: self._chunk]), last=False)
            del self._buf[: self._chunk]
        return len(data)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._emit(bytes(self._buf), last=True)
            self._buf.clear()

    def __enter__(self) -> ExportWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            self.close()


def encrypt_lines(out: IO[bytes], key: ExportKey, content: str, lines: Iterable[str], chunk: int = CHUNK) -> int:
    """Write ``lines`` (each gets a newline) encrypted to ``out``; returns how many were written."""
    n = 0
    with ExportWriter(out, key, content, chunk) as w:
        for line in lines:
            w.write(line.encode("utf-8") + b"\n")
            n += 1
    return n


# --- reading ------------------------------------------------------------------------------------------------


def _read_exact(f: IO[bytes], n: int) -> bytes:
    parts, got = [], 0
    while got < n:
        b = f.read(n - got)
        if not b:
            break
        parts.append(b)
        got += len(b)
    return b"".join(parts)


def read_header(f: IO[bytes]) -> tuple[dict[str, Any], bytes]:
    """The header of an export and the SHA-256 of its prelude (the chunks' associated data)."""
    head = _read_exact(f, len(MAGIC) + 5)
    if len(head) < len(MAGIC) + 5 or head[: len(MAGIC)] != MAGIC:
        raise ExportError("not a Groundwire export (no GWEXPORT header); was it written with --plaintext?")
    if head[len(MAGIC)] != VERSION:
        raise ExportError(f"export format version {head[len(MAGIC)]} is not supported (this Groundwire reads "
                          f"version {VERSION}); upgrade Groundwire")
    (hlen,) = struct.unpack(">I", head[len(MAGIC) + 1 :])
    if hlen > _MAX_HEADER:
        raise ExportError("the export header is implausibly large (damaged file)")
    body = _read_exact(f, hlen)
    try:
        header = json.loads(body)
        if not isinstance(header, dict) or header.get("alg") != _ALG or not isinstance(header.get("kdf"), dict):
            raise ValueError
        int(header["chunk"])
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise ExportError("the export header is damaged (not the expected JSON)") from None
    return header, hashlib.sha256(head + body).digest()


def _key_for(header: dict[str, Any], identity: X25519PrivateKey | None, passphrase: str | None) -> bytes:
    kdf, salt = header["kdf"], _unb64(header.get("salt"), "salt", 32)
    name = kdf.get("name")
    if name == "x25519-hkdf-sha256":
        if identity is None:
            raise ExportError(f"this export is encrypted for recipient {kdf.get('recipient')}; pass --identity "
                              "with that recipient's private key file")
        mine = fingerprint(identity.public_key())
        if kdf.get("recipient") != mine:
            raise DecryptionError(f"this export is encrypted for recipient {kdf.get('recipient')}, not for the "
                                  f"identity given ({mine}); use the matching --identity")
        from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

        eph_raw = _unb64(kdf.get("ephemeral"), "ephemeral key", 32)
        shared = identity.exchange(X25519PublicKey.from_public_bytes(eph_raw))
        return _hkdf(shared + eph_raw + _raw_public(identity.public_key()), salt)
    if name == "argon2id":
        if passphrase is None:
            raise ExportError("this export is encrypted with a passphrase; pass --passphrase-env VAR naming the "
                              "environment variable that holds it")
        try:
            cost = Kdf(int(kdf["memory_kib"]), int(kdf["iterations"]), int(kdf["lanes"]))
        except (KeyError, TypeError, ValueError):
            raise ExportError("the export header's Argon2id parameters are damaged") from None
        if not (8 <= cost.memory_kib <= 4 * 1024 * 1024 and 1 <= cost.iterations <= 64 and 1 <= cost.lanes <= 64):
            raise ExportError("the export header's Argon2id parameters are out of range (damaged file)")
        return _hkdf(_argon2(passphrase, salt, cost), salt)
    raise ExportError(f"unknown key derivation {name!r} in the export header; upgrade Groundwire")


def iter_plaintext(
    f: IO[bytes], identity: X25519PrivateKey | None = None, passphrase: str | None = None
) -> Iterator[bytes]:
    """Authenticated plaintext chunks of the export in ``f``. Raises :class:`DecryptionError` (wrong key,
    tampering) or :class:`ExportError` (truncation, damage) as soon as a chunk fails; a chunk is yielded only
    after it authenticated, but only the end of the iteration proves the export is complete."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    header, aad = read_header(f)
    aead = AESGCM(_key_for(header, identity, passphrase))
    prefix = _unb64(header.get("nonce_prefix"), "nonce prefix", 7)
    size = int(header["chunk"]) + _TAG
    n, cur = 0, _read_exact(f, size)
    while True:
        if len(cur) < _TAG:
            raise ExportError("the export is truncated (it ends inside a chunk or before its final chunk)")
        nxt = _read_exact(f, size) if len(cur) == size else b""
        last = not nxt
        nonce = prefix + struct.pack(">I", n) + (b"\x01" if last else b"\x00")
        try:
            plain = aead.decrypt(nonce, cur, aad)
        except InvalidTag:
            if not last and _is_final(aead, prefix, n, cur, aad):
                raise ExportError("the export has bytes after its final chunk (it was modified)") from None
            if n == 0:
                raise DecryptionError("the export cannot be decrypted: wrong passphrase or identity, or the "
                                      "file was modified or truncated") from None
            if last:
                raise ExportError(f"the export is truncated or was modified (chunk {n} is not a valid final "
                                  "chunk)") from None
            raise DecryptionError(f"the export was modified (chunk {n} fails authentication)") from None
        yield plain
        if last:
            return
        n, cur = n + 1, nxt


def _is_final(aead: Any, prefix: bytes, n: int, data: bytes, aad: bytes) -> bool:
    from cryptography.exceptions import InvalidTag

    try:
        aead.decrypt(prefix + struct.pack(">I", n) + b"\x01", data, aad)
    except InvalidTag:
        return False
    return True


def decrypt_stream(
    f: IO[bytes], out: IO[bytes], identity: X25519PrivateKey | None = None, passphrase: str | None = None
) -> int:
    """Decrypt the export in ``f`` into ``out``; returns the plaintext size. See :func:`iter_plaintext`."""
    total = 0
    for part in iter_plaintext(f, identity, passphrase):
        out.write(part)
        total += len(part)
    return total


def decrypt_file(
    src: Path, dest: Path, identity: X25519PrivateKey | None = None, passphrase: str | None = None
) -> int:
    """Decrypt ``src`` to ``dest`` (mode 0600), renamed into place only once the whole export authenticated."""
    with atomic_output(dest, fsync=False, suffix=".part") as out, src.open("rb") as f:
        return decrypt_stream(f, out, identity, passphrase)


def write_export(dest: Path, key: ExportKey | None, content: str, lines: Iterable[str]) -> int:
    """Write ``lines`` to ``dest`` (mode 0600) encrypted with ``key`` (None: plaintext JSON lines; the caller
    has audited that), atomically. Returns the number of lines."""
    with atomic_output(dest, suffix=".part") as out:  # durable: file and folder entry flushed
        if key is None:
            return sum(out.write(line.encode("utf-8") + b"\n") > 0 for line in lines)
        return encrypt_lines(out, key, content, lines)


# --- self-check ---------------------------------------------------------------------------------------------


def self_check(grounder: Grounder | None = None) -> tuple[bool, str]:
    """The trust report's "encrypts portable media" check: canary exports go through the same writer as
    ``audit export`` (one for a fresh recipient key, one for a passphrase). Passes only if neither ciphertext
    contains the canary, a wrong identity, a wrong passphrase, a flipped byte and a truncated copy all fail,
    the right keys give the canary back, and the CLI refuses an export without a key option. ``grounder`` is
    accepted for the report's uniform signature."""
    import io

    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    canary = f"groundwire-export-canary-{secrets.token_hex(8)}"
    lines = [json.dumps({"kind": "canary", "text": canary})] * 3
    ident, other = X25519PrivateKey.generate(), X25519PrivateKey.generate()
    phrase = secrets.token_urlsafe(16)
    failures: list[str] = []
    cheap = Kdf(memory_kib=8192, iterations=1, lanes=1)  # the check proves the construction, not the cost
    cases: list[tuple[str, ExportKey, tuple[Any, Any], tuple[Any, Any]]] = [
        ("recipient", ExportKey(recipient=ident.public_key()), (ident, None), (other, None)),
        ("passphrase", ExportKey(passphrase=phrase, kdf=cheap), (None, phrase), (None, phrase + "x")),
    ]
    for label, key, good, bad in cases:
        whole, buf = io.BytesIO(), io.BytesIO()
        encrypt_lines(whole, key, "self-check", lines)  # one chunk: the canary is never split
        encrypt_lines(buf, key, "self-check", lines, chunk=64)  # small chunks: several of them
        blob = buf.getvalue()
        if canary.encode() in whole.getvalue():
            failures.append(f"{label}: the canary is readable in the ciphertext")
        try:
            got = b"".join(iter_plaintext(io.BytesIO(blob), *good)).decode()
            if canary not in got:
                failures.append(f"{label}: the round trip lost the canary")
        except (GroundwireError, ValueError) as exc:
            failures.append(f"{label}: the right key does not decrypt ({exc})")
        flipped = bytearray(blob)
        flipped[-20] ^= 1
        for what, data, keys in (("a wrong key", blob, bad), ("a flipped byte", bytes(flipped), good),
                                 ("a truncated copy", blob[: len(blob) - 81], good)):
            try:
                b"".join(iter_plaintext(io.BytesIO(data), *keys))
                failures.append(f"{label}: {what} was accepted")
            except (DecryptionError, ExportError, EncryptionError):
                pass
    from .cli_exports import export_key

    try:  # the CLI's default: no key option must be an error, never a plaintext export
        if export_key(None, None, False) is None:
            failures.append("an export without key options would be written in clear")
    except ExportError:
        pass
    if failures:
        return False, "; ".join(failures)
    return True, ("AES-256-GCM STREAM exports (X25519 recipient or Argon2id passphrase): canaries round-trip, "
                  "unreadable without the key, tampering and truncation detected; plaintext only with "
                  "--plaintext (audited)")
