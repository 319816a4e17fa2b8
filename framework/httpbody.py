"""A response body read with a bound on what it *inflates*: the connectors' defence against compression bombs.

httpx's decoders inflate each network read whole and have no output limit (with ``zstandard`` installed it
even offers ``zstd``), so a 32 KiB body can be a gigabyte before any size check. :func:`bounded_body` reads
the raw bytes and inflates gzip / zlib / deflate itself, in steps of :data:`INFLATE_STEP`, stopping once
more than ``limit`` bytes came out (the caller then refuses the body).

Invariants:
- at most ``limit + INFLATE_STEP`` decoded bytes are ever produced, whatever the body;
- no coding, or ``identity``: the raw bytes as they come;
- one zlib coding (``gzip``, ``x-gzip``, ``deflate``; gzip or zlib framing, read from the header): inflated;
- anything else (``br``, ``zstd``, stacked codings such as ``gzip, gzip``): :class:`UnsupportedEncoding`,
  raised before a byte is read; a corrupt zlib stream: :class:`CorruptEncoding`.

Hand-written over :mod:`zlib` (``decompress(max_length)``) because neither httpx nor a well-kept library
offers a decoder with an output limit; the web and SharePoint connectors share this one.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator

import httpx

__all__ = ["INFLATE_STEP", "ZLIB_CODINGS", "CorruptEncoding", "UnsupportedEncoding", "bounded_body", "codings"]

INFLATE_STEP = 64 * 1024
ZLIB_CODINGS = frozenset({"gzip", "x-gzip", "deflate"})


class UnsupportedEncoding(Exception):
    """The body's content codings (``codings``) are not read: not asked for, or stacked."""

    def __init__(self, found: list[str]) -> None:
        self.codings = found
        super().__init__(f"content encoding {', '.join(found)} was not asked for and is not read")


class CorruptEncoding(Exception):
    """The body's zlib stream (``coding``) could not be inflated."""

    def __init__(self, coding: str, detail: str) -> None:
        self.coding = coding
        super().__init__(f"the {coding} body is corrupt: {detail}")


def codings(r: httpx.Response) -> list[str]:
    """``r``'s content codings in order, case-folded, ``identity`` dropped."""
    found = [c.strip().casefold() for c in r.headers.get("content-encoding", "").split(",")]
    return [c for c in found if c and c != "identity"]


def bounded_body(r: httpx.Response, limit: int) -> Iterator[bytes]:
    """The decoded body of a streamed ``r`` in pieces of at most :data:`INFLATE_STEP` bytes, stopping once
    more than ``limit`` bytes were produced (see the module docstring)."""
    found = codings(r)
    if not found:
        yield from r.iter_raw(INFLATE_STEP)
        return
    if len(found) > 1 or found[0] not in ZLIB_CODINGS:
        raise UnsupportedEncoding(found)
    inflater = zlib.decompressobj(32 + zlib.MAX_WBITS)  # gzip or zlib framing, detected from the header
    produced = 0
    try:
        for raw in r.iter_raw(INFLATE_STEP):
            data = raw
            while data and not inflater.eof:
                out = inflater.decompress(data, INFLATE_STEP)
                produced += len(out)
                yield out
                if produced > limit:
                    return  # the caller refuses the body
                data = inflater.unconsumed_tail
    except zlib.error as exc:
        raise CorruptEncoding(found[0], str(exc)) from None
