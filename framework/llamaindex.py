"""LlamaIndex integration: a permission-trimmed ``BaseRetriever`` (needs ``pip install 'groundwire[llamaindex]'``).

:class:`GroundwireLlamaRetriever` follows the same path as :class:`groundwire.langchain.GroundwireRetriever`
(tenant and feature authorization, prompt shield, pre-filtered search, the fail-closed access re-check,
document screening) and returns ``NodeWithScore`` objects: ``node.id_`` = chunk id, ``node.text`` = the
chunk text, ``metadata["source"]`` = the document's URI. ``similarity_top_k`` (alias ``k``) caps the
number of nodes. A query that is not a non-empty string raises
:class:`~groundwire.langchain.RetrieverInputError`.

``llama_index.core`` is imported only when this module is; without the extra the import fails with a
:class:`~groundwire.MissingExtra` naming it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .errors import MissingExtra
from .langchain import RetrieverInputError, permitted_chunks
from .models import Chunk, UserContext

try:
    from llama_index.core.retrievers import BaseRetriever
    from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise MissingExtra("the LlamaIndex retriever", "llamaindex") from exc

if TYPE_CHECKING:
    from .pipeline import Grounder

__all__ = ["GroundwireLlamaRetriever", "to_node"]


def to_node(c: Chunk) -> NodeWithScore:
    """A chunk as a LlamaIndex node with its retrieval score."""
    node = TextNode(
        id_=c.id,
        text=c.text,
        metadata={"source": c.uri, "chunk_id": c.id, "doc_id": c.doc_id, "title": c.title, "uri": c.uri,
                  "location": c.location, "connector": c.connector, "tenant": c.tenant},
        # identifiers are for the application, not for the model: keep them out of LLM and embed text
        excluded_llm_metadata_keys=["chunk_id", "doc_id", "connector", "tenant"],
        excluded_embed_metadata_keys=["chunk_id", "doc_id", "connector", "tenant", "uri", "source"],
    )
    return NodeWithScore(node=node, score=float(c.score))


class GroundwireLlamaRetriever(BaseRetriever):
    """Retrieve only what ``user`` may read, as LlamaIndex nodes.

    >>> retriever = GroundwireLlamaRetriever(g, UserContext.of("alice", "acme"), k=4)  # doctest: +SKIP
    >>> nodes = retriever.retrieve("How many days of leave?")  # doctest: +SKIP
    """

    def __init__(
        self,
        grounder: Grounder,
        user: UserContext,
        *,
        similarity_top_k: int | None = None,
        k: int | None = None,
        connectors: Sequence[str] | None = None,
        feature: str = "ask",
        **kwargs: Any,
    ) -> None:
        top = k if similarity_top_k is None else similarity_top_k
        if top is not None and (isinstance(top, bool) or not isinstance(top, int) or top < 1):
            raise ValueError(f"similarity_top_k must be a positive integer, got {top!r}")
        self.grounder = grounder
        self.user = user
        self.similarity_top_k = top
        self.connectors = connectors
        self.feature = feature
        super().__init__(**kwargs)

    def retrieve(self, str_or_query_bundle: str | QueryBundle) -> list[NodeWithScore]:
        self._check(str_or_query_bundle)
        nodes: list[NodeWithScore] = super().retrieve(str_or_query_bundle)
        return nodes

    async def aretrieve(self, str_or_query_bundle: str | QueryBundle) -> list[NodeWithScore]:
        self._check(str_or_query_bundle)
        nodes: list[NodeWithScore] = await super().aretrieve(str_or_query_bundle)
        return nodes

    @staticmethod
    def _check(value: object) -> None:
        text = value.query_str if isinstance(value, QueryBundle) else value
        if not isinstance(text, str) or not text.strip():
            raise RetrieverInputError(value)

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        chunks = permitted_chunks(self.grounder, self.user, query_bundle.query_str, self.similarity_top_k,
                                  self.connectors, self.feature)
        return [to_node(c) for c in chunks]
