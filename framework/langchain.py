"""LangChain integration: a permission-trimmed retriever, a ``ground`` runnable and ``draft_text``.

:class:`GroundwireRetriever` carries the signed-in :class:`~groundwire.UserContext`; every call goes
through the same steps as a request (tenant and feature authorization, prompt shield, pre-filtered
search, the fail-closed access re-check, document screening), so a chain built on it can never see
more than the user could. It passes LangChain's standard ``RetrieversIntegrationTests``: ``k`` (alias
``top_k``) in the constructor or per call (``invoke(q, k=1)``), documents with ``id`` = chunk id and
``source`` = the document's URI in their metadata, and a :class:`RetrieverInputError` for a query that
is not a non-empty string.

:func:`grounding_runnable` wraps :meth:`Grounder.ground`: prompt in, :class:`~groundwire.Draft` out; its
trace has a ``groundwire_retrieve`` retriever child run listing the sources the draft cites. Pipe it into
:data:`draft_text` for the text (``grounding_runnable(g, user) | draft_text``); the draft itself keeps
the citations, verdicts and review notice that a reviewer needs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document as LCDocument
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import RunnableConfig, RunnableLambda
from langchain_core.runnables.config import get_async_callback_manager_for_config, get_callback_manager_for_config
from pydantic import AliasChoices, ConfigDict, Field

from .errors import GroundwireError
from .models import Chunk, Draft, UserContext

if TYPE_CHECKING:
    from .pipeline import Grounder

__all__ = [
    "GroundwireRetriever", "RetrieverInputError", "draft_text", "grounding_runnable", "permitted_chunks", "to_document",
]


class RetrieverInputError(GroundwireError, TypeError):
    """A retriever or runnable was called with something other than a non-empty question string."""

    def __init__(self, value: object, expected: str = "a Groundwire query must be a non-empty string",
                 hint: str = "pass the question text (for a chat message, its .content)") -> None:
        what = type(value).__name__ if not isinstance(value, str) else "an empty string"
        super().__init__(f"{expected}, got {what}; {hint}")


def _query(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise RetrieverInputError(value)
    return value


def _positive(value: object, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def permitted_chunks(
    g: Grounder, user: UserContext, query: str, top_k: int | None, connectors: Sequence[str] | None, feature: str
) -> list[Chunk]:
    """The chunks ``user`` may read for ``query``, through the request's steps (shared by the LangChain
    and LlamaIndex retrievers). Raises ``AccessDenied`` / ``FeatureDisabled`` / ``PromptBlocked``."""
    # the audited, screened public path (raises AccessDenied / FeatureDisabled / PromptBlocked)
    return list(g.retrieve(_query(query), user, feature=feature, top_k=top_k, connectors=connectors))


def to_document(c: Chunk) -> LCDocument:
    """A chunk as a LangChain document (``id`` = chunk id, ``source`` = the document's URI)."""
    return LCDocument(
        id=c.id,
        page_content=c.text,
        metadata={
            "source": c.uri,
            "chunk_id": c.id,
            "doc_id": c.doc_id,
            "title": c.title,
            "uri": c.uri,
            "location": c.location,
            "connector": c.connector,
            "tenant": c.tenant,
            "score": c.score,
        },
    )


class GroundwireRetriever(BaseRetriever):
    """Retrieve only what ``user`` may read, as LangChain documents.

    ``k`` (or ``top_k``) caps the number of documents; ``invoke(query, k=n)`` overrides it for one call.

    >>> retriever = GroundwireRetriever(grounder=g, user=UserContext.of("alice", "acme"), k=4)  # doctest: +SKIP
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, populate_by_name=True)

    grounder: Any
    user: UserContext
    top_k: int | None = Field(default=None, validation_alias=AliasChoices("top_k", "k"))
    connectors: Sequence[str] | None = None
    feature: str = "ask"

    @property
    def k(self) -> int | None:
        """Alias of ``top_k`` (LangChain's usual name)."""
        return self.top_k

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[LCDocument]:
        query = _query(query)
        unknown = set(kwargs) - {"k", "top_k"}
        if unknown:
            raise TypeError(f"unexpected retriever arguments {sorted(unknown)}; only k (or top_k) is accepted")
        top_k = _positive(kwargs.get("k", kwargs.get("top_k", self.top_k)), "k")
        chunks = permitted_chunks(self.grounder, self.user, query, top_k, self.connectors, self.feature)
        return [to_document(c) for c in chunks]


def _cited_documents(draft: Draft) -> list[LCDocument]:
    return [
        LCDocument(id=c.chunk_id, page_content=c.snippet,
                   metadata={"source": c.uri, "title": c.title, "location": c.location, "n": c.n,
                             "doc_id": c.doc_id, "chunk_id": c.chunk_id, "connector": c.connector})
        for c in draft.citations
    ]


def grounding_runnable(grounder: Grounder, user: UserContext, **options: Any) -> RunnableLambda[str, Draft]:
    """A Runnable taking a prompt string and returning the :class:`~groundwire.Draft` for ``user``.

    Its trace has a ``groundwire_retrieve`` retriever child run (the grounding call, ending with the
    sources the draft cites). Compose ``| draft_text`` to continue a chain with the draft's text.
    """

    def ground(prompt: str, config: RunnableConfig) -> Draft:
        query = _query(prompt)
        run = get_callback_manager_for_config(config).on_retriever_start(None, query, name="groundwire_retrieve")
        try:
            draft = grounder.ground(query, user, **options)
        except BaseException as exc:
            run.on_retriever_error(exc)
            raise
        run.on_retriever_end(_cited_documents(draft))
        return draft

    async def aground(prompt: str, config: RunnableConfig) -> Draft:
        query = _query(prompt)
        manager = get_async_callback_manager_for_config(config)
        run = await manager.on_retriever_start(None, query, name="groundwire_retrieve")
        try:
            draft = await grounder.aground(query, user, **options)
        except BaseException as exc:
            await run.on_retriever_error(exc)
            raise
        await run.on_retriever_end(_cited_documents(draft))
        return draft

    return RunnableLambda(ground, afunc=aground, name="groundwire_ground")


def _draft_text(draft: Draft) -> str:
    if not isinstance(draft, Draft):
        raise RetrieverInputError(draft, "draft_text takes a Draft", "put it right after grounding_runnable")
    return draft.text


draft_text: RunnableLambda[Draft, str] = RunnableLambda(_draft_text, name="draft_text")
"""A Runnable from a :class:`~groundwire.Draft` to its text (with its ``[n]`` markers), for
``grounding_runnable(g, user) | draft_text | ...``. The draft is for human review: keep it (and its
citations) wherever the text ends up."""
