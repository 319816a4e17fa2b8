"""A whole ``Grounder.ground`` request at scale, and LangChain's equivalent extractive pipeline beside it.

    python -m benchmarks.ground_scale [--size 100000] [--requests 60] [--repeats 3] [--quick]

The tenant (cached under ``benchmarks/.cache/ground-<size>/``) holds ``size`` chunks of real text: SciFact
sentences (a pool of ``--pool`` sentences, each embedded once with the bundled MiniLM) packed five to a
chunk in varied combinations, one sentence per paragraph. Building it uses the index API with precomputed
vectors: a chunk's vector is the normalised mean of its sentences' MiniLM vectors (not MiniLM's vector of
the whole chunk: that would take hours to embed here), and the annotations are made by the product's own
``annotate_chunks`` hooks (extractive sentence vectors, prompt-shield precompute) with the embedding calls
answered from the pool's vectors, sentence spans composed from the pool sentences' and the shield's per-unit
character features computed once per pool sentence (see :func:`_build_shortcuts`); the index and LangChain
writes of one batch run in two threads while the next batch is annotated. A stale tenant (the build format
or an annotation version changed) is deleted and built again. Rows are spread over ten ACL groups
(``group:g0`` .. ``group:g9``) and 2% of rows deny the benchmark user, so the user (in ``group:g0``) may read
~10% of them.

The request path is the product's: ``Grounder.ground`` with the extractive generator, ``[retrieval] hybrid
= true``, every screening hook on (prompt shield on the prompt and the chunks, content safety, PII,
groundedness), the audit log with its default fsync, encryption at rest on, the review queue. Each request
is a distinct SciFact claim (no query-cache hits); a request fails the run when the MiniLM encoder ran on
anything but its prompt and the prompt shield's readings of it (:func:`prompt_only`: no retrieved chunk
re-scored or re-embedded because its stored annotations were stale). Figures: p50/p95 of each of
``--repeats`` rounds and the median of the rounds' p50s; also the process CPU time per request (all threads,
p50), which depends less on what else the machine runs than wall time does (it leaves out waiting for fsync
and for a core).

LangChain's equivalent: its Chroma vector store over a plain collection with the same vectors, texts and an
``acl`` metadata field filtered to the same ~10% (``filter={"acl": "g0"}``), as a retriever of the same top
k, under ``ContextualCompressionRetriever`` whose compressor is a ``DocumentCompressorPipeline`` of a
sentence splitter and ``EmbeddingsFilter`` (same MiniLM on the same ONNX Runtime encoder, ``k`` = the
extractive generator's ``max_sentences``); the draft is the kept sentences joined. No screening, audit or
encryption on that side.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import json
import os
import shutil
import statistics
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import common

USER = "bench@example.com"
GROUPS = ["g0"]
N_GROUPS = 10
PER_CHUNK = 5
TOP_K = 5
STEP = 2000  # chunks per build batch
# bumped when the index's write path changes what a cached tenant must hold (3: the ACL store; 4: payloads
# in the gw_payload metadata key, index layout 2)
BUILD_FORMAT = 4


def _build_key() -> dict[str, Any]:
    """What a cached tenant must match to be reused: the build format and the versions of the annotations it
    stores (a tenant whose stored sentence vectors or shield scores are stale would measure the query-time
    fallback, every retrieved chunk run through the model again, instead of the request path)."""
    from groundwire.plugins import extractive
    from groundwire.plugins.prompt_shield.scoring import indirect_version

    return {"format": BUILD_FORMAT, "extractive": extractive._VERSION, "shield": indirect_version()}


def _folder(size: int) -> Path:
    return common.CACHE / f"ground-{size}"


#: ``--document-threshold`` (default 1.0): the prompt shield's document (classifier) threshold for the timed
#: requests (``None``: the shipped default). The
#: build's unit vectors are standalone pool vectors, not late-chunked ones (see :func:`build`), and the shipped
#: head reads their contrast to the chunk as planted text, so at the default threshold it withholds most
#: retrieved chunks and most requests write no draft; a request applies a stored score either way, and 1.0 lets
#: the timed requests compose drafts from the chunks they retrieve (rules and every other hook unchanged).
DOCUMENT_THRESHOLD: float | None = 1.0


def config(size: int) -> dict[str, Any]:
    folder = _folder(size)
    (folder / "empty").mkdir(parents=True, exist_ok=True)
    shield = {} if DOCUMENT_THRESHOLD is None else {
        "plugins": {"settings": {"prompt_shield": {"document_threshold": DOCUMENT_THRESHOLD}}}}
    return {**shield,
        "data_dir": str(folder / "data"), "default_tenant": "acme",
        "embedder": {"name": "minilm"}, "generator": {"name": "extractive"},
        "retrieval": {"hybrid": True, "top_k": TOP_K},
        "features": {"ask": ["*"]},
        "encryption": {"enabled": True, "provider": "file",
                       "options": {"path": str(folder / "keys"), "create": True}},
        "connectors": {"kb": {"type": "knowledge_base", "tenant": "acme", "path": str(folder / "empty"),
                              "default_allow": ["everyone"]}},
    }


def grounder(size: int) -> Any:
    from groundwire import Grounder, config_from_dict

    return Grounder(config_from_dict(config(size), base_dir=_folder(size)))


def sentence_pool(count: int) -> list[str]:
    """SciFact sentences the extractive generator would quote (12..300 characters), in corpus order."""
    from groundwire.plugins.extractive import candidate_sentences

    from benchmarks.beir import load_corpus as load_beir

    out: list[str] = []
    seen: set[str] = set()
    for body in load_beir(common.SCIFACT).values():
        for s in candidate_sentences(body):
            s = " ".join(s.split())
            if len(s) <= 300 and s.casefold() not in seen:
                seen.add(s.casefold())
                out.append(s)
        if len(out) >= count:
            return out[:count]
    return out


def _layout(size: int, pool: int, seed: int = 5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sentence indices per chunk (varied combinations), ACL group per chunk, deny flags."""
    rng = np.random.default_rng(seed)
    start = rng.integers(0, pool, size)
    step = rng.integers(1, max(2, pool // PER_CHUNK), size)
    sents = (start[:, None] + step[:, None] * np.arange(PER_CHUNK)[None, :]) % pool
    return sents, rng.integers(0, N_GROUPS, size), rng.random(size) < 0.02


class _PoolEmbedder:
    """Answers embedding calls for known texts from precomputed vectors (building only); others are
    embedded by ``inner``."""

    def __init__(self, inner: Any, known: dict[str, np.ndarray]) -> None:
        self.inner, self.known = inner, known
        self.model_id, self.dimension, self.misses = inner.model_id, inner.dimension, 0

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        out = [self.known.get(t) for t in texts]
        todo = [i for i, v in enumerate(out) if v is None]
        if todo:
            self.misses += len(todo)
            fresh = self.inner.embed_documents([texts[i] for i in todo])
            for i, v in zip(todo, fresh, strict=True):
                out[i] = self.known[texts[i]] = np.asarray(v, dtype=np.float32)
        return np.vstack(out) if out else np.zeros((0, self.dimension), np.float32)


class _AsSpans:
    """``inner`` presented as an embedder that pools spans (building only, see :func:`build`)."""

    pools_spans = True

    def __init__(self, inner: _PoolEmbedder) -> None:
        self.inner, self.model_id, self.dimension = inner, inner.model_id, inner.dimension

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        return self.inner.embed_documents(texts)


def _composed_spans(pool: Sequence[str]) -> Any:
    """A stand-in for :func:`groundwire.sentences._spans` while building: a chunk text made of pool
    sentences, one per paragraph, gets the pool sentences' own spans (the splitter's, computed once per
    pool sentence) shifted to where each paragraph starts; any other text goes to the splitter. A blank
    line always ends a sentence, so this is what the splitter gives the whole text; :func:`build` checks it
    on a sample of chunks against the splitter itself."""
    from groundwire import sentences

    real = sentences._spans
    own = {t: real(t) for t in pool}

    def spans(text: str) -> tuple[tuple[int, int], ...]:
        parts = text.split("\n\n")
        if not all(p in own for p in parts):
            return real(text)
        out: list[tuple[int, int]] = []
        at = 0
        for p in parts:
            out.extend((at + a, at + b) for a, b in own[p])
            at += len(p) + 2
        return tuple(out)

    return real, spans


@contextlib.contextmanager
def _build_shortcuts(pool: Sequence[str], lookup: _PoolEmbedder) -> Iterator[Any]:
    """While building: the shield's model calls answered from the pool's vectors, sentence spans composed
    from the pool's (:func:`_composed_spans`), and the shield's per-unit character features (a pure function
    of the unit's text; the pool's few hundred sentences recur in every chunk) computed once per unit. The
    stored annotations are the product's hooks' output for these inputs, of the current versions. Yields
    the splitter's own span function."""
    from groundwire import sentences
    from groundwire.plugins.prompt_shield import indirect_model, scoring

    real_embed, real_chars = scoring.embed, indirect_model.char_features
    real_spans, spans = _composed_spans(pool)
    scoring.embed = lambda texts, backend="auto": lookup.embed_documents(list(texts))  # type: ignore[assignment]
    indirect_model.char_features = functools.lru_cache(maxsize=None)(real_chars)  # type: ignore[assignment]
    sentences._spans = spans  # type: ignore[assignment]
    try:
        yield real_spans
    finally:
        scoring.embed = real_embed  # type: ignore[assignment]
        indirect_model.char_features = real_chars  # type: ignore[assignment]
        sentences._spans = real_spans  # type: ignore[assignment]


SPAN_CHECKS = 200  # chunks whose composed sentence spans are compared with the splitter's own


def build(size: int, pool_size: int, progress: bool = True) -> Any:
    """Build (once) the cached tenant and the LangChain collection; return the Grounder.

    Batches of :data:`STEP` chunks: the main thread makes a batch's chunks and annotations while two writer
    threads store the previous batch, one in the tenant's index (the product's write path, Chroma's upsert
    runs without the GIL), one in the LangChain collection."""
    from concurrent.futures import Future, ThreadPoolExecutor

    from groundwire import AccessControl, sentences, split_sentences
    from groundwire.models import Chunk
    from groundwire.plugins import extractive
    from groundwire.plugins.prompt_shield import plugin as shield
    from groundwire.plugins.prompt_shield import scoring

    folder = _folder(size)
    done = folder / "built.json"
    key = _build_key()
    if done.is_file() and {k: json.loads(done.read_text()).get(k) for k in key} == key:
        g = grounder(size)
        if g.index.tenant("acme").count() != size:
            raise SystemExit(f"{folder} does not hold the {size} chunks {done} records: delete the folder")
        return g
    # stale (annotation versions or build format changed) or unfinished: start again from an empty tenant
    done.unlink(missing_ok=True)
    for sub in ("data", "langchain"):
        shutil.rmtree(folder / sub, ignore_errors=True)
    g = grounder(size)
    tindex = g.index.tenant("acme")
    pool = sentence_pool(pool_size)
    vec_file = folder / f"pool-{len(pool)}.npy"
    if vec_file.is_file():
        pvec = np.load(vec_file)
    else:
        if progress:
            print(f"  embedding {len(pool)} SciFact sentences with MiniLM (cached afterwards) ...", flush=True)
        pvec = np.vstack([g.embedder.embed_documents(pool[i : i + 256]) for i in range(0, len(pool), 256)])
        np.save(vec_file, pvec.astype(np.float32))
    known = {s: v for s, v in zip(pool, pvec, strict=True)}
    lookup = _PoolEmbedder(g.embedder, known)
    for t in pool:  # the shield embeds the normalised segment; MiniLM is uncased and whitespace-blind
        known.setdefault(scoring.for_model(t), known[t])
    sents, group, denied = _layout(size, len(pool))
    lc = _lc_collection(size, reset=True)
    t0 = time.perf_counter()
    checked = 0
    busy = {"annotate": 0.0, "index": 0.0, "langchain": 0.0}  # seconds per part (the writers overlap it)

    def timed(part: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        s0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            busy[part] += time.perf_counter() - s0

    with _build_shortcuts(pool, lookup) as splitter, ThreadPoolExecutor(2, thread_name_prefix="bench-write") as writers:
        pending: list[Future[Any]] = []
        for lo in range(0, size, STEP):
            hi = min(size, lo + STEP)
            a0 = time.perf_counter()
            chunks, lc_ids, lc_docs, lc_meta = [], [], [], []
            for i in range(lo, hi):
                text = "\n\n".join(pool[j] for j in sents[i])
                acl = AccessControl.of([f"group:g{group[i]}", f"user:owner{i % 997}"],
                                       [f"user:{USER}"] if denied[i] else [])
                chunks.append(Chunk(id=f"c{i}", doc_id=f"d{i // 2}", connector="kb", tenant="acme", text=text,
                                    title=f"SciFact note {i // 2}", uri=f"https://kb.example/{i // 2}",
                                    location="", acl=acl, position=i % 2))
                lc_ids.append(f"c{i}")
                lc_docs.append(text)
                lc_meta.append({"acl": "none" if denied[i] else f"g{group[i]}"})
            for c in chunks[: max(0, SPAN_CHECKS - checked)]:
                if sentences._spans(c.text) != splitter(c.text):
                    raise RuntimeError(f"composed sentence spans differ from the splitter's for chunk {c.id}")
                checked += 1
            vec = pvec[sents[lo:hi]].mean(axis=1)
            vec /= np.linalg.norm(vec, axis=1, keepdims=True)
            notes: dict[str, dict[str, Any]] = {}
            by_id = dict(zip([c.id for c in chunks], vec, strict=True))
            alone = {c.id: (ss, lookup.embed_documents(ss)) for c in chunks  # sentences embedded alone
                     for ss in [split_sentences(c.text)]}
            # the shield's head reads the same pool vectors as if they came from the chunk's run (a model run
            # per chunk would take the build an hour): its stored scores are of the right kind and version,
            # which is what a latency figure needs; their values are not a quality figure
            for part in (extractive.annotate_chunks(chunks, g.config, lookup, by_id, alone),
                         shield.annotate_chunks(chunks, g.config, _AsSpans(lookup), by_id, alone)):
                for cid, note in (part or {}).items():
                    notes.setdefault(cid, {}).update(note)
            chunks = [dataclasses.replace(c, annotations=notes.get(c.id, {})) for c in chunks]
            busy["annotate"] += time.perf_counter() - a0
            for f in pending:  # one batch in flight per writer
                f.result()
            pending = [writers.submit(timed, "index", tindex.add_document_chunks, chunks, vec, "v1", "h"),
                       writers.submit(timed, "langchain", lc.add, ids=lc_ids, embeddings=vec, documents=lc_docs,
                                      metadatas=lc_meta)]
            if progress and ((hi // STEP) % 5 == 0 or hi == size):
                print(f"  stored {lo}/{size} chunks, annotated {hi} ({lo / (time.perf_counter() - t0):.0f}/s; "
                      + ", ".join(f"{k} {v:.0f} s" for k, v in busy.items())
                      + f"; {lookup.misses} texts embedded outside the pool)", flush=True)
        for f in pending:
            f.result()
    seconds = time.perf_counter() - t0
    if progress:
        print(f"  built {size} chunks in {seconds:.0f} s ({size / seconds:.0f}/s; "
              + ", ".join(f"{k} {v:.0f} s" for k, v in busy.items()) + ")", flush=True)
    done.write_text(json.dumps({**key, "size": size, "pool": len(pool), "seconds": seconds,
                                **{f"{k}_s": v for k, v in busy.items()}}))
    return g


def _lc_client(size: int) -> Any:
    import chromadb

    return chromadb.PersistentClient(path=str(_folder(size) / "langchain"),
                                     settings=chromadb.Settings(anonymized_telemetry=False))


def _lc_collection(size: int, reset: bool = False) -> Any:
    client = _lc_client(size)
    if reset:
        try:
            client.delete_collection("langchain-bench")
        except Exception:  # noqa: BLE001 - none yet
            pass
    return client.get_or_create_collection("langchain-bench", metadata={"hnsw:space": "cosine"})


def questions(count: int) -> list[str]:
    from benchmarks.beir import load_queries

    return list(dict.fromkeys(load_queries(common.SCIFACT).values()))[:count]  # SciFact repeats a few claims


def _stats(ms: list[float]) -> dict[str, float]:
    p50, p95 = np.percentile(np.asarray(ms), [50, 95])
    return {"p50": float(p50), "p95": float(p95)}


CPU: list[float] = []  # process CPU ms (all threads) of each timed request of the last round


@contextlib.contextmanager
def model_inputs() -> Iterator[list[str]]:
    """The texts the MiniLM encoder (ONNX Runtime: the embedder's, the prompt shield's and every fallback's
    model runs) is given inside the block, in order."""
    from groundwire.plugins.onnx_minilm import OnnxSentenceEncoder

    texts: list[str] = []
    names = ("encode", "encode_spans", "encode_tokens")  # every entry point that runs the model
    real = {n: getattr(OnnxSentenceEncoder, n) for n in names}

    def counting(fn: Any) -> Any:
        def run(self: Any, batch: Sequence[str], *args: Any, **kwargs: Any) -> Any:
            texts.extend(batch)
            return fn(self, batch, *args, **kwargs)
        return run

    for n in names:
        setattr(OnnxSentenceEncoder, n, counting(real[n]))
    try:
        yield texts
    finally:
        for n in names:
            setattr(OnnxSentenceEncoder, n, real[n])


def prompt_only(prompt: str, embedded: Sequence[str]) -> list[str]:
    """The texts of ``embedded`` that are neither the prompt nor one of the prompt shield's readings of it
    (its windows, decoded and leetspeak readings, cut to the tokens it embeds): what a request embeds beyond
    them is a retrieved chunk's text, sentence or unit, scored again because its stored annotation was not
    used. Empty when the request embedded nothing but the prompt."""
    from groundwire.plugins.prompt_shield.normalize import for_model
    from groundwire.plugins.prompt_shield.scoring import prompt_items

    allowed = [for_model(prompt), *prompt_items(prompt)]
    return [t for t in embedded if not any(a.startswith(for_model(t)) for a in allowed)]


MODEL_TEXTS: list[int] = []  # texts the encoder ran on in each timed request of the last round


def time_groundwire(g: Any, qs: list[str]) -> tuple[list[float], list[Any]]:
    """Times each request; raises when a request embedded anything but its prompt (:func:`prompt_only`)."""
    times, drafts = [], []
    CPU.clear()
    MODEL_TEXTS.clear()
    for q in qs:
        with model_inputs() as ran:
            c0, t0 = time.process_time(), time.perf_counter()
            d = g.ground(q, USER, groups=GROUPS)
            times.append((time.perf_counter() - t0) * 1000)
            CPU.append((time.process_time() - c0) * 1000)
        drafts.append(d)
        MODEL_TEXTS.append(len(ran))
        extra = prompt_only(q, ran)  # none embedded: the prompt's vector came from the process's query memo
        if extra:
            raise RuntimeError(f"a request embedded {len(ran)} texts, {len(extra)} of them not its prompt: "
                               "stored annotations were not used (a stale tenant?)")
    if qs and not any(MODEL_TEXTS):
        raise RuntimeError("no request embedded any text: the encoder was not instrumented")
    return times, drafts


class _LangChainMiniLM:
    """LangChain ``Embeddings`` over the same bundled MiniLM encoder (ONNX Runtime) Groundwire uses."""

    def __new__(cls) -> Any:
        from groundwire.plugins.embedders import MiniLMEmbedder
        from langchain_core.embeddings import Embeddings

        class MiniLM(Embeddings):
            def __init__(self) -> None:
                self.inner = MiniLMEmbedder()
                self.inner.warm_up()

            def embed_documents(self, texts: list[str]) -> list[list[float]]:
                return np.asarray(self.inner.embed_documents(texts)).tolist()

            def embed_query(self, text: str) -> list[float]:
                return np.asarray(self.inner.embed_query(text)).tolist()

        return MiniLM()


def langchain_pipeline(size: int, max_sentences: int = 4) -> Any:
    """Chroma retriever (metadata filter) + ContextualCompressionRetriever(splitter -> EmbeddingsFilter)."""
    import warnings

    from langchain_chroma import Chroma
    from langchain_classic.retrievers import ContextualCompressionRetriever
    from langchain_classic.retrievers.document_compressors import DocumentCompressorPipeline, EmbeddingsFilter
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    with warnings.catch_warnings():  # EmbeddingsFilter imports langchain_community, which warns it is sunset
        warnings.simplefilter("ignore", DeprecationWarning)
        import langchain_community.document_transformers.embeddings_redundant_filter  # noqa: F401
        import langchain_community.utils.math  # noqa: F401

    emb = _LangChainMiniLM()
    _lc_collection(size)
    store = Chroma(client=_lc_client(size), collection_name="langchain-bench", embedding_function=emb,
                   create_collection_if_not_exists=False)
    base = store.as_retriever(search_kwargs={"k": TOP_K, "filter": {"acl": GROUPS[0]}})
    splitter = RecursiveCharacterTextSplitter(chunk_size=300, chunk_overlap=0, separators=["\n\n", "\n", ". "])
    compressor = DocumentCompressorPipeline(transformers=[
        splitter, EmbeddingsFilter(embeddings=emb, k=max_sentences, similarity_threshold=None)])
    return ContextualCompressionRetriever(base_compressor=compressor, base_retriever=base)


def time_langchain(chain: Any, qs: list[str]) -> tuple[list[float], list[str]]:
    times, drafts = [], []
    CPU.clear()
    for q in qs:
        c0, t0 = time.process_time(), time.perf_counter()
        docs = chain.invoke(q)
        draft = " ".join(d.page_content for d in docs)
        times.append((time.perf_counter() - t0) * 1000)
        CPU.append((time.process_time() - c0) * 1000)
        drafts.append(draft)
    return times, drafts


def measure(size: int = 100_000, requests: int = 60, repeats: int = 3, pool: int = 1500,
            langchain: bool = True, progress: bool = True) -> dict[str, float]:
    """Build (once) and time both pipelines; figures keyed like benchmarks.run prints them."""
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    g = build(size, pool, progress)
    t0 = time.perf_counter()
    g.warm_up()
    out: dict[str, float] = {f"ground_warm_up_s[{size}]": time.perf_counter() - t0}
    qs = questions(5 + requests * repeats + 5)
    for q in qs[:5]:
        g.ground(q, USER, groups=GROUPS)  # first calls: generator floor, caches
    gw_p50s, gw_p95s, gw_cpu, cited, withheld = [], [], [], 0, 0
    model_texts: list[int] = []
    for r in range(repeats):
        times, drafts = time_groundwire(g, qs[5 + r * requests : 5 + (r + 1) * requests])
        model_texts.extend(MODEL_TEXTS)
        s = _stats(times)
        gw_cpu.append(float(np.median(CPU)))
        gw_p50s.append(s["p50"])
        gw_p95s.append(s["p95"])
        cited += sum(1 for d in drafts if d.citations)
        withheld += sum(d.withheld_sources for d in drafts)
        if progress:
            print(f"  ground() round {r + 1}: p50 {s['p50']:.1f} ms  p95 {s['p95']:.1f} ms", flush=True)
    out[f"ground_p50_ms[groundwire,{size}]"] = statistics.median(gw_p50s)
    out[f"ground_p95_ms[groundwire,{size}]"] = statistics.median(gw_p95s)
    out[f"ground_cpu_ms_p50[groundwire,{size}]"] = statistics.median(gw_cpu)
    out[f"ground_drafts_with_citations[{size}]"] = cited / (requests * repeats)
    out[f"ground_withheld_per_request[{size}]"] = withheld / (requests * repeats)
    # texts the model ran on per request (the prompt, and the shield's other readings of it: a claim with
    # digits has a leetspeak reading, embedded separately); never a chunk's (time_groundwire checks)
    out[f"ground_model_texts_per_request[{size}]"] = float(np.mean(model_texts))
    if langchain:
        chain = langchain_pipeline(size)
        for q in qs[:5]:
            chain.invoke(q)
        lc_p50s, lc_p95s, lc_cpu = [], [], []
        for r in range(repeats):
            times, _ = time_langchain(chain, qs[5 + r * requests : 5 + (r + 1) * requests])
            s = _stats(times)
            lc_cpu.append(float(np.median(CPU)))
            lc_p50s.append(s["p50"])
            lc_p95s.append(s["p95"])
            if progress:
                print(f"  langchain round {r + 1}: p50 {s['p50']:.1f} ms  p95 {s['p95']:.1f} ms", flush=True)
        out[f"ground_p50_ms[langchain,{size}]"] = statistics.median(lc_p50s)
        out[f"ground_p95_ms[langchain,{size}]"] = statistics.median(lc_p95s)
        out[f"ground_cpu_ms_p50[langchain,{size}]"] = statistics.median(lc_cpu)
        out[f"ground_ratio[langchain/groundwire,{size}]"] = (
            out[f"ground_p50_ms[langchain,{size}]"] / out[f"ground_p50_ms[groundwire,{size}]"])
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=100_000)
    ap.add_argument("--requests", type=int, default=60)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--pool", type=int, default=1500, help="distinct SciFact sentences the chunks are made of")
    ap.add_argument("--no-langchain", action="store_true")
    ap.add_argument("--document-threshold", type=float, default=1.0,
                    help="the prompt shield's document threshold for the timed requests (see DOCUMENT_THRESHOLD; "
                         "a negative value: the shipped default)")
    ap.add_argument("--quick", action="store_true", help="2,000 chunks, 10 requests, 1 round (a smoke run)")
    a = ap.parse_args(argv)
    global DOCUMENT_THRESHOLD
    DOCUMENT_THRESHOLD = None if a.document_threshold < 0 else a.document_threshold
    if a.quick:
        a.size, a.requests, a.repeats, a.pool = 2000, 10, 1, 400
    figures = measure(a.size, a.requests, a.repeats, a.pool, not a.no_langchain)
    for key, val in figures.items():
        print(f"{key}: {val:.2f}")


if __name__ == "__main__":
    main()
