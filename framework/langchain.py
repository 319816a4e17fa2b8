"""LangChain integration: a permission-trimmed retriever and a ``ground`` runnable.

:class:`GroundwireRetriever` carries the signed-in :class:`~groundwire.UserContext`; every call goes
through the same steps as a request (tenant and feature authorization, prompt shield, pre-filtered
search, the fail-closed access re-check, document screening), so a chain built on it can never see
more than the user could. :func:`grounding_runnable` wraps :meth:`Grounder.ground`: prompt in, Draft out.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document as LCDocument
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import RunnableLambda
from pydantic import ConfigDict

from .models import Draft, UserContext

if TYPE_CHECKING:
    from .pipeline import Grounder

__all__ = ["GroundwireRetriever", "grounding_runnable"]


class GroundwireRetriever(BaseRetriever):
    """Retrieve only what ``user`` may read, as LangChain documents.

    >>> retriever = GroundwireRetriever(grounder=g, user=UserContext.of("alice", "acme"))  # doctest: +SKIP
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    grounder: Any
    user: UserContext
    top_k: int | None = None
    connectors: Sequence[str] | None = None
    feature: str = "ask"

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[LCDocument]:
        g: Grounder = self.grounder
        # the audited, screened public path (raises AccessDenied / FeatureDisabled / PromptBlocked)
        sources = g.retrieve(query, self.user, feature=self.feature, top_k=self.top_k, connectors=self.connectors)
        return [
            LCDocument(
                page_content=c.text,
                metadata={
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
            for c in sources
        ]


def grounding_runnable(grounder: Grounder, user: UserContext, **options: Any) -> RunnableLambda[str, Draft]:
    """A Runnable taking a prompt string and returning the :class:`~groundwire.Draft` for ``user``."""

    def ground(prompt: str) -> Draft:
        return grounder.ground(prompt, user, **options)

    async def aground(prompt: str) -> Draft:
        return await grounder.aground(prompt, user, **options)

    return RunnableLambda(ground, afunc=aground, name="groundwire_ground")
