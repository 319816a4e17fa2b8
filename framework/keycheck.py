"""Refuse a keyring that cannot read the data already stored, before anything is written with it.

Writing with a keyring that lacks the key of the existing data would leave a store (or an audit log) that no
single configuration can read, and an audit chain that the right key later reports as TAMPERED. So the codec
is checked once per process and data directory against a sample of every store: the first and last record of
each audit log, every tenant's wrapped data key (:mod:`groundwire.datakeys`), the newest draft, the newest
quarantine entry and (:func:`check_index`) one chunk of each tenant's collection. Encrypted data with
encryption disabled is refused too. Data stored in clear while encryption is now enabled is not refused here
(reading it names ``sync --rebuild``).

The error names the key ids found in the data and the ids the keyring provides; never key material.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .crypto import PREFIX, DecryptionError, KeyringMismatch

__all__ = ["check_data_keys", "check_index"]

_OK: set[tuple[str, str]] = set()
_LOCK = threading.Lock()


def _fingerprint(codec: Any) -> str:
    ring = getattr(codec, "keyring", None)
    if ring is None:
        return "identity"
    h = hashlib.sha256(ring.current.encode())
    for kid in sorted(ring.keys):
        h.update(kid.encode() + b"\0" + hashlib.sha256(bytes(ring.keys[kid])).digest())
    return h.hexdigest()


def _kid(stored: str) -> str | None:
    from .datakeys import DEK_PREFIX

    prefix, _, rest = stored.partition(":")
    kid, sep, _ = rest.partition(":")
    if prefix == DEK_PREFIX and sep:
        return f"data key {kid}"
    return kid if prefix == PREFIX and sep else None


def _dek_samples(data: Path) -> Iterable[tuple[str, str, str]]:
    """The wrapped data key of every tenant (``<data_dir>/keys/*.dek``): the master keyring must unwrap it."""
    from .datakeys import DataKeys
    from .index import IdentityCodec

    return DataKeys(data / "keys", IdentityCodec()).samples()  # type: ignore[arg-type]  # reads, never unwraps


def _audit_samples(folder: Path) -> Iterable[tuple[str, str, str]]:
    """``(where, associated data, ciphertext)`` of the first and last encrypted line of each log."""
    from .audit import _aad, _last_record, _parse

    if not folder.is_dir():
        return
    for log in sorted(folder.glob("*.jsonl")):
        recs = []
        try:
            with log.open("rb") as f:
                first = _parse(f.readline())
                if first is not None:
                    recs.append(first)
                size = os.fstat(f.fileno()).st_size
                _, last = _last_record(f.fileno(), size)
                if last is not None:
                    recs.append(last)
        except OSError:
            continue
        for rec in recs:
            if "enc" in rec:
                yield f"audit log {log.name}", _aad(int(rec["seq"]), log.stem), str(rec["enc"])


def _store_samples(data: Path, codec_getter: Any) -> Iterable[tuple[str, str, str]]:
    from .stores import DraftStore, QuarantineRows

    for name, cls, label in (("reviews.sqlite3", DraftStore, "review store"),
                             ("quarantine.sqlite", QuarantineRows, "quarantine store")):
        if (data / name).exists():
            got = cls(data / name, codec_getter).sample()
            if got is not None:
                yield label, got[0], got[1]


def _check(samples: Iterable[tuple[str, str, str]], codec: Any) -> None:
    ring = getattr(codec, "keyring", None)
    bad: dict[str, set[str]] = {}
    for where, aad, stored in samples:
        kid = _kid(stored)
        if kid is None:
            continue  # stored in clear
        if ring is None:
            bad.setdefault(kid, set()).add(where)
            continue
        try:
            codec.decode(stored, aad)
        except DecryptionError:
            bad.setdefault(kid, set()).add(where)
    if not bad:
        return
    found = "; ".join(f"{', '.join(sorted(w))} encrypted with key id {k!r}" for k, w in sorted(bad.items()))
    if ring is None:
        raise KeyringMismatch(
            f"the stored data is encrypted ({found}) but [encryption] is not enabled; enable it with a key "
            "provider that holds those keys. Nothing was written."
        )
    have = ", ".join(repr(k) for k in sorted(ring.keys))
    wrong = sorted(k for k in bad if k in ring.keys)
    detail = (f"; the provided key(s) {', '.join(map(repr, wrong))} have the right id but not the key material "
              "the data was written with" if wrong else "")
    needed = ", ".join(repr(k) for k in sorted(bad) if not k.startswith("data key "))
    raise KeyringMismatch(
        f"the configured keyring (key ids {have}; current {ring.current!r}) cannot decrypt the existing data: "
        f"{found}{detail}. Configure the key provider under [encryption] with the key(s) "
        f"{needed or 'that wrap the data keys'}"
        " (keep old keys until 'groundwire keys rotate' has re-encrypted everything; a missing data key file under "
        "keys/ must be restored from a backup). Nothing was written."
    )


def check_data_keys(data_dir: Path, codec: Any) -> None:
    """Raise :class:`KeyringMismatch` if ``codec`` cannot read the audit logs or stores under ``data_dir``.
    Cached per process for a (data dir, keyring) pair once it passed."""
    key = (str(data_dir), _fingerprint(codec))
    with _LOCK:
        if key in _OK:
            return
    samples = [*_audit_samples(data_dir / "audit"), *_dek_samples(data_dir),
               *_store_samples(data_dir, lambda: codec)]
    _check(samples, codec)
    with _LOCK:
        _OK.add(key)


def check_index(tindexes: Iterable[Any], codec: Any) -> None:
    """Raise :class:`KeyringMismatch` if ``codec`` cannot read one stored chunk of each tenant index."""
    samples = []
    for t in tindexes:
        got = t.page(["documents"], 0, limit=1)  # the stored payloads, either row layout
        for cid, doc in zip(got["ids"], got["documents"] or [], strict=False):
            samples.append((f"index of tenant {t.tenant!r}", str(cid), str(doc)))
    _check(samples, codec)
