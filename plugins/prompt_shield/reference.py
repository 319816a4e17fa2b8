"""The straightforward implementations of the shield's hot paths, kept as the specification of the fast ones.

:func:`rule_hits` runs every rule's patterns on every reading, :func:`decoded_payloads` scans for every kind of
blob and reads rot13 on every text, :func:`char_features` counts in one pass per feature: the code as it was
before the precompute was made fast (issue 13's cost row). ``tests/test_prompt_shield_fastpath.py`` holds
:func:`~.rules.rule_hits`, :func:`~.decode.decoded_payloads` and :func:`~.model.char_features` to these,
value for value, on generated adversarial texts and on real chunks. Nothing in the shield calls this module.

Invariants: the same results as the fast paths, bit for bit (that is what the tests check); never imported by
the scoring code.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import math
import re
from dataclasses import replace

import numpy as np

from .decode import (
    _A85,
    _A85_BARE,
    _B32,
    _B64,
    _HEX,
    _LEET,
    _STOP,
    _WORDS,
    MAX_BLOBS,
    MAX_DEPTH,
    MAX_PAYLOADS,
    _b32,
    _b64,
    _readable,
)
from .model import _TOKEN_RE, _WORDLIKE
from .normalize import INVISIBLE, clean, clean_lines, homoglyph_words
from .rules import RULES, Rule

__all__ = ["char_features", "decoded_payloads", "looks_english", "rot13_reading", "rule_hits"]


def looks_english(s: str) -> float:
    words = [w.lower() for w in _WORDS.findall(s)]
    return sum(w in _STOP for w in words) / len(words) if words else 0.0


def _one_layer(text: str) -> list[str]:
    out: list[str] = []
    cands: list[tuple[str, object]] = []
    cands += [(m.group(1), base64.a85decode) for m in _A85.finditer(text)][:MAX_BLOBS]
    cands += [(m.group(0), lambda b: bytes.fromhex(re.sub(r"0x|[\s:,\\x]", "", b))) for m in _HEX.finditer(text)][
        :MAX_BLOBS
    ]
    cands += [(m.group(0), _b32) for m in _B32.finditer(text)][:MAX_BLOBS]
    cands += [(m.group(0), _b64) for m in _B64.finditer(text)][:MAX_BLOBS]
    cands += [(m.group(0), base64.a85decode) for m in _A85_BARE.finditer(text)][:2]
    cands += [(m.group(0), base64.b85decode) for m in _A85_BARE.finditer(text)][:2]
    for blob, fn in cands:
        try:
            raw = fn(blob)  # type: ignore[operator]
        except (binascii.Error, ValueError, TypeError):
            continue
        s = _readable(raw) if isinstance(raw, bytes) else None
        if s is not None and s not in out:
            out.append(s)
    whole = re.sub(r"\s+", "", text)
    if whole != text and len(whole) >= 16:
        for fn2 in (_b64, lambda b: bytes.fromhex(b)):
            try:
                s = _readable(fn2(whole))
            except (binascii.Error, ValueError):
                continue
            if s is not None and s not in out:
                out.append(s)
    return out


def rot13_reading(text: str) -> str | None:
    r = codecs.decode(text, "rot13")
    return r if looks_english(r) > max(0.15, looks_english(text) + 0.1) else None


def decoded_payloads(text: str, depth: int = MAX_DEPTH) -> list[str]:
    out: list[str] = []
    frontier = [text]
    for _ in range(depth):
        nxt: list[str] = []
        for t in frontier:
            for s in _one_layer(t):
                if s not in out:
                    out.append(s)
                    nxt.append(s)
            r = rot13_reading(t)
            if r is not None and r not in out:
                out.append(r)
                nxt.append(r)
            if len(out) >= MAX_PAYLOADS:
                return out[:MAX_PAYLOADS]
        frontier = nxt
        if not frontier:
            break
    leet = text.translate(_LEET)
    if leet != text:
        out.append(leet)
    return out[:MAX_PAYLOADS]


def rule_hits(text: str) -> list[Rule]:
    plain = clean(text)
    hits = [r for r in RULES if r.matches(plain.casefold(), plain)]
    if not any(r.strong for r in hits):
        for payload in decoded_payloads(clean_lines(text)):
            dec = clean(payload)
            strong = [r for r in RULES if r.strong and r.matches(dec.casefold(), dec)]
            if strong:
                hits.extend(replace(r, reason=r.reason + " (encoded)") for r in strong)
                break
    return hits


def char_features(text: str) -> np.ndarray:
    n = max(len(text), 1)
    toks = _TOKEN_RE.findall(text) or [""]
    letters = sum(c.isalpha() for c in text) or 1
    symbols = sum(not c.isalnum() and not c.isspace() for c in text)
    odd = sum(1 for t in toks if not _WORDLIKE.match(t))
    brackets = sum(text.count(c) for c in "{}[]<>()\\|`^~")
    hits = rule_hits(text)
    b64 = len(re.findall(r"[A-Za-z0-9+/]{24,}={0,2}", text))
    tail = toks[-12:]
    tail_odd = sum(1 for t in tail if not _WORDLIKE.match(t)) / len(tail)
    f = [
        math.log1p(len(text)) / 8.0,
        symbols / n,
        sum(c.isdigit() for c in text) / n,
        sum(c.isupper() for c in text) / letters,
        sum(not c.isascii() for c in text) / n,
        odd / len(toks),
        tail_odd,
        brackets / n * 10,
        float(INVISIBLE.search(text) is not None),
        float(homoglyph_words(text) > 0),
        float(b64 > 0),
        float(any(h.strong for h in hits)),
        float(len(hits)) / 3.0,
        text.count("\n") / n * 10,
    ]
    return np.asarray(f, dtype=np.float32)
