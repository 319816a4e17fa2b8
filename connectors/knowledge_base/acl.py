"""ACLs of the knowledge-base connector: sidecar files, configuration globs, and how they combine.

Precedence (documented in the README, tested in ``tests/test_kb_acl.py``):

- **allow** comes from the most specific level that states one: the file's sidecar ``<file>.acl.toml``, then
  the longest matching ``acl`` glob of the configuration, then the nearest ``.groundwire-acl.toml`` (the
  file's folder, then its parents up to the root), then the connector's ``default_allow``. ``allow = []`` at a
  level is a statement too: nobody, so the file is not indexed.
- **deny** from *every* level applies: the file sidecar, every matching glob and every folder sidecar from the
  root down to the file's folder. A more specific level can never drop a deny.
- Two globs of equal length that can match the same file with different ``allow`` lists are a configuration
  error (checked when the settings load, and again per file, failing closed, in case the check misses one).
- Names are compared in Unicode NFC: a glob typed ``"Gehälter/*"`` matches the decomposed (NFD) names a Mac
  writes, and ``Über.md.acl.toml`` governs ``Über.md`` whichever of the two forms each name is in; otherwise a
  file would silently fall through to a wider level (``default_allow``).
- A sidecar that cannot be read or validated (bad TOML, wrong types, unknown keys, a link, a FIFO, too large)
  makes every file it governs fail closed: its own file, or the whole subtree of its folder. The reason names
  the sidecar and the key.
"""

from __future__ import annotations

import tomllib
import unicodedata
from collections.abc import Mapping

from groundwire import AccessControl, ConfinedRoot, SourceRefused
from pydantic import BaseModel, ConfigDict, StrictStr, ValidationError, field_validator

__all__ = ["FILE_ACL_SUFFIX", "FOLDER_ACL", "AclError", "AclResolver", "AclSpec", "check_glob_conflicts",
           "globs_overlap", "normalize_pattern"]

FOLDER_ACL = ".groundwire-acl.toml"
FILE_ACL_SUFFIX = ".acl.toml"
SIDECAR_MAX_BYTES = 64 * 1024


class AclError(ValueError):
    """An ACL that cannot be used; the message names the sidecar (or pattern) and the key."""


def _principals(v: list[str] | None) -> list[str] | None:
    if v is not None:
        AccessControl.of(v)  # raises ValueError naming a malformed principal
    return v


class AclSpec(BaseModel):
    """One ACL statement: a sidecar file's content or a configuration glob's value. Strict: no coercion."""

    model_config = ConfigDict(extra="forbid", strict=True)
    allow: list[StrictStr] | None = None
    deny: list[StrictStr] = []

    @field_validator("allow", "deny")
    @classmethod
    def _check(cls, v: list[str] | None) -> list[str] | None:
        return _principals(v)


def _first_error(exc: ValidationError) -> str:
    e = exc.errors()[0]
    key = ""
    for part in e["loc"]:
        key += f"[{part}]" if isinstance(part, int) else (f".{part}" if key else str(part))
    msg = "unknown key; use allow = [...] and deny = [...]" if e["type"] == "extra_forbidden" else e["msg"]
    return f"key {key or '(top level)'!r}: {msg}"


def parse_sidecar(raw: bytes, where: str) -> AclSpec:
    """Validate a sidecar's bytes; :class:`AclError` names ``where`` and the offending key."""
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise AclError(f"{where}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise AclError(f"{where}: not valid TOML ({exc})") from None
    if not data:  # empty or only comments: most likely a write cut short (full disk, `> file`), never inherit
        raise AclError(f"{where}: states neither allow nor deny (empty, or only comments); write allow = [...] "
                       "and/or deny = [...], or delete the file")
    try:
        return AclSpec.model_validate(data)
    except ValidationError as exc:
        raise AclError(f"{where}: {_first_error(exc)}") from None


# --- globs ---------------------------------------------------------------------------------------------


def normalize_pattern(pattern: str) -> str:
    """``"hr/"`` means everything below ``hr``: ``"hr/*"``; in NFC, as every name is matched."""
    pattern = unicodedata.normalize("NFC", pattern)
    return pattern.rstrip("/") + "/*" if pattern.endswith("/") else pattern


_STAR = "*"
_Class = tuple[bool, tuple[tuple[int, int], ...]]  # (negated, ranges of code points)


def _tokens(pat: str) -> list[str | _Class]:
    """fnmatch's pattern language as tokens: ``*``, or a character class (``?`` is the negated empty class)."""
    out: list[str | _Class] = []
    i, n = 0, len(pat)
    while i < n:
        c = pat[i]
        i += 1
        if c == "*":
            if not out or out[-1] != _STAR:
                out.append(_STAR)
        elif c == "?":
            out.append((True, ()))
        elif c == "[":
            j = i
            if j < n and pat[j] == "!":
                j += 1
            if j < n and pat[j] == "]":
                j += 1
            while j < n and pat[j] != "]":
                j += 1
            if j >= n:
                out.append((False, ((ord("["), ord("[")),)))
                continue
            body, i = pat[i:j], j + 1
            neg = body.startswith("!")
            body = body[1:] if neg else body
            ranges: list[tuple[int, int]] = []
            k = 0
            while k < len(body):
                if k + 2 < len(body) and body[k + 1] == "-":
                    ranges.append((ord(body[k]), ord(body[k + 2])))
                    k += 3
                else:
                    ranges.append((ord(body[k]), ord(body[k])))
                    k += 1
            out.append((neg, tuple((lo, hi) for lo, hi in ranges if lo <= hi)))
        else:
            out.append((False, ((ord(c), ord(c)),)))
    return out


def _member(cls: _Class, ch: int) -> bool:
    neg, ranges = cls
    return any(lo <= ch <= hi for lo, hi in ranges) != neg


def _intersects(a: _Class, b: _Class) -> bool:
    cands = {0, 0x10FFFF}
    for _, ranges in (a, b):
        for lo, hi in ranges:
            cands.update({lo - 1, lo, hi, hi + 1})
    return any(_member(a, c) and _member(b, c) for c in cands if 0 <= c <= 0x10FFFF)


def globs_overlap(p: str, q: str) -> bool:
    """True if some path matches both fnmatch patterns (``*`` crosses ``/``, as in ``fnmatchcase``).

    Hand-written because no maintained library decides the intersection of two shell patterns; it is the
    standard product-automaton search over (position in p, position in q).
    """
    a, b = _tokens(p), _tokens(q)
    anyc: _Class = (True, ())
    seen: set[tuple[int, int]] = set()
    todo = [(0, 0)]
    while todo:
        i, j = todo.pop()
        if (i, j) in seen:
            continue
        seen.add((i, j))
        if i == len(a) and j == len(b):
            return True
        if i < len(a) and a[i] == _STAR:
            todo.append((i + 1, j))
        if j < len(b) and b[j] == _STAR:
            todo.append((i, j + 1))
        if i < len(a) and j < len(b):
            ta, tb = a[i], b[j]
            ca = anyc if ta == _STAR else ta
            cb = anyc if tb == _STAR else tb
            if _intersects(ca, cb):  # type: ignore[arg-type]
                todo.append((i if ta == _STAR else i + 1, j if tb == _STAR else j + 1))
    return False


def _allow_of(spec: list[str] | AclSpec) -> frozenset[str] | None:
    allow = spec if isinstance(spec, list) else spec.allow
    return None if allow is None else AccessControl.of(allow).allow


def check_glob_conflicts(acl: Mapping[str, list[str] | AclSpec]) -> None:
    """Raise ``ValueError`` for two equal-length patterns that can match one file with different allows."""
    items = [(normalize_pattern(p), p, _allow_of(s)) for p, s in acl.items()]
    for n, (np_, p, allow) in enumerate(items):
        for nq, q, other in items[n + 1:]:
            if len(np_) != len(nq) or allow is None or other is None or allow == other:
                continue
            if globs_overlap(np_, nq):
                raise ValueError(
                    f"patterns {p!r} and {q!r} have the same length and can match the same file with different "
                    "allow lists; which one applies would be arbitrary: make one more specific or merge them"
                )


# --- resolution ----------------------------------------------------------------------------------------


class AclResolver:
    """Computes a file's :class:`AccessControl` by the precedence in the module docstring."""

    def __init__(
        self,
        root: ConfinedRoot,
        patterns: Mapping[str, list[str] | AclSpec],
        default_allow: list[str] | None,
    ) -> None:
        import fnmatch

        self._match = fnmatch.fnmatchcase
        self.root = root
        self.default_allow = default_allow
        self.patterns = sorted(
            ((normalize_pattern(p), p, s if isinstance(s, AclSpec) else AclSpec(allow=list(s)))
             for p, s in patterns.items()),
            key=lambda t: len(t[0]),
            reverse=True,
        )
        self._folders: dict[str, AclSpec | None | AclError] = {}

    def _sidecar(self, rel: str) -> AclSpec | None:
        if not self.root.exists(rel):
            # the same name in the other normalization form (a sidecar typed on Linux beside a Mac's file),
            # unless a file of that form exists too: then the sidecar is that other file's own
            parent, slash, base = rel.rpartition("/")
            forms = (parent + slash + unicodedata.normalize(f, base) for f in ("NFC", "NFD"))
            found = next((v for v in forms if v != rel and self.root.exists(v) and not (
                v.endswith(FILE_ACL_SUFFIX) and self.root.exists(v[: -len(FILE_ACL_SUFFIX)]))), None)
            if found is None:
                return None
            rel = found
        try:
            raw = self.root.read(rel, max_bytes=SIDECAR_MAX_BYTES)
        except SourceRefused as exc:
            raise AclError(f"{rel}: ACL file not read: {exc.reason}") from None
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise AclError(f"{rel}: ACL file not read: {exc.strerror or exc}") from None
        return parse_sidecar(raw, rel)

    def _folder(self, rel_dir: str) -> AclSpec | None:
        if rel_dir not in self._folders:
            rel = f"{rel_dir}/{FOLDER_ACL}" if rel_dir else FOLDER_ACL
            try:
                self._folders[rel_dir] = self._sidecar(rel)
            except AclError as exc:
                self._folders[rel_dir] = exc
        got = self._folders[rel_dir]
        if isinstance(got, AclError):
            raise got
        return got

    def acl_for(self, rel: str) -> AccessControl | None:
        """The file's ACL, ``None`` if no level states an allow; :class:`AclError` fails it closed."""
        parts = rel.split("/")[:-1]
        folders = [self._folder("/".join(parts[:k])) for k in range(len(parts) + 1)]  # root first
        own = self._sidecar(rel + FILE_ACL_SUFFIX)
        deny: set[str] = set(own.deny) if own else set()
        allow: list[str] | None = own.allow if own else None
        glob_allow: tuple[int, str, frozenset[str]] | None = None
        name = unicodedata.normalize("NFC", rel)
        for norm, raw, spec in self.patterns:
            if not self._match(name, norm):
                continue
            deny.update(spec.deny)
            if spec.allow is None:
                continue
            mine = AccessControl.of(spec.allow).allow
            if glob_allow is None:
                glob_allow = (len(norm), raw, mine)
            elif glob_allow[0] == len(norm) and glob_allow[2] != mine:
                raise AclError(f"acl patterns {glob_allow[1]!r} and {raw!r} both match with different allow lists")
        for f in folders:
            if f is not None:
                deny.update(f.deny)
        if allow is None and glob_allow is not None:
            allow = sorted(glob_allow[2])
        if allow is None:
            allow = next((f.allow for f in reversed(folders) if f is not None and f.allow is not None), None)
        if allow is None:
            allow = self.default_allow
        if allow is None:
            return None
        return AccessControl.of(allow, deny)
