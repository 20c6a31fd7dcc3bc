"""Persistence backends for Yjs update logs, behind one small async interface."""

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
    StoredEvent,
    StoredLog,
    StoreError,
    audience_needle,
    audience_of,
)
from .choose import store_for
from .gateway import Gateway, Table, Transaction, schema_of
from .postgres import PostgresStore
from .sqlite import SqliteStore

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
    "Revocation",
    "Schema",
    "SqliteStore",
    "StoredEvent",
    "StoredLog",
    "StoreError",
    "Table",
    "Transaction",
    "audience_needle",
    "audience_of",
    "schema_of",
    "store_for",
]
