"""The real SQLite store, keeping what each ``append`` (one transaction) carried: for the
tests of what commits together."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

from crdt_server.storage import FeatureRow, NewUpdate, SqliteStore
from crdt_server.storage.gateway import Tx

__all__ = ["Appended", "RecordingStore"]


class Appended(NamedTuple):
    """One ``append``: its updates, its feature rows, and how many transaction steps."""

    updates: list[NewUpdate]
    rows: list[FeatureRow]
    steps: int


class RecordingStore(SqliteStore):
    """A real :class:`SqliteStore` that keeps an :class:`Appended` per ``append``."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.appends: list[Appended] = []

    async def append(
        self,
        updates: Sequence[NewUpdate],
        *,
        rows: Sequence[FeatureRow] = (),
        steps: Sequence[Tx[Any]] = (),
        first: bool = False,
    ) -> list[int]:
        self.appends.append(Appended(list(updates), list(rows), len(steps)))
        return await super().append(updates, rows=rows, steps=steps, first=first)
