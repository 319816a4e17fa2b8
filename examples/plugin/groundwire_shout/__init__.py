"""A 10-line third-party plugin: flag drafts that contain words in ALL CAPITALS for the reviewer."""
import re

from groundwire import Action, Verdict, hookimpl


@hookimpl
def screen_output(draft):
    shouts = [(m.start(), m.end(), "shouting") for m in re.finditer(r"\b[A-Z]{5,}\b", draft.text)]
    if shouts:
        return Verdict("output", "shout", Action.FLAG, 1.0, f"{len(shouts)} shouted word(s)", spans=tuple(shouts))
