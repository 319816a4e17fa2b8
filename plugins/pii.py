"""PII detection and redaction on the draft (``screen_output``): one REDACT verdict with the found spans.

Detectors (offline; patterns plus the field's validators to keep false positives down):
``email``, ``phone`` (Google's libphonenumber via ``phonenumbers``: a number valid for its country,
written internationally with ``+`` or nationally for one of ``phone_regions``), ``credit_card`` (13-19
digits, Luhn check), ``iban`` (python-stdnum: country length and format, mod-97), ``us_ssn`` (area, group
and serial ranges checked), ``uk_nino`` (prefix rules), ``street_address`` (number + street words +
street type).

Settings: ``[plugins.settings.pii]`` with ``entities = [...]`` (default: all), ``action = "redact"`` or
``"flag"``, ``phone_regions`` (``["US", "GB"]``: ISO country codes whose national formats count), and
per-tenant overrides in ``[plugins.settings.pii.tenants.<tenant>]`` (same keys, plus ``enabled = false``).
Invariant: verdict reasons name entity types and counts, never the values.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import phonenumbers
from groundwire import Action, Draft, GroundingRequest, GroundwireConfig, Verdict, hookimpl
from groundwire.models import Chunk
from stdnum import iban as stdnum_iban
from stdnum import luhn as stdnum_luhn

__all__ = ["ENTITIES", "PHONE_REGIONS", "find_pii", "iban_valid", "luhn_valid", "phone_spans"]

PLUGIN = "pii"


PHONE_REGIONS = ("US", "GB")


def luhn_valid(number: str) -> bool:
    digits = "".join(c for c in number if c.isdigit())
    return 13 <= len(digits) <= 19 and bool(stdnum_luhn.is_valid(digits))


def iban_valid(iban: str) -> bool:
    return bool(stdnum_iban.is_valid(iban))


def phone_spans(text: str, regions: Sequence[str] = PHONE_REGIONS) -> list[tuple[int, int]]:
    """Spans of phone numbers valid for their country (``+`` numbers anywhere; national ones for
    ``regions``), found by libphonenumber's matcher."""
    spans: set[tuple[int, int]] = set()
    for region in regions or (None,):
        for m in phonenumbers.PhoneNumberMatcher(text, region, leniency=phonenumbers.Leniency.VALID):
            spans.add((m.start, m.end))
    return sorted(spans)


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


_STREET_TYPES = (
    r"street|st|avenue|ave|road|rd|boulevard|blvd|lane|ln|drive|dr|court|ct|place|pl|square|sq|"
    r"terrace|way|parkway|pkwy|highway|hwy|close|crescent"
)

# (label, pattern, validator); order matters only for the report, spans are merged by the pipeline
# phone has no pattern: phone_spans finds it with libphonenumber
ENTITIES: dict[str, tuple[re.Pattern[str], Callable[[re.Match[str]], bool] | None] | None] = {
    "email": (re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b"), None),
    "credit_card": (re.compile(r"(?<![\d-])(?:\d[ -]?){12,18}\d(?![\d-])"), lambda m: luhn_valid(m.group(0))),
    "iban": (
        re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b"),
        lambda m: iban_valid(m.group(0)),
    ),
    "us_ssn": (re.compile(r"(?<!\d)(\d{3})-(\d{2})-(\d{4})(?!\d)"), _ssn_valid),
    "uk_nino": (re.compile(r"\b[A-Za-z]{2} ?\d{2} ?\d{2} ?\d{2} ?[A-Da-d]\b"), _nino_valid),
    "phone": None,
    "street_address": (
        re.compile(rf"\b\d{{1,5}}(?: [A-Z][a-z]+){{1,4}} (?:{_STREET_TYPES})\b\.?", re.I),
        None,
    ),
}


def find_pii(
    text: str, entities: Sequence[str] | None = None, phone_regions: Sequence[str] = PHONE_REGIONS
) -> list[tuple[int, int, str]]:
    """Spans ``(start, end, label)`` of PII in ``text``. Digits claimed by a checked entity (card, IBAN,
    SSN) are not reported again as a phone number."""
    wanted = list(ENTITIES) if entities is None else [e for e in ENTITIES if e in set(entities)]
    spans: list[tuple[int, int, str]] = []
    for label in wanted:
        entry = ENTITIES[label]
        if entry is None:
            continue
        rx, ok = entry
        for m in rx.finditer(text):
            if ok is None or ok(m):
                spans.append((m.start(), m.end(), label))
    if "phone" in wanted:
        for start, end in phone_spans(text, phone_regions):
            if not any(s < end and start < e for s, e, _ in spans):
                spans.append((start, end, "phone"))
    return sorted(spans)


@hookimpl
def screen_output(
    request: GroundingRequest, draft: Draft, sources: Sequence[Chunk], config: GroundwireConfig
) -> Verdict | None:
    s = config.plugin_settings(PLUGIN, request.user.tenant)
    if not s.get("enabled", True):
        return None
    unknown = set(s.get("entities", ())) - set(ENTITIES)
    if unknown:
        raise config.error(
            f"plugins.settings.{PLUGIN}.entities",
            f"unknown entities {sorted(unknown)}",
            f"choose from {', '.join(ENTITIES)}",
        )
    regions = tuple(str(r).upper() for r in s.get("phone_regions", PHONE_REGIONS))
    if set(regions) - phonenumbers.SUPPORTED_REGIONS:
        raise config.error(
            f"plugins.settings.{PLUGIN}.phone_regions",
            f"unknown regions {sorted(set(regions) - phonenumbers.SUPPORTED_REGIONS)}",
            "use ISO 3166 two-letter country codes such as US, GB, DE",
        )
    spans = find_pii(draft.text, s.get("entities"), regions)
    if not spans:
        return None
    action = Action.FLAG if s.get("action", "redact") == "flag" else Action.REDACT
    counts: dict[str, int] = {}
    for _, _, label in spans:
        counts[label] = counts.get(label, 0) + 1
    reason = "personal data: " + ", ".join(f"{n} {label}" for label, n in sorted(counts.items()))
    return Verdict(stage="output", plugin=PLUGIN, action=action, score=1.0, reason=reason, spans=tuple(spans))
