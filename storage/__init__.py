"""Persistence backends for Yjs update logs, behind one small async interface."""

from storage.base import (
    DocumentStore,
    Erasure,
    HistoryEntry,
    NewUpdate,
    Revocation,
    StoredLog,
    StoreError,
)
from storage.postgres import PostgresStore
from storage.sqlite import SqliteStore

__all__ = [
    "DocumentStore",
    "Erasure",
    "HistoryEntry",
    "NewUpdate",
    "PostgresStore",
    "Revocation",
    "SqliteStore",
    "StoreError",
    "StoredLog",
]
