"""``timeout_seconds`` is one total deadline for a request (issue 15): a loopback server that sends its
status line and headers one byte per second (each read succeeds well within httpx's per-read timeout)
is cut off at the deadline, and so is one that trickles its body."""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from groundwire.connectors.web.fetch import AddressPolicy, Fetcher, FetchError

pytestmark = pytest.mark.integration

HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 5\r\n\r\n"


class Trickler:
    """Accepts connections and answers each by ``send`` (run in a thread per connection)."""

    def __init__(self, answer: bytes, head_fast: bool) -> None:
        self.answer, self.head_fast = answer, head_fast
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        self.sock.settimeout(0.1)
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:  # closed
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            conn.recv(65536)
            data = self.answer
            if self.head_fast:
                conn.sendall(HEAD)
            try:
                for i in range(len(data)):
                    if self.stop.wait(1.0):
                        return
                    conn.sendall(data[i : i + 1])
            except OSError:  # the client hung up
                return

    def close(self) -> None:
        self.stop.set()
        self.sock.close()


@pytest.fixture
def fetcher() -> Iterator[Fetcher]:
    f = Fetcher(user_agent="GroundwireTest/1.0", policy=AddressPolicy([ipaddress.ip_network("127.0.0.1/32")]),
                timeout=2.0, max_bytes=1 << 20, max_redirects=3, interval=0, per_host=4, connections=4)
    try:
        yield f
    finally:
        f.close()


@pytest.mark.parametrize(("answer", "head_fast"), [
    (HEAD + b"hello", False),  # one header byte per second: 60 s in all
    (b"x" * 60, True),  # headers at once, then one body byte per second
], ids=["headers", "body"])
def test_a_trickling_server_is_cut_off_at_the_total_deadline(fetcher: Fetcher, answer: bytes, head_fast: bool) -> None:
    server = Trickler(answer, head_fast)
    try:
        start = time.monotonic()
        with pytest.raises(FetchError) as err:
            fetcher.get(f"http://127.0.0.1:{server.port}/slow", next_hop=lambda cur, loc: loc)
        took = time.monotonic() - start
    finally:
        server.close()
    assert err.value.transient
    assert "2 s" in err.value.reason
    # the deadline is 2 s: the server would have needed 60 s; allow one trickle interval of slack
    assert 1.9 <= took < 3.5


def test_requests_after_a_cut_off_get_their_own_deadline(fetcher: Fetcher) -> None:
    server = Trickler(HEAD + b"hello", False)
    fast = socket.create_server(("127.0.0.1", 0))

    def answer() -> None:
        conn, _ = fast.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(HEAD + b"hello")

    threading.Thread(target=answer, daemon=True).start()
    try:
        with pytest.raises(FetchError):
            fetcher.get(f"http://127.0.0.1:{server.port}/slow", next_hop=lambda cur, loc: loc)
        resp = fetcher.get(f"http://127.0.0.1:{fast.getsockname()[1]}/fast", next_hop=lambda cur, loc: loc)
    finally:
        server.close()
        fast.close()
    assert resp.status == 200 and resp.body == b"hello"
