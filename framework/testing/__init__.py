"""Test support shipped with Groundwire, for its own tests and for third-party connector authors.

:class:`ConnectorContract` is a pytest base class (langchain ``standard-tests`` style): subclass it,
provide the ``source`` fixture (a :class:`SourceController` over a real or test-double source) and
``make_connector``, and every invariant of :mod:`groundwire.connector` is checked against your connector.
Declare ``reads_local_files``: ``True`` (the source is then a :class:`FileSourceController` and the hostile
local-source cases run: links out of the root, FIFOs, device links, link loops, undecodable names) or
``False`` for a connector that reads no local files.
:func:`tiny_grounder` is a synced Grounder over a tiny corpus (hashing embedder) for hook plugin tests.
"""

from __future__ import annotations

from .contract import ConnectorContract, FileSourceController, SourceController, run_changes
from .grounder import EVERYONE_USER, HR_USER, TINY_CORPUS, tiny_grounder, write_corpus

__all__ = [
    "EVERYONE_USER",
    "HR_USER",
    "TINY_CORPUS",
    "ConnectorContract",
    "FileSourceController",
    "SourceController",
    "run_changes",
    "tiny_grounder",
    "write_corpus",
]
