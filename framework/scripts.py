"""Mixed-script detection for principal ids (Unicode TR39 section 5.1, "single script" strings).

Invariants:
- A string is *single-script* when the intersection of its characters' augmented Script_Extensions sets is not
  empty, where Common (``Zyyy``) and Inherited (``Zinh``) characters count as every script (digits, ``-``,
  ``.``, ``@``, combining accents mix with anything), and the sets are augmented as TR39 says: Han adds
  ``Hanb``, ``Jpan`` and ``Kore``; Hiragana and Katakana add ``Jpan``; Hangul adds ``Kore``; Bopomofo adds
  ``Hanb`` (so Japanese ``Kanji+kana`` and Korean ``Hanja+Hangul`` ids are single-script).
- Script_Extensions come from fontTools' copy of the Unicode Character Database (``fontTools.unicodedata``, a
  maintained package), not from a hand-made table.
"""

from __future__ import annotations

import functools

__all__ = ["mixed_scripts", "script_set"]

_ANY = frozenset({"Zyyy", "Zinh"})
_AUGMENT = {"Hani": {"Hanb", "Jpan", "Kore"}, "Hira": {"Jpan"}, "Kana": {"Jpan"}, "Hang": {"Kore"},
            "Bopo": {"Hanb"}}


@functools.lru_cache(maxsize=4096)
def script_set(ch: str) -> frozenset[str] | None:
    """The augmented Script_Extensions of ``ch``; None means "every script" (Common or Inherited)."""
    from fontTools.unicodedata import script_extension

    scx = set(script_extension(ch))
    if scx & _ANY:
        return None
    for s in list(scx):
        scx |= _AUGMENT.get(s, set())
    return frozenset(scx)


def mixed_scripts(text: str) -> tuple[int, str] | None:
    """None if ``text`` is single-script; else (index, character) of the first character that leaves no
    script common to it and every character before it."""
    common: frozenset[str] | None = None
    for i, ch in enumerate(text):
        if ch.isascii() and not ch.isalpha():
            continue
        scx = script_set(ch)
        if scx is None:
            continue
        common = scx if common is None else common & scx
        if not common:
            return i, ch
    return None
