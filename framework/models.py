"""Typed models that cross plugin boundaries.

Invariants:
- A principal is a string token ``kind:id`` (``user:alice``, ``group:hr``, ``role:manager``) or the
  tenant-wide token ``everyone``. Ids are put in one canonical form (:func:`canonical_id`) on both sides
  (ACLs at index time, users and roles at query time), so they always compare in the same form.
- The canonical form merges two ids only if they are equal after Unicode NFC and lower-casing the ASCII
  letters ``A-Z``; nothing else is folded (no ``casefold``, no compatibility mapping). Ids holding a
  character that could make two different-looking or equal-looking ids (controls, format/bidi/invisible
  characters, spaces other than U+0020, compatibility characters such as the Kelvin sign or ``ﬁ``) are
  rejected with :class:`InvalidPrincipal`, never silently cleaned; so are ids mixing scripts (Unicode TR39
  single-script rule, :mod:`groundwire.scripts`: a Cyrillic ``а`` inside a Latin ``group:hr``).
- An :class:`AccessControl` with an empty ``allow`` set grants nobody (fail closed). ``deny`` wins.
- A :class:`Draft` is always created with status ``pending_review``; only the review workflow moves it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import unicodedata
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from .errors import InvalidPrincipal
from .scripts import mixed_scripts

__all__ = [
    "EVERYONE",
    "PRINCIPAL_KINDS",
    "REVIEW_NOTICE",
    "AccessControl",
    "Action",
    "Chunk",
    "Citation",
    "Document",
    "Draft",
    "DraftStatus",
    "GroundingRequest",
    "InvalidPrincipal",
    "Section",
    "UserContext",
    "Verdict",
    "canonical_id",
    "normalize_principal",
    "utcnow",
]

EVERYONE = "everyone"
PRINCIPAL_KINDS = ("user", "group", "role")
REVIEW_NOTICE = (
    "AI-generated draft for human review: it can be wrong or incomplete. "
    "Check it against the cited sources before you use or send it."
)
_TENANT_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


def utcnow() -> datetime:
    return datetime.now(UTC)


# Default_Ignorable_Code_Point characters that are not in category Cf (which is rejected as a whole):
# fillers and variation selectors render as nothing, so two ids that look equal could differ by them.
_IGNORABLE = frozenset(
    [0x034F, 0x115F, 0x1160, 0x17B4, 0x17B5, 0x180B, 0x180C, 0x180D, 0x180F, 0x3164, 0xFFA0]
    + list(range(0xFE00, 0xFE10))
    + list(range(0xE0100, 0xE01F0))
)
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def _bad_char(ch: str) -> str | None:
    """Why ``ch`` may not appear in an id, or None."""
    if ch == " ":
        return None
    cat = unicodedata.category(ch)
    if cat[0] == "C":
        return {"Cc": "a control character", "Cf": "an invisible format or bidi character",
                "Cs": "a lone surrogate", "Co": "a private-use character"}.get(cat, "an unassigned code point")
    if cat[0] == "Z":
        return "a space or separator other than U+0020"
    if ord(ch) in _IGNORABLE:
        return "an invisible (default-ignorable) character"
    if unicodedata.normalize("NFKC", ch) != ch:
        return f"a compatibility character (write {unicodedata.normalize('NFKC', ch)!r} instead)"
    decomposition = unicodedata.decomposition(ch).split()
    if len(decomposition) == 1:  # a canonical singleton: NFC would silently turn it into another character
        return f"a duplicate of {chr(int(decomposition[0], 16))!r} (write that instead)"
    return None


def canonical_id(value: object, what: str = "identity") -> str:
    """The canonical form of a user, group or role id; raise :class:`InvalidPrincipal` if it has none.

    The rule, applied identically to ACLs at index time and to users at query time:

    1. leading and trailing U+0020 spaces are removed (no other character is stripped);
    2. it is rejected if it is empty or holds a control (Cc), format/bidi/invisible (Cf), surrogate,
       private-use or unassigned character, a separator other than U+0020 (U+00A0, U+3000, U+2028...),
       a default-ignorable filler or variation selector, a compatibility character (one that NFKC
       changes: ``ſ``, ``ﬁ``, full-width letters, superscripts...) or a canonical singleton (a duplicate
       code point that NFC replaces: the Kelvin sign, the Ohm sign, the Angstrom sign...);
    3. it is normalised to Unicode NFC (so NFD ``josé`` equals NFC ``josé``);
    4. it is rejected if it mixes scripts (TR39 single-script rule, Common and Inherited characters aside);
    5. the ASCII letters ``A-Z`` are lower-cased; every other character keeps its case.

    So two ids are the same principal exactly when they are equal after NFC and ASCII lower-casing:
    ``Alice`` = ``alice``, but ``STRASSE`` != ``straße``, ``ÉQUIPE`` != ``équipe``, and ``hr`` + U+3000
    is an error, not ``hr``. Rejecting (rather than dropping) matters: a silently dropped group
    could escape a ``deny`` rule.
    """
    if not isinstance(value, str):
        raise InvalidPrincipal(f"the {what} must be a string, got {type(value).__name__} {value!r}")
    text = value.strip(" ")
    if not text:
        raise InvalidPrincipal(f"the {what} must not be empty, got {value!r}")
    if text.isascii() and text.isprintable():  # the common case: no ASCII printable character is refused
        return text.lower()
    return _canonical_unicode(value, text, what)


@functools.lru_cache(maxsize=16384)
def _canonical_unicode(value: str, text: str, what: str) -> str:
    for i, ch in enumerate(text):  # checked before NFC, which would turn the Kelvin sign into "K"
        why = _bad_char(ch)
        if why is not None:
            raise InvalidPrincipal(
                f"invalid {what} {value!r}: character {i + 1} (U+{ord(ch):04X}) is {why}; "
                "ids may use letters, digits, punctuation and inner plain spaces"
            )
    out = unicodedata.normalize("NFC", text)
    mixed = mixed_scripts(out)
    if mixed is not None:  # e.g. a Cyrillic 'а' (U+0430) in a Latin 'group:hr' look-alike
        i, ch = mixed
        raise InvalidPrincipal(
            f"invalid {what} {value!r}: character {i + 1} (U+{ord(ch):04X} {unicodedata.name(ch, '?')}) mixes "
            "scripts with the characters before it (Unicode TR39: an id must be single-script, digits and "
            "punctuation aside); ids that mix scripts can look like other ids"
        )
    return out.translate(_ASCII_LOWER)


def normalize_principal(token: str) -> str:
    """Return the canonical form of a principal token, or raise :class:`InvalidPrincipal` (a ``ValueError``).

    Accepts ``everyone``, ``user:X``, ``group:X`` and ``role:X``; the kind is matched ignoring ASCII case
    and ``X`` is put in the form of :func:`canonical_id`.
    """
    if not isinstance(token, str):
        raise InvalidPrincipal(f"a principal must be a string, got {type(token).__name__} {token!r}")
    return _normalize_principal(token)


@functools.lru_cache(maxsize=65536)  # ACL tokens repeat across every chunk of a document and snapshot
def _normalize_principal(token: str) -> str:
    raw = token.strip(" ")
    if raw.translate(_ASCII_LOWER) == EVERYONE:
        return EVERYONE
    kind, sep, ident = raw.partition(":")
    kind = kind.strip(" ").translate(_ASCII_LOWER)
    if not sep or kind not in PRINCIPAL_KINDS or not ident.strip(" "):
        raise InvalidPrincipal(
            f"invalid principal {token!r}: use 'everyone', 'user:<id>', 'group:<id>' or 'role:<id>'"
        )
    return f"{kind}:{canonical_id(ident, f'{kind} id in principal {token!r}')}"


def validate_tenant(tenant: str) -> str:
    if not _TENANT_RE.match(tenant):
        raise ValueError(
            f"invalid tenant id {tenant!r}: use 1-63 lower-case letters, digits or '-', starting with a "
            "letter or digit"
        )
    return tenant


def _not_a_string(ids: Iterable[str], what: str) -> Iterable[str]:
    """``ids`` unless it is one string, which would iterate as letters (``"hr"`` -> groups ``h`` and ``r``)."""
    if isinstance(ids, (str, bytes)):
        raise InvalidPrincipal(f"{what} must be a list of ids, got the string {ids!r}: pass [{ids!r}]")
    return ids


@dataclass(frozen=True, slots=True)
class UserContext:
    """The signed-in user a request is made for.

    :param user_id: the user's stable id (e-mail, UPN or object id)
    :param tenant: the tenant (organisation) the user belongs to
    :param groups: group ids the identity provider asserts for this user
    :param roles: application roles (used for feature enablement)
    """

    user_id: str
    tenant: str
    groups: frozenset[str] = frozenset()
    roles: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        for what in ("groups", "roles"):
            _not_a_string(getattr(self, what), what)
        object.__setattr__(self, "user_id", canonical_id(self.user_id, "user id"))
        object.__setattr__(self, "tenant", validate_tenant(self.tenant))
        object.__setattr__(self, "groups", frozenset(canonical_id(g, "group id") for g in self.groups))
        object.__setattr__(self, "roles", frozenset(canonical_id(r, "role id") for r in self.roles))

    @classmethod
    def of(
        cls,
        user_id: str,
        tenant: str,
        groups: Iterable[str] = (),
        roles: Iterable[str] = (),
    ) -> UserContext:
        groups, roles = _not_a_string(groups, "groups"), _not_a_string(roles, "roles")
        return cls(user_id, tenant, frozenset(groups), frozenset(roles))

    def principals(self) -> frozenset[str]:
        """All principal tokens this user holds inside their tenant."""
        return frozenset(
            [EVERYONE, f"user:{self.user_id}"]
            + [f"group:{g}" for g in self.groups]
            + [f"role:{r}" for r in self.roles]
        )


@dataclass(frozen=True, slots=True)
class AccessControl:
    """Who may read a document. Empty ``allow`` means nobody; ``deny`` wins over ``allow``."""

    allow: frozenset[str] = frozenset()
    deny: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        object.__setattr__(self, "allow", frozenset(normalize_principal(p) for p in self.allow))
        object.__setattr__(self, "deny", frozenset(normalize_principal(p) for p in self.deny))

    @classmethod
    def of(cls, allow: Iterable[str] = (), deny: Iterable[str] = ()) -> AccessControl:
        return cls(frozenset(allow), frozenset(deny))

    def grants(self, principals: frozenset[str] | set[str]) -> bool:
        """True only if some principal is allowed and none is denied (fail closed)."""
        return bool(self.allow & principals) and not (self.deny & principals)

    def fingerprint(self) -> str:
        """A short hash that differs whenever the ACL does (the sync's change detector).

        The two sorted lists are JSON-encoded, never joined with a separator: ids may hold any printable
        character (``|``, ``#``, ``,``), and ``[group:a, group:b]`` must not hash like ``[group:a|group:b]``,
        or narrowing one to the other would never reach the index.
        """
        data = json.dumps([sorted(self.allow), sorted(self.deny)], ensure_ascii=False)
        return hashlib.sha256(data.encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Section:
    """A part of a document with its own citation location (a heading, a page, a slide)."""

    text: str
    location: str = ""
    anchor: str = ""  # fragment or page reference appended to the document URI, e.g. "#pay-dates"


@dataclass(frozen=True, slots=True)
class Document:
    """A source document as a connector delivers it.

    :param id: stable id, unique inside its connector (the framework prefixes the connector name)
    :param sections: the extracted text, split where citations should point
    """

    id: str
    title: str
    uri: str
    acl: AccessControl
    sections: tuple[Section, ...]
    modified: datetime | None = None
    version: str = ""  # ETag / cTag / mtime: cheap change detection by the connector
    metadata: Mapping[str, str | int | float | bool] = field(default_factory=dict)

    @property
    def text(self) -> str:
        return "\n\n".join(s.text for s in self.sections)

    def content_hash(self) -> str:
        """Hash of everything stored with the chunks except the ACL: title, URI and sections (a moved
        document keeps its id but gets a new URI, which must reach the index)."""
        h = hashlib.sha256()
        h.update(self.title.encode())
        h.update(b"\x00" + self.uri.encode())
        for s in self.sections:
            h.update(b"\x00" + s.location.encode() + b"\x00" + s.anchor.encode() + b"\x00" + s.text.encode())
        return h.hexdigest()


@dataclass(frozen=True, slots=True)
class Chunk:
    """A retrievable piece of a document, carrying the document's ACL and source."""

    id: str
    doc_id: str
    connector: str
    tenant: str
    text: str
    title: str
    uri: str
    location: str
    acl: AccessControl
    position: int = 0
    score: float = 0.0
    # values that plugins computed at index time (``annotate_chunks``), stored in the encrypted payload
    annotations: Mapping[str, Any] = field(default_factory=dict)


class Action(StrEnum):
    ALLOW = "allow"
    FLAG = "flag"  # keep, but tell the reviewer
    REDACT = "redact"  # remove spans from the output
    DROP = "drop"  # remove a retrieved chunk
    QUARANTINE = "quarantine"  # remove a chunk and keep it aside for an administrator
    BLOCK = "block"  # refuse the whole request


def severity_action(
    settings: Mapping[str, Any], category: str, severity: int, flag_at: int = 2, block_at: int = 6
) -> Action | None:
    """The action for a content-safety ``severity`` of ``category`` under a plugin's settings.

    ``settings["flag_at"]`` / ``settings["block_at"]`` are a severity for every category, or a table per
    category (``block_at = {self_harm = 4}``; categories not in the table use the defaults given here).
    Returns BLOCK, FLAG, or None (below both thresholds). Shared by every content-safety plugin so that
    the same settings mean the same thing whichever service scored the text.
    """

    def level(key: str, default: int) -> int:
        v = settings.get(key, default)
        return int(v.get(category, default)) if isinstance(v, Mapping) else int(v)

    if severity >= level("block_at", block_at):
        return Action.BLOCK
    if severity >= level("flag_at", flag_at):
        return Action.FLAG
    return None


@dataclass(frozen=True, slots=True)
class Verdict:
    """The decision of one screening plugin.

    :param stage: ``prompt``, ``documents`` or ``output``
    :param plugin: the plugin that decided
    :param action: what to do
    :param score: the plugin's confidence or risk score in [0, 1]
    :param reason: a short human-readable reason (never document text from other users)
    :param target: the chunk id for document verdicts
    :param spans: ``(start, end, label)`` character spans in the draft text, for REDACT and FLAG
    """

    stage: str
    plugin: str
    action: Action
    score: float = 0.0
    reason: str = ""
    target: str = ""
    spans: tuple[tuple[int, int, str], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["action"] = str(self.action)
        d["spans"] = [list(s) for s in self.spans]
        return d


@dataclass(frozen=True, slots=True)
class Citation:
    """A source a draft relies on; ``n`` is the ``[n]`` marker in the draft text."""

    n: int
    title: str
    uri: str
    snippet: str
    location: str
    doc_id: str
    chunk_id: str
    connector: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class DraftStatus(StrEnum):
    PENDING_REVIEW = "pending_review"
    APPROVED = "approved"
    EDITED = "edited"
    REJECTED = "rejected"
    BLOCKED = "blocked"


@dataclass(slots=True)
class GroundingRequest:
    """One request made on behalf of a user."""

    user: UserContext
    prompt: str
    feature: str = "ask"
    top_k: int = 5
    connectors: tuple[str, ...] | None = None  # restrict to these configured connectors
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    created_at: datetime = field(default_factory=utcnow)


@dataclass(slots=True)
class Draft:
    """A grounded draft. It is never final: a person reviews it."""

    request_id: str
    text: str
    citations: list[Citation] = field(default_factory=list)
    verdicts: list[Verdict] = field(default_factory=list)
    status: DraftStatus = DraftStatus.PENDING_REVIEW
    notice: str = REVIEW_NOTICE
    withheld_sources: int = 0  # sources dropped by document screening (not by access control)
    generator: str = ""
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    created_at: datetime = field(default_factory=utcnow)

    @property
    def blocked(self) -> bool:
        return self.status is DraftStatus.BLOCKED

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "request_id": self.request_id,
            "status": str(self.status),
            "text": self.text,
            "citations": [c.to_dict() for c in self.citations],
            "verdicts": [v.to_dict() for v in self.verdicts],
            "notice": self.notice,
            "withheld_sources": self.withheld_sources,
            "generator": self.generator,
            "created_at": self.created_at.isoformat(),
        }
