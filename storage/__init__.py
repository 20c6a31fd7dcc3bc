"""Persistence backends for Yjs update logs, behind one small async interface."""

from storage.base import DocumentStore, HistoryEntry, NewUpdate, StoredLog, StoreError
from storage.sqlite import SqliteStore

__all__ = [
    "DocumentStore",
    "HistoryEntry",
    "NewUpdate",
    "SqliteStore",
    "StoreError",
    "StoredLog",
]
