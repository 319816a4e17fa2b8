"""The shield's fast precompute path against its straightforward specification (issue 13's cost row).

``rule_hits`` runs a rule's patterns only where the literals they require are present
(:mod:`groundwire.plugins.prompt_shield.prefilter`), ``decoded_payloads`` skips blob scans a cheap test rules
out, ``char_features`` counts in C: each must give exactly what :mod:`~groundwire.plugins.prompt_shield.reference`
(the code as it was) gives, on adversarial generated texts (rule keywords, confusables, zero-width characters,
encoded blobs, case changes, the letters case-insensitive matching pairs oddly) and on real texts (the
repository's how-to and hard-benign sets, and ``../shared/data/prompt-shield`` when present), down to the
unit scores of the shipped indirect head.
"""

from __future__ import annotations

import base64
import codecs
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from groundwire.plugins.prompt_shield import decode, indirect_model, model, normalize, prefilter, reference, rules
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "prompt-shield"

# --- generated adversarial texts -----------------------------------------------------------------------

_LITERALS = sorted({lit.strip() for g, gc in rules._GATES for c in g.clauses + (gc.clauses if gc else ()) for lit in c}
                   - {""})
_WORDS = _LITERALS + [
    "ignore", "all", "previous", "instructions", "system", "admin", "note", "you", "are", "now", "reply", "with",
    "access", "granted", "send_email", "to", "attacker@evil.com", "the", "user", "remember", "memory", "DAN",
    "STOP", "!!!", "[SYSTEM", "REQUEST]", "::", "<system>", "<|im_start|>", "developer", "mode", "token",
    "append", "end", "of", "your", "answer", "repeat", "this", "phrase", "10 times", "decode", "base64",
    "follow", "vergiss", "alles", "ignora", "tutto", "reveal", "password", "sure,", "here", "is", "Disregard",
    "everything", "above", "and", "just", "output", "pwned", "call", "delete_file", "immediately", "report",
    "table", "|", "quarterly", "revenue", "```", "http://x.io", "1gn0r3", "pr3v10us", "$ecret", "@dmin",
]
_ODD = list(
    "\u200b\u200d\u2060\ufeff\u202e\u00ad\u00a0\u2003\t\n"  # invisible, bidi, soft hyphen, spaces
    "\u0430\u0435\u043e\u0440\u0441\u0456\u03bf\u03b1"  # Cyrillic / Greek look-alikes
    "\u0131\u0130\u017f\u212a\u1e9e\u00df\u00b5\u03bc"  # letters re.IGNORECASE pairs beyond case folding
    "\uff49\uff47\u2160\u00fc\u00e9\u00e7\u2014\u201c\u201d\u2019"  # fullwidth, numerals, accents, punctuation
)


def _encode(s: str, how: int) -> str:
    raw = s.encode()
    return [
        lambda: base64.b64encode(raw).decode(),
        lambda: base64.urlsafe_b64encode(raw).decode().rstrip("="),
        lambda: base64.b32encode(raw).decode(),
        lambda: raw.hex(),
        lambda: " ".join(f"{b:02x}" for b in raw),
        lambda: "<~" + base64.a85encode(raw).decode() + "~>",
        lambda: base64.a85encode(raw).decode(),
        lambda: base64.b85encode(raw).decode(),
        lambda: codecs.encode(s, "rot13"),
        lambda: base64.b64encode(base64.b64encode(raw)).decode(),
    ][how]()


def _case(s: str, how: int) -> str:
    return [s, s.upper(), s.lower(), s.title(), "".join(c.upper() if i % 2 else c for i, c in enumerate(s))][how]


_piece = st.one_of(
    st.sampled_from(_WORDS),
    st.sampled_from(_ODD),
    st.text(alphabet=st.sampled_from(_ODD + list("abcdefghijklmnopqrstuvwxyz0123456789 .,;:!?'\"()[]<>|@$-_/=")),
                 max_size=6),
    st.builds(_encode, st.lists(st.sampled_from(_WORDS), min_size=2, max_size=8).map(" ".join),
              st.integers(0, 9)),
)
adversarial = st.builds(
    _case,
    st.lists(_piece, min_size=1, max_size=30).flatmap(
        lambda ps: st.lists(st.sampled_from([" ", "", "\n", "  ", ", "]), min_size=len(ps), max_size=len(ps)).map(
            lambda seps: "".join(p + s for p, s in zip(ps, seps, strict=True)))),
    st.integers(0, 4),
)
_FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_FAST
@given(adversarial)
def test_rule_hits_equal_the_reference(text: str) -> None:
    assert rules.rule_hits(text) == reference.rule_hits(text)


@_FAST
@given(adversarial)
def test_char_features_equal_the_reference_bit_for_bit(text: str) -> None:
    for t in (text, normalize.for_model(text)):
        assert model.char_features(t).tobytes() == reference.char_features(t).tobytes()


@_FAST
@given(adversarial)
def test_decoded_payloads_equal_the_reference(text: str) -> None:
    for t in (text, normalize.clean_lines(text)):
        assert decode.decoded_payloads(t) == reference.decoded_payloads(t)
        assert decode.rot13_reading(t) == reference.rot13_reading(t)
        assert decode.looks_english(t) == reference.looks_english(t)


@pytest.mark.parametrize("blob", [
    bytes.hex(b"hi there"),  # 16 hex digits: the shortest _HEX match (and its _HEX_RUN gate)
    " ".join(f"{b:02x}" for b in b"hi there"),
    base64.b64encode(b"hi there bob").decode(),  # 16 base64 characters: the shortest _B64 match
    base64.b32encode(b"hi there!!").decode(),  # 16 base32 characters
    base64.a85encode(b"hello there, bob").decode(),  # 20 bare ascii85 characters
])
def test_shortest_blobs_are_decoded_as_before(blob: str) -> None:
    for text in (blob, f"see {blob} below", f"x{blob}"):
        got = decode.decoded_payloads(text)
        assert got == reference.decoded_payloads(text)
    assert any(p.startswith(("hi there", "hello there")) for p in decode.decoded_payloads(blob))


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80) | adversarial)
def test_count_chars_is_the_predicate_sum(text: str) -> None:
    preds = {"alpha": str.isalpha, "upper": str.isupper, "digit": str.isdigit,
             "symbol": lambda c: not c.isalnum() and not c.isspace()}
    for kind, pred in preds.items():
        assert normalize.count_chars(text, kind) == sum(pred(c) for c in text)
    ascii_text = "".join(chr(ord(c) % 128) for c in text)
    for kind, pred in preds.items():
        assert normalize.count_chars(ascii_text, kind) == sum(pred(c) for c in ascii_text)


@_FAST
@given(adversarial)
def test_every_gate_answers_as_its_pattern(text: str) -> None:
    plain = normalize.clean(text)
    for t in (plain, text):
        for g, gc in rules._GATES:
            assert g.search(t.casefold()) == (g.pattern.search(t.casefold()) is not None)
            if gc is not None:
                assert gc.search(t) == (gc.pattern.search(t) is not None)


# --- the literal analysis on generated patterns ---------------------------------------------------------

_ATOMS = ["ab", "cd", "ef", "a", "x", "foo", "bar", "\\b", "\\s+", ".{0,3}", "[a-c]", "\\d", "(?=ab)", "(?!cd)",
          "[^x]", "\\W", "$", "^", "b|c", "[|(]", "\\|", "[]|]", "[^]|a]", "\\(a|b\\)", "AB|Foo"]


def _regex(draw: st.DrawFn, depth: int = 0) -> str:
    kind = draw(st.integers(0, 5 if depth < 3 else 0))
    if kind == 0:
        if draw(st.booleans()):
            return re.escape(draw(st.sampled_from(["ab", "cd", "ef", "foo", "bar", "a b", "Ab", "FOO", "Cd", "x"])))
        return draw(st.sampled_from(_ATOMS))
    if kind == 1:
        return "".join(_regex(draw, depth + 1) for _ in range(draw(st.integers(2, 4))))
    if kind == 2:
        return "(?:" + "|".join(_regex(draw, depth + 1) for _ in range(draw(st.integers(2, 4)))) + ")"
    if kind == 3:
        return "(?:" + _regex(draw, depth + 1) + ")" + draw(st.sampled_from(["?", "*", "+", "{1,2}", "{0,2}", "{2}"]))
    if kind == 4:
        return "(" + _regex(draw, depth + 1) + ")"
    return _regex(draw, depth + 1) + "|" + _regex(draw, depth + 1)


@settings(max_examples=400, deadline=None)
@given(st.composite(_regex)(), st.booleans(),
       st.lists(st.sampled_from(["ab", "cd", "ef", "foo", "bar", "a b", "x", "r", "1", "|", "(", ")", "]", " ", "\n"])
                | st.text(alphabet="abcdefoxr \n1|()]", max_size=4), max_size=12).map("".join))
def test_required_literals_hold_for_every_match(rx: str, fold: bool, text: str) -> None:
    pat = re.compile(rx, re.I if fold else 0)
    gate = prefilter.Gate.of(pat)
    t = text.casefold() if fold else text
    m = pat.search(t)
    assert "|".join(p.pattern for p, _ in gate.parts) == rx
    for part, clauses in gate.parts:  # an alternative that matches has every clause it requires in the text
        if part.search(t) is not None:
            assert prefilter.holds(clauses, t), (rx, part.pattern, t, clauses)
            assert m is not None
    assert gate.search(t) == (m is not None)
    assert bool(re.fullmatch(rx, t, re.I if fold else 0)) <= gate.may_match(t)


@pytest.mark.parametrize(("rx", "text"), [
    ("AB|Foo", "a foo b"), ("x(?:Ignore|Skip)\\b|Zz", "xskip it"), ("[|]Cd|(?:a|B)+Q", "bbq"),
    ("\\|End|\\bLOW", "low tide"), ("i|y", "\u0131"), ("se|k", "\u212a"),
])
def test_a_gate_keeps_the_flags_and_every_alternative(rx: str, text: str) -> None:
    pat = re.compile(rx, re.I)
    gate = prefilter.Gate.of(pat)
    assert len(gate.parts) > 1
    t = text.casefold()
    assert pat.search(t) is not None
    assert gate.search(t)


def test_case_exotic_lists_every_letter_ignorecase_pairs_beyond_folding() -> None:
    """Every character that re.IGNORECASE matches against a literal character of a folded gate, other than
    that character itself, is either never in case-folded text or in CASE_EXOTIC (the gates step aside)."""
    chars = {ch for g, _ in rules._GATES for c in g.clauses for lit in c for ch in lit}
    alls = "".join(chr(i) for i in range(sys.maxunicode + 1) if not 0xD800 <= i < 0xE000)
    folded_image = set(alls.casefold())
    for ch in chars:
        for t in re.findall(re.escape(ch), alls, re.I):
            if t != ch and t in folded_image:
                assert t in prefilter.CASE_EXOTIC, (ch, t)


def test_the_gates_prune() -> None:
    """The gates are not vacuous: on ordinary prose almost every pattern is skipped."""
    prose = normalize.clean("The quarterly report covers revenue, staffing and facilities across three offices.")
    assert sum(g.may_match(prose.casefold()) for g, _ in rules._GATES) <= 2
    assert all(g.clauses for g, _ in rules._GATES)


# --- real texts -----------------------------------------------------------------------------------------


def _real_texts() -> list[str]:
    out: list[str] = []
    for name, key in (("howto_enterprise.jsonl", "document"), ("hard_benign_prompts.jsonl", "text")):
        for line in (ROOT / "benchmarks" / "data" / name).read_text(encoding="utf-8").splitlines():
            if line.strip():
                out.append(json.loads(line).get(key) or "")
    for name, key, step in (("indirect.jsonl", "document", 12), ("direct.jsonl", "text", 8)):
        path = SHARED / name
        if path.exists():
            lines = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
            out += [json.loads(ln)[key] for ln in lines[::step]]
    return [t for t in out if t]


def test_real_texts_rules_and_features_equal_the_reference() -> None:
    texts = _real_texts()
    assert len(texts) > 20
    n_hits = 0
    for t in texts:
        got = rules.rule_hits(t)
        assert got == reference.rule_hits(t)
        n_hits += bool(got)
        m = normalize.for_model(t)
        assert model.char_features(m).tobytes() == reference.char_features(m).tobytes()
    assert n_hits > 0  # attacks are among them: hits are compared, not only misses


def test_real_chunks_unit_scores_equal_the_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    """The shipped indirect head's unit features and chunk probabilities, fast path against reference, on the
    how-to articles cut into units (random unit vectors: only the text features differ between the paths)."""
    head = indirect_model.load_indirect()
    texts = _real_texts()[:120]
    rng = np.random.default_rng(0)

    def vecs(k: int) -> np.ndarray:
        v = rng.standard_normal((k, indirect_model.DIM)).astype(np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    chunk_vecs = [vecs(1)[0] for _ in texts]
    unit_vecs = [vecs(max(len(indirect_model.units(t)), 1)) for t in texts]
    fast_x = [indirect_model.features(c, u, indirect_model.units(t), t)
              for c, u, t in zip(chunk_vecs, unit_vecs, texts, strict=True) if indirect_model.units(t)]
    fast_p = indirect_model.probs_from_vectors(head, texts, chunk_vecs, unit_vecs)
    monkeypatch.setattr(indirect_model, "char_features", reference.char_features)
    ref_x = [indirect_model.features(c, u, indirect_model.units(t), t)
             for c, u, t in zip(chunk_vecs, unit_vecs, texts, strict=True) if indirect_model.units(t)]
    ref_p = indirect_model.probs_from_vectors(head, texts, chunk_vecs, unit_vecs)
    assert all(a.tobytes() == b.tobytes() for a, b in zip(fast_x, ref_x, strict=True))
    assert fast_p.tobytes() == ref_p.tobytes()
