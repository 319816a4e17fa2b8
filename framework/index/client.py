"""The Chroma client and the per-tenant collections: :class:`Index` hands out one
:class:`~groundwire.index.TenantIndex` per tenant, follows the live pointer and runs rebuilds.

Invariants (see :mod:`groundwire.index` for the whole list): a tenant's handle is bound to exactly one
collection whose metadata names that tenant, embedder and codec (else :class:`~groundwire.errors.IndexError_`);
every reopen of the embedded client rebinds every handle; a rebuild switches the live pointer with one
metadata update followed by a generation bump.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from pathlib import Path
from typing import Any

from ..acl_store import AclStore
from ..datakeys import tenant_codec
from ..errors import IndexError_
from ..freshness import GenerationFile, cached_system, embedded_for, persist_dir, reopen_embedded
from ..models import validate_tenant
from .handle import _Unavailable
from .rows import Codec, IdentityCodec, _acl_rows
from .tenant import TenantIndex

__all__ = ["Index", "make_client"]

log = logging.getLogger("groundwire.index")


def make_client(
    backend: str, path: Path | None = None, host: str = "127.0.0.1", port: int = 8000, ssl: bool = False
) -> Any:
    """Create a Chroma client with telemetry off: embedded ``PersistentClient`` or ``HttpClient``."""
    import chromadb
    from chromadb.config import Settings

    settings = Settings(anonymized_telemetry=False, allow_reset=False)
    if backend == "embedded":
        assert path is not None
        path.mkdir(parents=True, exist_ok=True)
        return chromadb.PersistentClient(path=str(path), settings=settings)
    if backend == "http":
        return chromadb.HttpClient(host=host, port=port, ssl=ssl, settings=settings)
    raise IndexError_(f"unknown index backend {backend!r}: use 'embedded' or 'http'")



class Index:
    """Entry point to the store; hands out one :class:`TenantIndex` per tenant.

    ``state_dir`` holds the per-tenant generation files (default: the embedded client's persist
    directory; give one for the HTTP backend so processes sharing a data dir see each other's writes).
    """

    def __init__(
        self, client: Any, model_id: str, dimension: int, codec: Codec | None = None,
        state_dir: Path | None = None, pointer_seconds: float = 2.0,
    ) -> None:
        self.client = client
        self.model_id = model_id
        self.dimension = dimension
        self.codec: Codec = codec or IdentityCodec()
        embedded_dir = persist_dir(client)
        self._embedded = embedded_for(embedded_dir, client) if embedded_dir is not None else None
        if self._embedded is not None and self._embedded.epoch:  # reopened before: the given one is stopped
            self.client = self._embedded.client
        self._epoch = self._embedded.epoch if self._embedded is not None else 0
        self.state_dir = state_dir or embedded_dir
        self._tenants: dict[str, TenantIndex] = {}
        self._lock = threading.Lock()
        self._open_lock = threading.RLock()  # get_or_create_collection from several threads at once races
        self.pointer_seconds = pointer_seconds
        self._checked: dict[str, float] = {}
        self._acl: dict[str, AclStore] = {}
        self.reopens = 0

    def remove_acl_store(self, tenant: str) -> int:
        """Delete ``tenant``'s ACL store files (a tenant purge, after :meth:`drop_tenant`); returns how many."""
        with self._lock:
            self._acl.pop(tenant, None)
        if self.state_dir is None:
            return 0
        base = self.state_dir / "acl" / f"gw-{tenant}.sqlite"
        gone = 0
        for path in (base, *(base.with_name(base.name + s) for s in ("-wal", "-shm", ".lock"))):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                gone += 1
        return gone

    def acl_store(self, tenant: str) -> AclStore | None:
        """The authoritative ACL store of ``tenant`` (embedded stores only: a Chroma server is one process,
        and writers on other hosts would not update a store in this data dir)."""
        if self._embedded is None or self.state_dir is None:
            return None
        with self._lock:
            store = self._acl.get(tenant)
            if store is None:
                store = self._acl[tenant] = AclStore(self.state_dir / "acl" / f"gw-{tenant}.sqlite")
            return store

    def generation_file(self, tenant: str) -> GenerationFile | None:
        return None if self.state_dir is None else GenerationFile(self.state_dir / f"gw-{tenant}.generation")

    @property
    def epoch(self) -> int:
        return self._embedded.epoch if self._embedded is not None else self._epoch

    def current(self) -> None:
        """Adopt the directory's current client if another Index of this process reopened it (cheap)."""
        shared = self._embedded
        if shared is not None and self._epoch != shared.epoch:
            with self._lock:
                if self._epoch != shared.epoch:
                    self.client, epoch = shared.client, shared.epoch
                    self._rebind()
                    self._epoch = epoch

    def reopen(self, seen_epoch: int) -> None:
        """Reopen the embedded client (another process wrote, or a read failed) unless someone in this
        process already did since ``seen_epoch``; then rebind every tenant's collection."""
        shared = self._embedded
        if shared is None:
            with self._lock:
                self._rebind()
                self._epoch += 1
            return
        with shared.lock:
            if shared.epoch == seen_epoch:
                shared.client, old = reopen_embedded(shared.client)
                shared.system = cached_system(shared.client)
                shared.epoch += 1
                self.reopens += 1
                if old is not None:
                    with contextlib.suppress(Exception):  # in-flight reads on it fail and are retried
                        old.stop()
        self.current()

    def _rebind(self) -> None:
        for t in self._tenants.values():
            try:
                t.collection = self._live_collection(t.tenant)
            except Exception as exc:  # noqa: BLE001 - e.g. dropped by another process's rebuild
                t.collection = _Unavailable(f"gw-{t.tenant}", exc)
            self._checked[t.tenant] = time.monotonic()

    def _metadata(self, tenant: str) -> dict[str, Any]:
        return {"hnsw:space": "cosine", "gw_tenant": tenant, "gw_model": self.model_id, "gw_codec": self.codec.name}

    def _anchor(self, tenant: str) -> Any:
        return self.client.get_or_create_collection(
            f"gw-{tenant}", metadata=self._metadata(tenant), embedding_function=None
        )

    def live_name(self, tenant: str) -> str:
        """The name of the collection holding ``tenant``'s chunks now (see the module docstring)."""
        validate_tenant(tenant)
        live = (self._anchor(tenant).metadata or {}).get("gw_live")
        if not live:
            return f"gw-{tenant}"
        if not str(live).startswith(f"gw-{tenant}.r"):
            raise IndexError_(f"the live pointer of tenant {tenant!r} names {live!r}; refusing to use it")
        return str(live)

    def _live_collection(self, tenant: str) -> Any:
        name = self.live_name(tenant)
        if name == f"gw-{tenant}":
            return self._anchor(tenant)
        return self.client.get_collection(name, embedding_function=None)

    def _check(self, tenant: str, col: Any) -> None:
        meta = col.metadata or {}
        if meta.get("gw_tenant") != tenant:
            raise IndexError_(f"collection {col.name} does not belong to tenant {tenant!r}; refusing to use it")
        if meta.get("gw_model") != self.model_id:
            raise IndexError_(
                f"the index for tenant {tenant!r} was built with embedder {meta.get('gw_model')!r}, "
                f"not {self.model_id!r}; run 'groundwire sync --rebuild' to re-index"
            )
        if meta.get("gw_codec", "identity") != self.codec.name:
            raise IndexError_(
                f"the index for tenant {tenant!r} is stored with codec {meta.get('gw_codec')!r} but "
                f"{self.codec.name!r} is configured; configure the same key provider"
            )

    def tenant(self, tenant: str) -> TenantIndex:
        validate_tenant(tenant)
        self.current()
        found = self._tenants.get(tenant)
        if found is not None and time.monotonic() - self._checked.get(tenant, 0.0) < self.pointer_seconds:
            return found
        with self._open_lock:
            found = self._tenants.get(tenant)
            if found is not None and time.monotonic() - self._checked.get(tenant, 0.0) < self.pointer_seconds:
                return found
            col = self._live_collection(tenant)
            self._checked[tenant] = time.monotonic()
            if found is not None and found.collection.name == col.name:
                return found
            self._check(tenant, col)
            self._tenants[tenant] = TenantIndex(tenant, col, tenant_codec(self.codec, tenant),
                                                self.generation_file(tenant), self, acl=self.acl_store(tenant))
            return self._tenants[tenant]

    def live_model(self, tenant: str) -> str | None:
        """The embedder model id the tenant's live collection was built with (None: no chunks yet)."""
        col = self._live_collection(tenant)
        if col.count() == 0:
            return None
        model = (col.metadata or {}).get("gw_model")
        return str(model) if model is not None else None

    # --- rebuild without loss --------------------------------------------------------------------------

    def begin_rebuild(self, tenant: str) -> TenantIndex:
        """A new, empty collection beside the live one; fill it, then :meth:`commit_rebuild` or
        :meth:`abort_rebuild`. Readers keep using the live collection meanwhile."""
        validate_tenant(tenant)
        with self._open_lock:
            col = self.client.create_collection(
                f"gw-{tenant}.r{time.time_ns()}", metadata=self._metadata(tenant), embedding_function=None
            )
            return TenantIndex(tenant, col, tenant_codec(self.codec, tenant))

    def commit_rebuild(self, staged: TenantIndex) -> None:
        """Make ``staged`` the live collection (one metadata update of the anchor, then a generation bump
        so other processes reopen), then delete the generations older than the one it replaces."""
        tenant = staged.tenant
        with self._open_lock:
            anchor = self._anchor(tenant)
            previous = self.live_name(tenant)
            meta = {k: v for k, v in (anchor.metadata or {}).items() if k != "hnsw:space"}
            meta.update(gw_live=staged.collection.name, gw_model=self.model_id, gw_codec=self.codec.name)
            store = self.acl_store(tenant)
            with store.writing() if store is not None else contextlib.nullcontext():
                rows = _acl_rows(staged.collection) if store is not None else []
                if store is not None:  # before the switch: rows the staged collection lacks go, others narrow
                    store.fill_narrowed(rows)
                anchor.modify(metadata=meta)
                live = TenantIndex(tenant, staged.collection, tenant_codec(self.codec, tenant),
                                   self.generation_file(tenant), self, acl=store)
                self._tenants[tenant] = live
                self._checked[tenant] = time.monotonic()
                live._wrote()
                if store is not None:
                    store.fill(rows)
            keep = {staged.collection.name, previous, f"gw-{tenant}"}
            for col in self.client.list_collections():
                name = col if isinstance(col, str) else col.name
                if name.startswith(f"gw-{tenant}.r") and name not in keep:
                    self.client.delete_collection(name)
            if previous != f"gw-{tenant}" and anchor.get(include=[], limit=1)["ids"]:
                anchor.delete(where={"connector": {"$ne": ""}})  # pre-pointer chunks, two generations old

    def abort_rebuild(self, staged: TenantIndex) -> None:
        """Delete a staged collection that will not be used (the live one is untouched)."""
        try:
            self.client.delete_collection(staged.collection.name)
        except Exception:  # noqa: BLE001 - best effort: an orphan is deleted by the next rebuild
            log.warning("could not delete the staged collection %s", staged.collection.name)

    def drop_tenant(self, tenant: str) -> None:
        """Delete every collection of ``tenant`` (tenant purge, tests; ``sync --rebuild`` never calls it).

        The records are deleted first, through the API: Chroma's ``delete_collection`` leaves list-valued
        metadata (the ACL lists) behind in ``embedding_metadata_array`` (chroma-core/chroma#7594), where
        records written later with a reused row id would inherit them."""
        validate_tenant(tenant)
        with self._open_lock:
            self._tenants.pop(tenant, None)
            self._checked.pop(tenant, None)
            store = self.acl_store(tenant)
            if store is not None:
                with store.writing():
                    store.delete(everything=True)
            for col in self.client.list_collections():
                name = col if isinstance(col, str) else col.name
                if name == f"gw-{tenant}" or name.startswith(f"gw-{tenant}.r"):
                    with contextlib.suppress(Exception):  # already gone
                        c = self.client.get_collection(name, embedding_function=None)
                        while ids := c.get(include=[], limit=500)["ids"]:
                            c.delete(ids=ids)
                        self.client.delete_collection(name)
        gen = self.generation_file(tenant)
        if gen is not None:
            gen.bump()
