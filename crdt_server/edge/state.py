"""The server's long-lived parts, as one typed value the lifespan yields.

Starlette copies the lifespan state into every request's scope (``request.state``); routes
and middleware read it with :func:`server_state`, never through ``app.state`` attributes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from starlette.requests import HTTPConnection

from crdt_server.auth.permissions import PermissionMatrix
from crdt_server.auth.principals import Authenticator, Revocations
from crdt_server.auth.tokens import TokenCodec
from crdt_server.core.erasure import ErasureService
from crdt_server.core.hooks import Extension, Hooks
from crdt_server.core.limits import ConnectionCounter
from crdt_server.core.registry import RoomRegistry
from crdt_server.core.weddings import WeddingService
from crdt_server.edge.ratelimit import HttpRateLimiter
from crdt_server.edge.upgrade import Gate
from crdt_server.settings import Settings
from crdt_server.storage import Store
from crdt_server.tools.export import EventTables, Section

__all__ = ["SERVER_STATE_KEY", "Services", "server_state", "state_of_scope"]

E = TypeVar("E", bound=Extension)
T = TypeVar("T")

SERVER_STATE_KEY = "crdt_server"
"""The key of the :class:`Services` in the lifespan state."""


@dataclass(frozen=True, slots=True)
class Services:
    """Everything a request may need, built once by the lifespan."""

    settings: Settings
    store: Store
    registry: RoomRegistry
    token_codec: TokenCodec
    revocations: Revocations
    authenticator: Authenticator
    gate: Gate
    weddings: WeddingService
    limiter: HttpRateLimiter
    erasures: ErasureService
    permissions: PermissionMatrix
    hooks: Hooks
    event_streams: ConnectionCounter
    """Open event streams per subject (``CRDT_SERVER_MAX_EVENT_STREAMS_PER_USER``)."""
    sections: tuple[Section, ...] = ()
    """The running features' sections of the wedding export."""
    event_tables: EventTables | None = None
    """The events' part of the export, where the events feature runs."""

    def extension(self, kind: type[E]) -> E:
        """The server's extension of type ``kind`` (a feature's routes find their service
        here instead of a field of their own)."""
        found = self.find(kind)
        if found is not None:
            return found
        raise RuntimeError(f"the server has no {kind.__name__} extension")

    def find(self, kind: type[T]) -> T | None:
        """The server's first extension that is a ``kind`` (a runtime-checkable protocol
        the edge defines, for what a feature may or may not provide), if any."""
        for ext in self.hooks.extensions:
            if isinstance(ext, kind):
                return ext
        return None


def state_of_scope(scope: Mapping[str, Any]) -> Services:
    """The :class:`Services` of an ASGI scope (for middleware)."""
    state = scope.get("state", {}).get(SERVER_STATE_KEY)
    if not isinstance(state, Services):
        raise RuntimeError("the app's lifespan has not run: no server state in the scope")
    return state


def server_state(connection: HTTPConnection) -> Services:
    """The :class:`Services` of a request."""
    return state_of_scope(connection.scope)
