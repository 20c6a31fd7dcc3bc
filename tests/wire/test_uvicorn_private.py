"""uvicorn internals the server relies on are still where crdt_server.wire.uvicorn_private
takes them from, with the attributes it uses. A new uvicorn that moves one fails here,
loudly, instead of somewhere in a running server."""

from __future__ import annotations

import inspect

import pytest
import uvicorn

from crdt_server.wire import uvicorn_private

pytestmark = pytest.mark.timeout(10)


def test_every_private_name_imports() -> None:
    for name in uvicorn_private.__all__:
        value = getattr(uvicorn_private, name)
        # uvicorn's classes, and the adapter's functions over a uvicorn.Server.
        assert inspect.isclass(value) or inspect.isfunction(value), name


def test_the_attributes_the_server_uses_exist() -> None:
    http = uvicorn_private.HttpToolsProtocol
    for method in (
        "connection_made",
        "connection_lost",
        "on_message_begin",
        "on_headers_complete",
        "on_body",
        "on_message_complete",
        "on_response_complete",
    ):
        assert callable(getattr(http, method)), method
    source = inspect.getsource(http)
    for attribute in (
        "self.client =",
        "self.transport =",
        "self.loop =",
        "self.headers =",
        "self.parser =",
        "on_response=self.on_response_complete",  # each response's end reaches the protocol
    ):
        assert attribute in source, attribute
    state = uvicorn_private.ServerState()
    assert isinstance(state.connections, set) and isinstance(state.tasks, set)
    config = uvicorn_private.Config(app=lambda: None)
    for attribute in (
        "ws_ping_interval",
        "proxy_headers",
        "forwarded_allow_ips",
        "timeout_graceful_shutdown",
    ):
        assert hasattr(config, attribute), attribute
    ws_init = inspect.signature(uvicorn_private.WebSocketsSansIOProtocol.__init__)
    assert {"config", "server_state", "app_state"} <= set(ws_init.parameters)
    server = uvicorn.Server(config)
    assert hasattr(server, "started") and callable(server.startup)
    assert callable(server.handle_exit)
    # A worker of --workers adopts a handed-over socket with the protocol uvicorn builds
    # (crdt_server.cli.workers.WorkerServer): the same class, server state and lifespan state.
    assert hasattr(server, "server_state")
    assert "self.lifespan = " in inspect.getsource(uvicorn.Server._serve)
    startup = inspect.getsource(uvicorn.Server.startup)
    for attribute in ("config.http_protocol_class(", "server_state=self.server_state",
                      "app_state=self.lifespan.state"):  # fmt: skip
        assert attribute in startup, attribute
