"""The one small async interface every document store implements.

A store keeps, per document name, an ordered log of raw Yjs update bytes. Order is the
store's own sequence number (``seq``), assigned at commit, strictly increasing across the
whole store and never derived from wall-clock time. Compaction folds a prefix of a
document's log into one snapshot row that keeps the ``seq`` of the last row it replaces, so
the log stays ordered. A separate history keeps who sent each update and when; compaction
does not erase it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

__all__ = [
    "DocumentStore",
    "HistoryEntry",
    "MovedDocument",
    "NewUpdate",
    "StoreError",
    "StoredLog",
]


class StoreError(Exception):
    """The store could not do what was asked; nothing of the failed call was committed."""


@dataclass(frozen=True, slots=True)
class NewUpdate:
    """One update to append: the raw Yjs v1 update bytes and who sent it."""

    doc: str
    data: bytes
    origin: str


@dataclass(frozen=True, slots=True)
class StoredLog:
    """A document's log as loaded: updates in ``seq`` order (a snapshot first, if any)."""

    updates: list[bytes]
    last_seq: int
    """The ``seq`` of the newest row; 0 when the log is empty."""
    first_seq: int
    """The ``seq`` of the oldest row still in the log (the snapshot after compaction)."""


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """Who changed a document, when, and how many bytes the update had."""

    seq: int
    doc: str
    origin: str
    created_at: float
    size: int


@dataclass(frozen=True, slots=True)
class MovedDocument:
    """A document brought whole from another store (``crdt-server import``): its log and
    its history, oldest first. The history entries' ``seq`` and ``doc`` are not kept (the
    receiving store numbers its own rows); their origin, time and size are."""

    doc: str
    updates: list[bytes]
    history: list[HistoryEntry]


@runtime_checkable
class DocumentStore(Protocol):
    """Async persistence of Yjs update logs.

    Every method either commits fully or raises :class:`StoreError` having committed
    nothing. Implementations batch concurrent :meth:`append` calls into one transaction
    (group commit); a call returns only after its rows are durable.
    """

    async def open(self) -> None:
        """Create the schema if needed and start any background writer."""

    async def close(self) -> None:
        """Finish in-flight writes and release every resource."""

    async def load(self, doc: str) -> StoredLog | None:
        """Return the document's log, or ``None`` if the store has never seen it."""

    async def append(self, updates: Sequence[NewUpdate]) -> list[int]:
        """Durably append updates (possibly of several documents), in order.

        Returns the ``seq`` assigned to each update, in the same order.
        """

    async def compact(self, doc: str, upto_seq: int, snapshot: bytes) -> None:
        """Replace every row of ``doc`` with ``seq <= upto_seq`` by ``snapshot``.

        The snapshot row takes ``seq = upto_seq``; rows after it are untouched. Raises
        :class:`StoreError` if ``upto_seq`` is not the ``seq`` of a row of ``doc``.
        """

    async def delete(self, prefix: str) -> int:
        """Delete every document whose name starts with ``prefix``, with its history.

        Returns how many documents were deleted.
        """

    async def history(self, doc: str, limit: int = 100) -> list[HistoryEntry]:
        """The newest ``limit`` history entries of ``doc``, newest first."""

    async def last_seq(self) -> int:
        """The newest seq ever committed (0 for an empty store)."""

    async def docs_of(self, seqs: Sequence[int]) -> dict[int, str]:
        """Which document each of ``seqs`` was appended to (seqs never used are absent).

        Processes sharing a store use it to repair a gap in the updates they heard of.
        """

    async def put_documents(self, documents: Sequence[MovedDocument], origin: str) -> list[int]:
        """Write documents this store has never seen, all in one transaction.

        Each document's history entries take fresh seqs in their order (origin, time and
        size kept), then its updates take the seqs after them, each with a history entry of
        ``origin`` and the current time. Every document needs at least one update. Raises
        :class:`StoreError`, writing nothing, if any of them already has a row. Returns the
        seqs of the updates, in order.
        """

    # Last on purpose: below this def, ``list`` in an annotation would name this method
    # rather than the builtin (mypy: "Function ... is not valid as a type").
    async def list(self, prefix: str = "") -> list[str]:
        """Names of stored documents starting with ``prefix``, sorted."""
