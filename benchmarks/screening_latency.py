"""What prompt-injection screening adds to a request with 10 retrieved chunks (issue 5: < 10 ms p50).

    python -m benchmarks.screening_latency --data ../shared/data/prompt-shield/indirect.jsonl

Documents of the labelled file are cut into chunks the way ingestion cuts them. Each request has a new
prompt (no query-embedding memo hit) and 10 chunks drawn at random. Per MiniLM backend it prints p50/p95 of:

- ``hooks, precomputed``: ``screen_prompt`` + ``screen_documents`` as a request runs them after
  ``groundwire sync`` (chunk scores stored by ``annotate_chunks``), the prompt embedding included;
- ``added to the request``: the same minus the prompt embedding, which retrieval needs anyway and takes
  from the shared memo (so this is what turning the shield on costs);
- ``hooks, live (cold)``: chunks without stored scores and an empty segment cache (an index built before
  precomputation existed), the worst case;
- the ingestion price: ``annotate_chunks`` throughput in chunks/s.

``--pipeline`` also runs real requests through :class:`groundwire.Grounder` (a knowledge base of the same
chunks in embedded Chroma, top_k 10; clean documents only, so that nothing is withheld and generation
does the same work in every run) with everything on, with the prompt shield off, and with all
screening plugins off, and prints the p50s and differences.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from groundwire import AccessControl, GroundingRequest, UserContext, config_from_dict
from groundwire.chunking import split_text
from groundwire.models import Chunk
from groundwire.plugins import prompt_shield as ps
from groundwire.plugins.embedders import bundled_model_path, query_embedding

from benchmarks.prompt_shield import read_rows

CITIES = ["Budapest", "Vienna", "Lisbon", "Oslo", "Tallinn", "Porto", "Ghent", "Turku", "Brno", "Cork"]


def prompts(n: int) -> list[str]:
    """Distinct, realistic questions (each one misses the query-embedding memo)."""
    return [f"What were the results of the {1990 + i % 35} qualifiers in {CITIES[i % 10]}, round {i}?"
            for i in range(n)]


def chunks_of(rows: Sequence[dict[str, str]], limit: int) -> list[Chunk]:
    out: list[Chunk] = []
    for r, row in enumerate(rows):
        for j, text in enumerate(split_text(row.get("document") or row.get("text") or "", 800, 120)):
            out.append(Chunk(id=f"r{r}:{j}", doc_id=f"r{r}", connector="kb", tenant="acme", text=text,
                             title=f"doc {r}", uri=f"https://kb.example/{r}", location="",
                             acl=AccessControl.of(["everyone"]), position=j))
        if len(out) >= limit:
            break
    return out[:limit]


def _stats(ms: list[float]) -> str:
    return f"p50={np.percentile(ms, 50):7.2f} ms  p95={np.percentile(ms, 95):7.2f} ms"


def hooks(chunks: list[Chunk], backend: str, requests: int) -> dict[str, list[float]]:
    config = config_from_dict({"embedder": {"name": "minilm", "options": {"backend": backend}}})
    path = bundled_model_path()
    ps.screen_prompt(request=GroundingRequest(UserContext.of("u", "acme"), "warm up"), config=config)
    from groundwire.plugins.embedders import MiniLMEmbedder

    emb = MiniLMEmbedder(backend=backend)
    from groundwire.ingest_embed import index_text_spans

    split = [index_text_spans(c.title, c.text) for c in chunks]  # what ingestion did: one run per chunk
    index_vecs, per = emb.embed_with_spans([ps.embed_text(c.text, c.title) for c in chunks], [sp for _, sp in split])
    t0 = time.perf_counter()
    notes = ps.annotate_chunks(chunks=chunks, config=config, embedder=emb,
                               vectors={c.id: v for c, v in zip(chunks, index_vecs, strict=True)},
                               sentence_vectors={c.id: (ss, pv) for c, (ss, _), pv in zip(chunks, split, per,
                                                                                         strict=True)}) or {}
    annotate_s = time.perf_counter() - t0
    stored = [replace(c, annotations=notes[c.id]) for c in chunks]
    rng = np.random.default_rng(0)
    out: dict[str, list[float]] = {"precomputed": [], "added": [], "live_cold": [],
                                   "annotate_chunks_per_s": [len(chunks) / annotate_s]}
    qs = prompts(3 * requests)
    for i in range(requests):
        pick = rng.choice(len(chunks), 10, replace=False)
        for mode, prompt in (("precomputed", qs[3 * i]), ("live_cold", qs[3 * i + 1]), ("added", qs[3 * i + 2])):
            got = [stored[j] for j in pick] if mode != "live_cold" else [chunks[j] for j in pick]
            ps.clear_cache()
            request = GroundingRequest(UserContext.of("u", "acme"), prompt)
            if mode == "added":  # retrieval embeds the prompt anyway; the shield then takes it from the memo
                query_embedding(path, backend, prompt)
            t1 = time.perf_counter()
            ps.screen_prompt(request=request, config=config)
            ps.screen_documents(request=request, chunks=got, config=config)
            out[mode].append((time.perf_counter() - t1) * 1000)
    return out


def pipeline(chunks: list[Chunk], backend: str, requests: int) -> dict[str, list[float]]:
    """Real requests through Grounder, shield on and off, over a knowledge base of the same chunk texts."""
    from groundwire import Grounder

    out: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "kb"
        root.mkdir()
        (root / ".groundwire-acl.toml").write_text('allow = ["everyone"]\n')
        for c in chunks:
            (root / f"{c.id.replace(':', '_')}.md").write_text(f"# {c.title}\n\n{c.text}\n")
        every = ["prompt_shield", "pii", "groundedness", "content_safety"]
        for name, disabled in (("shield on", []), ("shield off", ["prompt_shield"]), ("all screening off", every)):
            cfg = config_from_dict({
                "data_dir": str(Path(tmp) / name.replace(" ", "-")), "default_tenant": "acme",
                "embedder": {"name": "minilm", "options": {"backend": backend}},
                "retrieval": {"top_k": 10}, "features": {"ask": ["*"]},
                "plugins": {"load_entrypoints": False, "disabled": disabled},
                "connectors": {"kb": {"type": "knowledge_base", "tenant": "acme", "path": str(root)}},
            })
            g = Grounder(cfg)
            t0 = time.perf_counter()
            report = g.sync()[0]
            print(f"  [{backend}] {name}: sync of {report.chunks} chunks took {time.perf_counter() - t0:.1f}s "
                  f"(annotate {report.annotate_seconds:.1f}s, embed {report.embed_seconds:.1f}s)")
            g.ground("warm up the caches", "u")
            times = []
            for p in prompts(requests + 1)[1:]:
                t1 = time.perf_counter()
                g.ground(p + f" ({name})", "u")  # a different prompt per system: no memo hit
                times.append((time.perf_counter() - t1) * 1000)
            out[name] = times
    return out


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--data", required=True, help="labelled indirect JSONL (documents)")
    ap.add_argument("--backends", default="onnx,torch")
    ap.add_argument("--chunks", type=int, default=400)
    ap.add_argument("--requests", type=int, default=100)
    ap.add_argument("--pipeline", action="store_true", help="also time real Grounder requests, shield on/off")
    args = ap.parse_args(argv)
    rows = read_rows(args.data)
    chunks = chunks_of(rows, args.chunks)
    print(f"{len(chunks)} chunks from {args.data}; {args.requests} requests of prompt + 10 chunks; "
          f"{os.cpu_count()} CPUs")
    for backend in args.backends.split(","):
        r: dict[str, Any] = hooks(chunks, backend, args.requests)
        print(f"[{backend}] hooks, precomputed (prompt embedding included): {_stats(r['precomputed'])}")
        print(f"[{backend}] added to the request (prompt embedding shared): {_stats(r['added'])}")
        print(f"[{backend}] hooks, live (cold segment cache):            {_stats(r['live_cold'])}")
        print(f"[{backend}] ingestion: annotate_chunks {r['annotate_chunks_per_s'][0]:.1f} chunks/s")
        if args.pipeline:  # clean chunks only: with nothing withheld, generation does the same work in each run
            p = pipeline(chunks_of([r for r in rows if r.get("label") == "clean"], args.chunks), backend, args.requests)
            on, off, none = (np.percentile(p[k], 50) for k in ("shield on", "shield off", "all screening off"))
            print(f"[{backend}] Grounder.ground p50: everything on {on:.2f} ms; prompt shield off {off:.2f} ms "
                  f"(shield adds {on - off:+.2f} ms); all screening off {none:.2f} ms "
                  f"(prompt shield, PII, groundedness and content safety together add {on - none:+.2f} ms)")


if __name__ == "__main__":
    main()
