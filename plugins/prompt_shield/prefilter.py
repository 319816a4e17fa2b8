"""Necessary conditions for a regular expression to match, read from its syntax: the rules' cheap gate.

:func:`required_literals` turns a compiled pattern into a conjunction of clauses, each a tuple of literal
strings: any string the pattern can match (anywhere, with any context its anchors or lookarounds read)
contains at least one literal of every clause. A text that misses every literal of some clause therefore
cannot match, and the pattern need not be run on it; a text that passes every clause is still run through
the pattern itself, so a gated search gives exactly the pattern's own answer (:class:`Gate`). A gate cuts
its pattern at the top-level ``|`` (:func:`top_level_branches`) and gates each alternative on its own literals
(a text matches ``A|B`` somewhere exactly when it matches ``A`` or ``B``), which prunes far more than one
clause for the whole alternation could.

Case: the literals of an ``re.IGNORECASE`` pattern are lower-cased and a gate on such a pattern must be given
*case-folded* text (``str.casefold``). Case-insensitive matching also pairs a few letters that case folding
keeps apart (dotless ``ı`` with ``i``): :data:`CASE_EXOTIC` lists the characters that match a literal
character of some rule without being its lower-case form, and a text holding one of them bypasses the gate
(``tests/test_prompt_shield_fastpath.py`` recomputes the list over every code point).

Invariants: sound by construction (a clause is only ever derived from literals every match must contain;
anything the analysis does not understand yields no clause, i.e. no pruning); a pattern the parser cannot
read gets no clauses, a cut whose pieces do not compile is not made; the gate never changes a search result,
only skips searches that cannot succeed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["CASE_EXOTIC", "Gate", "holds", "required_literals", "top_level_branches"]

# Characters outside ASCII that re.IGNORECASE matches against a lower-case literal of the rules although
# they are not that literal (see the module docstring; upper-case forms are left out: case-folded text never
# holds them).
CASE_EXOTIC = frozenset("\u0131\u017f\u212a\u0130\u1e9e")

Clauses = tuple[tuple[str, ...], ...]


def _strength(clause: Sequence[str]) -> tuple[int, int]:
    """Higher is more selective: longest shortest literal (spaces not counted), then fewest literals."""
    return (min(len(x.strip()) for x in clause), -len(clause))


def _minimal(lits: Iterable[str]) -> tuple[str, ...]:
    """The clause with every literal that contains another of its literals dropped (same truth value: a text
    holding the longer one holds the shorter); sorted for a stable order."""
    uniq = sorted(set(lits), key=lambda s: (len(s), s))
    keep: list[str] = []
    for s in uniq:
        if not any(k in s for k in keep):
            keep.append(s)
    return tuple(sorted(keep))


def _cnf(items: Sequence[tuple[Any, Any]], fold: bool, c: Any) -> list[tuple[str, ...]]:
    """Clauses of one parsed sequence (``re._parser`` items); ``c`` is ``re._constants``."""
    out: list[tuple[str, ...]] = []
    run: list[str] = []

    def flush() -> None:
        if run:
            out.append(("".join(run),))
            run.clear()

    for op, av in items:
        if op is c.LITERAL:
            ch = chr(av)
            low = ch.lower() if fold else ch
            if len(low) == 1:  # "İ".lower() is two characters: not a literal of the folded text
                run.append(low)
                continue
        flush()  # anything else ends a literal run (zero-width items too: weaker, never wrong)
        if op is c.SUBPATTERN:
            _group, add_flags, del_flags, sub = av
            if add_flags or del_flags:  # an inline flag changes case or dot semantics: do not guess
                continue
            out += _cnf(sub, fold, c)
        elif op is c.ATOMIC_GROUP:
            out += _cnf(av, fold, c)
        elif op in (c.MAX_REPEAT, c.MIN_REPEAT, getattr(c, "POSSESSIVE_REPEAT", None)):
            lo, _hi, sub = av
            if lo >= 1:
                out += _cnf(sub, fold, c)
        elif op is c.BRANCH:
            branches = [_cnf(b, fold, c) for b in av[1]]
            if all(branches):
                ranked = [sorted(b, key=_strength, reverse=True) for b in branches]
                # any match goes through some branch, so the union of one clause of each branch is a clause;
                # a few such unions (the best, second best, ... clause of each branch) prune more together
                depth = min(3, max(len(r) for r in ranked))
                for k in range(depth):
                    out.append(_minimal(x for r in ranked for x in r[min(k, len(r) - 1)]))
        # IN, ANY, NOT_LITERAL, CATEGORY, AT, ASSERT, ASSERT_NOT, GROUPREF, ...: no literal required
    flush()
    return out


def required_literals(pattern: re.Pattern[str], limit: int = 4) -> Clauses:
    """At most ``limit`` clauses (most selective first) that every match of ``pattern`` satisfies; ``()``
    when none can be read (the pattern then always runs)."""
    try:
        from re import _constants as c  # type: ignore[attr-defined]
        from re import _parser as p  # type: ignore[attr-defined]

        parsed = p.parse(pattern.pattern, pattern.flags)
    except Exception:  # a Python whose private parser moved: no gate, every search runs
        return ()
    if pattern.flags & re.VERBOSE:
        return ()
    fold = bool(pattern.flags & re.IGNORECASE)
    try:
        got = _cnf(list(parsed), fold, c)
    except Exception:
        return ()
    uniq: list[tuple[str, ...]] = []
    for clause in sorted((_minimal(x) for x in got if x), key=_strength, reverse=True):
        if clause and "" not in clause and clause not in uniq:
            uniq.append(clause)
    return tuple(uniq[:limit])


def top_level_branches(source: str) -> list[str]:
    """``source`` cut at its top-level ``|`` (outside groups, character classes and escapes): the pattern
    matches somewhere in a text exactly when one of the pieces (compiled with the same flags) does."""
    parts: list[str] = []
    depth, start, i, in_class = 0, 0, 0, False
    while i < len(source):
        ch = source[i]
        if ch == "\\":
            i += 2
            continue
        if in_class:
            if ch == "]":
                in_class = False
        elif ch == "[":
            in_class = True
            i += 1
            if source[i : i + 1] == "^":
                i += 1
            if source[i : i + 1] == "]":  # a "]" first in a class is a literal
                i += 1
            continue
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "|" and depth == 0:
            parts.append(source[start:i])
            start = i + 1
        i += 1
    parts.append(source[start:])
    return parts


@dataclass(frozen=True, slots=True)
class Gate:
    """A pattern split into its top-level alternatives, each with its :func:`required_literals`;
    :meth:`search` answers as ``pattern.search(text) is not None`` does."""

    pattern: re.Pattern[str]
    parts: tuple[tuple[re.Pattern[str], Clauses], ...]
    folded: bool  # the pattern ignores case: its text must be case-folded

    @classmethod
    def of(cls, pattern: re.Pattern[str]) -> Gate:
        pieces: list[re.Pattern[str]] = [pattern]
        if not pattern.flags & re.VERBOSE:
            try:
                split = [re.compile(x, pattern.flags) for x in top_level_branches(pattern.pattern)]
            except re.error:
                split = []
            if len(split) > 1 and "|".join(x.pattern for x in split) == pattern.pattern:
                pieces = split
        return cls(pattern, tuple((x, required_literals(x)) for x in pieces), bool(pattern.flags & re.IGNORECASE))

    @property
    def clauses(self) -> Clauses:
        """Every clause of every alternative (for inspection; a text must satisfy one alternative's)."""
        return tuple(c for _, cs in self.parts for c in cs)

    def may_match(self, text: str) -> bool:
        """``False`` only when ``pattern`` cannot match ``text`` (case-folded text for a folded pattern)."""
        if self.folded and not text.isascii() and not CASE_EXOTIC.isdisjoint(text):
            return True
        return any(holds(cs, text) for _, cs in self.parts)

    def search(self, text: str) -> bool:
        exotic = self.folded and not text.isascii() and not CASE_EXOTIC.isdisjoint(text)
        return any((exotic or holds(cs, text)) and p.search(text) is not None for p, cs in self.parts)


def holds(clauses: Clauses, text: str) -> bool:
    """Every clause has a literal in ``text``."""
    for clause in clauses:
        for lit in clause:
            if lit in text:
                break
        else:
            return False
    return True
