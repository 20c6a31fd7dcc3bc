"""Persistence backends for Yjs update logs, behind one small async interface."""

from typing import TYPE_CHECKING, Any

from .base import (
    DROPPED_FEATURE_ROWS,
    AddedEvents,
    DocumentStore,
    Erasure,
    EventFilter,
    FeatureRow,
    HistoryEntry,
    Migration,
    MovedDocument,
    NewEvent,
    NewUpdate,
    Once,
    Revocation,
    Schema,
    Store,
    StoredEvent,
    StoredLog,
    StoreError,
    StoreUnavailable,
    audience_needle,
    audience_of,
)
from .choose import PostgresTimeouts, store_for
from .gateway import Gateway, Table, Transaction, schema_of
from .sqlite import SqliteStore

if TYPE_CHECKING:
    from .postgres import PostgresStore


def __getattr__(name: str) -> Any:
    # PostgreSQL's backend (and asyncpg) is imported when first named, so a process on the
    # embedded SQLite store never loads it (a command starts faster).
    if name == "PostgresStore":
        from .postgres import PostgresStore

        return PostgresStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DROPPED_FEATURE_ROWS",
    "AddedEvents",
    "DocumentStore",
    "Erasure",
    "EventFilter",
    "FeatureRow",
    "Gateway",
    "HistoryEntry",
    "Migration",
    "MovedDocument",
    "NewEvent",
    "NewUpdate",
    "Once",
    "PostgresStore",
    "PostgresTimeouts",
    "Revocation",
    "Schema",
    "SqliteStore",
    "StoredEvent",
    "StoredLog",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "Table",
    "Transaction",
    "audience_needle",
    "audience_of",
    "schema_of",
    "store_for",
]
