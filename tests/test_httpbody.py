"""groundwire.httpbody: the bounded inflater both HTTP connectors read bodies through."""

from __future__ import annotations

import gzip
import zlib

import httpx
import pytest
from groundwire.httpbody import INFLATE_STEP, CorruptEncoding, UnsupportedEncoding, bounded_body
from hypothesis import given, settings
from hypothesis import strategies as st


def _response(body: bytes, coding: str = "") -> httpx.Response:
    headers = {"Content-Encoding": coding} if coding else {}
    return httpx.Response(200, headers=headers, stream=httpx.ByteStream(body))


def _encode(data: bytes, coding: str) -> bytes:
    return gzip.compress(data) if coding in ("gzip", "x-gzip") else zlib.compress(data) if coding else data


@settings(max_examples=60, deadline=None)
@given(
    data=st.one_of(st.binary(max_size=3000), st.integers(0, 600_000).map(bytes)),  # random, or zeros (bombs)
    coding=st.sampled_from(["", "identity", "gzip", "x-gzip", "deflate", "GZip"]),
    limit=st.integers(0, 300_000),
)
def test_output_is_the_decoded_body_cut_at_most_one_step_past_the_limit(data: bytes, coding: str, limit: int) -> None:
    body = _encode(data, coding.casefold() if coding != "identity" else "")
    out = b"".join(bounded_body(_response(body, coding), limit))
    if coding in ("", "identity"):
        assert out == data  # not inflated: the raw bytes, whatever the limit (the caller counts them)
        return
    assert data.startswith(out)
    assert len(out) <= limit + INFLATE_STEP
    if len(data) <= limit:
        assert out == data


@pytest.mark.parametrize("coding", ["br", "zstd", "gzip, gzip", "gzip, deflate", "compress"])
def test_other_or_stacked_codings_are_refused_before_reading(coding: str) -> None:
    r = httpx.Response(200, headers={"Content-Encoding": coding}, stream=httpx.ByteStream(b"x"))
    with pytest.raises(UnsupportedEncoding) as err:
        next(bounded_body(r, 1 << 20))
    assert err.value.codings == [c.strip() for c in coding.split(",")]


def test_a_corrupt_stream_is_named() -> None:
    with pytest.raises(CorruptEncoding, match="gzip body is corrupt"):
        b"".join(bounded_body(_response(b"\x1f\x8b\x08\x00garbage" * 10, "gzip"), 1 << 20))


def test_a_bomb_stops_at_the_limit() -> None:
    c = zlib.compressobj(9, zlib.DEFLATED, 31)
    bomb = b"".join([c.compress(bytes(1 << 20)) for _ in range(256)] + [c.flush()])  # 256 MiB of zeros
    out = sum(len(p) for p in bounded_body(_response(bomb, "gzip"), 1 << 20))
    assert (1 << 20) < out <= (1 << 20) + INFLATE_STEP
