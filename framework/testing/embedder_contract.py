"""The shared embedder contract tests (langchain ``standard-tests`` style).

Subclass :class:`EmbedderContract` and implement ``make_embedder``; every invariant of
:mod:`groundwire.embedding` is then checked against your embedder: the declared dimension, float rows of
unit length, the same vector for a text whether it is embedded alone or in a batch, deterministic query
vectors that rank a matching passage above unrelated ones, and acceptance by the framework's own check
of the first batch (:func:`groundwire.embedding.check_vectors`)::

    class TestMyEmbedder(EmbedderContract):
        def make_embedder(self):
            return MyEmbedder()
"""

from __future__ import annotations

from abc import abstractmethod

import numpy as np
import pytest

from ..embedding import Embedder, check_vectors

__all__ = ["EmbedderContract"]

PASSAGES = [
    "Every employee receives 25 days of paid annual leave per year.",
    "The football match ended in a draw after extra time.",
    "Salaries are paid on the 25th of every month.",
    "Tomatoes grow best in a greenhouse in spring.",
    "Grüße aus Köln: Straße, Ärger und Übermut.",  # non-ASCII text must embed like any other
    "",  # an empty passage still gets a unit vector
]
QUERY = "How many days of annual leave do employees get?"  # answered by PASSAGES[0]


class EmbedderContract:
    """Base class of an embedder's contract tests; ``tolerance`` bounds float differences."""

    tolerance = 1e-4

    @abstractmethod
    def make_embedder(self) -> Embedder:
        """A ready embedder (a fixture-free factory; it may be called more than once)."""

    @pytest.fixture(scope="class")
    @classmethod
    def embedder(cls) -> Embedder:
        return cls().make_embedder()  # once per class: loading a model can be slow

    def test_declared_dimension(self, embedder: Embedder) -> None:
        assert isinstance(embedder.dimension, int) and embedder.dimension > 0
        assert embedder.embed_documents(PASSAGES).shape == (len(PASSAGES), embedder.dimension)
        assert embedder.embed_query(QUERY).shape == (embedder.dimension,)
        assert embedder.embed_documents([]).shape[0] == 0

    def test_rows_are_finite_unit_length_floats(self, embedder: Embedder) -> None:
        vectors = embedder.embed_documents(PASSAGES)
        assert np.issubdtype(vectors.dtype, np.floating) and np.all(np.isfinite(vectors))
        assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-3)
        assert np.isclose(np.linalg.norm(embedder.embed_query(QUERY)), 1.0, atol=1e-3)

    def test_batch_and_single_agree(self, embedder: Embedder) -> None:
        batch = embedder.embed_documents(PASSAGES)
        for i, text in enumerate(PASSAGES):
            single = embedder.embed_documents([text])[0]
            assert np.allclose(batch[i], single, atol=self.tolerance), f"passage {i} differs alone and in a batch"
        reordered = embedder.embed_documents(PASSAGES[::-1])[::-1]
        assert np.allclose(batch, reordered, atol=self.tolerance), "a batch's order changes its vectors"

    def test_queries_are_deterministic_and_rank_the_matching_passage_first(self, embedder: Embedder) -> None:
        q1, q2 = embedder.embed_query(QUERY), embedder.embed_query(QUERY)
        assert np.allclose(q1, q2, atol=self.tolerance)
        scores = embedder.embed_documents(PASSAGES) @ q1
        assert int(np.argmax(scores)) == 0, f"the query's best passage is {int(np.argmax(scores))}, not 0"

    def test_model_id_names_the_vector_space(self, embedder: Embedder) -> None:
        assert isinstance(embedder.model_id, str) and embedder.model_id
        assert self.make_embedder().model_id == embedder.model_id

    def test_the_framework_accepts_its_first_batch(self, embedder: Embedder) -> None:
        check_vectors(embedder, embedder.embed_documents(PASSAGES), len(PASSAGES))
        check_vectors(embedder, embedder.embed_query(QUERY), None)
