"""Documents are screened per *segment*: the non-table, non-fence lines of a chunk packed into short blocks.

An article that merely *describes* steps is judged on what each block says, while a planted instruction
inside a table or an e-mail stands out. Each segment also carries two features of its host chunk (share of
table rows, number of prose segments).

Invariants: segmenting works on :func:`~.normalize.clean_lines` output, so invisible characters, NBSP and
other spaces cannot change the segments; table rows and code-fence lines never form a segment; every other
non-blank line of the text lies in exactly one segment (long lines cut on sentence and word boundaries).
"""

from __future__ import annotations

import math
import re

import numpy as np

from .normalize import clean_lines

__all__ = ["FENCE", "N_CONTEXT", "SEGMENT_CHARS", "TABLE_ROW", "doc_context", "segments"]

# a table row, or a fragment of one (a row cut where text was inserted): starts or ends with a cell border
TABLE_ROW = re.compile(r"^\s*\|.*\|\s*$|^\s*\|[\s\-:|]+$|^\s*\|(?:[^|\n]*\|){2,}|(?:\|[^|\n]*){2,}\|\s*$")
FENCE = re.compile(r"^\s*(?:```|~~~)[\w+.-]*\s*$")
N_CONTEXT = 2
SEGMENT_CHARS = 320


def doc_context(text: str) -> np.ndarray:
    """Features of the chunk a segment comes from: the share of its lines that are table rows (prose
    wedged into a data table is unusual) and how many prose segments it has."""
    lines = [ln for ln in clean_lines(text).splitlines() if ln.strip() and not FENCE.match(ln)]
    table = sum(1 for ln in lines if TABLE_ROW.search(ln)) / max(len(lines), 1)
    return np.asarray([table, math.log1p(len(segments(text))) / 3.0], dtype=np.float32)


def segments(text: str, size: int = SEGMENT_CHARS) -> list[str]:
    """Non-table lines of ``text`` packed into blocks of about ``size`` characters (blank lines, table rows
    and code fences break). Long lines are cut on sentence and word boundaries."""
    out: list[str] = []
    cur = ""
    for line in [*clean_lines(text).splitlines(), ""]:
        if not line.strip() or TABLE_ROW.search(line) or FENCE.match(line):
            if cur:
                out.append(cur)
            cur = ""
            continue
        line = line.strip()
        pieces = [line] if len(line) <= size else re.split(r"(?<=[.!?|])\s*(?=[A-Z])", line)
        for piece in pieces:
            while len(piece) > size:
                cut = piece.rfind(" ", 0, size)
                cut = cut if cut > size // 2 else size
                if cur:
                    out.append(cur)
                    cur = ""
                out.append(piece[:cut])
                piece = piece[cut:].strip()
            if cur and len(cur) + len(piece) + 1 > size:
                out.append(cur)
                cur = ""
            cur = f"{cur}\n{piece}" if cur else piece
    return [s for s in out if len(s.strip()) >= 3]
