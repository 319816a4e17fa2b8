"""The Chroma-backed index: one collection per tenant, chunk payloads behind a codec.

Modules: :mod:`.rows` (what a row holds, the codec protocol, the ACL filter), :mod:`.client` (the Chroma
client, :class:`Index`: collections, live pointer, rebuilds), :mod:`.handle` (freshness and retries of one
tenant's handle), :mod:`.writes` and :mod:`.tenant` (:class:`TenantIndex`: writes, filtered reads). Every
public name is importable from ``groundwire.index``.

Invariants:
- Tenant isolation: :meth:`Index.tenant` returns a :class:`TenantIndex` bound to exactly one collection
  (``gw-<tenant>``); no method takes a tenant argument, so no query can cross tenants.
- Security trimming in the query: :meth:`TenantIndex.query` always pre-filters by the caller's principals,
  the deny list and the configured connectors. There is no unfiltered query method.
- Sensitive text (chunk text, title, URI, location) is stored only in the payload (the metadata key
  :data:`PAYLOAD_KEY`; ``documents`` in data dirs written before, see :mod:`.rows`), passed through a
  :class:`Codec` (the identity by default, AES-GCM with the ``crypto`` extra; see issue 7).
  Metadata holds ids, ACL tokens, connector name, position, versions and hashes only; with a tenant data
  key (:mod:`groundwire.datakeys`) the content hash is keyed (:meth:`TenantIndex.keyed_hash`, HMAC), so it
  cannot confirm a guessed document.
- Chroma telemetry is off.
- Cross-process freshness: every write (upsert, delete, ACL-only update, dropping a tenant) replaces
  ``<state dir>/gw-<tenant>.generation`` atomically (temp file + rename) *after* the write, with a
  counter and a random suffix (unique even after a crash). The state dir is the embedded client's
  persist directory (or the one given to :class:`Index`, e.g. for the HTTP backend). Every read first
  compares the persisted generation with the last one this process saw; when another process changed
  it, the embedded client is reopened (its in-memory HNSW segments are stale and would fail with
  ``Error finding id``) before the read. A read that still fails is retried once on a fresh client,
  then raises :class:`~groundwire.errors.IndexError_`; raw chromadb errors never escape a read.
- Writers must be serialized (``groundwire sync`` holds the sync lock); readers may be any number of
  processes sharing the data dir.
- Authoritative ACLs (embedded store): every write also maintains :class:`groundwire.acl_store.AclStore`
  (narrowed or deleted *before* the Chroma write, set *after* it, under a cross-process lock), and every read
  that returns chunks (:meth:`TenantIndex.get_chunks`, :meth:`TenantIndex.query`) keeps a chunk only if that
  store's row grants the principals too, with the meet of both ACLs on the returned chunk. A reader whose
  Chroma state lags cannot serve a revoked or deleted chunk; on a disagreement it reopens its client and reads
  once more.
- Rebuild without loss (live pointer): the collection ``gw-<tenant>`` is the tenant's anchor. When its
  metadata holds ``gw_live``, the tenant's chunks live in that collection (``gw-<tenant>.r<n>``, made by
  :meth:`Index.begin_rebuild` and switched to by :meth:`Index.commit_rebuild`, one metadata update and a
  generation bump); otherwise in the anchor itself. The live collection must name the same tenant in
  its own metadata. A handle re-reads the pointer at most every ``pointer_seconds`` (and on every
  reopen); the previous generation is kept until the next rebuild, so a reader that opened it finishes.
"""

from __future__ import annotations

import os

os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")  # before chromadb is imported anywhere below

from ..freshness import GenerationFile  # noqa: E402
from .client import Index, make_client  # noqa: E402
from .rows import NOBODY, PAYLOAD_KEY, Codec, DocState, IdentityCodec, doc_key, take_payloads  # noqa: E402
from .rows import _acl_meta as _acl_meta  # noqa: E402 - kept importable: tests build rows by hand
from .rows import principal_filter as principal_filter  # noqa: E402
from .tenant import TenantIndex  # noqa: E402

__all__ = [
    "NOBODY", "PAYLOAD_KEY", "Codec", "DocState", "GenerationFile", "IdentityCodec", "Index", "TenantIndex", "doc_key",
    "make_client", "take_payloads",
]
