"""Readings of encoded payloads hidden in a text: base64 (standard and URL-safe), base32, base16 / hex,
ascii85 / base85, rot13 and leetspeak, decoded recursively up to ``MAX_DEPTH`` layers.

Invariants: total (never raises on any input); bounded work (at most ``MAX_BLOBS`` candidate blobs per
layer, ``MAX_DEPTH`` layers, ``MAX_PAYLOADS`` readings); a decoded blob is kept only when it reads as text
(printable, with letters and at least two words), so random binary never becomes a "payload".
"""

from __future__ import annotations

import base64
import binascii
import re

__all__ = ["MAX_DEPTH", "decoded_payloads", "leet_reading", "looks_english", "rot13_reading"]

MAX_DEPTH = 3
MAX_BLOBS = 8
MAX_PAYLOADS = 24

_LEET = str.maketrans(
    {"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s", "!": "i"}
)
_B64 = re.compile(r"[A-Za-z0-9+/\-_]{16,}={0,2}")
_B32 = re.compile(r"\b[A-Z2-7]{16,}={0,6}")
_HEX = re.compile(r"(?:(?:0x)?[0-9a-fA-F]{2}[\s:,\\x]{0,3}){8,}")
_A85 = re.compile(r"<~(.+?)~>", re.S)
_A85_BARE = re.compile(r"[!-u]{20,}")
_WORDS = re.compile(r"[A-Za-z]{2,}")
_STOP = frozenset(
    {
        "the", "a", "an", "and", "or", "to", "of", "in", "on", "for", "you", "your", "is", "are", "be", "this",
        "that", "all", "any", "with", "from", "now", "what", "me", "my", "it", "not", "do", "does", "say",
        "tell", "print", "ignore", "instructions", "previous", "please", "write", "output", "give",
    }
)


# A run of this many characters that a hex blob can be made of: every _HEX match is one (it has 16 or more
# of them), and the scan for it skips through prose far faster than _HEX itself
_HEX_RUN = re.compile(r"[0-9a-fA-Fx\s:,\\]{16,}")
_ROT13 = str.maketrans(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", "NOPQRSTUVWXYZABCDEFGHIJKLMnopqrstuvwxyzabcdefghijklm"
)


def looks_english(s: str) -> float:
    """Share of the words that are common English function words (0 for no words)."""
    # an ASCII text lower-cases letter for letter ([A-Za-z] runs unchanged); other texts word by word
    words = _WORDS.findall(s.lower()) if s.isascii() else [w.lower() for w in _WORDS.findall(s)]
    return sum(map(_STOP.__contains__, words)) / len(words) if words else 0.0


def _readable(raw: bytes) -> str | None:
    try:
        s = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if len(s) < 6 or sum(c.isprintable() or c in "\n\t" for c in s) < 0.95 * len(s):
        return None
    letters = sum(c.isalpha() for c in s)
    if letters < 0.5 * len(s.replace(" ", "")) or len(_WORDS.findall(s)) < 2:
        return None
    return s


def _b64(blob: str) -> bytes:
    blob = blob.rstrip("=")
    padded = blob + "=" * (-len(blob) % 4)
    if "-" in blob or "_" in blob:
        return base64.urlsafe_b64decode(padded)
    return base64.b64decode(padded, validate=True)


def _b32(blob: str) -> bytes:
    blob = blob.rstrip("=")
    return base64.b32decode(blob + "=" * (-len(blob) % 8))


def _one_layer(text: str) -> list[str]:
    out: list[str] = []
    cands: list[tuple[str, object]] = []
    cands += [(m.group(1), base64.a85decode) for m in _A85.finditer(text)][:MAX_BLOBS]
    if _HEX_RUN.search(text) is not None:  # else _HEX cannot match (see _HEX_RUN)
        cands += [(m.group(0), lambda b: bytes.fromhex(re.sub(r"0x|[\s:,\\x]", "", b))) for m in _HEX.finditer(text)][
            :MAX_BLOBS
        ]
    # the other blobs are runs of 16 or more non-space characters: a text of shorter words holds none
    longest = max(map(len, text.split()), default=0)
    if longest >= 16:
        cands += [(m.group(0), _b32) for m in _B32.finditer(text)][:MAX_BLOBS]
        cands += [(m.group(0), _b64) for m in _B64.finditer(text)][:MAX_BLOBS]
    if longest >= 20:
        bare = [m.group(0) for m in _A85_BARE.finditer(text)][:2]
        cands += [(b, base64.a85decode) for b in bare]
        cands += [(b, base64.b85decode) for b in bare]
    for blob, fn in cands:
        try:
            raw = fn(blob)  # type: ignore[operator]
        except (binascii.Error, ValueError, TypeError):
            continue
        s = _readable(raw) if isinstance(raw, bytes) else None
        if s is not None and s not in out:
            out.append(s)
    whole = re.sub(r"\s+", "", text)  # a payload spread over lines or spaced out
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
    """The rot13 reading of ``text`` when it reads as English more than the text itself does."""
    r = text.translate(_ROT13)  # codecs' rot13: the 52 ASCII letters rotated, every other character kept
    lr = looks_english(r)
    return r if lr > 0.15 and lr > looks_english(text) + 0.1 else None


def leet_reading(text: str) -> str | None:
    """``text`` with leetspeak digits and symbols read as letters (``None`` when that changes nothing)."""
    leet = text.translate(_LEET)
    return leet if leet != text else None


def decoded_payloads(text: str, depth: int = MAX_DEPTH) -> list[str]:
    """Every readable decoding of blobs in ``text`` (nested up to ``depth`` layers, each layer's output
    decoded again), the rot13 reading when it reads as English, and the leetspeak reading."""
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
    leet = leet_reading(text)
    if leet is not None:
        out.append(leet)
    return out[:MAX_PAYLOADS]
