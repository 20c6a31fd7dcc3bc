"""Persistence backends for Yjs update logs, behind one small async interface."""

from storage.base import (
    AddedEvents,
    DocumentStore,
    EventFilter,
    HistoryEntry,
    NewEvent,
    NewUpdate,
    Once,
    StoredEvent,
    StoredLog,
    StoreError,
)
from storage.postgres import PostgresStore
from storage.sqlite import SqliteStore

__all__ = [
    "AddedEvents",
    "DocumentStore",
    "EventFilter",
    "HistoryEntry",
    "NewEvent",
    "NewUpdate",
    "Once",
    "PostgresStore",
    "SqliteStore",
    "StoreError",
    "StoredEvent",
    "StoredLog",
]
