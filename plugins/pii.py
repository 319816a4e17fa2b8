"""PII detection and redaction on the draft (``screen_output``): one REDACT verdict with the found spans.

Detectors (offline, regular expressions plus checksums to keep false positives down):
``email``, ``phone`` (international or North-American / UK-style numbers with at least 9 digits),
``credit_card`` (13-19 digits, Luhn check), ``iban`` (country code + mod-97 check), ``us_ssn`` (area,
group and serial ranges checked), ``uk_nino`` (prefix rules), ``street_address`` (number + street words +
street type).

Settings: ``[plugins.settings.pii]`` with ``entities = [...]`` (default: all), ``action = "redact"`` or
``"flag"``, and per-tenant overrides in ``[plugins.settings.pii.tenants.<tenant>]`` (same keys, plus
``enabled = false``). Invariant: verdict reasons name entity types and counts, never the values.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Literal

from groundwire import Action, Draft, GroundingRequest, GroundwireConfig, PluginSettings, Verdict, hookimpl
from groundwire.models import Chunk

__all__ = ["ENTITIES", "find_pii", "iban_valid", "luhn_valid"]

PLUGIN = "pii"


def luhn_valid(number: str) -> bool:
    digits = [int(c) for c in number if c.isdigit()]
    if not 13 <= len(digits) <= 19:
        return False
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def iban_valid(iban: str) -> bool:
    s = re.sub(r"\s", "", iban).upper()
    if not re.fullmatch(r"[A-Z]{2}\d{2}[A-Z0-9]{11,30}", s):
        return False
    moved = s[4:] + s[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


def _ssn_valid(m: re.Match[str]) -> bool:
    area, group, serial = m.group(1), m.group(2), m.group(3)
    return area not in ("000", "666") and not area.startswith("9") and group != "00" and serial != "0000"


def _nino_valid(m: re.Match[str]) -> bool:
    prefix = m.group(0).replace(" ", "").upper()[:2]
    return (
        prefix[0] not in "DFIQUV"
        and prefix[1] not in "DFIOQUV"
        and prefix not in {"BG", "GB", "NK", "KN", "TN", "NT", "ZZ"}
    )


def _phone_valid(m: re.Match[str]) -> bool:
    return 9 <= sum(c.isdigit() for c in m.group(0)) <= 15


_STREET_TYPES = (
    r"street|st|avenue|ave|road|rd|boulevard|blvd|lane|ln|drive|dr|court|ct|place|pl|square|sq|"
    r"terrace|way|parkway|pkwy|highway|hwy|close|crescent"
)

# (label, pattern, validator); order matters only for the report, spans are merged by the pipeline
ENTITIES: dict[str, tuple[re.Pattern[str], Callable[[re.Match[str]], bool] | None]] = {
    "email": (re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b"), None),
    "credit_card": (re.compile(r"(?<![\d-])(?:\d[ -]?){12,18}\d(?![\d-])"), lambda m: luhn_valid(m.group(0))),
    "iban": (
        re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b"),
        lambda m: iban_valid(m.group(0)),
    ),
    "us_ssn": (re.compile(r"(?<!\d)(\d{3})-(\d{2})-(\d{4})(?!\d)"), _ssn_valid),
    "uk_nino": (re.compile(r"\b[A-Za-z]{2} ?\d{2} ?\d{2} ?\d{2} ?[A-Da-d]\b"), _nino_valid),
    "phone": (
        re.compile(
            r"(?<![\w+])(?:\+\d{1,3}[ .-]?)?(?:\(\d{2,4}\)[ .-]?)?\d{2,4}(?:[ .-]\d{2,4}){1,4}(?![\w])"
        ),
        _phone_valid,
    ),
    "street_address": (
        re.compile(rf"\b\d{{1,5}}(?: [A-Z][a-z]+){{1,4}} (?:{_STREET_TYPES})\b\.?", re.I),
        None,
    ),
}


def find_pii(text: str, entities: Sequence[str] | None = None) -> list[tuple[int, int, str]]:
    """Spans ``(start, end, label)`` of PII in ``text``. Digits claimed by a checked entity (card, IBAN,
    SSN) are not reported again as a phone number."""
    wanted = list(ENTITIES) if entities is None else [e for e in ENTITIES if e in set(entities)]
    spans: list[tuple[int, int, str]] = []
    for label in wanted:
        rx, ok = ENTITIES[label]
        for m in rx.finditer(text):
            if ok is not None and not ok(m):
                continue
            if label == "phone" and any(s < m.end() and m.start() < e for s, e, _ in spans):
                continue
            spans.append((m.start(), m.end(), label))
    return sorted(spans)


class PiiSettings(PluginSettings):
    """``[plugins.settings.pii]`` (and each ``tenants.<tenant>`` override)."""

    enabled: bool = True
    entities: list[str] | None = None  # None: all of ENTITIES
    action: Literal["redact", "flag"] = "redact"


SETTINGS_MODELS = {PLUGIN: PiiSettings}


@hookimpl
def screen_output(
    request: GroundingRequest, draft: Draft, sources: Sequence[Chunk], config: GroundwireConfig
) -> Verdict | None:
    s = config.plugin_settings(PLUGIN, request.user.tenant, PiiSettings)
    if not s.enabled:
        return None
    unknown = set(s.entities or ()) - set(ENTITIES)
    if unknown:
        raise config.error(
            f"plugins.settings.{PLUGIN}.entities",
            f"unknown entities {sorted(unknown)}",
            f"choose from {', '.join(ENTITIES)}",
        )
    spans = find_pii(draft.text, s.entities)
    if not spans:
        return None
    action = Action.FLAG if s.action == "flag" else Action.REDACT
    counts: dict[str, int] = {}
    for _, _, label in spans:
        counts[label] = counts.get(label, 0) + 1
    reason = "personal data: " + ", ".join(f"{n} {label}" for label, n in sorted(counts.items()))
    return Verdict(stage="output", plugin=PLUGIN, action=action, score=1.0, reason=reason, spans=tuple(spans))
