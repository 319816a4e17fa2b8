"""Addressee and intent cues of a chunk's units: words aimed at an AI, not at the document's human reader.

Evaluated, not shipped (``python -m benchmarks.prompt_shield_indirect --parts loso --cues`` appends these
columns to the unit head's features): they cut clean documents withheld but cost more TPR than they save
(README, "Indirect figures (issue 13)").

A how-to article, a README or a data table tells *people* what to do ("Note: you must be an administrator",
"Run the snippet below"); a planted instruction talks to the model that reads the document, about its reply,
its rules, its tools or "the user". These columns count such cues per unit (capped at 3 each), from the unit's
text alone (no model run):

    AI addressee (assistant, AI, language model, chatbot, GPT, ...), "you are (now) a/the ...",
    override of rules or earlier text (ignore / disregard / forget ... instructions / above / previous),
    control of the reply (your answer / response / output, respond with, say "...", nothing else),
    role-play and jailbreak words (pretend, act as, DAN, developer mode, no restrictions, ...),
    secrets (system prompt, password, API key, credentials, confidential),
    tool or function calls in prose (send_email(...), use the X tool),
    fake markers (<|im_start|>, [INST], <system>, SYSTEM NOTE:, [ADMIN, ###, IMPORTANT, ATTENTION; cased),
    links and e-mail addresses, "the user" / this conversation / previous messages,
    the unit lies inside a code fence of the chunk, log number of words

Invariants: the result depends only on the arguments; ``spans`` are the units' ``(start, end)`` in
``chunk_text`` (``indirect_model.unit_spans``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

__all__ = ["N_CUES", "cue_features"]

_I = re.I
_CUES = [
    re.compile(r"\b(?:assistant|AI|A\.I\.|language models?|LLMs?|chat ?bots?|GPT(?:-\d)?|ChatGPT|Claude|Bard|Gemini|"
               r"Copilot)\b", _I),
    re.compile(r"\byou(?: are|'re| will be| shall be| must act as)\s+(?:now\s+)?(?:an?|the|my|no longer)\b", _I),
    re.compile(r"\b(?:ignore|disregard|forget|override|bypass|discard)\b[^.\n]{0,40}?\b(?:instructions?|rules?|"
               r"guidelines?|directions?|prompts?|context|polic(?:y|ies)|restrictions|above|before|previous(?:ly)?|"
               r"prior|earlier)\b", _I),
    re.compile(r"\b(?:your|the)\s+(?:reply|replies|response|responses|answer|answers|output)\b|"
               r"\b(?:respond|reply|answer)\s+(?:with|only|in|by)\b|\bsay\s+[\"'\u201c]|\bnothing else\b|"
               r"\b(?:begin|start|end|prefix)\s+(?:your|every|each)\b", _I),
    re.compile(r"\b(?:pretend|role-?play|act as|DAN|jailbr\w*|unrestricted|uncensored|unfiltered|developer mode|"
               r"no (?:rules|restrictions|limits|filters|guidelines|ethics)|without (?:any )?(?:restrictions|filters|"
               r"limits|censorship))\b", _I),
    re.compile(r"\b(?:system prompt|passwords?|api[ _-]?keys?|secrets?|credentials?|confidential)\b", _I),
    re.compile(r"\b[a-z]+_[a-z_]+\s*\(|\buse the \w+ tool\b|\bcall (?:the )?\w+ (?:tool|function)\b", _I),
    re.compile(r"<\|[a-z_]+\|>|\[/?INST\]|</?(?:system|admin|assistant|user)>|\bSYSTEM\s*(?:NOTE|OVERRIDE|MESSAGE|"
               r"PROMPT)?\s*:|\[ADMIN|#{3,}|\bIMPORTANT\b|\bATTENTION\b"),
    re.compile(r"https?://|\b\S+@\S+\.[a-z]{2,}\b", _I),
    re.compile(r"\bthe user(?:'s|s)?\b|\bthis (?:conversation|chat|session|dialogue)\b|"
               r"\bprevious (?:messages?|conversation)\b", _I),
]
N_CUES = len(_CUES) + 2


def cue_features(unit_texts: Sequence[str], chunk_text: str, spans: Sequence[tuple[int, int]]) -> np.ndarray:
    """``len(unit_texts) x N_CUES`` float32 rows (see the module docstring for the columns)."""
    k = len(unit_texts)
    out = np.zeros((k, N_CUES), np.float32)
    for j, t in enumerate(unit_texts):
        for i, r in enumerate(_CUES):
            out[j, i] = min(len(r.findall(t)), 3)
        if j < len(spans):
            out[j, len(_CUES)] = float(chunk_text[: (spans[j][0] + spans[j][1]) // 2].count("```") % 2 == 1)
        out[j, len(_CUES) + 1] = np.log1p(len(t.split()))
    return out
