"""Every private part of uvicorn the server builds on, imported in one place.

uvicorn documents ``uvicorn.Config``, ``uvicorn.Server`` and ``uvicorn.run``; what this
module imports is internal and may move in any release. The sync path's WebSocket protocol
(:mod:`crdt_server.wire.websocket`) and the request-head deadline
(:mod:`crdt_server.wire.http_head`) take these names from here only, and a worker of
``--workers`` reaches the parts of a ``uvicorn.Server`` it needs to adopt a handed-over
socket through the functions below (the supervisor is the project's own,
:mod:`crdt_server.edge.supervisor`). No other module of the product uses more of uvicorn
than those three names (``tests/project/test_layers.py``), and
``tests/wire/test_uvicorn_private.py`` checks each name and the attributes used (with those
of ``uvicorn.Server`` a worker reads to adopt a handed-over socket), so that an upgrade of
uvicorn that moves one fails loudly in one test.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from functools import partial
from typing import Any, cast

from uvicorn import Server
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from uvicorn.server import ServerState

__all__ = [
    "Config",
    "HttpToolsProtocol",
    "ServerState",
    "WebSocketsSansIOProtocol",
    "app_state",
    "connection_factory",
    "keep_task",
]


def app_state(server: Server) -> dict[str, Any]:
    """The lifespan state of a serving ``server`` (what the app yields, and what was put
    there before its startup): every connection's protocol is given it."""
    state: dict[str, Any] = server.lifespan.state
    return state


def connection_factory(server: Server) -> Callable[[], asyncio.Protocol]:
    """A new connection's protocol as ``server`` builds one for a socket it accepted: its
    HTTP protocol class, with its config, server state and lifespan state."""
    config = server.config
    return partial(
        cast(Callable[..., asyncio.Protocol], config.http_protocol_class),
        config=config,
        server_state=server.server_state,
        app_state=app_state(server),
    )


def keep_task(server: Server, task: asyncio.Task[None]) -> None:
    """Count ``task`` among ``server``'s connection tasks, as uvicorn counts its own (a
    graceful shutdown waits for them)."""
    tasks = server.server_state.tasks
    tasks.add(task)
    task.add_done_callback(tasks.discard)
