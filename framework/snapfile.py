"""The on-disk copy of a tenant's retrieval snapshot: memory-mapped arrays beside Chroma, per generation.

Loading a snapshot from Chroma costs seconds per 100k chunks (paged ``get`` of vectors and metadata);
this file lets every process on a host start in a fraction of that and share the vector pages
(``np.load(mmap_mode="r")``). Chroma stays the source of truth: the file is a cache of it.

Layout under ``<state dir>/snapshots/gw-<tenant>/``: one directory per written snapshot holding one
``.npy`` per array plus ``meta.json``, and ``current.json`` naming the directory, the generation it was
read at, and SHA-256 digests of every file except the large memory-mapped ones (vectors, postings).

Invariants:
- Written atomically: the directory is complete before ``current.json`` is replaced (temp + rename),
  so a reader sees the old snapshot or the new one, never a mix.
- Used only when its generation equals the tenant's persisted generation *now* (every index write
  changes it); otherwise, or when a file is missing, truncated or fails its digest, it is ignored and
  rebuilt from Chroma. The ACL layout (groups, row groups, ids) is always digest-checked, so a stale or
  damaged file can never widen access; the mapped arrays are checked by shape and bounds by the caller
  (they only order results), and payloads are re-checked in Chroma by ``TenantIndex.get_chunks`` in any case.
- Never holds chunk text. Lexical postings (word ids per row, the vocabulary) are written only when the
  payload codec is the identity, i.e. when the text is stored in clear in Chroma anyway.
- :func:`build_lock` (``flock``) lets the first of several starting workers build while the others
  wait and then map its file. Old snapshot directories are removed after a grace period.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import shutil
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import atomic_write

__all__ = ["build_lock", "load", "save"]

FORMAT = 1
_GRACE_SECONDS = 120.0


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def save(
    base: Path, generation: str, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any],
    mapped: frozenset[str] = frozenset(),
) -> Path:
    """Write a complete snapshot directory, then point ``current.json`` at it (atomically). Arrays named
    in ``mapped`` are memory-mapped on load and not digested (the bulk: vectors, lexical postings); the
    caller checks their shapes and bounds. Every other array and ``meta.json`` is digest-checked."""
    base.mkdir(parents=True, exist_ok=True)
    name = f"s{time.time_ns():x}-{os.getpid()}-{secrets.token_hex(4)}"
    tmp = base / f".{name}.tmp"
    tmp.mkdir()
    try:
        digests: dict[str, str] = {}
        for key, arr in arrays.items():
            np.save(tmp / f"{key}.npy", np.ascontiguousarray(arr), allow_pickle=False)
            if key not in mapped:
                digests[f"{key}.npy"] = _digest(tmp / f"{key}.npy")
        (tmp / "meta.json").write_text(json.dumps(dict(meta)), encoding="utf-8")
        digests["meta.json"] = _digest(tmp / "meta.json")
        os.replace(tmp, base / name)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    manifest = {"format": FORMAT, "dir": name, "generation": generation, "arrays": sorted(arrays),
                "mapped": sorted(mapped), "sha256": digests}
    atomic_write(base / "current.json", json.dumps(manifest), fsync=False, mode=0o666)  # a cache: rebuilt if lost
    _collect(base, keep=name)
    return base / name


def load(base: Path, generation: str) -> tuple[dict[str, np.ndarray], dict[str, Any]] | None:
    """The arrays (vectors memory-mapped) and meta of the snapshot at ``generation``, or None when the
    file is absent, of another generation, incomplete or damaged (the caller rebuilds from Chroma)."""
    try:
        manifest = json.loads((base / "current.json").read_text(encoding="utf-8"))
        if manifest.get("format") != FORMAT or manifest.get("generation") != generation:
            return None
        folder = base / str(manifest["dir"])
        if folder.parent != base or not folder.is_dir():
            return None
        digests: dict[str, str] = manifest["sha256"]
        for fname, want in digests.items():
            if _digest(folder / fname) != want:
                return None
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
        mapped = set(manifest["mapped"])
        arrays: dict[str, np.ndarray] = {}
        for key in manifest["arrays"]:
            if key not in mapped and f"{key}.npy" not in digests:
                return None
            arrays[key] = np.load(folder / f"{key}.npy", mmap_mode="r" if key in mapped else None,
                                  allow_pickle=False)
        return arrays, meta
    except (OSError, ValueError, KeyError, TypeError, AttributeError):  # missing, truncated, not ours
        return None


@contextlib.contextmanager
def build_lock(base: Path) -> Iterator[None]:
    """Exclusive among processes on this host (``flock``); a no-op where ``fcntl`` is missing."""
    base.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    with open(base / "build.lock", "a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _collect(base: Path, keep: str) -> None:
    """Remove snapshot directories other than ``keep`` older than the grace period (a process that has
    mapped one keeps its pages after the unlink; one that read the old manifest just rebuilds)."""
    now = time.time()
    for p in base.iterdir():
        if p.name == keep or not p.is_dir():
            continue
        with contextlib.suppress(OSError):
            if now - p.stat().st_mtime > _GRACE_SECONDS:
                shutil.rmtree(p, ignore_errors=True)
