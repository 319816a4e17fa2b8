"""What a Chroma row of the index holds, and the ACL rule every read applies to it.

Invariants:
- Sensitive text lives only in the ``documents`` payload, encoded by a :class:`Codec`; metadata holds ids,
  ACL tokens, connector name, position, versions and hashes only.
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

__all__ = ["NOBODY", "Codec", "DocState", "IdentityCodec", "doc_key", "principal_filter"]

NOBODY = "nobody:"  # sentinel for an empty ACL list: no user can hold it (normalize_principal rejects it)
_PAGE = 5000
_WRITE_ROWS = 4000  # rows per upsert (under chromadb's max batch size of 5461)


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
