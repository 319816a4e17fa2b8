"""Persistent stores under the data directory: SQLite plumbing (:mod:`.sqlite`), the draft rows of the review
queue (:mod:`.drafts`) and the quarantine rows (:mod:`.quarantine_rows`).

Stores take what they need as arguments (a path, a codec getter) and never import the pipeline, the review
workflow or the quarantine rules, which build on them.
"""

from __future__ import annotations

from .drafts import DraftRow, DraftStore
from .quarantine_rows import QuarantineRows
from .sqlite import Migration, SqliteStore

__all__ = ["DraftRow", "DraftStore", "Migration", "QuarantineRows", "SqliteStore"]
