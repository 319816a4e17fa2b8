"""Property tests that try to produce the worst bug: a user seeing text they may not read.

Over random corpora, ACLs (including empty ones and deny entries) and users, no draft text, citation,
snippet, title or URI ever contains a token unique to a chunk the user may not read, and a chunk
without ACL is never shown to anyone.
"""

from __future__ import annotations

import string

import chromadb
import pytest
from chromadb.config import Settings
from groundwire import AccessControl, Grounder, UserContext, config_from_dict
from groundwire.chunking import chunk_document
from groundwire.index import Index
from groundwire.models import Document, Section
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

USERS = ["alice", "bob", "carol", "dan"]
GROUPS = ["hr", "eng", "sales"]
ROLES = ["manager", "admin"]
TOPICS = ["budget", "leave", "salary", "hiring", "travel", "security"]

principal = st.one_of(
    st.just("everyone"),
    st.sampled_from(USERS).map(lambda u: f"user:{u}@x.com"),
    st.sampled_from(GROUPS).map(lambda g: f"group:{g}"),
    st.sampled_from(ROLES).map(lambda r: f"role:{r}"),
)
acl_st = st.builds(
    lambda allow, deny: AccessControl.of(allow, deny),
    st.lists(principal, max_size=3),  # may be empty: visible to nobody
    st.lists(principal, max_size=1),
)
doc_st = st.tuples(acl_st, st.lists(st.sampled_from(TOPICS), min_size=1, max_size=3))
user_st = st.builds(
    lambda u, gs, rs: UserContext.of(f"{u}@x.com", "acme", gs, rs),
    st.sampled_from(USERS),
    st.lists(st.sampled_from(GROUPS), max_size=2),
    st.lists(st.sampled_from(ROLES), max_size=1),
)


def _marker(i: int) -> str:
    # a token no other document contains: "zq" + letters, so no substring collisions between docs
    letters = string.ascii_lowercase
    return "zq" + letters[i % 26] + letters[(i // 26) % 26] + "x"


@pytest.fixture(scope="module")
def grounder() -> Grounder:
    cfg = config_from_dict(
        {
            "embedder": {"name": "hashing"},
            "plugins": {"load_entrypoints": False},
            "retrieval": {"top_k": 8, "candidates": 40},
            "connectors": {"kb": {"type": "knowledge_base", "tenant": "acme", "path": "."}},
        }
    )
    g = Grounder(cfg)
    g._index = Index(chromadb.EphemeralClient(Settings(anonymized_telemetry=False)), g.embedder.model_id,
                     g.embedder.dimension)
    return g


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(docs=st.lists(doc_st, min_size=1, max_size=12), users=st.lists(user_st, min_size=1, max_size=3),
       topic=st.sampled_from(TOPICS))
def test_no_draft_or_citation_leaks_unreadable_text(grounder: Grounder, docs, users, topic) -> None:
    grounder.index.drop_tenant("acme")
    tindex = grounder.index.tenant("acme")
    acl_of: dict[str, AccessControl] = {}
    for i, (acl, topics) in enumerate(docs):
        m = _marker(i)
        text = " ".join(f"The {t} note {m} covers {t} details for {m}." for t in topics)
        doc = Document(id=f"d{i}", title=f"Title {m}", uri=f"https://kb/{m}", acl=acl, sections=(Section(text),))
        chunks = chunk_document(doc, "kb", "acme")
        tindex.add_document_chunks(chunks, grounder.embedder.embed_documents([c.text for c in chunks]),
                                   "v1", doc.content_hash())
        acl_of[m] = acl
    for user in users:
        principals = user.principals()
        draft = grounder.ground(f"what about the {topic} note", user)
        visible = " ".join(
            [draft.text]
            + [f"{c.title} {c.uri} {c.snippet} {c.location}" for c in draft.citations]
        )
        for m, acl in acl_of.items():
            if not acl.grants(principals):
                assert m not in visible, f"leak: {user} saw {m} (acl {acl})"
            if not acl.allow:
                assert m not in visible, "a chunk without ACL was shown"
        for c in draft.citations:
            assert acl_of[c.title.split()[-1]].grants(principals)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(docs=st.lists(doc_st, min_size=1, max_size=15), user=user_st)
def test_index_query_prefilter_matches_the_acl_model(grounder: Grounder, docs, user) -> None:
    """The Chroma pre-filter alone (before the re-check) admits exactly the chunks the ACL grants."""
    grounder.index.drop_tenant("acme")
    tindex = grounder.index.tenant("acme")
    expected = set()
    for i, (acl, topics) in enumerate(docs):
        doc = Document(id=f"d{i}", title="t", uri="u", acl=acl, sections=(Section(" ".join(topics) + "."),))
        chunks = chunk_document(doc, "kb", "acme")
        tindex.add_document_chunks(chunks, grounder.embedder.embed_documents([c.text for c in chunks]), "v", "h")
        if acl.grants(user.principals()):
            expected.update(c.id for c in chunks)
    got = tindex.query(grounder.embedder.embed_query("budget"), user.principals(), ["kb"], k=100)
    assert {c.id for c in got} == expected
