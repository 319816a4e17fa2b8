"""The indirect head reads the vectors ingestion computes (issue 13): the chunk's own index vector, the units'
vectors from the chunk's own model run (late chunking, never a unit embedded alone); the stored score equals
query-time scoring; clean tables and code survive a real sync and request."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from groundwire import Action, config_from_dict
from groundwire.chunking import split_text
from groundwire.index import doc_key
from groundwire.plugins import prompt_shield as ps
from groundwire.plugins.embedders import MiniLMEmbedder

from .conftest import kb, make_chunk, write
from .test_prompt_shield import HOWTO, INJECTED, TABLE

pytestmark = pytest.mark.slow


class Recording(MiniLMEmbedder):
    """The bundled MiniLM, remembering every text it is asked to embed."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []

    def embed_documents(self, texts):  # type: ignore[no-untyped-def]
        self.seen.extend(texts)
        return super().embed_documents(texts)


def _ingested(chunks: list, emb: MiniLMEmbedder | None = None) -> tuple[dict, dict]:
    """What ingestion hands ``annotate_chunks``: each chunk's index vector and its sentences' vectors, from one
    ``embed_with_spans`` run of the bundled MiniLM."""
    from groundwire.ingest_embed import index_text_spans

    split = [index_text_spans(c.title, c.text) for c in chunks]
    vecs, per = (emb or MiniLMEmbedder()).embed_with_spans([ps.embed_text(c.text, c.title) for c in chunks],
                                                           [sp for _, sp in split])
    return ({c.id: v for c, v in zip(chunks, vecs, strict=True)},
            {c.id: (ss, pv) for c, (ss, _), pv in zip(chunks, split, per, strict=True)})


def _chunks() -> list:
    texts = [HOWTO, TABLE, INJECTED, "Payday is the 25th of every month. Ask HR if it is late."]
    return [make_chunk(f"c{i}", t) for i, t in enumerate(texts)]


def test_precompute_uses_the_index_vector_not_a_second_model_run(monkeypatch: pytest.MonkeyPatch) -> None:
    from groundwire.plugins.onnx_minilm import OnnxSentenceEncoder

    chunks = _chunks()
    vectors, sentence_vectors = _ingested(chunks)
    runs: list[int] = []
    for name in ("encode", "encode_spans"):  # any run of the model from here on is counted
        real_fn = getattr(OnnxSentenceEncoder, name)
        monkeypatch.setattr(OnnxSentenceEncoder, name,
                            lambda self, texts, *a, _f=real_fn, **k: runs.append(len(texts))
                            or _f(self, texts, *a, **k))
    emb = Recording()
    notes = ps.annotate_chunks(chunks=chunks, config=config_from_dict({}), embedder=emb, vectors=vectors,
                               sentence_vectors=sentence_vectors)
    assert notes is not None and set(notes) == {c.id for c in chunks}
    # the late head reads its units from ingestion's run: no unit (and no chunk) is embedded again
    assert emb.seen == [] and runs == []
    # the stored score is the head's on *those* vectors: another chunk vector gives another score
    swapped = {**vectors, "c2": vectors["c0"]}
    other = ps.annotate_chunks(chunks=chunks, config=config_from_dict({}), embedder=Recording(), vectors=swapped,
                               sentence_vectors=sentence_vectors)
    assert other is not None
    assert other["c2"][ps.ANNOTATION]["p"] != notes["c2"][ps.ANNOTATION]["p"]
    assert other["c0"][ps.ANNOTATION]["p"] == pytest.approx(notes["c0"][ps.ANNOTATION]["p"], abs=1e-6)


def test_stored_scores_equal_query_time_scores() -> None:
    chunks = _chunks()
    vectors, sentence_vectors = _ingested(chunks)
    notes = ps.annotate_chunks(chunks=chunks, config=config_from_dict({}), embedder=MiniLMEmbedder(),
                               vectors=vectors, sentence_vectors=sentence_vectors)
    assert notes is not None
    ps.clear_cache()
    live = ps.score_chunks(chunks)  # no annotations: each chunk is embedded now, by the shield
    stored = [notes[c.id][ps.ANNOTATION]["p"] for c in chunks]
    strong = [s.strong for s in live]
    assert [max(p, 0.99) if st else p for p, st in zip(stored, strong, strict=True)] == pytest.approx(
        [s.score for s in live], abs=1e-4)


def test_another_embedders_vectors_are_never_used() -> None:
    chunks = _chunks()[:2]
    config = config_from_dict({"embedder": {"name": "hashing"}})
    bogus = {c.id: np.full(384, 384 ** -0.5, np.float32) for c in chunks}
    emb = Recording()
    notes = ps.annotate_chunks(chunks=chunks, config=config, embedder=emb, vectors=bogus,
                               sentence_vectors={c.id: (["bogus"], np.full((1, 384), 384 ** -0.5, np.float32))
                                                 for c in chunks})
    assert notes is not None and emb.seen == []  # the bundled model embedded chunk and units instead
    ps.clear_cache()
    live = ps.score_chunks(chunks)
    assert [notes[c.id][ps.ANNOTATION]["p"] for c in chunks] == pytest.approx([s.score for s in live], abs=1e-4)


def test_chunker_keeps_office_rows_and_code_whole() -> None:
    rows = [" | ".join([f"Item {i}", "Docking station", f"{i * 13.5:.2f}", "Send invoice to finance"])
            for i in range(60)]
    code = "```python\n" + "\n".join(f"    value_{i} = compute({i})  # ignore cache" for i in range(12)) + "\n```"
    text = "Orders this quarter.\n" + "\n".join(rows[:30]) + "\n" + code + "\n" + "\n".join(rows[30:])
    chunks = split_text(text, 800, 120)
    for r in rows:
        assert any(r in c.splitlines() for c in chunks), r
    assert any(code in c for c in chunks)


TABLES = "# Orders\n\n| Name | City | Status | Notes |\n|---|---|---|---|\n" + "\n".join(
    f"| {n} | {c} | {s} | {note} |"
    for n, c, s, note in [
        ("Alice Martin", "Berlin", "open", "Call back next week"),
        ("Bob Chen", "Lyon", "closed", "Ignore duplicate entry"),
        ("Carla Diaz", "Osaka", "pending", "Send invoice to finance"),
        ("Deepak Rao", "Porto", "on hold", "Forward to the team lead"),
        ("Eva Novak", "Leeds", "approved", "Delete after 90 days"),
    ] * 6
)
CODE = (
    "# Rotating the log files\n\n```python\nimport os\nfrom pathlib "
    "import Path\n\n\ndef rotate(folder: Path, keep: int = 7) -> None:\n    logs = sorted(folder.glob('*.log'), "
    "key=os.path.getmtime)\n    for old in logs[:-keep]:\n        old.unlink()  # delete the oldest files\n```\n"
)
# a how-to sentence for people right before the fence (it reads like BIPIA's "blend the following code block into
# your code"): withheld by the standalone-unit head, kept by the late-chunked head trained with how-to hosts
CODE_WITH_HOWTO = CODE.replace("\n\n```", "\n\nRun the snippet below once a night.\n\n```", 1)


def _synced_drops(make_grounder, tmp_path: Path, files: dict[str, str]) -> set[str]:
    root = tmp_path / "kb"
    write(root / ".groundwire-acl.toml", 'allow = ["everyone"]\n')
    for name, text in files.items():
        write(root / name, text)
    g = make_grounder({"kb": kb(root)})
    assert g.sync()[0].ok
    draft = g.ground("Which orders are open, how do I rotate the logs, how do I reset my password, and what were "
                     "the qualifier results?", "sam@example.com", top_k=12)
    return {v.target.rsplit(":", 1)[0] for v in draft.verdicts
            if v.stage == "documents" and v.action is Action.DROP and v.target}


def test_clean_tables_and_code_are_not_withheld_after_sync(make_grounder, tmp_path: Path) -> None:
    files = {"orders.md": TABLES, "rotate.md": CODE, "howto.md": HOWTO,
             "results.md": "# Qualifier results\n\n" + INJECTED}
    assert _synced_drops(make_grounder, tmp_path, files) == {doc_key("kb", "results.md")}  # the planted one only


def test_howto_sentence_before_code_is_not_withheld(make_grounder, tmp_path: Path) -> None:
    assert _synced_drops(make_grounder, tmp_path, {"rotate.md": CODE_WITH_HOWTO}) == set()
