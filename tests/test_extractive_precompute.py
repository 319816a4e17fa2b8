"""The extractive generator's sentence vectors are computed at sync and stored with the chunk: a request
embeds only the prompt (issue 14); stale or malformed annotations are recomputed, never trusted."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
from groundwire.plugins import extractive
from groundwire.plugins.extractive import ANNOTATION, candidate_sentences, stored_sentences
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
    assert note["v"] == 3 and "sentences" not in note  # int8 vectors, sentences as spans of the chunk text
    bad = [{"model": "another-embedder"}, {"vectors": "not base64!"}, {"scales": "AAAA"},
           {"spans": [[0, len(chunk.text) + 1]]}, {"spans": [[5, 2]]}, {"spans": "0-10"}, {"v": 1}]
    if len(note["spans"]) > 1:
        bad.append({"spans": note["spans"][:-1]})
    for change in bad:
        c = dataclasses.replace(chunk, annotations={ANNOTATION: {**note, **change}})
        assert stored_sentences(c, g.embedder.model_id) is None, change
    other_model = dataclasses.replace(chunk, annotations={ANNOTATION: {**note, "model": "another-embedder"}})
    # the generator falls back to embedding the sentences: same draft as with the stored vectors
    gen = g.generator
    from groundwire import GroundingRequest

    req = GroundingRequest(EVERYONE_USER, QUESTION)
    assert gen.generate(req, [other_model]).text == gen.generate(req, [chunk]).text
    sents, vecs = stored_sentences(chunk, g.embedder.model_id)
    assert sents == candidate_sentences(chunk.text)
    fresh = g.embedder.embed_documents(sents)
    assert np.allclose(vecs, fresh, atol=2e-3)  # int8 with a scale per vector, renormalised


def test_version_2_annotations_are_still_read(tmp_path: Path) -> None:
    """A data dir annotated before (float16 vectors, sentences as text) drafts the same until re-annotated."""
    g = tiny_grounder(tmp_path)
    chunk = g.retrieve(QUESTION, EVERYONE_USER)[0]
    sents, vecs = stored_sentences(chunk, g.embedder.model_id)
    old = dataclasses.replace(chunk, annotations=extractive._note(g.embedder, sents, vecs, storage="float16"))
    assert old.annotations[ANNOTATION]["v"] == 2
    got = stored_sentences(old, g.embedder.model_id)
    assert got is not None and got[0] == sents and np.allclose(got[1], vecs, atol=2e-3)
    from groundwire import GroundingRequest

    req = GroundingRequest(EVERYONE_USER, QUESTION)
    assert g.generator.generate(req, [old]).text == g.generator.generate(req, [chunk]).text


def test_quantize_keeps_each_vector_within_half_a_step() -> None:
    rng = np.random.default_rng(7)
    v = rng.standard_normal((50, 384)).astype(np.float32)
    v[3] = 0.0
    q, scales = extractive.quantize(v)
    assert q.dtype == np.int8 and scales.dtype == np.float32 and scales[3] == 1.0
    assert np.all(np.abs(q.astype(np.float32) * scales[:, None] - v) <= scales[:, None] / 2 + 1e-7)
