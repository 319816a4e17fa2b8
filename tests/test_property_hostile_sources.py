"""Property test: randomized hostile knowledge bases never widen access.

Hypothesis builds a knowledge-base tree with regular files, links out of the root (to another tenant's
folder, to /etc/passwd, to /dev/zero), links inside it, FIFOs, names that are not valid UTF-8, good and bad
file and folder sidecars, configuration globs and ``default_allow``; syncs; mutates it (edits, ACL changes,
broken sidecars, deletions, files replaced by links or renamed to undecodable names); syncs again. After
each sync, for a fixed set of users, no text a user may not read appears in drafts, citations (title, URI,
snippet, location), retrieved chunks (``Grounder.retrieve`` and the LangChain retriever) or the sync report.

The oracle is written from the documented rules (README, *ACL precedence* and *Hostile sources*), over the
test's own model of the tree, never from the connector's code:
- only regular files with UTF-8 names inside the root, with one name (no hard links), are ever readable
  (folders are never entered through links); a link with ``follow_symlinks`` shows its in-root target's text
  under the target's ACL; outside text is never readable;
- a file is unreadable for everyone when its own sidecar or any folder sidecar above it is malformed;
- allow: file sidecar, else the longest matching glob that states one, else the nearest folder sidecar that
  states one, else ``default_allow``; deny: the union over every level; grant = allow hits and deny misses;
- after a sync, text of a previous version (edited, deleted, replaced) is readable by nobody.
"""

from __future__ import annotations

import fnmatch
import os
import shutil
import string
import threading
from dataclasses import dataclass, field
from pathlib import Path

import chromadb
import pytest
from chromadb.config import Settings
from groundwire import Grounder, GroundingRequest, UserContext, config_from_dict
from groundwire.index import Index
from groundwire.langchain import GroundwireRetriever
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

FOLDERS = ["", "a", "a/b", "c"]
NAMES = ["n1", "n2", "n3", "n4", "n5", "n6"]
PRINCIPALS = ["everyone", "user:alice@x.com", "group:hr", "user:intern@x.com", "role:manager"]
GLOBS = ["*", "a/*", "c/n*", "a/b/*"]  # distinct lengths: no equal-length conflict by construction
BAD = ["allow = [1]\n", 'allow = [["group:hr"]]\n', "allow = [2020-01-01]\n", 'allow = "everyone"\n',
       'allow = ["everyone"\n', 'alow = ["everyone"]\n', 'allow = ["admins"]\n', 'deny = "group:hr"\n',
       'allow = ["group:h\u0440"]\n']  # the last: a Cyrillic look-alike of group:hr (mixed scripts): malformed
KINDS = ["regular"] * 6 + ["link_out", "link_other_tenant", "link_passwd", "link_zero", "link_in",
         "fifo", "badname", "hardlink_out"]
USERS = [
    UserContext.of("sam@x.com", "acme"),
    UserContext.of("alice@x.com", "acme"),
    UserContext.of("hana@x.com", "acme", groups=["hr"]),
    UserContext.of("intern@x.com", "acme", groups=["hr"]),
    UserContext.of("max@x.com", "acme", roles=["manager"]),
]
OUTSIDE_MARKERS = ("zqoutsidex", "zqglobexx", "root:x:0:0")
QUESTION = "The note covers the budget and the plan details"


@dataclass(frozen=True)
class Good:
    allow: tuple[str, ...] | None
    deny: tuple[str, ...]

    def toml(self) -> str:
        q = lambda xs: "[" + ", ".join(f'"{x}"' for x in xs) + "]"  # noqa: E731
        return (f"allow = {q(self.allow)}\n" if self.allow is not None else "") + f"deny = {q(self.deny)}\n"


@dataclass(frozen=True)
class Bad:
    text: str


allow_st = st.one_of(st.just(("everyone",)), st.lists(st.sampled_from(PRINCIPALS), max_size=2, unique=True).map(tuple))
deny_st = st.lists(st.sampled_from(PRINCIPALS[1:]), max_size=1).map(tuple)
good_st = st.builds(Good, st.one_of(st.none(), allow_st, allow_st), deny_st)
sidecar_st = st.one_of(st.none(), st.none(), good_st, good_st, good_st, st.sampled_from(BAD).map(Bad))
file_st = st.tuples(st.sampled_from(FOLDERS), st.sampled_from(NAMES), st.sampled_from(KINDS), sidecar_st)
mutation_st = st.tuples(
    st.sampled_from(["edit", "acl", "delete", "to_link_out", "to_badname", "folder_acl", "to_hardlink"]),
    st.integers(0, 7), sidecar_st,
)
scenario_st = st.fixed_dictionaries({
    "files": st.lists(file_st, min_size=3, max_size=8, unique_by=lambda f: (f[0], f[1])),
    "folders": st.fixed_dictionaries({f: sidecar_st for f in FOLDERS}),
    "globs": st.dictionaries(st.sampled_from(GLOBS), good_st, max_size=2),
    "default_allow": st.one_of(st.none(), st.just(("everyone",)), allow_st),
    "follow": st.booleans(),
    "mutations": st.lists(mutation_st, max_size=4),
    "mode": st.sampled_from(["auto", "chroma"]),
    "dir_links": st.booleans(),  # a/loop -> .. and c/globex -> the other tenant's folder
})


@dataclass
class Entry:
    kind: str
    marker: str = ""
    sidecar: Good | Bad | None = None
    target: str = ""  # link_in: the rel path it points to


@dataclass
class Model:
    root: Path
    entries: dict[str, Entry] = field(default_factory=dict)  # rel path (valid name) -> entry
    folders: dict[str, Good | Bad | None] = field(default_factory=dict)
    globs: dict[str, Good] = field(default_factory=dict)
    default_allow: tuple[str, ...] | None = None
    follow: bool = False
    retired: set[str] = field(default_factory=set)  # markers of versions that no longer exist
    counter: int = 0

    def marker(self) -> str:
        self.counter += 1
        letters = string.ascii_lowercase
        return "zq" + letters[self.counter % 26] + letters[(self.counter // 26) % 26] + "m"


# --- the oracle: the documented rules over the model ---------------------------------------------------


def oracle_acl(m: Model, rel: str) -> tuple[set[str], set[str]] | None:
    """(allow, deny) of the file at ``rel``, or None if nobody may read it."""
    e = m.entries.get(rel)
    if e is None or e.kind != "regular":
        return None
    folder = rel.rpartition("/")[0]
    chain = [f for f in FOLDERS if f == "" or folder == f or folder.startswith(f + "/")]
    chain.sort(key=len)  # root first
    levels = [m.folders.get(f) for f in chain]
    if isinstance(e.sidecar, Bad) or any(isinstance(x, Bad) for x in levels):
        return None
    deny: set[str] = set(e.sidecar.deny) if isinstance(e.sidecar, Good) else set()
    matching = [(g, spec) for g, spec in m.globs.items() if fnmatch.fnmatchcase(rel, g)]
    for _, spec in matching:
        deny |= set(spec.deny)
    for x in levels:
        if isinstance(x, Good):
            deny |= set(x.deny)
    allow = e.sidecar.allow if isinstance(e.sidecar, Good) else None
    if allow is None:
        stated = sorted(((g, s) for g, s in matching if s.allow is not None), key=lambda gs: -len(gs[0]))
        allow = stated[0][1].allow if stated else None
    if allow is None:
        allow = next((x.allow for x in reversed(levels) if isinstance(x, Good) and x.allow is not None), None)
    if allow is None:
        allow = m.default_allow
    if not allow:
        return None
    return set(allow), deny


def may_read(m: Model, user: UserContext, marker: str) -> bool:
    if marker in m.retired:
        return False
    for rel, e in m.entries.items():
        if e.marker == marker:
            acl = oracle_acl(m, rel)
            if acl is None:
                return False
            allow, deny = acl
            ps = {"everyone", f"user:{user.user_id}"} | {f"group:{g}" for g in user.groups} | {
                f"role:{r}" for r in user.roles}
            return bool(allow & ps) and not (deny & ps)
    return False  # e.g. a file renamed to an undecodable name


# --- building the tree ---------------------------------------------------------------------------------


def _write_sidecar(path: Path, sc: Good | Bad | None) -> None:
    if sc is None:
        path.unlink(missing_ok=True)
    else:
        path.write_text(sc.toml() if isinstance(sc, Good) else sc.text, encoding="utf-8")


def _content(marker: str) -> str:
    return f"# Title {marker}\n\nThe {marker} note covers the budget and the plan. More {marker} details.\n"


def _replace_with(path: Path, make) -> None:
    if path.is_symlink() or path.exists():
        path.unlink()
    make(path)


def build(base: Path, sc: dict) -> Model:
    m = Model(root=base / "kb", folders=dict(sc["folders"]), globs=dict(sc["globs"]),
              default_allow=sc["default_allow"], follow=sc["follow"])
    for f in FOLDERS:
        (m.root / f).mkdir(parents=True, exist_ok=True)
        _write_sidecar(m.root / f / ".groundwire-acl.toml", m.folders[f])
    if sc["dir_links"]:
        (m.root / "a" / "loop").symlink_to("..", target_is_directory=True)
        (m.root / "c" / "globex").symlink_to(base / "globex", target_is_directory=True)
    regular = [f"{d}/{n}.md".lstrip("/") for d, n, k, _ in sc["files"] if k == "regular"]
    for folder, name, kind, sidecar in sc["files"]:
        rel = f"{folder}/{name}.md".lstrip("/")
        p = m.root / rel
        _write_sidecar(p.with_name(p.name + ".acl.toml"), sidecar)
        if kind == "link_in" and not [r for r in regular if r != rel]:
            kind = "regular"
        e = Entry(kind, sidecar=sidecar)
        if kind in ("regular", "badname"):
            e.marker = m.marker()
            if kind == "regular":
                p.write_text(_content(e.marker), encoding="utf-8")
            else:
                with open(os.fsencode(p)[:-3] + b"\xff.md", "wb") as fh:
                    fh.write(_content(e.marker).encode())
                m.entries[rel] = e
                e.kind = "gone"  # its valid name does not exist; the marker is unreadable
                continue
        elif kind == "fifo":
            os.mkfifo(p)
        elif kind == "hardlink_out":  # a hard link to another tenant's file: never read (follow_hardlinks off)
            os.link(base / "globex" / "pay.md", p)
        elif kind == "link_in":
            e.target = next(r for r in regular if r != rel)
            p.symlink_to(m.root / e.target)
        else:
            p.symlink_to({"link_out": base / "outside" / "secret.md", "link_passwd": Path("/etc/passwd"),
                          "link_zero": Path("/dev/zero"), "link_other_tenant": base / "globex" / "pay.md"}[kind])
        m.entries[rel] = e
    return m


def mutate(m: Model, base: Path, mutations: list) -> None:
    rels = sorted(m.entries)
    for op, i, sc in mutations:
        if op == "folder_acl":
            f = FOLDERS[i % len(FOLDERS)]
            m.folders[f] = sc
            _write_sidecar(m.root / f / ".groundwire-acl.toml", sc)
            continue
        rel = rels[i % len(rels)]
        e, p = m.entries[rel], m.root / rel
        if op == "acl":
            e.sidecar = sc
            _write_sidecar(p.with_name(p.name + ".acl.toml"), sc)
            continue
        if e.kind != "regular":
            continue
        m.retired.add(e.marker)
        if op == "edit":
            e.marker = m.marker()
            p.write_text(_content(e.marker), encoding="utf-8")
        elif op == "delete":
            p.unlink()
            e.kind, e.marker = "gone", ""
        elif op == "to_link_out":
            _replace_with(p, lambda q: q.symlink_to(base / "outside" / "secret.md"))
            e.kind, e.marker = "link_out", ""
        elif op == "to_hardlink":
            _replace_with(p, lambda q: os.link(base / "outside" / "secret.md", q))
            e.kind, e.marker = "hardlink_out", ""
        elif op == "to_badname":
            os.rename(os.fsencode(p), os.fsencode(p)[:-3] + b"\xff.md")
            e.kind, e.marker = "gone", ""


# --- the property --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shared_index():
    return chromadb.EphemeralClient(Settings(anonymized_telemetry=False))


def _sync(g: Grounder, full: bool):
    box: dict = {}
    t = threading.Thread(target=lambda: box.setdefault("r", g.sync(full=full)), daemon=True)
    t.start()
    t.join(60)
    assert not t.is_alive(), "sync hung (a FIFO, device or link loop was read)"
    return box["r"]


def _check(g: Grounder, m: Model, reports, base: Path) -> None:
    report_text = " ".join(f"{i} {r}" for rep in reports for i, r in rep.skipped) + " ".join(
        rep.error for rep in reports)
    for bad in (*OUTSIDE_MARKERS, str(base / "outside"), str(base / "globex")):
        assert bad not in report_text, f"sync report discloses {bad!r}"
    markers = {e.marker for e in m.entries.values() if e.marker} | m.retired
    root_uri = m.root.resolve().as_uri() + "/"
    for user in USERS:
        draft = g.ground(QUESTION, user)
        chunks = g.retrieve(GroundingRequest(user=user, prompt=QUESTION, top_k=20))
        lc = GroundwireRetriever(grounder=g, user=user, top_k=20).invoke(QUESTION)
        seen = " ".join(
            [draft.text]
            + [f"{d.page_content} {sorted(d.metadata.items())}" for d in lc]
            + [f"{c.title} {c.uri} {c.snippet} {c.location}" for c in draft.citations]
            + [f"{c.title} {c.uri} {c.text} {c.location}" for c in chunks]
        )
        for bad in (*OUTSIDE_MARKERS, str(base / "outside"), str(base / "globex"), "/etc/", "/dev/"):
            assert bad not in seen, f"{user.user_id} saw {bad!r} from outside the root"
        for mk in markers:
            if mk in seen:
                assert may_read(m, user, mk), f"leak: {user.user_id} saw {mk} ({m.entries}, globs {m.globs})"
        for uri in [c.uri for c in draft.citations] + [c.uri for c in chunks]:
            assert uri.startswith(root_uri), f"citation URI outside the root: {uri}"
    assert all(rep.ok for rep in reports), [rep.error for rep in reports]  # nothing may abort a sync
    for spoof in ("h\u0440", "\u0430lice@x.com"):  # look-alikes are refused at query time, never a new principal
        with pytest.raises(ValueError, match="mixes scripts"):
            UserContext.of(spoof if "@" in spoof else "sam@x.com", "acme", groups=[] if "@" in spoof else [spoof])


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sc=scenario_st)
def test_hostile_trees_never_show_forbidden_text(tmp_path_factory, shared_index, sc) -> None:
    base = tmp_path_factory.mktemp("hostile")
    (base / "outside").mkdir()
    (base / "outside" / "secret.md").write_text("# Secret\n\nThe zqoutsidex note covers the budget and the plan.\n")
    (base / "globex").mkdir()
    (base / "globex" / ".groundwire-acl.toml").write_text('allow = ["everyone"]\n')
    (base / "globex" / "pay.md").write_text("# Pay\n\nThe zqglobexx note covers the budget and the plan.\n")
    m = build(base, sc)
    acl = {g: ({"deny": list(s.deny)} | ({"allow": list(s.allow)} if s.allow is not None else {}))
           for g, s in m.globs.items()}
    kbc = {"type": "knowledge_base", "tenant": "acme", "path": str(m.root), "acl": acl, "follow_symlinks": m.follow}
    if m.default_allow is not None:
        kbc["default_allow"] = list(m.default_allow)
    g = Grounder(config_from_dict({
        "data_dir": str(base / "data"), "default_tenant": "acme", "embedder": {"name": "hashing"},
        "plugins": {"load_entrypoints": False, "disabled": ["prompt_shield"]},
        "retrieval": {"top_k": 10, "candidates": 40, "mode": sc["mode"]},
        "connectors": {"kb": kbc},
    }, base_dir=base))
    g._index = Index(shared_index, g.embedder.model_id, g.embedder.dimension)
    g.index.drop_tenant("acme")
    try:
        _check(g, m, _sync(g, full=True), base)
        mutate(m, base, sc["mutations"])
        _check(g, m, _sync(g, full=False), base)
    finally:
        for p in m.root.rglob("*"):  # unblock any FIFO a regressed reader might still hold
            if p.is_fifo():
                try:
                    os.close(os.open(p, os.O_WRONLY | os.O_NONBLOCK))
                except OSError:
                    pass
        shutil.rmtree(base, ignore_errors=True)


# --- a config edit between syncs, and a second long-lived process asking while the syncs run -------------

ASKER = r"""
import json, re, sys
from groundwire import Grounder, GroundingRequest, StaleConfig, UserContext
users = [UserContext.of(u, "acme", groups=gs, roles=rs) for u, gs, rs in json.loads(sys.argv[2])]
pattern = re.compile(r"zq[a-z]{2}m|zqoutsidex|zqglobexx|root:x:0:0|/etc/|/dev/")
stop = sys.argv[3]
g = Grounder.from_config(sys.argv[1])
import os
rounds = 0
while True:
    done = os.path.exists(stop)
    for u in users:
        try:
            chunks = g.retrieve(GroundingRequest(user=u, prompt=QUESTION, top_k=20))
        except StaleConfig:  # what an app does after an administrator's edit: build a new Grounder
            g = Grounder.from_config(sys.argv[1])
            chunks = g.retrieve(GroundingRequest(user=u, prompt=QUESTION, top_k=20))
        seen = " ".join(f"{c.title} {c.uri} {c.text} {c.location}" for c in chunks)
        print(json.dumps({"user": u.user_id, "final": done, "seen": sorted(set(pattern.findall(seen)))}), flush=True)
    rounds += 1
    if done:
        break
""".replace("QUESTION", repr(QUESTION))


def _kb_config(base: Path, m: Model) -> dict:
    acl = {g: ({"deny": list(s.deny)} | ({"allow": list(s.allow)} if s.allow is not None else {}))
           for g, s in m.globs.items()}
    kbc = {"type": "knowledge_base", "tenant": "acme", "path": str(m.root), "acl": acl, "follow_symlinks": m.follow}
    if m.default_allow is not None:
        kbc["default_allow"] = list(m.default_allow)
    return {"data_dir": str(base / "data"), "default_tenant": "acme", "embedder": {"name": "hashing"},
            "plugins": {"load_entrypoints": False, "disabled": ["prompt_shield"]},
            "retrieval": {"top_k": 10, "candidates": 40, "mode": "auto", "refresh_seconds": 3600},
            "connectors": {"kb": kbc}}


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture],
          phases=[Phase.explicit, Phase.reuse, Phase.generate])  # no shrinking: each example runs two processes
@given(sc=scenario_st, new_globs=st.dictionaries(st.sampled_from(GLOBS), good_st, max_size=2))
def test_config_edits_and_a_second_process_never_show_forbidden_text(tmp_path_factory, sc, new_globs) -> None:
    """The administrator edits the configuration's globs between the syncs (the app's Grounder then refuses
    requests and is rebuilt); another process asks as every user the whole time, on the same embedded Chroma.
    What it sees during a sync may be the old or the new state's, never anything else; after the last sync,
    exactly the new state's."""
    import copy
    import json
    import subprocess
    import sys

    from groundwire import StaleConfig

    from .test_trust_audit import _write_toml

    base = tmp_path_factory.mktemp("hostile2")
    (base / "outside").mkdir()
    (base / "outside" / "secret.md").write_text("# Secret\n\nThe zqoutsidex note covers the budget and the plan.\n")
    (base / "globex").mkdir()
    (base / "globex" / "pay.md").write_text("# Pay\n\nThe zqglobexx note covers the budget and the plan.\n")
    m = build(base, sc)
    path = base / "g.toml"
    _write_toml(path, _kb_config(base, m))
    g = Grounder.from_config(path)
    g.sync(full=True)
    stop = base / "stop"
    users = [[u.user_id, sorted(u.groups), sorted(u.roles)] for u in USERS]
    env = {**os.environ, "ANONYMIZED_TELEMETRY": "False", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "-c", ASKER, str(path), json.dumps(users), str(stop)],
                            stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    try:
        first = proc.stdout.readline()  # the second process is up and answering before the edits
        assert first
        before = copy.deepcopy(m)
        mutate(m, base, sc["mutations"])
        m.globs = dict(new_globs)
        old_bytes = path.read_bytes()
        _write_toml(path, _kb_config(base, m))  # the administrator's edit
        if path.read_bytes() != old_bytes:
            with pytest.raises(StaleConfig):
                g.ground(QUESTION, USERS[0])  # the old Grounder never answers with the replaced rules
        g = Grounder.from_config(path)
        reports = _sync(g, full=False)
        stop.write_text("1")
        lines = [first] + proc.stdout.readlines()
    finally:
        stop.write_text("1")
        code = proc.wait(timeout=120)
        proc.stdout.close()
        for p in m.root.rglob("*"):
            if p.is_fifo():
                try:
                    os.close(os.open(p, os.O_WRONLY | os.O_NONBLOCK))
                except OSError:
                    pass
    assert code == 0
    by_id = {u.user_id: u for u in USERS}
    answers = [json.loads(x) for x in lines]
    assert any(a["final"] for a in answers)
    for a in answers:
        user = by_id[a["user"]]
        for mk in a["seen"]:
            assert mk.startswith("zq") and mk not in ("zqoutsidex", "zqglobexx"), f"{user.user_id} saw {mk}"
            if a["final"]:  # asked after the last sync finished: exactly the new state
                assert may_read(m, user, mk), f"after the syncs {user.user_id} saw {mk}"
            else:
                assert may_read(before, user, mk) or may_read(m, user, mk), f"{user.user_id} saw {mk} mid-sync"
    _check(g, m, reports, base)
    shutil.rmtree(base, ignore_errors=True)
