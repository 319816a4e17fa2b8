"""The indirect head on late-chunked unit vectors (issue 13): a sentence's vector is read from its chunk's own
MiniLM run (``embed_with_spans``), so the chunk vector and every unit vector come from one model pass; the
score from ingestion's sentence vectors equals the query-time score; vectors that do not match the chunk's
sentences are never used."""

from __future__ import annotations

import numpy as np
import pytest
from groundwire import config_from_dict, sentence_spans
from groundwire.plugins import prompt_shield as ps
from groundwire.plugins.embedders import MiniLMEmbedder
from groundwire.plugins.prompt_shield import indirect_model as im

from .conftest import make_chunk
from .test_prompt_shield import HOWTO, INJECTED, TABLE

pytestmark = pytest.mark.slow

TEXTS = [HOWTO, TABLE, INJECTED, "Payday is the 25th of every month. Ask HR if it is late.", "ok"]


def _ingested(chunks: list) -> tuple[dict, dict]:
    """What ingestion hands ``annotate_chunks`` (issue 14): index vectors and, from the same run, the vectors
    of all the chunk text's sentences (spans shifted past the title)."""
    inputs = [ps.embed_text(c.text, c.title) for c in chunks]
    spans = [[(a + len(i) - len(c.text), b + len(i) - len(c.text)) for a, b in sentence_spans(c.text)]
             for c, i in zip(chunks, inputs, strict=True)]
    vecs, per = MiniLMEmbedder().embed_with_spans(inputs, spans)
    sents = {c.id: ([c.text[a:b].strip() for a, b in sentence_spans(c.text)], p)
             for c, p in zip(chunks, per, strict=True)}
    return {c.id: v for c, v in zip(chunks, vecs, strict=True)}, sents


def test_the_shipped_head_reads_late_unit_vectors() -> None:
    assert im.load_indirect().late


def test_scores_from_ingestions_sentence_vectors_equal_query_time_scores() -> None:
    chunks = [make_chunk(f"c{i}", t) for i, t in enumerate(TEXTS)]
    vectors, sents = _ingested(chunks)
    emb = MiniLMEmbedder()
    notes = ps.precompute(chunks, config_from_dict({}), emb, vectors, sents)
    assert notes is not None and set(notes) == {c.id for c in chunks}
    ps.clear_cache()
    live = ps.score_chunks(chunks)  # no annotation: one bundled run per chunk gives both vectors
    stored = [notes[c.id][ps.ANNOTATION]["p"] for c in chunks]
    assert [max(p, 0.99) if s.strong else p for p, s in zip(stored, live, strict=True)] == pytest.approx(
        [s.score for s in live], abs=1e-4)
    # the planted chunk is the one withheld, the how-to, table and payday note are not
    th = ps.effective_threshold("indirect", None, True)
    assert [s.strong or s.score >= th for s in live] == [False, False, True, False, False]


def test_the_head_uses_the_sentence_vectors_it_is_given() -> None:
    chunks = [make_chunk(f"c{i}", t) for i, t in enumerate(TEXTS[:3])]
    vectors, sents = _ingested(chunks)
    ps.clear_cache()  # scores of these texts cached by another test would be read instead
    base = ps.precompute(chunks, config_from_dict({}), MiniLMEmbedder(), vectors, sents)
    # the how-to's sentence vectors swapped for the planted chunk's: another score for the how-to only
    k = len(sents["c0"][0])
    swapped = {**sents, "c0": (sents["c0"][0], np.resize(sents["c2"][1], (k, 384)))}
    other = ps.precompute(chunks, config_from_dict({}), MiniLMEmbedder(), vectors, swapped)
    assert base is not None and other is not None
    assert other["c0"][ps.ANNOTATION]["p"] != pytest.approx(base["c0"][ps.ANNOTATION]["p"], abs=1e-3)
    assert other["c2"][ps.ANNOTATION]["p"] == pytest.approx(base["c2"][ps.ANNOTATION]["p"], abs=1e-6)


def test_sentence_vectors_that_do_not_match_the_text_are_not_used() -> None:
    text = INJECTED
    n = len(sentence_spans(text))
    chunk_vec = np.full(384, 384 ** -0.5, np.float32)
    assert im.late_units_from_sentences(text, np.zeros((n + 1, 384), np.float32), chunk_vec) is None
    assert im.late_units_from_sentences(text, np.zeros((n, 10), np.float32), chunk_vec) is None
    got = im.late_units_from_sentences(text, np.eye(n, 384, dtype=np.float32), chunk_vec)
    assert got is not None and len(got) == len(im.units(text))
    # a chunk without sentence units is one unit whose vector is the chunk's own
    short = "ok"
    one = im.late_units_from_sentences(short, np.zeros((len(sentence_spans(short)), 384), np.float32), chunk_vec)
    assert one is not None and np.allclose(one, chunk_vec[None])
