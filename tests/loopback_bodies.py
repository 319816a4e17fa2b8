"""A loopback HTTP server (127.0.0.1 only) that answers every GET from a function of its path: the hostile
hosts of the red-team tests (compression bombs, oversized or nested JSON, an attacker's host recording what
was sent to it).

``answer(path)`` returns ``(body, headers)``; ``Content-Length`` is always the body's true length. ``seen``
records ``(path, request headers)`` of every request, in order.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["BodyServer", "serving"]

Answer = Callable[[str], tuple[bytes, dict[str, str]]]


class BodyServer:
    def __init__(self, answer: Answer) -> None:
        self.seen: list[tuple[str, dict[str, str]]] = []
        seen = self.seen

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                seen.append((self.path, dict(self.headers.items())))
                body, headers = answer(self.path)
                self.send_response(200)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextmanager
def serving(answer: Answer) -> Iterator[BodyServer]:
    server = BodyServer(answer)
    try:
        yield server
    finally:
        server.stop()
