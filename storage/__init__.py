"""Persistence backends for Yjs update logs, behind one small async interface."""

from storage.base import (
    DocumentStore,
    HistoryEntry,
    MovedDocument,
    NewUpdate,
    StoredLog,
    StoreError,
)
from storage.postgres import PostgresStore
from storage.sqlite import SqliteStore

__all__ = [
    "DocumentStore",
    "HistoryEntry",
    "MovedDocument",
    "NewUpdate",
    "PostgresStore",
    "SqliteStore",
    "StoreError",
    "StoredLog",
]
