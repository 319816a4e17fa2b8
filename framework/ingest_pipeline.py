"""Extraction pipelined with embedding: a connector's changes are produced in a thread while ingestion embeds.

Invariants:
- Order and content are exactly the connector's: the consumer sees the same changes in the same order as
  iterating ``changes()`` directly, so checkpoints, per-item errors and deletions behave as before.
- Bounded: the producer runs at most ``size`` changes ahead (a change holds one document's text).
- An exception raised by the connector is re-raised in the consumer at the position where it happened.
- :meth:`Prefetch.close` stops the producer at its next change (closing the connector's generator in the
  producer's own thread, so its ``finally`` blocks run) and waits for it; a sync that fails while embedding
  leaves no thread reading the source.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

__all__ = ["Prefetch"]

_T = TypeVar("_T")
_ITEM, _END, _ERROR = 0, 1, 2


class Prefetch(Generic[_T]):
    """Iterate ``make()`` in a daemon thread, ``size`` items ahead; ``size <= 0`` iterates in the caller."""

    def __init__(self, make: Callable[[], Iterator[_T]], size: int = 32, name: str = "groundwire-prefetch") -> None:
        self._make = make
        self._size = size
        self._stop = threading.Event()
        self._queue: queue.Queue[tuple[int, Any]] = queue.Queue(maxsize=max(1, size))
        self._thread: threading.Thread | None = None
        self._name = name

    def _put(self, kind: int, value: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put((kind, value), timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            it = self._make()
            try:
                for item in it:
                    if not self._put(_ITEM, item):
                        break
            finally:
                close = getattr(it, "close", None)
                if close is not None:
                    close()
            self._put(_END, None)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
            self._put(_ERROR, exc)

    def __iter__(self) -> Iterator[_T]:
        if self._size <= 0:
            yield from self._make()
            return
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()
        while True:
            kind, value = self._queue.get()
            if kind == _ITEM:
                yield value
            elif kind == _END:
                return
            else:
                raise value

    def close(self, wait: float = 30.0) -> None:
        """Stop the producer and wait up to ``wait`` seconds for it (a connector blocked in I/O longer is
        left to its own timeouts; the thread is a daemon)."""
        self._stop.set()
        t = self._thread
        deadline = time.monotonic() + wait
        if t is not None and t is not threading.current_thread():
            while t.is_alive() and time.monotonic() < deadline:
                try:  # unblock a producer waiting on a full queue
                    self._queue.get_nowait()
                except queue.Empty:
                    t.join(timeout=0.05)
