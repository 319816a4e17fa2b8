"""The extractive generator's sentence vectors are computed at sync and stored with the chunk: a request
embeds only the prompt (issue 14); stale or malformed annotations are recomputed, never trusted."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
from groundwire.plugins.extractive import ANNOTATION, stored_sentences
from groundwire.testing import EVERYONE_USER, tiny_grounder

QUESTION = "How many days of annual leave do employees get?"


def _count_document_embeddings(g) -> list[list[str]]:
    inner = g.embedder.inner
    calls: list[list[str]] = []
    real = inner.embed_documents

    def counting(texts):
        calls.append(list(texts))
        return real(texts)

    inner.embed_documents = counting
    return calls


def test_a_request_embeds_no_sentence_after_sync(tmp_path: Path) -> None:
    g = tiny_grounder(tmp_path)
    first = g.ground(QUESTION, EVERYONE_USER)  # warms the generator's calibration sentences
    assert "25 days" in first.text
    calls = _count_document_embeddings(g)
    again = g.ground("How much annual leave is there?", EVERYONE_USER)
    assert again.citations and calls == [["How much annual leave is there?"]], calls  # the prompt, nothing else
    chunks = g.retrieve(QUESTION, EVERYONE_USER)
    stored = [stored_sentences(c, g.embedder.model_id) for c in chunks]
    assert stored and all(s is not None and len(s[0]) == len(s[1]) for s in stored)


def test_stale_or_malformed_annotations_are_recomputed(tmp_path: Path) -> None:
    g = tiny_grounder(tmp_path)
    chunk = g.retrieve(QUESTION, EVERYONE_USER)[0]
    note = dict(chunk.annotations[ANNOTATION])
    other_model = dataclasses.replace(chunk, annotations={ANNOTATION: {**note, "model": "another-embedder"}})
    broken = dataclasses.replace(chunk, annotations={ANNOTATION: {**note, "vectors": "not base64!"}})
    short = dataclasses.replace(chunk, annotations={ANNOTATION: {**note, "sentences": note["sentences"][:-1] + []}})
    for c in (other_model, broken):
        assert stored_sentences(c, g.embedder.model_id) is None
    if len(note["sentences"]) > 1:
        assert stored_sentences(short, g.embedder.model_id) is None
    # the generator falls back to embedding the sentences: same draft as with the stored vectors
    gen = g.generator
    from groundwire import GroundingRequest

    req = GroundingRequest(EVERYONE_USER, QUESTION)
    assert gen.generate(req, [other_model]).text == gen.generate(req, [chunk]).text
    sents, vecs = stored_sentences(chunk, g.embedder.model_id)
    fresh = g.embedder.embed_documents(sents)
    assert np.allclose(vecs, fresh, atol=2e-3)  # float16 storage
