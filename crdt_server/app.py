"""The app factory: one Starlette app whose lifespan owns every long-lived resource."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute

from crdt_server.auth.permissions import PermissionMatrix
from crdt_server.auth.principals import Authenticator, Revocations, TokenAuthenticator
from crdt_server.auth.tokens import TokenCodec, load_or_create_secret
from crdt_server.cluster.bus import Bus, LocalBus
from crdt_server.cluster.redis_bus import RedisBus
from crdt_server.core.limits import ConnectionCounter, RateLimiter
from crdt_server.core.metrics import CONTENT_TYPE_LATEST
from crdt_server.core.registry import RoomRegistry
from crdt_server.core.weddings import ConflictsKeeper, WeddingService
from crdt_server.edge.admin import api_routes
from crdt_server.edge.asgi_ws import not_found_endpoint, sync_endpoint
from crdt_server.edge.documents import rest_routes
from crdt_server.edge.openapi import OPENAPI
from crdt_server.edge.upgrade import STATE_KEY, Gate
from crdt_server.edge.webapp import webapp_routes
from crdt_server.errors import CloseCode
from crdt_server.settings import Settings
from storage import DocumentStore, PostgresStore, SqliteStore, StoreError

__all__ = ["create_app", "token_codec"]

log = logging.getLogger("crdt_server.app")


def token_codec(settings: Settings) -> TokenCodec:
    """The token codec the server uses: the configured secret (or the one kept in the data
    directory, created on first use) and the configured public key, if any."""
    algorithms = settings.algorithms
    secret = None
    if any(a.startswith("HS") for a in algorithms):
        secret = (
            settings.auth_secret.encode()
            if settings.auth_secret
            else load_or_create_secret(settings.data_dir)
        )
    public_key = None
    if settings.auth_public_key_file:
        public_key = Path(settings.auth_public_key_file).read_text()
    return TokenCodec(algorithms=algorithms, secret=secret, public_key=public_key)


async def healthz(request: Request) -> JSONResponse:
    """Liveness: the process answers."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> JSONResponse:
    """Readiness: the store answers, and its last commit did not fail."""
    store: DocumentStore = request.app.state.store
    registry: RoomRegistry = request.app.state.registry
    rooms = len(registry.rooms)
    try:
        await store.last_seq()
    except StoreError as exc:
        return JSONResponse({"status": "unavailable", "store": str(exc)}, status_code=503)
    bus = registry.bus.status
    if not registry.health.healthy:
        body = {"status": "unavailable", "store": registry.health.last_error, "bus": bus}
        return JSONResponse({**body, "rooms": rooms}, status_code=503)
    # A degraded bus is reported, not fatal: this process still serves its own clients
    # durably, and catches up from the store once the bus is back.
    return JSONResponse({"status": "ok", "rooms": rooms, "bus": bus})


async def openapi(request: Request) -> JSONResponse:
    """The OpenAPI description of the HTTP API."""
    return JSONResponse(OPENAPI)


async def metrics(request: Request) -> Response:
    """Prometheus metrics."""
    registry: RoomRegistry = request.app.state.registry
    return Response(registry.metrics.render(), media_type=CONTENT_TYPE_LATEST)


def _event_listener(
    registry: RoomRegistry, revocations: Revocations, weddings: WeddingService
) -> Callable[[dict[str, Any]], None]:
    """Apply admin events other processes published (revocation, deletion)."""

    def listener(event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "revoke" and isinstance(event.get("sub"), str):
            wedding = event.get("wedding") if isinstance(event.get("wedding"), str) else None
            at = event.get("at")
            revocations.revoke(event["sub"], wedding, at if isinstance(at, float) else None)
            registry.close_sessions(
                event["sub"], wedding, CloseCode.TOKEN_EXPIRED, "session revoked"
            )
        elif kind == "delete" and isinstance(event.get("wedding"), str):
            weddings.close_rooms(event["wedding"])
        else:
            log.error("ignoring an unknown admin event: %r", event)

    return listener


def default_store(settings: Settings) -> DocumentStore:
    """PostgreSQL when ``database_url`` is set, else the embedded SQLite file."""
    if settings.database_url:
        return PostgresStore(settings.database_url)
    return SqliteStore(
        settings.sqlite_path,
        busy_timeout=settings.sqlite_busy_timeout_seconds,
        synchronous="normal" if settings.sqlite_synchronous == "normal" else "full",
    )


def create_app(
    settings: Settings,
    *,
    store: DocumentStore | None = None,
    authenticator: Authenticator | None = None,
    bus: Bus | None = None,
) -> Starlette:
    """Build the server. Without a ``store``, the embedded SQLite store under ``data_dir``."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, object]]:
        the_store = store or default_store(settings)
        await the_store.open()
        the_bus = bus or (RedisBus(settings.redis_url) if settings.redis_url else LocalBus())
        registry = RoomRegistry(the_store, settings, the_bus)
        codec = token_codec(settings)
        revocations = Revocations()
        matrix = (
            PermissionMatrix.from_json(settings.permissions)
            if settings.permissions
            else PermissionMatrix()
        )
        if settings.allow_anonymous:
            log.warning(
                "ANONYMOUS ACCESS IS ON: clients without a token may read and write every "
                "document. Use this only for local demos and benchmarks."
            )
        app.state.settings = settings
        app.state.store = the_store
        app.state.registry = registry
        app.state.token_codec = codec
        app.state.revocations = revocations
        app.state.authenticator = authenticator or TokenAuthenticator(
            codec, matrix, revocations, allow_anonymous=settings.allow_anonymous
        )
        gate = Gate(
            settings,
            registry,
            app.state.authenticator,
            upgrade_limiter=RateLimiter(
                settings.max_upgrades_per_second, 2 * settings.max_upgrades_per_second
            ),
            address_connections=ConnectionCounter(settings.max_connections_per_address),
            user_connections=ConnectionCounter(settings.max_connections_per_user),
        )
        app.state.gate = gate
        weddings = WeddingService(registry, the_store)
        app.state.weddings = weddings
        keeper = ConflictsKeeper(weddings)
        registry.on_change = keeper.changed
        registry.event_listeners.append(_event_listener(registry, revocations, weddings))
        await registry.start()
        try:
            # The lifespan state reaches uvicorn's WebSocket protocol (crdt_server.edge.websocket).
            yield {STATE_KEY: gate}
        finally:
            try:
                await keeper.close()
                await registry.close()
            finally:
                await the_store.close()

    routes = [
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics),
        Route("/openapi.json", openapi),
        *api_routes(),
        *rest_routes(),
        *webapp_routes(),
        WebSocketRoute("/sync/{wedding_id}/{doc}", sync_endpoint),
        WebSocketRoute("/sync/{rest:path}", not_found_endpoint),
    ]
    return Starlette(routes=routes, lifespan=lifespan)
