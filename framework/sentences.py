"""Sentence boundaries, shared by every plugin that reads text sentence by sentence.

The splitter is pysbd (rule-based sentence boundary disambiguation, no model): it knows abbreviations
("Dr.", "e.g.", "U.S."), decimals, ellipses and quotes, splits before capitals of any script (Ä, É,
Cyrillic) and after CJK terminators (。！？) without a following space, and ends a sentence at a line
break that opens a new block (a blank line, a heading, a list item, a table row); a line break inside a
hard-wrapped paragraph does not end one when the next line goes on in lower case or with a digit, or the
line ends in a comma, semicolon or colon ("Dana's salary\nincrease for 2026 ..." is one sentence).
On top of it, citation markers: ``[n]`` markers right after a sentence's end belong to that
sentence, not to the next one (``"... 1 April. [1] The budget ..."``).

Invariants: spans are in order, do not overlap, lie inside the text and cover every non-space character
of it; ``split_sentences(t) == [t[a:b].strip() for a, b in sentence_spans(t)]``. Results are cached per
text (chunks come back query after query), so the splitter costs once per distinct text.

Speed: pysbd calls ``re.sub`` / ``re.findall`` / ``re.finditer`` with pattern strings, many of them built per
abbreviation (~900 distinct patterns for an English text), more than the ``re`` module's own cache holds
(512 on CPython 3.11, evicted oldest first), so almost every call used to recompile its pattern (half of
the splitter's time: ~6.5 ms per 700-character chunk, 3.4 ms with them cached). pysbd's modules therefore
get :data:`_PYSBD_RE`, the ``re`` module with its module-level functions compiling through a cache large
enough for all of them; the patterns and their results are unchanged.
"""

from __future__ import annotations

import re
import sys
import threading
import types
from functools import lru_cache
from typing import Any

__all__ = ["sentence_spans", "split_sentences"]

_MARKERS = re.compile(r"\s*(?:\[\d+\]\s*)+")
# a line break inside a paragraph (hard-wrapped prose): the next line goes on with the same sentence unless it
# opens a block (heading, list item, table row, quote, fence) or the line before is a heading or a table row
_SOFT_BREAK = re.compile(r"(?<=[^\n])\n(?=[ \t]*\S)(?![ \t]*(?:[#>|`~]|[-*+][ \t]|\d+[.)][ \t]))")
_BLOCK_LINE = re.compile(r"[ \t]*(?:#|\|)")  # matched at a line's start (pattern.match(text, pos))
_LIST_LINE = re.compile(r"[ \t]*(?:[-*+]|\d+[.)])[ \t]")


def _unwrap(text: str) -> str:
    """``text`` with soft line breaks turned into spaces (same length, so offsets still hold)."""
    if "\n" not in text:
        return text
    out = list(text)
    for m in _SOFT_BREAK.finditer(text):
        i = m.start()
        line_start = text.rfind("\n", 0, i) + 1
        if _BLOCK_LINE.match(text, line_start):
            continue
        if _LIST_LINE.match(text, line_start) and not text[i + 1 : i + 2].isspace():
            continue  # a list item goes on only on an indented line
        nxt = text[i + 1 :].lstrip(" \t")[:1]
        if nxt.islower() or nxt.isdigit() or text[:i].rstrip(" \t").endswith((",", ";", ":")):
            out[i] = " "  # a continuation; a capital after an unpunctuated line may start a sentence
    return "".join(out)
_local = threading.local()  # a pysbd Segmenter per thread: it keeps per-call state on itself


@lru_cache(maxsize=4096)
def _compiled(pattern: str, flags: int) -> re.Pattern[str]:
    return re.compile(pattern, flags)


def _pattern(pattern: Any, flags: int) -> Any:
    return pattern if isinstance(pattern, re.Pattern) else _compiled(pattern, int(flags))


class _CachedRe(types.ModuleType):
    """``re`` with ``sub``, ``subn``, ``search``, ``match``, ``fullmatch``, ``findall``, ``finditer``,
    ``split`` and ``compile`` compiling through :func:`_compiled`; everything else is ``re``'s own."""

    def __getattr__(self, name: str) -> Any:
        return getattr(re, name)

    @staticmethod
    def compile(pattern: Any, flags: int = 0) -> Any:
        return _pattern(pattern, flags)

    @staticmethod
    def sub(pattern: Any, repl: Any, string: str, count: int = 0, flags: int = 0) -> str:
        return _pattern(pattern, flags).sub(repl, string, count)  # type: ignore[no-any-return]

    @staticmethod
    def subn(pattern: Any, repl: Any, string: str, count: int = 0, flags: int = 0) -> tuple[str, int]:
        return _pattern(pattern, flags).subn(repl, string, count)  # type: ignore[no-any-return]

    @staticmethod
    def search(pattern: Any, string: str, flags: int = 0) -> Any:
        return _pattern(pattern, flags).search(string)

    @staticmethod
    def match(pattern: Any, string: str, flags: int = 0) -> Any:
        return _pattern(pattern, flags).match(string)

    @staticmethod
    def fullmatch(pattern: Any, string: str, flags: int = 0) -> Any:
        return _pattern(pattern, flags).fullmatch(string)

    @staticmethod
    def findall(pattern: Any, string: str, flags: int = 0) -> list[Any]:
        return _pattern(pattern, flags).findall(string)  # type: ignore[no-any-return]

    @staticmethod
    def finditer(pattern: Any, string: str, flags: int = 0) -> Any:
        return _pattern(pattern, flags).finditer(string)

    @staticmethod
    def split(pattern: Any, string: str, maxsplit: int = 0, flags: int = 0) -> list[Any]:
        return _pattern(pattern, flags).split(string, maxsplit)  # type: ignore[no-any-return]


_PYSBD_RE = _CachedRe("re", "re, compiling through groundwire.sentences' pattern cache (for pysbd)")
_install_lock = threading.Lock()


def _use_pattern_cache() -> None:
    """Point every loaded pysbd module that uses ``re`` at :data:`_PYSBD_RE` (idempotent)."""
    with _install_lock:
        for name, mod in list(sys.modules.items()):
            if (name == "pysbd" or name.startswith("pysbd.")) and getattr(mod, "re", None) is re:
                mod.re = _PYSBD_RE  # type: ignore[attr-defined]


#: the characters other than ASCII that ``re.IGNORECASE`` matches with an ASCII letter or digit (İ ı ſ K: computed
#: over all of Unicode in tests/test_sentences.py); a line without them lowers to ASCII exactly where it matches
_FOLDS_TO_ASCII = frozenset("\u0130\u0131\u017f\u212a")


def _search_abbreviations(self: Any, text: str) -> str:
    """pysbd 0.3.4's ``AbbreviationReplacer.search_for_abbreviations_in_string`` with one more skip, which
    changes no result: for each of its ~190 abbreviations found anywhere in the line (``"al"`` is in "also"),
    pysbd lists every word starting with it and rewrites the line once per word, looking for the abbreviation
    followed by a period; every such rewrite needs ``<abbreviation>.`` in the line (in any case), so an
    abbreviation without it is skipped when that test is exact (an abbreviation of ASCII letters and digits,
    a line without :data:`_FOLDS_TO_ASCII`). ~60% of the splitter's time on SciFact chunks. The rest is
    pysbd's code, as it is."""
    lowered = text.lower()
    exact = _FOLDS_TO_ASCII.isdisjoint(text)
    for abbr in self.lang.Abbreviation.ABBREVIATIONS:
        stripped = abbr.strip()
        if stripped not in lowered:
            continue
        if exact and stripped + "." not in lowered and stripped.isascii() and stripped.isalnum():
            continue
        abbrev_match = _PYSBD_RE.findall(rf"(?:^|\s|\r|\n){stripped}", text, flags=re.IGNORECASE)
        if not abbrev_match:
            continue
        next_word_start = r"(?<={" + str(re.escape(stripped)) + "} ).{1}"
        char_array = _PYSBD_RE.findall(next_word_start, text)
        for ind, match in enumerate(abbrev_match):
            text = self.scan_for_replacements(text, match, ind, char_array)
    return text


def _language() -> Any:
    """pysbd's English rules, with :func:`_search_abbreviations` when pysbd is the version it was read from."""
    import pysbd
    from pysbd.lang.english import English

    if getattr(pysbd, "__version__", "") != "0.3.4":
        return English

    class _Replacer(English.AbbreviationReplacer):  # type: ignore[misc]
        search_for_abbreviations_in_string = _search_abbreviations

    class _English(English):  # type: ignore[misc]
        AbbreviationReplacer = _Replacer

    return _English


def _segmenter() -> Any:
    seg = getattr(_local, "segmenter", None)
    if seg is None:
        import pysbd

        seg = pysbd.Segmenter(language="en", clean=False)
        seg.language_module = _language()
        _local.segmenter = seg
        _use_pattern_cache()  # after the Segmenter: its language and rule modules are loaded by then
    return seg


def _segments(text: str) -> list[str]:
    """pysbd's sentences of ``text`` (what ``Segmenter.segment`` returns, stripped of the whitespace it
    re-attaches). ``segment`` then locates each sentence in the text with a pattern compiled per sentence
    (``re.escape(sentence) + r"\\s*"``, ~2,600 distinct patterns for 473 SciFact chunks, each compiled once and
    never reused, and evicting the abbreviation patterns from the cache); :func:`_spans` locates them itself
    with ``str.find``, so that step is skipped. Its only other effect, leaving out a sentence not found in the
    text, :func:`_spans` has too."""
    seg = _segmenter()
    seg.original_text = text
    return list(seg.processor(text).process())


@lru_cache(maxsize=8192)
def _spans(text: str) -> tuple[tuple[int, int], ...]:
    """pysbd gives the sentences; only where each one starts is taken from it, so a sentence runs up to
    the next one's start and no character is ever lost, whatever pysbd does to the text."""
    if not text.strip():
        return ()
    starts = [len(text) - len(text.lstrip())]
    pos = starts[0]
    flat = _unwrap(text)
    for seg in _segments(flat):
        body = seg.strip()
        at = flat.find(body, pos) if body else -1
        if at < 0:
            continue
        pos = at + len(body)
        m = _MARKERS.match(text, at)
        if m and m.end() > at:  # leading [n] markers close the previous sentence
            at = m.end()
        if at > starts[-1] and at < len(text):
            starts.append(at)
    out: list[tuple[int, int]] = []
    for start, nxt in zip(starts, [*starts[1:], len(text)], strict=True):
        end = start + len(text[start:nxt].rstrip())
        if end > start:
            out.append((start, end))
    return tuple(out)


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """``(start, end)`` character spans of the sentences of ``text``, trailing ``[n]`` markers included."""
    return list(_spans(text))


def split_sentences(text: str) -> list[str]:
    """The sentences of ``text``, stripped, in order (see the module docstring for the rules)."""
    return [text[a:b].strip() for a, b in _spans(text)]
