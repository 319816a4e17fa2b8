"""Tenant isolation, attacked: identical principal names across tenants, another tenant's connector
named in the request, forged chunks, and a collection that claims the wrong tenant."""

from __future__ import annotations

import pytest
from groundwire import AccessControl, AccessDenied, Chunk, GroundingRequest, UserContext
from groundwire.errors import IndexError_
from groundwire.index import Index

from .trust_helpers import ACME_HR, ACME_PUBLIC, GLOBEX_HR, grounder

PROMPTS = ["When is payday?", "salary increases raise budget", "Acme payday 25th bank transfer", ACME_HR]


@pytest.fixture(scope="module")
def g(tmp_path_factory):
    root = tmp_path_factory.mktemp("tenants")
    g = grounder(root)
    g.sync()
    return g


def _acme_ids(g):
    return set(g.index.tenant("acme").collection.get(include=[])["ids"])


@pytest.mark.parametrize("prompt", PROMPTS)
def test_globex_user_with_identical_principals_never_sees_acme(g, prompt):
    # same user id, same group name, same role as an Acme HR user
    user = UserContext.of("hana", "globex", groups=["hr"], roles=["admin"])
    for connectors in (None, ["acme-docs"], ["acme-docs", "globex-docs"]):
        req = GroundingRequest(user=user, prompt=prompt, top_k=20, connectors=connectors)
        chunks = g.retrieve(req)
        assert not {c.id for c in chunks} & _acme_ids(g)
        assert all(c.tenant == "globex" and c.connector == "globex-docs" for c in chunks)
        draft = g.ground(prompt, user, connectors=connectors, top_k=20)
        assert "Acme" not in draft.text and all(c.connector == "globex-docs" for c in draft.citations)


def test_naming_only_the_other_tenants_connector_returns_nothing(g):
    user = UserContext.of("hana", "globex", groups=["hr"])
    assert g.retrieve(GroundingRequest(user=user, prompt=ACME_PUBLIC, connectors=("acme-docs",))) == []
    assert g.allowed_connectors(GroundingRequest(user=user, prompt="x", connectors=("acme-docs",))) == []


def test_the_same_user_sees_own_tenant_hr_only_in_own_tenant(g):
    acme = g.retrieve(GroundingRequest(UserContext.of("hana", "acme", groups=["hr"]), ACME_HR, top_k=10))
    globex = g.retrieve(GroundingRequest(UserContext.of("hana", "globex", groups=["hr"]), ACME_HR, top_k=10))
    assert any(c.text == ACME_HR for c in acme)
    assert not any(c.text == ACME_HR for c in globex) and any(c.text == GLOBEX_HR for c in globex)


def test_unknown_tenant_is_refused(g):
    with pytest.raises(AccessDenied):
        g.ground("When is payday?", UserContext.of("hana", "initech", groups=["hr"]))


def test_forged_chunk_of_another_tenant_is_removed_by_access_plugin(g):
    user = UserContext.of("hana", "globex", groups=["hr"])
    req = GroundingRequest(user=user, prompt="x")
    forged = [
        # claims acme, from acme's connector, granted to everyone
        Chunk("f1", "d", "acme-docs", "acme", ACME_HR, "t", "u", "", AccessControl.of(["everyone"])),
        # claims acme but names globex's connector
        Chunk("f2", "d", "globex-docs", "acme", ACME_HR, "t", "u", "", AccessControl.of(["group:hr"])),
        # claims globex but comes from acme's connector
        Chunk("f3", "d", "acme-docs", "globex", ACME_HR, "t", "u", "", AccessControl.of(["group:hr"])),
        # legitimate
        Chunk("ok", "d", "globex-docs", "globex", "fine", "t", "u", "", AccessControl.of(["group:hr"])),
    ]
    denied = set()
    for r in g.pm.hook.filter_chunks(
        request=req, principals=g.principals(user), chunks=forged, config=g.config
    ):
        denied |= set(r or ())
    assert denied == {"f1", "f2", "f3"}


def test_forged_chunk_injected_into_the_index_query_is_still_removed(g, monkeypatch):
    """A buggy index backend returning another tenant's chunk: the re-check removes it (fail closed)."""
    user = UserContext.of("hana", "globex", groups=["hr"])
    tindex = g.index.tenant("globex")
    real = tindex.query
    leak = Chunk(
        "leak",
        "raises.md",
        "acme-docs",
        "acme",
        ACME_HR,
        "Raises",
        "u",
        "",
        AccessControl.of(["everyone"]),
        score=0.99,
    )

    def leaky(*a, **k):
        return [leak, *real(*a, **k)]

    monkeypatch.setattr(tindex, "query", leaky)
    chunks = g.retrieve(GroundingRequest(user, ACME_HR, top_k=10))
    assert "leak" not in {c.id for c in chunks} and chunks


def test_collection_of_another_tenant_cannot_be_bound(g):
    # an index handle whose collection metadata names a different tenant is refused
    col = g.index.client.get_or_create_collection("gw-evil", metadata={"gw_tenant": "acme", "gw_model": "x"})
    assert col is not None
    idx = Index(g.index.client, g.index.model_id, g.index.dimension)
    with pytest.raises(IndexError_, match="does not belong"):
        idx.tenant("evil")
