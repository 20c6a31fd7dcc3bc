"""A durable Yjs-compatible CRDT document sync server (the y-websocket protocol)."""

from crdt_server.app import create_app
from crdt_server.errors import CloseCode
from crdt_server.settings import Settings

__all__ = ["CloseCode", "Settings", "create_app"]
