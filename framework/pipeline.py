"""The request pipeline: :class:`Grounder` turns a prompt and a signed-in user into a draft for review.

Steps (DESIGN.md): authorize -> screen_prompt -> retrieve (pre-filtered by principals, configured
connectors of the user's tenant only) -> access re-check (fail closed, deny wins) -> screen_documents
-> generate -> cite -> screen_output -> audit. The returned :class:`~groundwire.models.Draft` is always
``pending_review`` (or ``blocked``); nothing is sent anywhere.

Invariants:
- Every public path that returns document text (:meth:`Grounder.ground`, :meth:`Grounder.aground`,
  :meth:`Grounder.retrieve` and the LangChain retriever built on it) authorizes the tenant and the
  feature, runs the prompt shield, the access re-check and document screening (quarantine included), and
  writes an audit record. ``_search`` (steps 3-4 only), :attr:`Grounder.index` and
  :meth:`Grounder.fast_retriever` are internals that do none of that.
- A Grounder loaded from a file refuses to write (``sync``, review decisions, quarantine releases) and to
  answer requests (``ground``, ``aground``, ``retrieve``) once that file's bytes differ from what it loaded
  (:class:`~groundwire.errors.StaleConfig`; one ``stat`` per request, a hash only when it changed): a long-lived
  app never re-applies an old ACL glob over one an administrator narrowed, nor serves a removed connector or
  a narrowed feature role. It does not reload by itself.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pluggy

from .audit_event import AuditEvent
from .config import GroundwireConfig, load_config, validate_options, validate_plugin_settings
from .config_watch import ConfigWatch
from .connector import Connector
from .embedding import CachedEmbedder, Embedder
from .errors import AccessDenied, ConfigError, FeatureDisabled, InputError, PromptBlocked, StaleConfig, explain
from .generation import Generation, Generator, GeneratorContext
from .index import Index, make_client
from .ingest import Ingester, SyncReport
from .ingest_annotate import merge_versions
from .models import (
    Action,
    Chunk,
    Citation,
    Draft,
    DraftStatus,
    GroundingRequest,
    UserContext,
    Verdict,
    normalize_principal,
)
from .pluginmanager import collect_registry, make_plugin_manager
from .retrieval import FastRetriever

__all__ = ["BLOCKED_TEXT", "Grounder", "NO_SOURCES_TEXT"]

log = logging.getLogger("groundwire.pipeline")

BLOCKED_TEXT = "This request was blocked by the prompt shield and was not answered."
OUTPUT_BLOCKED_TEXT = "The draft was withheld because it did not pass content safety screening."
NO_SOURCES_TEXT = "No sources you can access answer this question, so no draft was written."


def _flatten(results: Iterable[Any]) -> list[Verdict]:
    out: list[Verdict] = []
    for r in results:
        if r is None:
            continue
        if isinstance(r, Verdict):
            out.append(r)
        else:
            out.extend(v for v in r if v is not None)
    return out


def apply_redactions(text: str, spans: Iterable[tuple[int, int, str]]) -> str:
    """Mask the union of ``spans`` (overlaps merged) with ``[REDACTED:<label>]``."""
    merged: list[list[Any]] = []
    for start, end, label in sorted((s for s in spans if s[1] > s[0]), key=lambda s: (s[0], -s[1])):
        start, end = max(0, start), min(len(text), end)
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
            continue
        merged.append([start, end, label])
    for start, end, label in reversed(merged):
        text = text[:start] + f"[REDACTED:{label}]" + text[end:]
    return text


class Grounder:
    """The embeddable entry point.

    >>> g = Grounder.from_config("groundwire.toml")          # doctest: +SKIP
    >>> draft = g.ground("When is payday?", user="alice", tenant="acme", groups=["hr"])  # doctest: +SKIP
    """

    def __init__(
        self,
        config: GroundwireConfig,
        pm: pluggy.PluginManager | None = None,
        *,
        embedder: Embedder | None = None,
        index: Index | None = None,
        extra_plugins: Sequence[object] = (),
    ) -> None:
        self.config = config
        self.pm = pm or make_plugin_manager(
            load_entrypoints=config.plugins.load_entrypoints,
            disabled=config.plugins.disabled,
            extra=extra_plugins,
        )
        self.connector_types: dict[str, type[Connector]] = collect_registry(
            self.pm, "register_connectors", lambda c: c.type
        )
        self.generator_types: dict[str, type[Generator]] = collect_registry(
            self.pm, "register_generators", lambda c: c.name
        )
        self.embedder_types: dict[str, type[Embedder]] = collect_registry(
            self.pm, "register_embedders", lambda c: c.name
        )
        self._check_config()
        self._embedder = embedder
        self._index = index
        self._generator: Generator | None = None
        self._codec: Any = None
        self._reviews: Any = None
        self._quarantine: Any = None
        self._fast: dict[str, FastRetriever] = {}
        self._config_watch: ConfigWatch | None = None
        # Guards every lazily built part (double-checked: the fast path reads the attribute without it).
        # Re-entrant because building one part builds others (index -> embedder, codec).
        self._lock = threading.RLock()

    @classmethod
    def from_config(cls, path: str | Path, **kwargs: Any) -> Grounder:
        return cls(load_config(path), **kwargs)

    # --- lazily built parts ---------------------------------------------------------------------------

    def _check_config(self) -> None:
        c = self.config
        if c.embedder.name not in self.embedder_types:
            raise c.error("embedder.name", f"unknown embedder {c.embedder.name!r}",
                          f"installed: {', '.join(sorted(self.embedder_types))}")
        if c.generator.name not in self.generator_types:
            raise c.error("generator.name", f"unknown generator {c.generator.name!r}",
                          f"installed: {', '.join(sorted(self.generator_types))}")
        models: dict[str, Any] = {}
        for plugin in self.pm.get_plugins():
            models.update(getattr(plugin, "SETTINGS_MODELS", None) or {})
        validate_plugin_settings(c, models, [name for name, _ in self.pm.list_name_plugin()])
        for name, cc in c.connectors.items():
            if cc.type not in self.connector_types:
                raise c.error(f"connectors.{name}.type", f"unknown connector type {cc.type!r}",
                              f"installed types: {', '.join(sorted(self.connector_types))}")

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            with self._lock:
                if self._embedder is None:
                    self._embedder = self._build_embedder()
        return self._embedder

    def _build_embedder(self) -> Embedder:
        cls = self.embedder_types[self.config.embedder.name]
        options = validate_options(cls, self.config.embedder.options, self.config.source, "embedder.options")
        try:
            inner = cls(**options)
        except (TypeError, ValueError) as exc:
            raise self.config.error(
                "embedder.options", str(exc).splitlines()[0],
                f"see the options of the {cls.name!r} embedder in its documentation",
            ) from exc
        size = self.config.embedder.query_cache_size
        # always wrapped, also with the cache off (size 0): the wrapper checks the first batch and query vector
        return CachedEmbedder(inner, size)

    @property
    def index(self) -> Index:
        if self._index is None:
            with self._lock:
                if self._index is None:
                    ic = self.config.index
                    try:
                        client = make_client(
                            ic.backend, self.config.data_path / "chroma", ic.host, ic.port, ic.ssl
                        )
                    except (KeyboardInterrupt, SystemExit):
                        raise
                    except BaseException as exc:  # Chroma's Rust bindings panic on a corrupt store
                        known = explain(exc, self.config.data_path)
                        if known is None:
                            raise
                        raise known from exc
                    self._index = Index(
                        client, self.embedder.model_id, self.embedder.dimension, codec=self.codec,
                        state_dir=self.config.data_path / "chroma",  # generation files, snapshots
                    )
        return self._index

    @property
    def codec(self) -> Any:
        """The at-rest codec from ``[encryption]`` (AES-GCM when enabled, else identity)."""
        if self._codec is None:
            with self._lock:
                if self._codec is None:
                    from .crypto import codec_for

                    providers = collect_registry(self.pm, "register_key_providers", lambda c: c.name)
                    self._codec = codec_for(self.config, providers)
        return self._codec

    @property
    def reviews(self) -> Any:
        """The review queue (:class:`groundwire.review.ReviewQueue`): approve / edit / reject drafts."""
        if self._reviews is None:
            with self._lock:
                if self._reviews is None:
                    from .review import ReviewQueue

                    self._reviews = ReviewQueue(self)
        return self._reviews

    @property
    def quarantine(self) -> Any:
        """The quarantine (:class:`groundwire.quarantine.QuarantineStore`): chunks kept aside until released."""
        if self._quarantine is None:
            with self._lock:
                if self._quarantine is None:
                    from .quarantine import QuarantineStore

                    self._quarantine = QuarantineStore(self)
        return self._quarantine

    @property
    def generator(self) -> Generator:
        if self._generator is None:
            with self._lock:
                if self._generator is None:
                    cls = self.generator_types[self.config.generator.name]
                    context = GeneratorContext(self.embedder, tenant_regions=dict(self.config.tenant_regions))
                    options = validate_options(
                        cls, self.config.generator.options, self.config.source, "generator.options"
                    )
                    try:
                        self._generator = cls(context, **options)
                    except (TypeError, ValueError) as exc:
                        raise self.config.error(
                            "generator.options", str(exc).splitlines()[0],
                            f"see the options of the {cls.name!r} generator in its documentation",
                        ) from exc
        return self._generator

    def check_config_current(self) -> None:
        """Raise :class:`~groundwire.errors.StaleConfig` if the configuration was loaded from a file whose
        bytes have changed (or which is gone) since. Called before every write that applies the configuration."""
        expected = self.config.source_hash
        if not expected:
            return  # built from a dict: there is no file to compare with
        watch = self._config_watch
        if watch is None:
            # base_dir is the file's resolved folder: still right if the app changed directory since
            watch = self._config_watch = ConfigWatch(self.config.base_dir / Path(self.config.source).name, expected)
        if not watch.current():  # one stat per call; the file is hashed only when its stat changed
            raise StaleConfig(self.config.source)

    # --- ingestion ------------------------------------------------------------------------------------

    def ingester(self) -> Ingester:
        def on_event(kind: str, data: dict[str, Any]) -> None:
            self._audit(AuditEvent(kind=kind, tenant=data.get("tenant", ""), actor="system", data=data))

        return Ingester(
            self.config, self.index, self.embedder, self.connector_types, on_event=on_event,
            annotate=lambda chunks, vectors, embedder, sentences: self.pm.hook.annotate_chunks(
                chunks=chunks, config=self.config, embedder=embedder, vectors=vectors, sentence_vectors=sentences
            ),
            versions=lambda tenant: merge_versions(self.pm.hook.annotation_versions(
                config=self.config, embedder=self.embedder, tenant=tenant)),
        )

    def sync(
        self,
        connectors: list[str] | None = None,
        full: bool = False,
        progress: Any = None,
        rebuild: bool = False,
        *,
        wait: bool = False,
        timeout: float | None = None,
        on_wait: Any = None,
    ) -> list[SyncReport]:
        """Run the configured connectors and update the index (see :mod:`groundwire.ingest`).

        Holds the data dir's sync lock (:mod:`groundwire.synclock`): if another sync holds it, raises
        :class:`~groundwire.synclock.SyncBusy`, or with ``wait`` blocks (calling ``on_wait(message)``
        once) for up to ``timeout`` seconds (None: no limit).

        :param full: ignore saved connector state (re-enumerate; unchanged documents are not re-embedded)
        :param rebuild: re-embed everything into a new collection beside the live one and switch to it
            only on success (needed after changing the embedder); with ``connectors``, only those
            connectors are rebuilt (see :meth:`groundwire.ingest.Ingester.rebuild`)
        """
        from .synclock import sync_lock

        self.check_config_current()
        with sync_lock(self.config.data_path, wait=wait, timeout=timeout, on_wait=on_wait):
            ingester = self.ingester()
            if rebuild:
                return ingester.rebuild(connectors, progress=progress)
            return ingester.sync(connectors, full=full, progress=progress)

    # --- the request ----------------------------------------------------------------------------------

    def make_user(
        self, user: UserContext | str, tenant: str | None = None, groups: Iterable[str] = (), roles: Iterable[str] = ()
    ) -> UserContext:
        if isinstance(user, UserContext):
            return user
        t = tenant or self.config.default_tenant
        if not t:
            raise ConfigError(self.config.source, "default_tenant", "no tenant given for the user",
                              "pass tenant=... or set default_tenant in the configuration")
        if not isinstance(user, str) or not user.strip():
            raise InputError("the user id is empty -> pass the signed-in user's id (e.g. --user alice@example.com)")
        if t != t.lower() and t.lower() in self.config.tenants():
            # refused, not canonicalised: a tenant id is a security boundary and a storage name, and
            # silently mapping one spelling onto another would hide a misconfigured caller
            raise InputError(f"invalid tenant id {t!r}: tenant ids are lower case -> use {t.lower()!r}")
        try:
            return UserContext.of(user, t, groups, roles)
        except ValueError as exc:
            raise InputError(f"{str(exc).splitlines()[0]} -> check the user, tenant, groups and roles") from None

    def ground(
        self,
        prompt: str,
        user: UserContext | str,
        *,
        tenant: str | None = None,
        groups: Iterable[str] = (),
        roles: Iterable[str] = (),
        feature: str = "ask",
        top_k: int | None = None,
        connectors: Sequence[str] | None = None,
    ) -> Draft:
        """Ground ``prompt`` for ``user`` and return a draft for human review."""
        request = self._request(prompt, self.make_user(user, tenant, groups, roles), feature, top_k, connectors)
        t0 = time.perf_counter()
        early, prompt_verdicts = self._before_retrieval(request)
        if early is not None:
            return self._finish(request, early, [], t0, kind="prompt_blocked")
        sources, withheld, verdicts = self._retrieve_and_screen(request)
        generation = self.generator.generate(request, sources) if sources else None
        draft = self._compose(request, sources, generation, withheld, prompt_verdicts + verdicts)
        return self._finish(request, draft, sources, t0)

    async def aground(
        self,
        prompt: str,
        user: UserContext | str,
        *,
        tenant: str | None = None,
        groups: Iterable[str] = (),
        roles: Iterable[str] = (),
        feature: str = "ask",
        top_k: int | None = None,
        connectors: Sequence[str] | None = None,
    ) -> Draft:
        """Async :meth:`ground`: retrieval runs in a worker thread, generation via ``agenerate``."""
        request = self._request(prompt, self.make_user(user, tenant, groups, roles), feature, top_k, connectors)
        t0 = time.perf_counter()
        early, prompt_verdicts = await asyncio.to_thread(self._before_retrieval, request)
        if early is not None:
            return self._finish(request, early, [], t0, kind="prompt_blocked")
        sources, withheld, verdicts = await asyncio.to_thread(self._retrieve_and_screen, request)
        generation = await self.generator.agenerate(request, sources) if sources else None
        draft = self._compose(request, sources, generation, withheld, prompt_verdicts + verdicts)
        return await asyncio.to_thread(self._finish, request, draft, sources, t0)

    def _request(
        self, prompt: str, user: UserContext, feature: str, top_k: int | None, connectors: Sequence[str] | None
    ) -> GroundingRequest:
        if not isinstance(prompt, str) or not prompt.strip():
            raise InputError("the prompt is empty -> ask a question")
        return GroundingRequest(
            user=user,
            prompt=prompt,
            feature=feature,
            top_k=top_k or self.config.retrieval.top_k,
            connectors=tuple(connectors) if connectors is not None else None,
        )

    def _audit(self, event: AuditEvent) -> None:
        self.pm.hook.record_event(event=event, config=self.config)

    def _before_retrieval(self, request: GroundingRequest) -> tuple[Draft | None, list[Verdict]]:
        """Steps 1-2. Raises for an unknown tenant or a disabled feature; returns a blocked draft or None,
        and the prompt verdicts."""
        self.check_config_current()  # never serve with rules the administrator has changed (README)
        user = request.user
        if user.tenant not in self.config.tenants():
            self._audit(
                AuditEvent("access_denied", user.tenant, user.user_id, request.id, {"reason": "unknown tenant"})
            )
            raise AccessDenied("this tenant is not configured; ask an administrator to add a connector for it")
        votes = self.pm.hook.feature_allowed(user=user, feature=request.feature, config=self.config)
        if False in votes or True not in votes:
            self._audit(AuditEvent("feature_denied", user.tenant, user.user_id, request.id,
                                   {"feature": request.feature, "roles": sorted(user.roles)}))
            raise FeatureDisabled(request.feature, user.roles)
        verdicts = _flatten(self.pm.hook.screen_prompt(request=request, config=self.config))
        if any(v.action is Action.BLOCK for v in verdicts):
            blocked = Draft(request_id=request.id, text=BLOCKED_TEXT, verdicts=verdicts, status=DraftStatus.BLOCKED)
            return blocked, verdicts
        return None, verdicts

    def principals(self, user: UserContext) -> frozenset[str]:
        extra: set[str] = set()
        for result in self.pm.hook.access_principals(user=user, config=self.config):
            for token in result or ():
                try:
                    extra.add(normalize_principal(token))
                except ValueError:
                    log.warning("ignored invalid principal %r from an access_principals plugin", token)
        return user.principals() | extra

    def allowed_connectors(self, request: GroundingRequest) -> list[str]:
        """Configured, enabled connectors of the user's tenant (optionally narrowed by the request)."""
        names = sorted(self.config.connectors_for(request.user.tenant))
        if request.connectors is not None:
            names = [n for n in names if n in set(request.connectors)]
        return names

    def fast_retriever(self, tenant: str) -> FastRetriever:
        """The in-memory retriever of ``tenant`` (rebuilt if the tenant's index object changed)."""
        tindex = self.index.tenant(tenant)
        fast = self._fast.get(tenant)
        if fast is None or fast.tindex is not tindex:
            with self._lock:
                fast = self._fast.get(tenant)
                if fast is None or fast.tindex is not tindex:
                    rc = self.config.retrieval
                    fast = FastRetriever(
                        tindex, exact_max_rows=rc.exact_max_rows, overfetch=rc.overfetch, hybrid=rc.hybrid,
                        rrf_k=rc.rrf_k, dense_weight=rc.dense_weight, bm25_weight=rc.bm25_weight,
                        candidates=rc.candidates, refresh_seconds=rc.refresh_seconds,
                        blas_threads=rc.blas_threads,
                    )
                    self._fast[tenant] = fast
        return fast

    def warm_up(self, tenants: Iterable[str] | None = None) -> dict[str, float]:
        """Load what the first request would otherwise pay for: the embedder (and one run of it), the
        screening models, and each tenant's in-memory retrieval snapshot (seconds at 100k chunks).

        Call it once when an app starts. Returns the seconds spent per part.
        """
        spent: dict[str, float] = {}
        t0 = time.perf_counter()
        self.embedder.warm_up()
        spent["embedder"] = time.perf_counter() - t0
        names = sorted(self.config.tenants()) if tenants is None else list(tenants)
        for tenant in names:
            t0 = time.perf_counter()
            request = GroundingRequest(user=UserContext.of("warm-up", tenant), prompt="warm-up")
            self.pm.hook.screen_prompt(request=request, config=self.config)
            spent[f"screening:{tenant}"] = time.perf_counter() - t0
            if self.config.retrieval.mode == "auto":
                t0 = time.perf_counter()
                self.fast_retriever(tenant).snapshot()
                spent[f"retrieval:{tenant}"] = time.perf_counter() - t0
        return spent

    def retrieve(
        self,
        request: GroundingRequest | str,
        user: UserContext | str | None = None,
        *,
        tenant: str | None = None,
        groups: Iterable[str] = (),
        roles: Iterable[str] = (),
        feature: str = "ask",
        top_k: int | None = None,
        connectors: Sequence[str] | None = None,
    ) -> list[Chunk]:
        """The chunks ``user`` may read for a prompt, through the same controls as :meth:`ground`: tenant and
        feature authorization, prompt shield (a blocked prompt raises :class:`~groundwire.errors.PromptBlocked`),
        pre-filtered search, the access re-check, document screening and quarantine; audited as a
        ``retrieve`` event (or ``prompt_blocked``).

        Pass a :class:`GroundingRequest`, or a prompt and the user like :meth:`ground`.
        """
        if isinstance(request, GroundingRequest):
            if user is not None:
                raise TypeError("pass either a GroundingRequest or a prompt and a user, not both")
        else:
            if user is None:
                raise TypeError("retrieve(prompt, user, ...) needs the user the prompt is asked for")
            request = self._request(request, self.make_user(user, tenant, groups, roles), feature, top_k, connectors)
        t0 = time.perf_counter()
        blocked, prompt_verdicts = self._before_retrieval(request)
        if blocked is not None:
            self._audit_retrieval(request, "prompt_blocked", [], prompt_verdicts, 0, t0)
            raise PromptBlocked(blocked.text)
        sources, withheld, verdicts = self._retrieve_and_screen(request)
        self._audit_retrieval(request, "retrieve", sources, prompt_verdicts + verdicts, withheld, t0)
        return sources

    async def aretrieve(
        self,
        request: GroundingRequest | str,
        user: UserContext | str | None = None,
        *,
        tenant: str | None = None,
        groups: Iterable[str] = (),
        roles: Iterable[str] = (),
        feature: str = "ask",
        top_k: int | None = None,
        connectors: Sequence[str] | None = None,
    ) -> list[Chunk]:
        """Async :meth:`retrieve` (the same controls and audit record; runs in a worker thread)."""
        return await asyncio.to_thread(
            self.retrieve, request, user, tenant=tenant, groups=groups, roles=roles, feature=feature, top_k=top_k,
            connectors=connectors,
        )

    def _audit_retrieval(
        self, request: GroundingRequest, kind: str, sources: list[Chunk], verdicts: list[Verdict], withheld: int,
        t0: float,
    ) -> None:
        stored: dict[str, Any] = {"prompt": request.prompt} if self.config.audit.store_prompts else {}
        self._audit(AuditEvent(kind, request.user.tenant, request.user.user_id, request.id, {
            "feature": request.feature,
            "path": "retrieve",
            "connectors": self.allowed_connectors(request),
            "sources": [{"chunk": c.id, "doc": c.doc_id, "connector": c.connector} for c in sources],
            "verdicts": [v.to_dict() for v in verdicts if v.action is not Action.ALLOW],
            "withheld_sources": withheld,
            "latency_ms": round((time.perf_counter() - t0) * 1000, 2),
            **stored,
        }))

    def _search(self, request: GroundingRequest) -> list[Chunk]:
        """Steps 3-4 (internal; no authorization, screening or audit): pre-filtered search, then the
        fail-closed re-check (deny wins)."""
        principals = self.principals(request.user)
        connectors = self.allowed_connectors(request)
        if not connectors:
            return []
        vec = self.embedder.embed_query(request.prompt)
        tindex = self.index.tenant(request.user.tenant)
        n = max(request.top_k, self.config.retrieval.candidates)
        if self.config.retrieval.mode == "auto":
            fast = self.fast_retriever(request.user.tenant)
            # Payloads (a Chroma read and a decryption each) of the first top_k of the n candidates only; all
            # n only when one of those is dropped below, so the result is what keeping from all n would give.
            kept = self._keep(request, principals, fast.retrieve(
                vec, principals, connectors, n, text=request.prompt, fetch=request.top_k))
            if len(kept) == request.top_k:
                return kept
            candidates = fast.retrieve(vec, principals, connectors, n, text=request.prompt)
        else:
            candidates = tindex.query(vec, principals, connectors, n)
        return self._keep(request, principals, candidates)[: request.top_k]

    def _keep(self, request: GroundingRequest, principals: frozenset[str], candidates: list[Chunk]) -> list[Chunk]:
        """Step 4: the candidates no ``filter_chunks`` plugin denies (deny wins), at or above ``min_score``."""
        denied: set[str] = set()
        for result in self.pm.hook.filter_chunks(
            request=request, principals=principals, chunks=candidates, config=self.config
        ):
            denied.update(result or ())
        return [c for c in candidates if c.id not in denied and c.score >= self.config.retrieval.min_score]

    def _retrieve_and_screen(self, request: GroundingRequest) -> tuple[list[Chunk], int, list[Verdict]]:
        """Steps 3-5. DROP verdicts withhold a chunk for this request; QUARANTINE verdicts also record it in
        :attr:`quarantine`, which withholds it from later requests until an administrator releases it (a
        released chunk's QUARANTINE verdicts become FLAG verdicts: kept for the reviewer, not withheld)."""
        chunks = self._search(request)

        def screen(todo: list[Chunk]) -> list[Verdict]:
            return _flatten(self.pm.hook.screen_documents(request=request, chunks=todo, config=self.config))

        verdicts, withheld = self.quarantine.apply(request, chunks, screen)
        sources = [c for c in chunks if c.id not in withheld]
        return sources, len(chunks) - len(sources), verdicts

    def _compose(
        self,
        request: GroundingRequest,
        sources: list[Chunk],
        generation: Generation | None,
        withheld: int,
        verdicts: list[Verdict],
    ) -> Draft:
        citations: list[Citation] = []
        if generation is None or not generation.text.strip():
            text = NO_SOURCES_TEXT
        else:
            cited = self.pm.hook.cite(request=request, text=generation.text, sources=sources, config=self.config)
            text, citations = cited if cited is not None else (generation.text, [])
        if withheld:
            text += f"\n\n({withheld} source{'s were' if withheld > 1 else ' was'} withheld by document screening.)"
        draft = Draft(
            request_id=request.id,
            text=text,
            citations=citations,
            verdicts=list(verdicts),
            withheld_sources=withheld,
            generator=generation.model if generation else "",
        )
        out = _flatten(self.pm.hook.screen_output(request=request, draft=draft, sources=sources, config=self.config))
        draft.verdicts.extend(out)
        if any(v.action is Action.BLOCK for v in out):
            draft.text, draft.citations, draft.status = OUTPUT_BLOCKED_TEXT, [], DraftStatus.BLOCKED
        else:
            spans = [s for v in out if v.action is Action.REDACT for s in v.spans]
            if spans:
                draft.text = apply_redactions(draft.text, spans)
        return draft

    def _finish(
        self, request: GroundingRequest, draft: Draft, sources: list[Chunk], t0: float, kind: str = "request"
    ) -> Draft:
        latency_ms = round((time.perf_counter() - t0) * 1000, 2)
        stored: dict[str, Any] = {}
        if self.config.audit.store_prompts:
            stored["prompt"] = request.prompt
        if self.config.audit.store_drafts:
            stored["draft_text"] = draft.text
        self._audit(
            AuditEvent(
                kind=kind,
                tenant=request.user.tenant,
                actor=request.user.user_id,
                request_id=request.id,
                data={
                    "feature": request.feature,
                    "draft_id": draft.id,
                    "status": str(draft.status),
                    "connectors": self.allowed_connectors(request),
                    "sources": [{"chunk": c.id, "doc": c.doc_id, "connector": c.connector} for c in sources],
                    "cited": [c.chunk_id for c in draft.citations],
                    "verdicts": [v.to_dict() for v in draft.verdicts if v.action is not Action.ALLOW],
                    "withheld_sources": draft.withheld_sources,
                    "latency_ms": latency_ms,
                    **stored,
                },
            )
        )
        if not draft.blocked:
            self.reviews.submit(request, draft, sources)
        return draft

