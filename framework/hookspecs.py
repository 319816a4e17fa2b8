"""Groundwire's hook specifications: the whole contract between the core and its plugins.

Rules (see STYLE.md): every hook is synchronous and cheap; I/O lives in the objects plugins register
(connectors, generators, embedders). Results of collect-all hooks are combined so that plugin order
never matters: for access, deny wins. Arguments may be added to a spec, never renamed or removed, and
an implementation may accept any subset of a spec's arguments.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from .audit_event import AuditEvent
    from .config import GroundwireConfig
    from .connector import Connector
    from .embedding import Embedder, Vectors
    from .generation import Generator
    from .models import Chunk, Citation, Draft, GroundingRequest, UserContext, Verdict

__all__ = ["hookimpl", "hookspec"]

hookspec = pluggy.HookspecMarker("groundwire")
hookimpl = pluggy.HookimplMarker("groundwire")


# --- registries -------------------------------------------------------------------------------------


@hookspec
def register_connectors(register: Callable[[type[Connector]], None]) -> None:
    """Register connector classes, each with a unique ``type`` name.

    Registering a connector never enables it: only a ``[connectors.<name>]`` table in the configuration
    that names its ``type`` does.

    :param register: call it once per connector class; a duplicate type name is an error at start-up.

    Combined: every plugin registers into one registry; the configuration picks what runs.

    Example::

        @hookimpl
        def register_connectors(register):
            register(WikiConnector)  # WikiConnector.type == "wiki"
    """


@hookspec
def register_generators(register: Callable[[type[Generator]], None]) -> None:
    """Register generator classes (the model that writes the draft), each with a unique ``name``.

    :param register: call it once per generator class; a duplicate name is an error at start-up.

    Combined: one registry; ``[generator] name`` picks the generator.

    Example::

        @hookimpl
        def register_generators(register):
            register(MyLLMGenerator)  # a groundwire.Generator subclass, name = "my-llm"
    """


@hookspec
def register_embedders(register: Callable[[type[Embedder]], None]) -> None:
    """Register embedder classes (text -> vector), each with a unique ``name``.

    :param register: call it once per embedder class; a duplicate name is an error at start-up.

    Combined: one registry; ``[embedder] name`` picks the embedder. Its first batch is checked (declared
    dimension, finite unit-length rows); run ``groundwire.testing.EmbedderContract`` against yours.

    Example::

        @hookimpl
        def register_embedders(register):
            register(MyEmbedder)  # a groundwire.Embedder subclass, name = "my-embedder"
    """


@hookspec
def register_key_providers(register: Callable[[type[Any]], None]) -> None:
    """Register key provider classes (``groundwire.crypto.KeyProvider``), each with a unique ``name``.

    ``[encryption] provider`` selects one; it returns the key ring used for encryption at rest.

    :param register: call it once per provider class; a duplicate name is an error at start-up.

    Combined: one registry; ``[encryption] provider`` picks the provider.

    Example::

        @hookimpl
        def register_key_providers(register):
            register(VaultKeyProvider)  # name = "vault"
    """


@hookspec
def register_commands(cli: Any) -> None:
    """Add commands to the ``groundwire`` command line.

    :param cli: the root ``typer.Typer`` application.

    Combined: every plugin adds its commands; choose names no other plugin uses.

    Example::

        @hookimpl
        def register_commands(cli):
            @cli.command("hello")
            def hello():
                print("hello from my plugin")
    """


# --- request stages ---------------------------------------------------------------------------------


@hookspec
def feature_allowed(user: UserContext, feature: str, config: GroundwireConfig) -> bool | None:
    """Decide whether ``user`` may use ``feature`` (``ask``, ``summarize``, ...).

    Combined: any ``False`` denies; otherwise at least one ``True`` is needed (fail closed).

    :param user: the signed-in user
    :param feature: the feature name the request asks for
    :param config: the configuration in force
    :return: ``True`` to allow, ``False`` to deny, ``None`` for no opinion

    Example::

        @hookimpl
        def feature_allowed(user, feature):
            if feature == "summarize" and "contractor" in user.roles:
                return False
            return None
    """


@hookspec
def screen_prompt(request: GroundingRequest, config: GroundwireConfig) -> Verdict | Iterable[Verdict] | None:
    """Screen the user's prompt before anything is retrieved (prompt shield).

    Combined: any verdict with action ``block`` blocks the request; all verdicts are kept on the draft.

    :param request: the request, with its user and prompt
    :param config: the configuration in force

    Example::

        @hookimpl
        def screen_prompt(request):
            if "password" in request.prompt.lower():
                return Verdict("prompt", "no-secrets", Action.BLOCK, 1.0, "asks for a password")
            return None
    """


@hookspec
def access_principals(user: UserContext, config: GroundwireConfig) -> Iterable[str] | None:
    """Add principal tokens the user holds (e.g. nested group membership resolved elsewhere).

    Combined: the union of all results and the user's own principals. Only the identity provider's
    assertions belong here: a plugin that adds principals widens access.

    :param user: the signed-in user
    :param config: the configuration in force
    :return: principal tokens such as ``group:finance``

    Example::

        @hookimpl
        def access_principals(user):
            return [f"group:{g}" for g in directory.nested_groups(user.user_id)]
    """


@hookspec
def filter_chunks(
    request: GroundingRequest, principals: frozenset[str], chunks: Sequence[Chunk], config: GroundwireConfig
) -> Iterable[str] | None:
    """Return the ids of retrieved chunks the user must not see.

    Combined: the union of all denials (deny wins). The built-in ``access`` plugin denies every chunk
    whose ACL does not grant one of ``principals`` and cannot be disabled.

    :param request: the request
    :param principals: the user's principal tokens (after ``access_principals``)
    :param chunks: the chunks retrieved for the request
    :param config: the configuration in force
    :return: chunk ids to remove

    Example::

        @hookimpl
        def filter_chunks(chunks):
            return [c.id for c in chunks if c.title.startswith("DRAFT")]
    """


@hookspec
def annotate_chunks(
    chunks: Sequence[Chunk],
    config: GroundwireConfig,
    embedder: Embedder,
    vectors: Mapping[str, Sequence[float]],
    sentence_vectors: Mapping[str, tuple[list[str], Vectors]],
) -> Mapping[str, Mapping[str, Any]] | None:
    """Compute per-chunk values once, at index time, so that query-time hooks stay cheap.

    Called by ingestion for every batch of new or changed chunks, after they are embedded and before they
    are stored. Returned values are kept with the chunk (in its payload, encrypted at rest like the text)
    and come back on every retrieval as ``Chunk.annotations``. Key them by plugin name and include a
    version of whatever produced them (model, rules), so a query-time hook can tell a stale value from a
    current one and recompute. Values must be JSON-serialisable. Chunks indexed before a plugin was
    installed have no annotation. A chunk whose text, title, URI and location did not change when its
    document changed keeps the annotations it had and is not passed again (like an unchanged document).

    Combined: the mappings of all plugins are merged per chunk (keys must not collide across plugins).

    :param chunks: new or changed chunks of one ingestion batch (any tenant and connector)
    :param config: the configuration in force
    :param embedder: the configured embedder behind a memo for this batch: a text embedded once in the
        batch (by any plugin, or a chunk's own index text) is not run through the model again. Record its
        ``model_id`` with vectors you store.
    :param vectors: chunk id -> the chunk's index vector (unit length, ``embedder.dimension`` floats; the
        embedding of ``f"{title}\\n{text}"``, or of ``text`` when the title is empty), for every chunk in
        ``chunks``: reuse it instead of embedding the chunk again
    :param sentence_vectors: chunk id -> ``(sentences, vectors)`` for every chunk in ``chunks``: the chunk
        text's sentences exactly as ``groundwire.split_sentences`` gives them (all of them, short ones
        included: filter as you need) and an ``(len(sentences), embedder.dimension)`` float32 array of unit
        vectors, computed in the same embedder call as ``vectors``. With an embedder whose ``pools_spans`` is
        true (the bundled MiniLM on ONNX) each is read from the chunk's own model run ("late chunking": the
        mean of the sentence's token states in the context of ``title + "\\n" + text``), so it costs no
        second model pass but is *not* the vector ``embedder.embed_documents([sentence])`` returns (it is
        closer to its chunk's vector); otherwise each sentence was embedded alone (and the memo
        ``embedder`` returns those same vectors for those sentences)
    :return: chunk id -> {key: value}, or ``None``

    Example::

        @hookimpl
        def annotate_chunks(chunks, vectors):
            return {c.id: {"my_plugin": {"version": 1, "words": len(c.text.split()),
                                         "norm": round(sum(x * x for x in vectors[c.id]), 3)}}
                    for c in chunks}
    """


@hookspec
def annotation_versions(
    config: GroundwireConfig, embedder: Embedder, tenant: str
) -> Mapping[str, Mapping[str, Any]] | None:
    """Say what a current ``annotate_chunks`` value of yours looks like, so that ``groundwire sync`` can find
    stored chunks whose annotation is stale (an upgrade changed your model, rules or format) and annotate
    them again, without ``--rebuild``.

    Called once per connector and sync. A stored chunk is re-annotated (its text embedded again, with its
    sentence spans, then ``annotate_chunks`` run on it like on a new chunk) when, for a key you name, its
    stored value is missing or differs in one of the fields you name. Ingestion records a fingerprint of
    the combined answer in each chunk's metadata, so a sync whose answer has not changed reads no payload.

    Combined: the mappings of all plugins are merged (keys must not collide across plugins).

    :param config: the configuration in force
    :param embedder: the configured embedder (its ``model_id`` if your values depend on it)
    :param tenant: the tenant whose chunks are checked (per-tenant settings may turn your annotation off)
    :return: annotation key -> {field: the value a current annotation has}, or ``None`` when you annotate
        nothing for this tenant

    Example::

        @hookimpl
        def annotation_versions(embedder):
            return {"my_plugin": {"version": 2, "model": embedder.model_id}}
    """


@hookspec
def screen_documents(
    request: GroundingRequest, chunks: Sequence[Chunk], config: GroundwireConfig
) -> Iterable[Verdict] | None:
    """Screen permitted chunks for indirect prompt injection before generation.

    Combined: every chunk named by a ``drop`` or ``quarantine`` verdict (``target`` = chunk id) is
    withheld from the generator; the draft says how many sources were withheld. A ``quarantine`` verdict
    also records the chunk in the tenant's quarantine (:mod:`groundwire.quarantine`): later requests
    withhold it without calling this hook for it, until an administrator releases it. For a released
    chunk (same text) ``quarantine`` verdicts are turned into ``flag`` verdicts and it is not withheld.

    :param request: the request
    :param chunks: the chunks that passed access control
    :param config: the configuration in force

    Example::

        @hookimpl
        def screen_documents(chunks):
            return [Verdict("documents", "no-html", Action.DROP, 1.0, "embedded script", target=c.id)
                    for c in chunks if "<script" in c.text]
    """


@hookspec(firstresult=True)
def cite(
    request: GroundingRequest, text: str, sources: Sequence[Chunk], config: GroundwireConfig
) -> tuple[str, list[Citation]] | None:
    """Turn the generator's ``[n]`` markers (``n`` = 1-based index into ``sources``) into citations.

    First result wins; the built-in ``citations`` plugin is the ``trylast`` default.

    :param request: the request
    :param text: the generator's text with ``[n]`` markers
    :param sources: the chunks given to the generator, in marker order
    :param config: the configuration in force
    :return: the text with markers renumbered to the citation list, and the citations

    Example::

        @hookimpl(tryfirst=True)
        def cite(text, sources):
            return None  # no opinion: the next implementation (finally the built-in) decides
    """


@hookspec
def screen_output(
    request: GroundingRequest, draft: Draft, sources: Sequence[Chunk], config: GroundwireConfig
) -> Verdict | Iterable[Verdict] | None:
    """Screen the draft (content safety, PII, groundedness).

    Combined (independent of order): ``block`` replaces the draft with a refusal; the union of all
    ``redact`` spans is masked; ``flag`` spans are reported to the reviewer.

    :param request: the request
    :param draft: the draft with its citations (do not modify it; return verdicts)
    :param sources: the chunks the draft was generated from
    :param config: the configuration in force

    Example::

        @hookimpl
        def screen_output(draft):
            if "confidential" in draft.text.lower():
                return Verdict("output", "my-plugin", Action.FLAG, 1.0, "mentions confidential material")
            return None
    """


@hookspec
def record_event(event: AuditEvent, config: GroundwireConfig) -> None:
    """Record an audit event (a request, a denial, a block, a review decision, a sync).

    Every implementation receives every event. An exception fails the request: there are no
    unaudited answers.

    Combined: every implementation is called; results are ignored.

    :param event: the event
    :param config: the configuration in force

    Example::

        @hookimpl
        def record_event(event):
            siem.send(event.kind, event.tenant, event.actor)  # must raise if it cannot record
    """
