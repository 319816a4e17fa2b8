"""Text for a terminal: what the CLI prints from documents, file names and ids can never drive the terminal.

Document text, titles, snippets and file names come from whoever wrote the sources. Printed raw, an ESC
sequence in them would run in the reader's terminal (``ESC ] 52`` writes the clipboard, ``ESC [ 2J`` clears the
screen and can hide the review notice, ``ESC [ 8m`` hides text), a carriage return or newline in a file name
would forge report lines, and a bidi override (U+202E) would show a name reversed.

Invariant: :func:`escape` returns Rich markup whose rendering holds no C0 control character but ``\\n`` and
``\\t`` (none at all with ``one_line=True``), no DEL, no C1 control and no bidi embedding, override or isolate;
each such character is shown as its escape (``\\x1b``, ``\\u202e``), so nothing is silently dropped.
"""

from __future__ import annotations

import re

from rich.markup import escape as _rich_escape

__all__ = ["escape", "terminal_safe"]

_BIDI = "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
_UNSAFE = re.compile(f"[\x00-\x08\x0b-\x1f\x7f-\x9f{_BIDI}]")
_UNSAFE_LINE = re.compile(f"[\x00-\x1f\x7f-\x9f{_BIDI}]")


def _show(m: re.Match[str]) -> str:
    c = ord(m.group())
    return f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"


def terminal_safe(text: str, one_line: bool = False) -> str:
    """``text`` with every character that could drive a terminal replaced by its visible escape."""
    return (_UNSAFE_LINE if one_line else _UNSAFE).sub(_show, text)


def escape(text: str, one_line: bool = False) -> str:
    """:func:`terminal_safe`, then Rich's markup escape: for untrusted text inside a Rich markup string."""
    return _rich_escape(terminal_safe(text, one_line))
