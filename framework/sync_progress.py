"""Progress of ``groundwire sync``: totals, rate and ETA while the work proceeds.

On a terminal: one rich bar per connector (items done of the connector's expected total, chunks written,
chunks/s, elapsed, time remaining; a pulsing bar while the total is unknown). Otherwise (a log, a pipe): a
plain line per connector every ``every`` seconds and a final line when it finishes, e.g.::

    sync handbook: 120/500 items, 340 chunks, 12.3 chunks/s, ETA 31 s
    sync handbook: done: 500 items, 1412 chunks in 114.9 s, 12.3 chunks/s

Invariants: the figures are the connector's :class:`~groundwire.ingest.SyncReport` at the time (items =
changes processed, then the stored chunks checked for stale annotations; chunks = chunks written, the
re-annotated ones included and also shown apart); the rate counts from the connector's first progress call; the
ETA is the remaining items at the item rate so far (none until a total and one item are known).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from .ingest import SyncReport
from .terminal import escape

__all__ = ["SyncProgress", "plain_line"]


@dataclass(slots=True)
class _State:
    started: float
    printed: float
    task: Any = None


def _rate(report: SyncReport, elapsed: float) -> float:
    return report.chunks / elapsed if elapsed > 0 else 0.0


def plain_line(name: str, report: SyncReport, elapsed: float) -> str:
    """The non-terminal progress line of one connector."""
    again = f" ({report.reannotated} re-annotated)" if report.reannotated else ""
    if report.seconds:  # finished
        return (f"sync {name}: {'done' if report.ok else 'failed'}: {report.items} items, {report.chunks} chunks"
                f"{again} in {report.seconds:.1f} s, {_rate(report, report.seconds):.1f} chunks/s")
    total = f"/{report.total}" if report.total is not None else ""
    done = min(report.items, report.total) if report.total is not None else report.items
    line = f"sync {name}: {done}{total} items, {report.chunks} chunks{again}, {_rate(report, elapsed):.1f} chunks/s"
    if report.total is not None and report.items and elapsed > 0:
        left = max(0, report.total - report.items) * elapsed / report.items
        line += f", ETA {left:.0f} s"
    return line


class SyncProgress:
    """``with SyncProgress(console) as p: ... g.sync(progress=p.update)``; ``p.status(text)`` for phases
    before the connectors start (loading the model)."""

    def __init__(self, console: Console, enabled: bool = True, every: float = 5.0) -> None:
        self.console = console
        self.enabled = enabled
        self.every = every
        self.live = enabled and console.is_terminal
        self._states: dict[str, _State] = {}
        self._progress: Progress | None = None
        self._status: Any = None

    def __enter__(self) -> SyncProgress:
        if self.live:
            self._progress = Progress(
                TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("items · {task.fields[chunks]} chunks · {task.fields[rate]} chunks/s"),
                TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                console=self.console, transient=True,
            )
            self._progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.__exit__(None, None, None)
            self._progress = None

    def status(self, text: str) -> None:
        """Show a phase without a total on the terminal (``""`` ends it); not printed elsewhere (a failing
        command's stderr is its one error line)."""
        if self._progress is not None:
            if self._status is not None:
                self._progress.remove_task(self._status)
                self._status = None
            if text:
                self._status = self._progress.add_task(text, total=None, chunks=0, rate="-")

    def update(self, name: str, report: SyncReport) -> None:
        """The ``progress`` callback of :meth:`groundwire.Grounder.sync`."""
        if not self.enabled:
            return
        now = time.perf_counter()
        st = self._states.get(name)
        if st is None:
            st = self._states[name] = _State(started=now, printed=now)
            if self._progress is not None:
                st.task = self._progress.add_task(name, total=None, chunks=0, rate="-")
        elapsed = now - st.started
        if self._progress is not None:
            total = report.total
            self._progress.update(
                st.task, total=total, completed=min(report.items, total) if total is not None else report.items,
                chunks=report.chunks, rate=f"{_rate(report, elapsed):.1f}",
            )
            return
        if report.seconds or now - st.printed >= self.every:
            st.printed = now
            self.console.print(escape(plain_line(name, report, elapsed)))
