"""Sentence vectors from the chunk's own run vs sentences embedded alone: ``python -m benchmarks.sentence_vectors``.

Options: ``[--data DIR] [--claims N] [--distractors N] [--candidates K] [--weights 0,0.3,0.5,0.7,0.9]``.

The extractive generator scores every sentence of the retrieved chunks against the prompt. Sync can read those
sentence vectors from the chunk's own model run (late chunking, ``Embedder.embed_with_spans``) instead of
embedding every sentence again; this measures what that costs, on labelled data (SciFact, BEIR: claims and the
abstracts that support or refute them, ``qrels/train.tsv`` or ``test.tsv``):

- corpus: the abstracts relevant to the first ``--claims`` claims plus the first ``--distractors`` others, as
  product chunks (``groundwire.chunking.chunk_document``, the default chunk size and overlap; index text =
  title + text, as ingestion embeds it);
- vectors: the bundled MiniLM (ONNX, the default backend); *alone* = each sentence embedded on its own (what
  sync stored before); *late* = ``embed_with_spans`` over the index texts (one run); *late-w* = late with
  ``w`` x the chunk vector subtracted, renormalised (:func:`groundwire.plugins.extractive.decontextualise`);
- sentence rerank: each claim's top ``--candidates`` abstracts by chunk vector (the same for every variant)
  re-ranked by their best sentence's cosine to the claim: nDCG@10 and recall@10 (the chunk-vector ranking
  itself as the reference);
- drafts: the real :class:`~groundwire.plugins.extractive.ExtractiveGenerator` on each claim's top 5 chunks
  with each variant's stored annotation: the share of claims with a non-empty draft, the share whose draft
  quotes a relevant abstract, the overlap (Jaccard) of the quoted sentences with the *alone* draft, and the
  groundedness plugin's decision per draft sentence (it reads text only: support of the sentence's content
  words in the cited chunk) compared with the *alone* drafts';
- the similarity scale: the mean cosine of the claim to its best sentence in a relevant abstract and to the
  calibrated floor (the generator's per-prompt floor from unrelated sentences embedded alone), per variant, and
  the share of :data:`OFF_TOPIC` questions that still get a draft from their top 5 chunks (should stay 0);
- sentences told apart: the mean cosine between sentences of one chunk, and how often a top-5 chunk's best
  sentence for the claim is the one the *alone* vectors pick;
- storage: the shipped weight (:data:`~groundwire.plugins.extractive.CONTEXT_WEIGHT`, always measured) is stored
  as the generator stores it (int8 with a scale per vector, read back renormalised); its ``-f16`` row stores the
  same vectors as float16 (annotation version 2), and ``int8_vs_f16`` says how often the two give the same
  draft, the Jaccard of their quoted sentences and how often the groundedness decisions agree. The other rows'
  drafts are stored int8 too; their rerank columns use the vectors as computed.
"""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import json
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import CACHE, SCIFACT

__all__ = ["OFF_TOPIC", "main", "measure"]

#: questions no SciFact abstract answers: a draft for one of them means the floor let an unrelated sentence in
OFF_TOPIC = (
    "What time does the train to the airport leave on Sundays?",
    "How do I reset the password of the office printer?",
    "Which football team won the league last season?",
    "What is the best recipe for a chocolate cake?",
    "Where can I park my bicycle at the office?",
    "How many vacation days do new employees get?",
    "Who painted the ceiling of the Sistine Chapel?",
    "What is the capital city of Australia?",
    "When does the canteen open in the morning?",
    "How do I book a meeting room for Friday?",
    "Which band played at the summer festival?",
    "What should I pack for a hiking trip in the mountains?",
)


def _load(data: Path, claims: int, distractors: int) -> tuple[dict[str, tuple[str, str]], dict[str, str],
                                                                  dict[str, set[str]]]:
    qrels_file = data / "qrels" / "test.tsv"
    if not qrels_file.is_file():
        qrels_file = data / "qrels" / "train.tsv"
    qrels: dict[str, set[str]] = {}
    for line in qrels_file.read_text(encoding="utf-8").splitlines()[1:]:
        qid, did, score = line.split("\t")[:3]
        if int(score) > 0:
            qrels.setdefault(qid, set()).add(did)
    queries = {}
    for line in (data / "queries.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if row["_id"] in qrels:
            queries[row["_id"]] = row["text"]
    picked = sorted(queries, key=lambda q: int(q) if q.isdigit() else q)[:claims]
    queries = {q: queries[q] for q in picked}
    qrels = {q: qrels[q] for q in picked}
    wanted = set().union(*qrels.values())
    src = data / "corpus.jsonl"
    opener: Any = open
    if not src.is_file():
        src, opener = data / "corpus.jsonl.gz", gzip.open
    corpus: dict[str, tuple[str, str]] = {}
    others = 0
    with opener(src, "rt", encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            did = str(row["_id"])
            if did in wanted or others < distractors:
                others += did not in wanted
                corpus[did] = (" ".join(str(row.get("title", "")).split()), str(row.get("text", "")))
    return corpus, queries, qrels


def _ndcg(ranked: Sequence[str], relevant: set[str], k: int = 10) -> float:
    dcg = sum(1 / math.log2(i + 2) for i, d in enumerate(ranked[:k]) if d in relevant)
    ideal = sum(1 / math.log2(i + 2) for i in range(min(k, len(relevant))))
    return dcg / ideal if ideal else 0.0


def measure(data: str | Path = SCIFACT, claims: int = 300, distractors: int = 1000, candidates: int = 30,
            weights: Sequence[float] = (0.0, 0.3, 0.5, 0.7, 0.9), backend: str = "auto") -> dict[str, Any]:
    from groundwire import AccessControl, Document, GeneratorContext, GroundingRequest, Section, UserContext
    from groundwire.chunking import chunk_document
    from groundwire.ingest import index_text_spans
    from groundwire.plugins import extractive, groundedness
    from groundwire.plugins.embedders import MiniLMEmbedder

    corpus, queries, qrels = _load(Path(data), claims, distractors)
    acl = AccessControl.of(["everyone"])
    chunks = []
    for did, (title, text) in corpus.items():
        doc = Document(did, title, f"https://scifact.example/{did}", acl, (Section(text),))
        chunks.extend(chunk_document(doc, "bench", "bench", 800, 120))
    emb = MiniLMEmbedder(backend=backend)
    emb.warm_up()
    split = [index_text_spans(c.title, c.text) for c in chunks]
    sents = [ss for ss, _ in split]
    keep = [[i for i, s in enumerate(ss) if len(s) >= 12] for ss in sents]
    flat = list(dict.fromkeys(ss[i] for ss, kk in zip(sents, keep, strict=True) for i in kk))
    cache = CACHE / f"sentence-vectors-{claims}-{distractors}-{backend}.npz"
    if cache.is_file():  # the vectors of an earlier run with the same corpus (the model work only)
        got = np.load(cache)
        cvecs, alone_rows, late_s, alone_s = got["chunks"], got["alone"], float(got["late_s"]), float(got["alone_s"])
        bounds = np.cumsum([0, *(len(sp) for _, sp in split)])
        late_rows = got["late"]  # an NpzFile reads the whole array on every access: once
        late = [late_rows[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    else:
        t0 = time.perf_counter()
        cvecs, late = emb.embed_with_spans([f"{c.title}\n{c.text}" if c.title else c.text for c in chunks],
                                           [sp for _, sp in split])
        late_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        alone_rows = emb.embed_documents(flat)
        alone_s = time.perf_counter() - t0
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, chunks=cvecs, alone=alone_rows, late=np.vstack(late), late_s=late_s, alone_s=alone_s)
    row = {s: i for i, s in enumerate(flat)}
    variants: dict[str, list[np.ndarray]] = {
        "alone": [alone_rows[[row[ss[i]] for i in kk]].reshape(len(kk), -1) for ss, kk in zip(sents, keep,
                                                                                                strict=True)],
    }
    shipped = f"late-{extractive.CONTEXT_WEIGHT:g}"
    for w in sorted({*weights, extractive.CONTEXT_WEIGHT}):
        name = "late" if w == 0 else f"late-{w:g}"
        variants[name] = [extractive.decontextualise(lv[kk], cv, w) if kk else np.zeros((0, cvecs.shape[1]),
                                                                                           np.float32)
                          for lv, kk, cv in zip(late, keep, cvecs, strict=True)]

    def int8_read(v: np.ndarray) -> np.ndarray:
        q, sc = extractive.quantize(v)
        out = q.astype(np.float32) * sc[:, None]
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)

    storage = {name: "int8" for name in variants}
    variants[shipped + "-f16"] = [v.astype(np.float16).astype(np.float32) for v in variants[shipped]]
    storage[shipped + "-f16"] = "float16"
    variants[shipped] = [int8_read(v) if len(v) else v for v in variants[shipped]]
    doc_of = [c.doc_id.split("/")[-1] if "/" in c.doc_id else c.doc_id for c in chunks]
    ids = list(corpus)
    id_of_chunk = []
    for c in chunks:  # chunk doc ids are namespaced; map back to the BEIR id
        did = next((d for d in (c.doc_id, c.doc_id.split(":")[-1], c.doc_id.split("/")[-1]) if d in corpus), None)
        id_of_chunk.append(did)
    assert all(d is not None for d in id_of_chunk), doc_of[:3]
    by_doc: dict[str, list[int]] = {}
    for i, d in enumerate(id_of_chunk):
        by_doc.setdefault(str(d), []).append(i)
    qids = list(queries)
    qv = np.vstack([emb.embed_query(queries[q]) for q in qids])
    gen_ctx = GeneratorContext(emb)

    def annotated(ci: int, svecs: Sequence[np.ndarray], how: str = "int8") -> Any:
        """Chunk ``ci`` carrying the generator's annotation of its kept sentences with the variant's vectors."""
        note = extractive._note(emb, [sents[ci][i] for i in keep[ci]], svecs[ci], storage=how)
        return dataclasses.replace(chunks[ci], annotations=note)

    user = UserContext.of("bench@example.com", "bench", ["everyone"])
    out: dict[str, Any] = {"claims": len(qids), "docs": len(ids), "chunks": len(chunks),
                           "sentences": int(sum(len(k) for k in keep)),
                           "late_embed_seconds": late_s, "alone_embed_seconds": alone_s}
    chunk_sims = qv @ cvecs.T  # (claims, chunks)
    doc_ix = {d: i for i, d in enumerate(ids)}
    doc_best = np.full((len(qids), len(ids)), -2.0, dtype=np.float32)
    for d, cis in by_doc.items():
        doc_best[:, doc_ix[d]] = chunk_sims[:, cis].max(axis=1)
    cand = np.argsort(-doc_best, axis=1)[:, :candidates]
    ref_ndcg = np.mean([_ndcg([ids[j] for j in cand[qi]], qrels[q]) for qi, q in enumerate(qids)])
    ref_recall = np.mean([len({ids[j] for j in cand[qi][:10]} & qrels[q]) / len(qrels[q])
                          for qi, q in enumerate(qids)])
    out["chunk_vector"] = {"ndcg10": float(ref_ndcg), "recall10": float(ref_recall)}
    top5 = np.argsort(-chunk_sims, axis=1)[:, :5]
    drafts: dict[str, list[tuple[set[str], list[bool], bool]]] = {}
    texts: dict[str, list[str]] = {}
    for name, svecs in variants.items():
        ndcgs, recalls, best_rel, floors = [], [], [], []
        gen = extractive.ExtractiveGenerator(gen_ctx)
        drafts[name] = []
        texts[name] = []
        for qi, q in enumerate(qids):
            scores = []
            for j in cand[qi]:
                cis = by_doc[ids[j]]
                rows = [svecs[ci] for ci in cis if len(svecs[ci])]
                scores.append(float((np.vstack(rows) @ qv[qi]).max()) if rows else -2.0)
            order = [ids[cand[qi][k]] for k in np.argsort(scores)[::-1]]
            ndcgs.append(_ndcg(order, qrels[q]))
            recalls.append(len(set(order[:10]) & qrels[q]) / len(qrels[q]))
            rel_rows = [svecs[ci] for d in qrels[q] if d in by_doc for ci in by_doc[d] if len(svecs[ci])]
            if rel_rows:
                best_rel.append(float((np.vstack(rel_rows) @ qv[qi]).max()))
            floors.append(gen.floor(qv[qi]))
            sources = [annotated(ci, svecs, storage[name]) for ci in top5[qi]]
            text = gen.generate(GroundingRequest(user, queries[q]), sources).text
            texts[name].append(text)
            picked = set()
            decisions = []
            relevant_quoted = False
            for ci_pos, c in enumerate(sources):
                for s in extractive.candidate_sentences(c.text):
                    body = " ".join(s.split())
                    if f"{body} [{ci_pos + 1}]" in text:
                        picked.add(body)
                        decisions.append(groundedness.support(body, c.text) >= 0.5)
                        relevant_quoted |= id_of_chunk[top5[qi][ci_pos]] in qrels[q]
            drafts[name].append((picked, decisions, relevant_quoted))
        within = [float((v @ v.T)[np.triu_indices(len(v), 1)].mean()) for v in svecs if len(v) > 1]
        agree_top1 = [int(np.argmax(svecs[ci] @ qv[qi]) == np.argmax(variants["alone"][ci] @ qv[qi]))
                      for qi in range(len(qids)) for ci in top5[qi] if len(svecs[ci]) > 1]
        out[name] = {"ndcg10": float(np.mean(ndcgs)), "recall10": float(np.mean(recalls)),
                     "within_chunk_cos": float(np.mean(within)), "top1_agree": float(np.mean(agree_top1)),
                     "best_relevant_sim": float(np.mean(best_rel)), "floor": float(np.mean(floors)),
                     "nonempty_drafts": float(np.mean([bool(p) for p, _, _ in drafts[name]])),
                     "drafts_quoting_relevant": float(np.mean([r for _, _, r in drafts[name]]))}
    for name in variants:
        jac, agree = [], []
        for (pa, da, _), (pv, dv, _) in zip(drafts["alone"], drafts[name], strict=True):
            if pa or pv:
                jac.append(len(pa & pv) / len(pa | pv))
            agree.append(all(da) == all(dv))
        out[name]["jaccard_vs_alone"] = float(np.mean(jac)) if jac else 1.0
        out[name]["groundedness_agreement"] = float(np.mean(agree))
        out[name]["grounded_sentences"] = float(np.mean([x for _, d, _ in drafts[name] for x in d] or [1.0]))
    a, b = shipped, shipped + "-f16"
    jac = [len(pa & pb) / len(pa | pb) for (pa, _, _), (pb, _, _) in zip(drafts[a], drafts[b], strict=True)
           if pa or pb]
    out["int8_vs_f16"] = {
        "same_draft": float(np.mean([x == y for x, y in zip(texts[a], texts[b], strict=True)])),
        "jaccard": float(np.mean(jac)) if jac else 1.0,
        "groundedness_agreement": float(np.mean([da == db for (_, da, _), (_, db, _) in zip(drafts[a], drafts[b],
                                                                                           strict=True)])),
        "max_abs_cos_diff": float(max((np.abs(np.sum(x * y, axis=1) - 1.0).max() for x, y in
                                       zip(variants[a], variants[b], strict=True) if len(x)), default=0.0)),
    }
    ov = np.vstack([emb.embed_query(q) for q in OFF_TOPIC])
    off_top5 = np.argsort(-(ov @ cvecs.T), axis=1)[:, :5]
    for name, svecs in variants.items():
        gen = extractive.ExtractiveGenerator(gen_ctx)
        drafted = 0
        for oi, q in enumerate(OFF_TOPIC):
            sources = [annotated(ci, svecs, storage[name]) for ci in off_top5[oi]]
            drafted += bool(gen.generate(GroundingRequest(user, q), sources).text)
        out[name]["off_topic_drafts"] = drafted / len(OFF_TOPIC)
    out["variants"] = list(variants)
    return out


def report(res: dict[str, Any]) -> str:
    lines = [f"SciFact: {res['claims']} claims, {res['docs']} abstracts, {res['chunks']} chunks, "
             f"{res['sentences']} candidate sentences; embedding: late (chunks with spans) "
             f"{res['late_embed_seconds']:.1f} s, sentences alone {res['alone_embed_seconds']:.1f} s (extra)",
             f"chunk-vector ranking (reference): nDCG@10 {res['chunk_vector']['ndcg10']:.4f}, "
             f"recall@10 {res['chunk_vector']['recall10']:.4f}",
             "columns: sentence-rerank nDCG@10 and recall@10; mean cosine of the claim to its best relevant "
             "sentence; the mean floor; share of non-empty drafts; share quoting a relevant abstract; Jaccard of "
             "the quoted sentences with the alone drafts; groundedness decisions agreeing with the alone drafts'; "
             "mean cosine between sentences of one chunk; best sentence of a top-5 chunk = the alone vectors' best; "
             "share of off-topic questions drafted",
             f"{'variant':<12} {'nDCG@10':>8} {'R@10':>7} {'best-rel':>8} {'floor':>6} {'drafts':>7} "
             f"{'rel-quoted':>10} {'jacc':>6} {'grnd-agree':>10} {'in-chunk':>8} {'top1':>6} {'off-topic':>9}"]
    for name in res["variants"]:
        r = res[name]
        lines.append(f"{name:<12} {r['ndcg10']:>8.4f} {r['recall10']:>7.4f} {r['best_relevant_sim']:>8.3f} "
                     f"{r['floor']:>6.3f} {r['nonempty_drafts']:>7.3f} {r['drafts_quoting_relevant']:>10.3f} "
                     f"{r['jaccard_vs_alone']:>6.3f} {r['groundedness_agreement']:>10.3f} "
                     f"{r['within_chunk_cos']:>8.3f} {r['top1_agree']:>6.3f} {r['off_topic_drafts']:>9.3f}")
    if "int8_vs_f16" in res:
        r = res["int8_vs_f16"]
        lines.append(f"stored int8 vs float16 (shipped weight): same draft {r['same_draft']:.3f}, Jaccard of quoted "
                     f"sentences {r['jaccard']:.3f}, groundedness decisions agree {r['groundedness_agreement']:.3f}, "
                     f"largest 1 - cos between the two stored vectors of a sentence {r['max_abs_cos_diff']:.5f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description="late-chunked vs standalone sentence vectors on SciFact")
    ap.add_argument("--data", default=SCIFACT)
    ap.add_argument("--claims", type=int, default=300)
    ap.add_argument("--distractors", type=int, default=1000)
    ap.add_argument("--candidates", type=int, default=30)
    ap.add_argument("--weights", default="0,0.3,0.5,0.7,0.9")
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    res = measure(args.data, args.claims, args.distractors, args.candidates,
                  [float(w) for w in args.weights.split(",")], args.backend)
    print(report(res))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1), encoding="utf-8")
    return res


if __name__ == "__main__":
    main()
