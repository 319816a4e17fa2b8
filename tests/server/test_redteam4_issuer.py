"""Red team, round 4: what the service reads from its identity provider is bounded.

The discovery document and the JWK Set were read with ``httpx``'s ``get``: the whole body in memory,
inflated with any coding the server chose (httpx offers zstd when ``zstandard`` is installed), then parsed
without a depth guard. A compromised or spoofed issuer endpoint could so exhaust the service's memory
(a 512 KiB gzip body is 512 MiB) or crash the request with a ``RecursionError`` instead of the clean
``issuer_unreachable`` (503). Now the body is asked unencoded, read raw up to ``MAX_ISSUER_BYTES``, and any
content coding, oversize or unparsable body fails like an unreachable issuer. Real loopback servers; the
bomb runs in a child process whose address space is capped a little above what it already uses.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
import zlib
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from groundwire.server.auth import MAX_ISSUER_BYTES, AuthFailure, JWKSCache
from groundwire.server.settings import OIDCSettings

from ..loopback_bodies import BodyServer, serving

_MIB = 1 << 20


def _gzip_zeros(mib: int) -> bytes:
    c = zlib.compressobj(6, zlib.DEFLATED, 31)
    zero = bytes(_MIB)
    return b"".join([c.compress(zero) for _ in range(mib)] + [c.flush()])


def _issuer(bodies: dict[str, tuple[bytes, str]]) -> Iterator[BodyServer]:
    """Loopback issuer answering ``bodies[path]`` = (bytes, Content-Encoding or "")."""

    def answer(path: str) -> tuple[bytes, dict[str, str]]:
        body, coding = bodies[path.split("?")[0]]
        return body, {"Content-Type": "application/json", **({"Content-Encoding": coding} if coding else {})}

    return serving(answer)


def _discovery(url: str, pad: int = 0) -> bytes:
    doc = {"issuer": url, "jwks_uri": f"{url}/jwks", "authorization_endpoint": f"{url}/authorize",
           "token_endpoint": f"{url}/token"}
    return json.dumps(doc).encode() + b" " * pad


@pytest.fixture
def hostile() -> Iterator[BodyServer]:
    bodies: dict[str, tuple[bytes, str]] = {}
    with _issuer(bodies) as s:
        yield from _hostile(s, bodies)


def _hostile(s: BodyServer, bodies: dict[str, tuple[bytes, str]]) -> Iterator[BodyServer]:
    ok = _discovery(s.url)
    bodies.update({
        "/.well-known/openid-configuration": (ok, ""),
        "/jwks": (b'{"keys": []}', ""),
        "/padded": (_discovery(s.url, pad=MAX_ISSUER_BYTES), ""),  # valid JSON, over the bound
        "/deep": (b"[" * 200_000 + b"]" * 200_000, ""),
        "/gzipped": (zlib.compress(ok, wbits=31), "gzip"),
    })
    yield s


def _fetch(issuer: BodyServer, path: str) -> dict[str, Any]:
    settings = OIDCSettings(issuer=issuer.url, audience=["api"], discovery_url=issuer.url + path,
                            jwks_min_refresh_seconds=0.0)

    async def run() -> dict[str, Any]:
        async with httpx.AsyncClient() as client:
            return await JWKSCache(settings, client).discovery()

    return asyncio.run(run())


def test_a_sane_issuer_is_still_read_and_asked_for_no_coding(hostile: BodyServer) -> None:
    assert _fetch(hostile, "/.well-known/openid-configuration")["jwks_uri"] == f"{hostile.url}/jwks"
    assert hostile.seen[-1][1].get("Accept-Encoding") == "identity"


@pytest.mark.parametrize("path", ["/padded", "/deep", "/gzipped"])
def test_oversized_deep_or_encoded_issuer_documents_fail_as_unreachable(hostile: BodyServer, path: str) -> None:
    with pytest.raises(AuthFailure) as err:
        _fetch(hostile, path)
    assert err.value.reason == "issuer_unreachable" and err.value.status == 503


_CHILD = textwrap.dedent(
    """
    import asyncio, resource, sys
    import httpx
    from groundwire.server.auth import AuthFailure, JWKSCache
    from groundwire.server.settings import OIDCSettings

    url = sys.argv[1]
    rss = int(open("/proc/self/statm").read().split()[0]) * resource.getpagesize()
    cap = rss + (256 << 20)
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    settings = OIDCSettings(issuer=url, audience=["api"], discovery_url=url + "/bomb")

    async def run():
        async with httpx.AsyncClient() as client:
            await JWKSCache(settings, client).discovery()

    try:
        asyncio.run(run())
    except AuthFailure as exc:
        print("refused", exc.reason)
    """
)


def test_a_compression_bomb_from_the_issuer_is_refused_unread() -> None:
    with _issuer({"/bomb": (_gzip_zeros(512), "gzip")}) as s:
        proc = subprocess.run([sys.executable, "-c", _CHILD, s.url], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "refused issuer_unreachable"
