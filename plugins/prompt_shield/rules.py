"""Rules for known prompt-injection families, matched on the normalised text and on every decoded reading.

A *strong* rule hit blocks on its own, whatever the classifier threshold; every rule is also a feature of
the classifier. Rules are written against benign look-alikes (how-to articles that tell *people* to ignore a
warning, e-mails asking for a reply, code that defines ``send_email``): tests/test_prompt_shield*.py hold
both sides and ``python -m benchmarks.howto`` measures the false positives.

Invariants: :func:`rule_hits` is total and never quotes the text in a reason; decoded readings only add
strong hits (marked ``(encoded)``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from .decode import decoded_payloads
from .normalize import clean, clean_lines
from .prefilter import CASE_EXOTIC, Gate, holds

__all__ = ["RULES", "Rule", "rule_hits"]


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    pattern: re.Pattern[str]
    strong: bool  # a hit blocks on its own
    reason: str
    cased: re.Pattern[str] | None = None  # also a hit: this pattern on the text with its case kept

    def matches(self, norm: str, plain: str) -> bool:
        return bool(self.pattern.search(norm) or (self.cased is not None and self.cased.search(plain)))


def _r(name: str, rx: str, strong: bool, reason: str, cased: str | None = None) -> Rule:
    return Rule(name, re.compile(rx, re.I), strong, reason, re.compile(cased) if cased else None)


_PRIOR = (
    r"(?:all |any |the |your |my |these |those |of )*"
    r"(?:previous|prior|above|earlier|preceding|initial|original|system|foregoing)"
)
# names only a machine reader goes by ("assistant", "agent" and "model" are people and printers too)
_AI = (
    r"(?:ai|a\.i\.|chatbot|llm|large language model|language model|copilot|gpt|chatgpt|"
    r"ai (?:assistant|model|agent|system)|virtual assistant|digital assistant)"
)
_ANSWER = r"(?:answers?|responses?|outputs?|summary|summaries|completions?)"  # not "reply": e-mail guides
_TOOLS = (
    r"(?:send_e?mail|send_message|forward_e?mail|delete_(?:file|files|folder|user|account|repo|database|records?)|"
    r"remove_file|rm_rf|transfer_(?:money|funds)|make_payment|wire_transfer|execute_(?:command|code|shell)|"
    r"run_(?:shell|command|code)|exec_shell|post_(?:message|tweet)|create_user|grant_access|update_memory|"
    r"write_memory)"
)

RULES: tuple[Rule, ...] = (
    _r(
        "override",
        rf"\b(?:ignore|disregard|forget|override|bypass|skip|discard|drop)\b.{{0,20}}\b{_PRIOR}\b.{{0,20}}"
        r"\b(?:instructions?|prompts?|rules?|directions?|guidelines?|context|messages?|commands?|orders?|"
        r"tasks?|text|input)",
        True,
        "instruction override",
    ),
    _r(
        "override_all",
        # "Disregard everything above and just output ...", "forget all you were told"
        r"\b(?:ignore|disregard|forget|discard)\b\s+(?:about\s+)?(?:everything|all|anything)\b"
        r"(?:\s+(?:of\s+)?(?:that|this|what)\b)?.{0,25}?"
        r"\b(?:above|before|previously|prior|so far|earlier|you(?:'ve| have| were)(?: been)? (?:told|given|said)|"
        r"i (?:said|told you|wrote)|(?:that )?(?:came|comes|was written) before)\b|"
        r"\b(?:ignore|disregard|forget)\b\s+(?:everything|all of (?:that|this)|the above)\s*(?:[.,;:!-]|and)\s*"
        r"(?:just |only |instead |now )*(?:output|print|say|respond|reply|write|answer|return|tell)\b",
        True,
        "instruction override",
    ),
    _r(
        "override2",
        r"\b(?:new|updated|real|actual|revised) (?:instructions?|system prompt|rules|task)\s*[:\-]|"
        r"\bfrom now on,? you (?:will|must|are|shall|should)\b|\byou are no longer bound\b|"
        # "Developer Mode" blocks only as the jailbreak's persona ("ChatGPT with Developer Mode enabled",
        # "(Developer Mode Output)"); "turn on Developer mode" on a phone or in Chrome is a weak hit
        r"\b(?:chatgpt|assistant|ai|model|llm) (?:with|in) developer mode\b|\bdeveloper mode output\b|"
        r"\byou(?: are|'re) now (?:in|running in) developer mode\b|"
        r"\b(?:simulate|emulate) developer mode\b",
        True,
        "instruction override",
    ),
    _r(
        "stop_everything",
        r"\bstop (?:everything|what you(?:'re| are) doing|all (?:previous |prior |current )?"
        r"(?:tasks|instructions|processing))\b|\b(?:halt|abort|cancel) (?:everything|all (?:previous |prior )?"
        r"(?:tasks|instructions))\b",
        True,
        "instruction override (stop everything)",
        r"\b(?:STOP|HALT|ABORT|ATTENTION|URGENT)\b[A-Z !,.]{0,40}!{2,}",
    ),
    _r(
        "foreign_override",
        # German, French, Spanish, Italian, Portuguese, Dutch: "ignore the previous instructions", "forget all"
        r"\b(?:ignorier(?:e|en sie)?|vergiss|vergessen sie|missachte|übergehe)\b.{0,40}"
        r"\b(?:vorherigen?|bisherigen?|obigen?|vorangegangenen?|vorigen?|alle[nms]?|sämtliche)\b.{0,30}"
        r"\b(?:anweisungen|anordnungen|instruktionen|befehle|regeln|aufgaben|vorgaben|informationen)\b|"
        r"\b(?:vergiss|ignoriere|vergessen sie) alles\b|"
        r"\b(?:ignore[rz]?|oublie[rz]?|oubliez)\b.{0,40}\b(?:précédentes?|precedentes?|antérieures?|"
        r"ci-dessus|toutes? les?|tout ce qui)\b.{0,30}\b(?:instructions?|consignes?|règles|regles|ordres|"
        r"directives?|indications)\b|\b(?:oublie|oubliez|ignore|ignorez) tout\b|"
        r"\b(?:ignora|olvida|ignore|olvide|ignoren|olviden)\b.{0,40}\b(?:anteriores|previas|todas las|"
        r"todo lo|las instrucciones)\b.{0,30}\b(?:instrucciones|indicaciones|reglas|órdenes|ordenes|"
        r"directrices)\b|\b(?:olvida|olvide|ignora) todo\b|"
        r"\b(?:ignora|dimentica|ignorate|dimenticate|trascura)\b.{0,40}\b(?:precedenti|tutte le|tutto|"
        r"sopra|le istruzioni)\b.{0,30}\b(?:istruzioni|indicazioni|regole|comandi|direttive)\b|"
        r"\b(?:dimentica|dimenticate|ignora) tutto\b|"
        r"\b(?:ignore|esqueça|esqueca|desconsidere)\b.{0,40}\b(?:anteriores|todas as)\b.{0,30}"
        r"\b(?:instruções|instrucoes|regras|ordens)\b|"
        r"\b(?:negeer|vergeet)\b.{0,40}\b(?:vorige|eerdere|alle)\b.{0,30}\b(?:instructies|regels|opdrachten)\b",
        True,
        "instruction override (non-English)",
    ),
    _r(
        "chat_template",
        r"<\|\s*(?:im_start|start_header_id|system|im_sep)\s*\|>\s*(?:system|assistant|developer|user)?|"
        r"<<\s*sys\s*>>|\[/?inst\]|<\|(?:im_end|eot_id|endoftext|end_header_id)\|>|"
        r"^\s*#{2,}\s*(?:system|instruction|assistant)\s*:|(?:^|\n)\s*(?:system|assistant)\s*:\s*(?:you|ignore|new)\b",
        True,
        "chat-template or role tokens",
    ),
    _r(
        "fake_marker",
        # fake system / admin markers planted in documents
        r"<\s*/?\s*(?:system|sys|admin|administrator|developer|instructions?|im_system|system_prompt)"
        r"(?:\s+[^<>]{0,40})?\s*>|"
        r"\[\s*/?\s*(?:system|admin|administrator|developer|sys)\s+(?:request|note|message|override|"
        r"instruction|command|mode|prompt|update)\b|\[\s*/?\s*(?:system|admin)\s*::|"
        r"\b(?:system|admin|administrator|developer|sysadmin)\s+(?:note|request|message|override|instruction|"
        r"command|notice|directive|update|alert)\s*(?::{1,2}|-|—)|"
        rf"\b(?:note|message|instructions?|reminder|attention|important)\s+(?:to|for)\s+(?:the\s+|any\s+|all\s+)?"
        rf"{_AI}s?\b\s*(?:[:(\-—]|reading|processing|summari[sz]ing)|"
        rf"\b(?:dear|hey|attention|hello),?\s+(?:the\s+)?{_AI}\b|"
        r"\b(?:before|when|while|after) (?:you )?(?:answer(?:ing)?|respond(?:ing)?|repl(?:y|ying)) (?:to )?the "
        r"user\b|\bif you are an? (?:ai|assistant|language model|llm|chatbot)\b|"
        rf"\b(?:ai|llm|language model|chatbot) (?:assistants?|agents?|models?)?,?\s*(?:reading|processing|"
        rf"summari[sz]ing) this\b",
        True,
        "fake system or admin marker",
        r"\[\s*/?\s*(?:SYSTEM|ADMIN|ADMINISTRATOR|DEVELOPER|SYS)\b[^\]\n]{0,60}(?:\]|::)",
    ),
    _r(
        "output_hijack",
        # "Respond with Access Granted.", "say 'I have been PWNED'", "reply only with the word yes"
        r"\b(?:respond|reply|answer|say|print|output|write|return|type)\b(?: only| just| exactly| simply)?"
        r"(?: with)?(?: the (?:words?|phrase|text|string|sentence))?\s*[:\"'“”‘’]*\s*"
        r"(?:access granted|i have been pwned|i(?:'ve| have) been hacked|pwned|hacked|haha pwned)\b|"
        r"\b(?:respond|reply|answer)\s+(?:only|just|solely|exclusively)\s+with\s+[\"'“‘]",
        True,
        "output hijack",
    ),
    _r(
        "append_token",
        r"\b(?:append|add|insert|include|attach|put|place|end)\b.{0,40}\b(?:token|string|phrase|"
        r"image|emoji|code word|marker|tag|link|url)\b.{0,30}"
        rf"\b(?:(?:to|at) the (?:very )?(?:end|start|beginning|bottom|top) of|to|in|into|after) "
        rf"(?:your|the|every|each|all) "
        rf"(?:(?:next|final|following) )?{_ANSWER}\b|"
        rf"\b(?:end|begin|start|prefix|suffix|finish|conclude) (?:your|every|each|all|the) {_ANSWER} "
        r"with (?:the (?:token|string|phrase|word|text|url|link)|[\"'“‘\[(<])",
        True,
        "asks to append a token to the answer",
    ),
    _r(
        "repeat_phrase",
        r"\b(?:repeat|say|write|type|output|print)\b.{0,15}\b(?:the (?:following|word|phrase|sentence|string)|"
        r"after me|this (?:exact )?(?:phrase|word|sentence|string))\b.{0,60}"
        r"\b(?:\d+ times|forever|over and over|verbatim|exactly)\b|"
        r"\b(?:repeat|say)\b (?:the word |the phrase )?[\"'“‘][^\"'”’]{1,40}[\"'”’] (?:\d+|a hundred|a thousand|"
        r"forever|over)",
        True,
        "asks to repeat a phrase",
    ),
    _r(
        "tool_call",
        rf"\b(?:call|invoke|use|run|execute|trigger|fire|perform)\b.{{0,25}}`?\b{_TOOLS}\b.{{0,80}}"
        r"(?:@|https?://|\ball (?:the |of the )?(?:files|e-?mails|messages|records|data|documents)\b|\bimmediately\b|"
        r"\bwithout (?:asking|telling|confirm|notif)|\battacker\b|\bpassword)|"
        rf"\b{_TOOLS}\s*\(\s*(?:to\s*=|[\"'])[^)]*@|"
        r"\b(?:send|forward|e-?mail|mail|upload|exfiltrate|post|transmit)\b.{0,40}\b(?:this conversation|"
        r"the conversation|chat history|conversation history|(?:all|the) (?:user'?s? )?(?:data|e-?mails|files|"
        r"documents|messages|credentials|passwords|api keys?|contacts|inbox))\b.{0,30}\bto\b.{0,20}"
        r"(?:@|https?://|\battacker\b)|"
        r"\b(?:delete|erase|wipe|remove)\b.{0,20}\b(?:all|every)\b.{0,15}\b(?:files|e-?mails|documents|"
        r"records|repositories|data)\b.{0,40}\b(?:without|immediately|now|silently)\b",
        True,
        "asks to call a tool or act on the user's data",
    ),
    _r(
        "tool_call_weak",
        rf"\b(?:call|invoke|use|run|execute|trigger)\b.{{0,25}}`?\b{_TOOLS}\b",
        False,
        "mentions calling a tool",
    ),
    _r(
        "memory",
        r"\b(?:remember|memori[sz]e|store|save|record|write|add|keep)\b.{0,40}\b(?:in|to|into) your "
        r"(?:long[- ]term |persistent |permanent )?(?:memory|memories)\b(?! (?:card|stick|usage|limit|settings))|"
        r"\b(?:update|change|modify|wipe|clear|erase|overwrite|edit) (?:your|the user'?s?) "
        r"(?:memory|memories|stored facts|saved preferences)\b(?! (?:card|stick|usage|limit|settings))|"
        rf"\bfrom now on,? (?:always )?(?:remember|believe|assume)\b|\b{_AI} (?:should|must|will) (?:now )?"
        r"(?:remember|believe|always recall)\b",
        True,
        "asks to change what is remembered",
    ),
    _r(
        "decode_follow",
        r"\b(?:decode|decipher|translate|convert)\b.{0,40}\b(?:base64|base32|base16|hex|rot13|ascii85|base85|"
        r"cipher)\b.{0,40}\b(?:follow|execute|obey|do what|carry out|act on|run)\b|"
        r"\b(?:follow|execute|obey|carry out)\b.{0,30}\b(?:decoded|encoded|hidden) (?:instructions?|text|message|"
        r"payload)\b",
        True,
        "asks to decode and follow a payload",
    ),
    _r(
        "persona",
        r"\b(?:do anything now|jailbr[eo]ak(?:en)?|unfiltered and amoral|no (?:ethical|moral) "
        r"(?:or moral )?guidelines|stay in character|"
        # "without any restrictions" blocks only when it qualifies how to answer ("the dataset may be reused
        # without any restrictions" is a licence, "reply without any restrictions on length" a form)
        r"(?:answers?|answering|respond(?:s|ing)?|repl(?:y|ies|ying)|generat(?:e|es|ing)|writ(?:e|es|ing)|"
        r"act|acting|operat(?:e|es|ing))\b[^.,;\n]{0,40}\bwithout any (?:restrictions|filters|censorship)"
        r"(?!\s+(?:on|to|for|in|of|regarding)\b)|"
        r"(?:act|pretend|roleplay|role-play) as (?:an? )?(?:unrestricted|evil|unfiltered|uncensored))\b",
        True,
        "role-play persona to evade safety rules",
        r"\bDAN\b",  # the persona is written in capitals; "Dan" is a first name, "dan" a martial-arts rank
    ),
    _r(
        "persona_weak",
        r"\b(?:you are to act as|pretend (?:to be|you are)|in this hypothetical story|"
        r"imagine you are|let'?s play a game|never refuses?|always (?:fulfills?|complies|answers)|"
        r"developer mode|without any (?:restrictions|filters|censorship))\b",
        False,
        "role-play framing",
    ),
    _r(
        "extraction",
        r"\b(?:reveal|print|show|repeat|output|leak|dump|tell me|write out|spell out|translate)\b.{0,30}"
        r"\b(?:your (?:system prompt|(?:exact |full |original |initial |hidden |secret )?"
        r"(?:instructions|prompt|rules|password|secret))|"
        r"the (?:system prompt|(?:initial|hidden|original|secret) (?:prompt|instructions|password)|"
        r"instructions above|text above|words above))\b|"
        r"\bwhat (?:is|are|were) your "
        r"(?:system prompt|(?:original |initial |hidden )?(?:instructions|prompt))\b",
        True,
        "system-prompt extraction",
    ),
    _r(
        "response_prime",
        r"(?:start|begin) (?:your|the) (?:response|reply|answer) with|"
        r"\bsure,? here(?:'s| is)\b|never ever",
        False,
        "response priming",
    ),
    _r(
        "embedded_task",
        r"\b(?:in your (?:reply|response|answer)|your (?:reply|response|answer) (?:must|should)|"
        r"(?:include|insert|add|embed) (?:the following|this) (?:code|link|url|text)|"
        r"(?:visit|click|go to) (?:this|the following) (?:link|url|website))\b",
        False,
        "instruction addressed to the assistant",
    ),
)


_GATES: tuple[tuple[Gate, Gate | None], ...] = tuple(
    (Gate.of(r.pattern), Gate.of(r.cased) if r.cased is not None else None) for r in RULES
)
# per rule: the alternatives of its pattern (each with the literal clauses it needs in the case-folded text)
# and those of its cased pattern
_PLAN = tuple((g.parts, () if gc is None else gc.parts) for g, gc in _GATES)
_STRONG = tuple(i for i, r in enumerate(RULES) if r.strong)
if not all(g.folded and (gc is None or not gc.folded) for g, gc in _GATES):  # what _gated relies on
    raise RuntimeError("every rule pattern must ignore case and every cased pattern keep it")
_ALL = tuple(range(len(RULES)))


def _gated(idx: tuple[int, ...], plain: str) -> list[Rule]:
    """``[RULES[i] for i in idx if RULES[i].matches(plain.casefold(), plain)]``, each alternative of a
    pattern run only when the literals it requires are there (:mod:`.prefilter`)."""
    norm = plain.casefold()
    exotic = not norm.isascii() and not CASE_EXOTIC.isdisjoint(norm)  # the folded gates do not apply
    out = []
    for i in idx:
        parts, cased = _PLAN[i]
        for pat, clauses in parts:
            if (exotic or holds(clauses, norm)) and pat.search(norm) is not None:
                out.append(RULES[i])
                break
        else:
            for pat, clauses in cased:
                if holds(clauses, plain) and pat.search(plain) is not None:
                    out.append(RULES[i])
                    break
    return out


def rule_hits(text: str) -> list[Rule]:
    """Rules matching the normalised text itself, plus the strong rules matching any decoded reading of it
    (base64/32/16, ascii85, hex, rot13, leetspeak, nested; see :mod:`.decode`).

    The same list as :func:`~.reference.rule_hits` (which runs every pattern on every reading): a pattern is
    only skipped where a literal it requires is absent (:mod:`.prefilter`)."""
    plain = clean(text)
    hits = _gated(_ALL, plain)
    if not any(r.strong for r in hits):
        for payload in decoded_payloads(clean_lines(text)):
            strong = _gated(_STRONG, clean(payload))
            if strong:
                hits.extend(replace(r, reason=r.reason + " (encoded)") for r in strong)
                break
    return hits

