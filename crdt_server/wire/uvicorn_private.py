"""Every private part of uvicorn the server builds on, imported in one place.

uvicorn documents ``uvicorn.Config``, ``uvicorn.Server`` and ``uvicorn.run``; what this
module imports is internal and may move in any release. The sync path's WebSocket protocol
(:mod:`crdt_server.wire.websocket`) and the request-head deadline
(:mod:`crdt_server.wire.http_head`) take these names from here only (the worker supervisor
of ``--workers`` is the project's own, :mod:`crdt_server.edge.supervisor`); no other module
of the product imports more of uvicorn than those three (``tests/test_layers.py``), and
``tests/test_uvicorn_private.py`` checks each name and the attributes used (with those of
``uvicorn.Server`` a worker reads to adopt a handed-over socket), so that an upgrade of
uvicorn that moves one fails loudly in one test.
"""

from __future__ import annotations

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from uvicorn.server import ServerState

__all__ = [
    "Config",
    "HttpToolsProtocol",
    "ServerState",
    "WebSocketsSansIOProtocol",
]
