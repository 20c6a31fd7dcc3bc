"""A durable Yjs-compatible CRDT document sync server (the y-websocket protocol)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from crdt_server.app import create_app
    from crdt_server.errors import CloseCode
    from crdt_server.settings import Settings

__all__ = ["CloseCode", "Settings", "create_app"]

# Loaded on first use (PEP 562): the testing kit's pytest plugin lives in this package and
# pytest loads it on every run, so importing ``crdt_server`` must not pull in Starlette,
# uvicorn and pycrdt (about half a second) before anything needs them.
_LAZY = {
    "create_app": "crdt_server.app",
    "CloseCode": "crdt_server.errors",
    "Settings": "crdt_server.settings",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'crdt_server' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
