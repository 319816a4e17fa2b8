"""What a Chroma row of the index holds, and the ACL rule every read applies to it.

Invariants:
- Sensitive text lives only in the stored payload, encoded by a :class:`Codec`; the rest of the metadata
  holds ids, ACL tokens, connector name, position, versions and hashes only.
- Layout 2 (current): the payload is the metadata key :data:`PAYLOAD_KEY` and ``documents`` is ``""``.
  Chroma full-text-indexes ``documents`` (an FTS5 trigram table): a base64 ciphertext there made an upsert
  3x (4 KB) to 16x (10 KB) slower than the same bytes in a metadata key (``benchmarks.payload_layout``), for
  an index nothing reads (BM25 is our own, :mod:`groundwire.lexical`). Layout 1 (before): the payload in
  ``documents``. Every read takes the payload from either (:func:`take_payloads`: the metadata key first),
  so data dirs written before keep working; every write stores layout 2 and blanks ``documents`` (an upsert
  without ``documents`` would keep a layout-1 row's old ciphertext, e.g. one encrypted with a key being
  retired).
- An empty ACL list is stored as ``[NOBODY]``: no principal can hold that token, so an empty allow list
  admits nobody and Chroma's ``$not_contains`` works on an empty deny list.
- :func:`principal_filter` (the ``where`` clause) and :func:`_readable` (the same rule on one row's metadata)
  must admit exactly the same rows; both fail closed on a row whose ACL keys are missing or malformed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ..acl_store import Acl
from ..models import AccessControl

__all__ = [
    "NOBODY", "PAYLOAD_KEY", "Codec", "DocState", "IdentityCodec", "doc_key", "principal_filter", "take_payloads",
]

NOBODY = "nobody:"  # sentinel for an empty ACL list: no user can hold it (normalize_principal rejects it)
_PAGE = 5000
_WRITE_ROWS = 4000  # rows per upsert (under chromadb's max batch size of 5461)
#: the metadata key that holds a row's stored (encoded) payload (layout 2; see the module docstring)
PAYLOAD_KEY = "gw_payload"


class Codec(Protocol):
    """Encodes chunk payloads for storage (e.g. encryption at rest)."""

    name: str

    def encode(self, plaintext: str, chunk_id: str) -> str: ...

    def decode(self, stored: str, chunk_id: str) -> str: ...


class IdentityCodec:
    name = "identity"

    def encode(self, plaintext: str, chunk_id: str) -> str:
        return plaintext

    def decode(self, stored: str, chunk_id: str) -> str:
        return stored


def doc_key(connector: str, doc_id: str) -> str:
    """A short stable key for a document, used in chunk ids and metadata."""
    return hashlib.sha256(f"{connector}\x00{doc_id}".encode()).hexdigest()[:24]


@dataclass(frozen=True, slots=True)
class DocState:
    version: str
    content_hash: str
    acl_fingerprint: str
    chunks: int



def with_payload(meta: dict[str, Any], payload: str) -> dict[str, Any]:
    """A row's metadata for a write: ``meta`` with the stored payload under :data:`PAYLOAD_KEY`."""
    return {**meta, PAYLOAD_KEY: payload}


def with_payloads(metas: Sequence[Any], payloads: Sequence[str]) -> list[dict[str, Any]]:
    return [with_payload(dict(m or {}), p) for m, p in zip(metas, payloads, strict=True)]


def read_include(include: Sequence[str]) -> list[str]:
    """What to ask Chroma for to serve ``include``: a read of ``documents`` (the payloads) also needs the
    metadata, where layout 2 keeps them."""
    out = list(include)
    if "documents" in out and "metadatas" not in out:
        out.append("metadatas")
    return out


def take_payloads(got: dict[str, Any], include: Sequence[str] | None = None) -> dict[str, Any]:
    """``got`` (a Chroma ``get`` result read with :func:`read_include`) with ``documents`` replaced by each
    row's stored payload (the metadata key of layout 2, else layout 1's ``documents``; ``""`` if neither) and
    the key taken out of the metadata, which is dropped again if ``include`` did not ask for it. In place;
    returns ``got``. A ``query`` result (lists of lists) is handled row list by row list."""
    metas = got.get("metadatas")
    if metas is None:
        return got
    nested = bool(metas) and isinstance(metas[0], list)
    docs = got.get("documents")
    if nested:
        groups_m, groups_d = metas, docs if docs is not None else [None] * len(metas)
    else:
        groups_m, groups_d = [metas], [docs]
    out_docs = []
    for ms, ds in zip(groups_m, groups_d, strict=True):
        ds = ds if ds is not None else [None] * len(ms)
        row_docs = []
        for m, d in zip(ms, ds, strict=True):
            p = m.pop(PAYLOAD_KEY, None) if isinstance(m, dict) else None
            row_docs.append(p if isinstance(p, str) else (d if isinstance(d, str) else ""))
        out_docs.append(row_docs)
    if docs is not None or (include is not None and "documents" in include):
        got["documents"] = out_docs if nested else out_docs[0]
    if include is not None and "metadatas" not in include:
        got["metadatas"] = None
    return got


def _meta_acl(meta: Any) -> Acl | None:
    """(allow, deny) of a Chroma row's metadata without the sentinel; None if missing or malformed."""
    if not isinstance(meta, dict):
        return None
    allow, deny = meta.get("acl_allow"), meta.get("acl_deny")
    if not isinstance(allow, list) or not isinstance(deny, list):
        return None
    return frozenset(map(str, allow)) - {NOBODY}, frozenset(map(str, deny)) - {NOBODY}


def _acl_rows(collection: Any) -> list[tuple[str, str, str, Acl]]:
    """(id, doc key, connector, ACL) of every row of ``collection`` (rows with broken ACL metadata left out)."""
    out: list[tuple[str, str, str, Acl]] = []
    offset = 0
    while True:
        got = collection.get(include=["metadatas"], limit=_PAGE, offset=offset)
        for cid, m in zip(got["ids"], got["metadatas"] or [], strict=True):
            acl = _meta_acl(m)
            if acl is not None:
                out.append((cid, str(m.get("doc_key", "")), str(m.get("connector", "")), acl))
        if len(got["ids"]) < _PAGE:
            return out
        offset += _PAGE


def _acl_meta(acl: AccessControl) -> dict[str, list[str]]:
    return {"acl_allow": sorted(acl.allow) or [NOBODY], "acl_deny": sorted(acl.deny) or [NOBODY]}


def principal_filter(principals: Iterable[str], connectors: Sequence[str]) -> dict[str, Any]:
    """The Chroma ``where`` clause that admits only chunks the principals may read from the connectors."""
    ps = sorted(set(principals) - {NOBODY})
    if not ps or not connectors:
        raise ValueError("a query needs at least one principal and one connector")
    allow: dict[str, Any] = (
        {"acl_allow": {"$contains": ps[0]}}
        if len(ps) == 1
        else {"$or": [{"acl_allow": {"$contains": p}} for p in ps]}
    )
    clauses: list[dict[str, Any]] = [{"connector": {"$in": list(connectors)}}, allow]
    clauses += [{"acl_deny": {"$not_contains": p}} for p in ps]
    return {"$and": clauses}


def _readable(meta: Any, principals: set[str], connectors: set[str]) -> bool:
    """The principal_filter() rule on one row's metadata; fail closed on a row whose ACL keys are missing
    or malformed (seen while another process rewrites the row: its metadata can be read half-merged)."""
    if not isinstance(meta, dict):
        return False
    allow, deny = meta.get("acl_allow"), meta.get("acl_deny")
    if not isinstance(allow, list) or not isinstance(deny, list) or not deny:
        return False
    return meta.get("connector") in connectors and bool(principals.intersection(allow)) \
        and not principals.intersection(deny)


def _is_chroma_error(exc: BaseException) -> bool:
    return type(exc).__module__.startswith("chromadb")
