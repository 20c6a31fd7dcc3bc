"""Persistence backends for Yjs update logs, behind one small async interface."""

from storage.base import (
    AddedEvents,
    DocumentStore,
    Erasure,
    EventFilter,
    HistoryEntry,
    NewEvent,
    NewUpdate,
    Once,
    Revocation,
    StoredEvent,
    StoredLog,
    StoreError,
)
from storage.postgres import PostgresStore
from storage.sqlite import SqliteStore

__all__ = [
    "AddedEvents",
    "DocumentStore",
    "Erasure",
    "EventFilter",
    "HistoryEntry",
    "NewEvent",
    "NewUpdate",
    "Once",
    "PostgresStore",
    "Revocation",
    "SqliteStore",
    "StoreError",
    "StoredEvent",
    "StoredLog",
]
