"""Every private part of uvicorn the server builds on, imported in one place.

uvicorn documents ``uvicorn.Config``, ``uvicorn.Server`` and ``uvicorn.run``; what this
module imports is internal and may move in any release. The sync path's WebSocket protocol
(:mod:`crdt_server.edge.websocket`), the request-head deadline
(:mod:`crdt_server.edge.http_head`) and the CLI's worker supervisor take these names from
here only, and ``tests/test_uvicorn_private.py`` checks each name and the attributes used,
so that an upgrade of uvicorn that moves one fails loudly in one test.
"""

from __future__ import annotations

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from uvicorn.server import ServerState
from uvicorn.supervisors.multiprocess import Multiprocess

__all__ = [
    "Config",
    "HttpToolsProtocol",
    "Multiprocess",
    "ServerState",
    "WebSocketsSansIOProtocol",
]
