"""The app factory: one Starlette app whose lifespan owns every long-lived resource."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute

from crdt_server.auth import AllowAnonymous, Authenticator
from crdt_server.bus import Bus, LocalBus
from crdt_server.endpoint import not_found_endpoint, sync_endpoint
from crdt_server.registry import RoomRegistry
from crdt_server.settings import Settings
from storage import DocumentStore, SqliteStore, StoreError

__all__ = ["create_app"]


async def healthz(request: Request) -> JSONResponse:
    """Liveness: the process answers."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> JSONResponse:
    """Readiness: the store answers."""
    store: DocumentStore = request.app.state.store
    try:
        await store.list("\x00readyz")
    except StoreError as exc:
        return JSONResponse({"status": "unavailable", "store": str(exc)}, status_code=503)
    return JSONResponse({"status": "ok", "rooms": len(request.app.state.registry.rooms)})


def create_app(
    settings: Settings,
    *,
    store: DocumentStore | None = None,
    authenticator: Authenticator | None = None,
    bus: Bus | None = None,
) -> Starlette:
    """Build the server. Without a ``store``, the embedded SQLite store under ``data_dir``."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        the_store = store or SqliteStore(
            settings.sqlite_path, busy_timeout=settings.sqlite_busy_timeout_seconds
        )
        await the_store.open()
        registry = RoomRegistry(the_store, settings, bus or LocalBus())
        app.state.settings = settings
        app.state.store = the_store
        app.state.registry = registry
        app.state.authenticator = authenticator or AllowAnonymous()
        try:
            yield
        finally:
            try:
                await registry.close()
            finally:
                await the_store.close()

    routes = [
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        WebSocketRoute("/sync/{wedding_id}/{doc}", sync_endpoint),
        WebSocketRoute("/sync/{rest:path}", not_found_endpoint),
    ]
    return Starlette(routes=routes, lifespan=lifespan)
