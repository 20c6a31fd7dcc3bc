"""The WebSocket endpoint: refuse bad requests at the upgrade, then hand over to the session.

This module and :mod:`crdt_server.app` are the only ones that know Starlette.
"""

from __future__ import annotations

import logging

from starlette.responses import PlainTextResponse
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from crdt_server.auth import Authenticator, AuthError
from crdt_server.limits import ConnectionCounter, RateLimiter
from crdt_server.names import document_name
from crdt_server.registry import RoomRegistry
from crdt_server.session import serve_connection
from crdt_server.settings import Settings
from crdt_server.transport import TransportClosed

__all__ = ["StarletteTransport", "not_found_endpoint", "sync_endpoint"]

log = logging.getLogger("crdt_server.endpoint")


class StarletteTransport:
    """Adapts a Starlette WebSocket to the :class:`~crdt_server.transport.Transport` seam."""

    def __init__(self, websocket: WebSocket) -> None:
        self._ws = websocket

    async def receive(self) -> bytes | str:
        try:
            message = await self._ws.receive()
        except RuntimeError as exc:  # receive after a disconnect was already seen
            raise TransportClosed() from exc
        if message["type"] == "websocket.disconnect":
            raise TransportClosed(int(message.get("code", 1005)), message.get("reason") or "")
        data = message.get("bytes")
        if data is not None:
            return bytes(data)
        return str(message.get("text", ""))

    async def send(self, data: bytes) -> None:
        try:
            await self._ws.send_bytes(data)
        except (WebSocketDisconnect, OSError, RuntimeError) as exc:
            raise TransportClosed() from exc

    async def close(self, code: int, reason: str = "") -> None:
        if self._ws.application_state == WebSocketState.DISCONNECTED:
            return
        try:
            await self._ws.close(code, reason)
        except (WebSocketDisconnect, OSError, RuntimeError) as exc:
            raise TransportClosed() from exc


def _token(websocket: WebSocket) -> str | None:
    token = websocket.query_params.get("token")
    if token:
        return token
    header = websocket.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


async def _refuse(websocket: WebSocket, status: int, message: str) -> None:
    registry: RoomRegistry = websocket.app.state.registry
    registry.metrics.upgrades_refused.labels(str(status)).inc()
    await websocket.send_denial_response(PlainTextResponse(message, status_code=status))


async def sync_endpoint(websocket: WebSocket) -> None:
    state = websocket.app.state
    settings: Settings = state.settings
    registry: RoomRegistry = state.registry
    authenticator: Authenticator = state.authenticator
    wedding_id = websocket.path_params["wedding_id"]
    doc = websocket.path_params["doc"]
    name = document_name(wedding_id, doc)
    if name is None:
        await _refuse(websocket, 404, "no such document")
        return
    origin = websocket.headers.get("origin")
    if origin is not None and settings.origins and origin.rstrip("/") not in settings.origins:
        await _refuse(websocket, 403, "origin not allowed")
        return
    client = websocket.client
    address = client.host if client else ""
    limiter: RateLimiter = state.upgrade_limiter
    if not limiter.allow(address):
        await _refuse(websocket, 429, "too many connection attempts, slow down")
        return
    try:
        principal = authenticator.authenticate(
            wedding_id, doc, _token(websocket), websocket.headers
        )
    except AuthError as exc:
        await _refuse(websocket, exc.status_code, exc.message)
        return
    per_address: ConnectionCounter = state.address_connections
    if not per_address.acquire(address):
        await _refuse(websocket, 429, "too many open connections from this address")
        return
    per_user: ConnectionCounter = state.user_connections
    counted = principal.authenticated
    try:
        if counted and not per_user.acquire(principal.user_id):
            await _refuse(websocket, 429, "too many open connections for this user")
            counted = False
            return
        await websocket.accept()
        peer = f"{address}:{client.port}" if client else ""
        await serve_connection(
            StarletteTransport(websocket), registry, name, principal, settings, peer=peer
        )
    finally:
        per_address.release(address)
        if counted:
            per_user.release(principal.user_id)


async def not_found_endpoint(websocket: WebSocket) -> None:
    await _refuse(websocket, 404, "no such document")
