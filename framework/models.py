"""Typed models that cross plugin boundaries.

Invariants:
- A principal is a string token ``kind:id`` (``user:alice``, ``group:hr``, ``role:manager``) or the
  tenant-wide token ``everyone``. Ids are normalised (stripped, case-folded) on both sides, so ACLs
  and users always compare in the same form.
- An :class:`AccessControl` with an empty ``allow`` set grants nobody (fail closed). ``deny`` wins.
- A :class:`Draft` is always created with status ``pending_review``; only the review workflow moves it.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

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
    "Section",
    "UserContext",
    "Verdict",
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


def _norm_id(value: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"an identity must be a non-empty string, got {value!r}")
    return value.strip().casefold()


def normalize_principal(token: str) -> str:
    """Return the canonical form of a principal token, or raise ``ValueError``.

    Accepts ``everyone``, ``user:X``, ``group:X`` and ``role:X`` (any case, surrounding space).
    """
    raw = token.strip()
    if raw.casefold() == EVERYONE:
        return EVERYONE
    kind, sep, ident = raw.partition(":")
    kind = kind.strip().casefold()
    if not sep or kind not in PRINCIPAL_KINDS or not ident.strip():
        raise ValueError(
            f"invalid principal {token!r}: use 'everyone', 'user:<id>', 'group:<id>' or 'role:<id>'"
        )
    return f"{kind}:{_norm_id(ident)}"


def validate_tenant(tenant: str) -> str:
    if not _TENANT_RE.match(tenant):
        raise ValueError(
            f"invalid tenant id {tenant!r}: use 1-63 lower-case letters, digits or '-', starting with a "
            "letter or digit"
        )
    return tenant


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
        object.__setattr__(self, "user_id", _norm_id(self.user_id))
        object.__setattr__(self, "tenant", validate_tenant(self.tenant))
        object.__setattr__(self, "groups", frozenset(_norm_id(g) for g in self.groups))
        object.__setattr__(self, "roles", frozenset(_norm_id(r) for r in self.roles))

    @classmethod
    def of(
        cls,
        user_id: str,
        tenant: str,
        groups: Iterable[str] = (),
        roles: Iterable[str] = (),
    ) -> UserContext:
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
        data = "|".join(sorted(self.allow)) + "#" + "|".join(sorted(self.deny))
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
