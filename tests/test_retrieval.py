"""The fast retrieval path (groundwire.retrieval) against real Chroma: permission equivalence with the
Chroma ``where`` filter (hypothesis), the selectivity planner, cache invalidation and hybrid filtering."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from groundwire import AccessControl
from groundwire.index import Index, make_client, principal_filter
from groundwire.models import Chunk
from groundwire.retrieval import FastRetriever
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .conftest import kb, pay_and_office_corpus

PRINCIPALS = ["everyone", "user:ann", "user:bob", "group:hr", "group:eng", "role:admin"]
CONNECTORS = ["kb", "wiki"]
DIM = 8
_tenants = itertools.count()


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory):
    return make_client("embedded", tmp_path_factory.mktemp("chroma"))


def fresh_tenant(client, dim: int = DIM):
    index = Index(client, "test-model", dim)
    return index.tenant(f"t{next(_tenants)}")


def make_chunk(tenant: str, i: int, connector: str, allow, deny, text: str = "") -> Chunk:
    return Chunk(
        id=f"c{i}", doc_id=f"d{i}", connector=connector, tenant=tenant, text=text or f"chunk {i}",
        title=f"doc {i}", uri=f"file:///d{i}", location="", acl=AccessControl.of(allow, deny), position=0,
    )


def fill(tindex, specs, vectors, texts=None) -> None:
    chunks = [
        make_chunk(tindex.tenant, i, conn, allow, deny, texts[i] if texts else "")
        for i, (conn, allow, deny) in enumerate(specs)
    ]
    tindex.add_document_chunks(chunks, np.asarray(vectors, dtype=np.float32), "v1", "h1")


def chroma_allowed(tindex, principals, connectors) -> set[str]:
    """The slow path's filter, evaluated by Chroma itself."""
    got = tindex.collection.get(where=principal_filter(principals, connectors), include=[])
    return set(got["ids"])


subsets = st.sets(st.sampled_from(PRINCIPALS), max_size=3)
chunk_spec = st.tuples(st.sampled_from(CONNECTORS), subsets, st.sets(st.sampled_from(PRINCIPALS), max_size=1))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    specs=st.lists(chunk_spec, min_size=1, max_size=30),
    user=st.sets(st.sampled_from(PRINCIPALS), min_size=1, max_size=3),
    connectors=st.sets(st.sampled_from(CONNECTORS), min_size=1),
    k=st.integers(1, 8),
    exact_max_rows=st.sampled_from([0, 3, 10_000]),
    seed=st.integers(0, 2**16),
)
def test_fast_path_matches_chroma_permission_filter(client, specs, user, connectors, k, exact_max_rows, seed):
    tindex = fresh_tenant(client)
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(len(specs), DIM))
    fill(tindex, specs, vectors)
    fast = FastRetriever(tindex, exact_max_rows=exact_max_rows, overfetch=1.0)
    q = rng.normal(size=DIM)
    conns = sorted(connectors)
    allowed = chroma_allowed(tindex, user, conns)
    result = fast.search(q, user, conns, k)
    ids = [h.id for h in result.hits]
    assert set(ids) <= allowed
    assert len(ids) == len(set(ids)) == min(k, len(allowed))
    assert result.permitted == len(allowed)
    # the slow path agrees on what is permitted
    assert {c.id for c in tindex.query(q, user, conns, k)} <= allowed
    if result.plan == "exact":  # exact search: the true top-k by cosine over the permitted rows
        unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
        cos = {f"c{i}": float(unit[i] @ (q / np.linalg.norm(q))) for i in range(len(specs))}
        expected = sorted(allowed, key=lambda c: -cos[c])[:k]
        assert [round(cos[i], 5) for i in ids] == [round(cos[i], 5) for i in expected]
    every = [f"c{i}" for i in range(len(specs))]
    assert {c.id for c in tindex.get_chunks(every, user, conns)} == allowed  # same filter as Chroma's where
    chunks = fast.retrieve(q, user, conns, k)
    assert [c.id for c in chunks] == ids
    assert all(c.acl.grants(frozenset(user)) for c in chunks)


def test_planner_exact_for_small_permitted_set(client):
    tindex = fresh_tenant(client)
    rng = np.random.default_rng(1)
    specs = [("kb", {"group:hr"} if i < 5 else {"everyone"}, set()) for i in range(60)]
    fill(tindex, specs, rng.normal(size=(60, DIM)))
    fast = FastRetriever(tindex, exact_max_rows=10)
    res = fast.search(rng.normal(size=DIM), {"group:hr"}, ["kb"], 3)
    assert (res.plan, res.permitted, len(res.hits)) == ("exact", 5, 3)
    res = fast.search(rng.normal(size=DIM), {"everyone"}, ["kb"], 3)
    assert (res.plan, res.permitted, len(res.hits)) == ("ann", 55, 3)


def test_blas_limit_gives_the_same_results_and_restores_threads(client):
    from threadpoolctl import threadpool_info

    tindex = fresh_tenant(client)
    rng = np.random.default_rng(3)
    fill(tindex, [("kb", {"everyone"}, set()) for _ in range(300)], rng.normal(size=(300, DIM)))
    before = [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]
    q = rng.normal(size=DIM)
    limited = FastRetriever(tindex, blas_threads=1).search(q, {"everyone"}, ["kb"], 10)
    free = FastRetriever(tindex, blas_threads=0).search(q, {"everyone"}, ["kb"], 10)
    assert [h.id for h in limited.hits] == [h.id for h in free.hits] and len(limited.hits) == 10
    assert np.allclose([h.score for h in limited.hits], [h.score for h in free.hits], atol=1e-6)
    assert [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"] == before


def test_planner_falls_back_to_exact_when_ann_would_be_short(client):
    tindex = fresh_tenant(client)
    # the query points at the 40 public rows; the 4 rows user:bob may read point the other way
    vectors = [[1.0] + [0.0] * (DIM - 1)] * 40 + [[-1.0] + [0.1 * j] + [0.0] * (DIM - 2) for j in range(4)]
    specs = [("kb", {"group:eng"}, set())] * 40 + [("kb", {"user:bob"}, set())] * 4
    fill(tindex, specs, np.asarray(vectors) + np.random.default_rng(2).normal(scale=0.01, size=(44, DIM)))
    fast = FastRetriever(tindex, exact_max_rows=0, overfetch=1.0, ann_min_candidates=0)
    res = fast.search(vectors[0], {"user:bob"}, ["kb"], 2)  # over-fetches 22 ids: all group:eng
    assert res.plan == "ann+exact"
    assert len(res.hits) == 2 and {h.id for h in res.hits} <= {f"c{i}" for i in range(40, 44)}


def test_deny_wins_and_connector_restriction(client):
    tindex = fresh_tenant(client)
    specs = [("kb", {"everyone"}, {"group:hr"}), ("wiki", {"everyone"}, set()), ("kb", {"group:hr"}, set())]
    fill(tindex, specs, np.eye(3, DIM))
    fast = FastRetriever(tindex)
    assert {h.id for h in fast.search(np.ones(DIM), {"everyone", "group:hr"}, ["kb"], 5).hits} == {"c2"}
    assert {h.id for h in fast.search(np.ones(DIM), {"everyone"}, ["kb", "wiki"], 5).hits} == {"c0", "c1"}
    with pytest.raises(ValueError):
        fast.search(np.ones(DIM), {"nobody:"}, ["kb"], 5)


def test_revoked_acl_disappears_immediately_after_write(client):
    tindex = fresh_tenant(client)
    fill(tindex, [("kb", {"group:hr"}, set()), ("kb", {"everyone"}, set())], np.eye(2, DIM))
    fast = FastRetriever(tindex, refresh_seconds=3600)
    assert {h.id for h in fast.search(np.ones(DIM), {"group:hr"}, ["kb"], 5).hits} == {"c0"}
    tindex.update_acl("kb", "d0", AccessControl.of(["user:ann"]), "v2")
    assert fast.search(np.ones(DIM), {"group:hr"}, ["kb"], 5).hits == []
    assert {h.id for h in fast.search(np.ones(DIM), {"user:ann"}, ["kb"], 5).hits} == {"c0"}
    assert fast.reloads == 2


def test_write_from_another_process_cannot_leak(client, tmp_path):
    tindex = fresh_tenant(client)
    fill(tindex, [("kb", {"group:hr"}, set()), ("kb", {"group:hr"}, set())], np.eye(2, DIM))
    fast = FastRetriever(tindex, refresh_seconds=3600)
    assert len(fast.retrieve(np.ones(DIM), {"group:hr"}, ["kb"], 5)) == 2
    # another writer (its own client and TenantIndex, as a second process would have): generation unseen
    other = Index(make_client("embedded", Path(client.get_settings().persist_directory)), "test-model", DIM)
    other.tenant(tindex.tenant).update_acl("kb", "d0", AccessControl.of(["user:ann"]), "v2")
    got = fast.retrieve(np.ones(DIM), {"group:hr"}, ["kb"], 5)
    assert [c.id for c in got] == ["c1"]  # get_chunks re-filtered in Chroma, and the cache reloaded
    assert fast.reloads == 2
    assert [h.id for h in fast.search(np.ones(DIM), {"user:ann"}, ["kb"], 5).hits] == ["c0"]


def test_hybrid_bm25_only_scores_permitted_rows(client):
    pytest.importorskip("bm25s")
    tindex = fresh_tenant(client)
    texts = ["the secret salary budget for next year", "holiday calendar and office hours",
             "salary payday is the 25th of each month", "parking rules"]
    specs = [("kb", {"group:hr"}, set()), ("kb", {"everyone"}, set()), ("kb", {"everyone"}, set()),
             ("kb", {"everyone"}, {"user:ann"})]
    fill(tindex, specs, np.eye(4, DIM), texts)
    fast = FastRetriever(tindex, hybrid=True, candidates=10)
    q = np.eye(1, DIM, 1).ravel()  # dense favours c1; lexically "salary budget" matches c0 best
    res = fast.search(q, {"everyone", "user:ann"}, ["kb"], 3, text="salary budget")
    ids = [h.id for h in res.hits]
    assert res.plan == "exact+bm25"
    assert "c0" not in ids and "c3" not in ids
    assert ids[0] in {"c1", "c2"} and set(ids) == {"c1", "c2"}
    hr = fast.search(q, {"group:hr"}, ["kb"], 3, text="salary budget")
    assert [h.id for h in hr.hits] == ["c0"]
    # revoked after a write: gone from BM25 too
    tindex.update_acl("kb", "d2", AccessControl.of(["group:hr"]), "v2")
    res = fast.search(q, {"everyone", "user:ann"}, ["kb"], 3, text="salary payday")
    assert [h.id for h in res.hits] == ["c1"]


def test_grounder_sync_revocation_in_auto_mode(tmp_path, make_grounder):
    corpus = pay_and_office_corpus(tmp_path)
    g = make_grounder({"kb": kb(corpus)}, retrieval={"mode": "auto", "refresh_seconds": 3600, "min_score": -1.0})
    g.sync()
    request = g._request("When is salary paid?", g.make_user("hana", groups=["hr"]), "ask", 5, None)
    assert any(c.doc_id.endswith("pay.md") for c in g.retrieve(request))
    (corpus / "pay.md.acl.toml").write_text('allow = ["group:finance"]\n')
    g.sync()
    got = g.retrieve(request)
    assert got and not any(c.doc_id.endswith("pay.md") for c in got)
    assert g.fast_retriever("acme").reloads == 2


def test_warm_up_loads_the_snapshot_before_the_first_request(tmp_path, make_grounder):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / ".groundwire-acl.toml").write_text('allow = ["everyone"]\n')
    (corpus / "open.md").write_text("# Office\n\nThe office opens at 8 and closes at 18.\n")
    g = make_grounder(
        {"kb": kb(corpus)},
        retrieval={"refresh_seconds": 3600, "min_score": -1.0},
        plugins={"load_entrypoints": False, "settings": {"prompt_shield": {"use_model": False}}},
    )
    g.sync()
    spent = g.warm_up()
    assert set(spent) == {"embedder", "screening:acme", "retrieval:acme"}
    fast = g.fast_retriever("acme")
    assert fast.reloads == 1
    request = g._request("When does the office open?", g.make_user("sam"), "ask", 5, None)
    assert g.retrieve(request) and fast.reloads == 1  # the request used the warmed snapshot
