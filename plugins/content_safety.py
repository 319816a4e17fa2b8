"""Content safety on the draft (``screen_output``): an offline lexicon baseline with severities.

Categories follow Azure AI Content Safety: ``hate``, ``violence``, ``self_harm``, ``sexual``; severities
0, 2, 4, 6 (safe, low, medium, high). Each rule is a phrase pattern with a severity; a sentence's severity
is the highest rule that matches it. Educational or policy text ("report harassment to HR", "workplace
violence prevention") matches only low-severity terms, which are flagged, never blocked, by default.

Settings ``[plugins.settings.content_safety]``: ``flag_at`` (2) and ``block_at`` (6) severities, optionally
per category as tables (``block_at = {self_harm = 4}``), ``enabled``. Verdicts: BLOCK (the pipeline
withholds the draft) or FLAG with spans and the category:severity in the reason (never the matched words).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from groundwire import Draft, GroundingRequest, GroundwireConfig, Verdict, hookimpl, sentence_spans, severity_action
from groundwire.models import Chunk

__all__ = ["CATEGORIES", "analyze"]

PLUGIN = "content_safety"
CATEGORIES = ("hate", "violence", "self_harm", "sexual")

_RAW: dict[str, list[tuple[int, str]]] = {
    "hate": [
        (2, r"\b(?:racis[mt]|sexis[mt]|bigot(?:ry|s)?|slurs?|discriminat\w*)\b"),
        (
            4,
            r"\b(?:inferior|subhuman|vermin|parasites)\b.{0,40}\b(?:race|people|women|men|immigrants|muslims|jews|"
            r"christians|blacks|whites|gays)\b|"
            r"\b(?:hate|despise) (?:all )?(?:immigrants|muslims|jews|blacks|gays)\b",
        ),
        (
            6,
            r"\b(?:exterminate|eradicate|wipe out|gas) (?:all |the )?"
            r"(?:immigrants|muslims|jews|blacks|whites|gays|"
            r"women|race)\b|\bethnic cleansing is (?:good|necessary|justified)\b",
        ),
    ],
    "violence": [
        (2, r"\b(?:violence|violent|assault(?:ed)?|weapons?|firearms?)\b"),
        (
            4,
            r"\b(?:beat (?:him|her|them) up|stab(?:bed|bing)?|shoot(?:ing)? (?:him|her|them|people)|"
            r"break (?:his|her|their) (?:legs?|arms?|neck))\b",
        ),
        (
            6,
            r"\b(?:how to (?:make|build) (?:a )?(?:bomb|explosive|pipe bomb)|"
            r"kill (?:them|him|her|everyone) all|"
            r"mass shooting plan|i will kill you)\b",
        ),
    ],
    "self_harm": [
        (2, r"\b(?:self[- ]harm|suicid\w*)\b"),
        (4, r"\b(?:cut(?:ting)? myself|want to die|end my life|kill myself)\b"),
        (
            6,
            r"\b(?:best way to (?:kill yourself|commit suicide)|how (?:many|much) .{0,30} (?:to|would) "
            r"(?:overdose|kill (?:me|myself|yourself))|you should kill yourself)\b",
        ),
    ],
    "sexual": [
        (2, r"\b(?:sexual(?:ly)?|nud(?:e|ity)|erotic)\b"),
        (4, r"\b(?:porn\w*|explicit sex\w*|sex scene|genitals?)\b"),
        (6, r"\b(?:sex(?:ual)? (?:acts? )?with (?:a )?(?:child|minor|kid)s?|child porn\w*)\b"),
    ],
}
_RULES = {cat: [(sev, re.compile(rx, re.I)) for sev, rx in rules] for cat, rules in _RAW.items()}


def analyze(text: str) -> dict[str, list[tuple[int, int, int]]]:
    """``{category: [(start, end, severity), ...]}`` per matching sentence (its highest severity)."""
    out: dict[str, list[tuple[int, int, int]]] = {c: [] for c in CATEGORIES}
    for start, end in sentence_spans(text):
        sent = text[start:end]
        for cat, rules in _RULES.items():
            sev = max((s for s, rx in rules if rx.search(sent)), default=0)
            if sev:
                out[cat].append((start, end, sev))
    return out


@hookimpl
def screen_output(
    request: GroundingRequest, draft: Draft, sources: Sequence[Chunk], config: GroundwireConfig
) -> list[Verdict]:
    s = config.plugin_settings(PLUGIN)
    if not s.get("enabled", True):
        return []
    verdicts = []
    for cat, hits in analyze(draft.text).items():
        if not hits:
            continue
        worst = max(h[2] for h in hits)
        action = severity_action(s, cat, worst)
        if action is None:
            continue
        verdicts.append(
            Verdict(
                stage="output",
                plugin=PLUGIN,
                action=action,
                score=round(worst / 7, 3),
                reason=f"{cat}: severity {worst}",
                spans=tuple((a, b, f"{cat}:{sev}") for a, b, sev in hits),
            )
        )
    return verdicts
