"""The WebSocket endpoint on the ASGI path: refuse bad requests at the upgrade (the checks
are :class:`~crdt_server.edge.upgrade.Gate`'s), then hand over to the session.

The server as started by the CLI serves the sync path with :mod:`crdt_server.wire.websocket`
instead; this endpoint serves it when the app runs under any other ASGI server (or under
uvicorn with its own WebSocket protocol).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from crdt_server.codec.credentials import bearer_token
from crdt_server.edge.problems import ApiError
from crdt_server.edge.state import server_state
from crdt_server.edge.upgrade import NO_SUCH_DOCUMENT, Admitted, Gate, Refusal, SocketAdmitted
from crdt_server.names import document_name
from crdt_server.wire.transport import TransportClosed

__all__ = [
    "StarletteTransport",
    "collab_endpoint",
    "not_found_endpoint",
    "plain_http_endpoint",
    "sync_endpoint",
]


class StarletteTransport:
    """Adapts a Starlette WebSocket to the :class:`~crdt_server.wire.transport.Transport` seam."""

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

    def receive_ready(self) -> bytes | str | None:
        return None  # Starlette's receive is a coroutine: it cannot say without waiting

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


async def _refuse(websocket: WebSocket, refusal: Refusal) -> None:
    headers = dict(refusal.headers())
    media_type = headers.pop("content-type")
    await websocket.send_denial_response(
        Response(refusal.body(), refusal.status, headers=headers, media_type=media_type)
    )


async def plain_http_endpoint(request: Request) -> Response:
    """A plain HTTP request for a room: 426 naming the WebSocket upgrade it needs (RFC 9110
    15.5.22), or 404 for a name no room has; problem+json, as every HTTP error."""
    name = document_name(request.path_params["wedding_id"], request.path_params["doc"])
    if name is None:
        raise ApiError(404, NO_SUCH_DOCUMENT.message)
    raise ApiError(
        426,
        "this is a y-websocket room: connect with a WebSocket client (Upgrade: websocket)",
        headers={"Upgrade": "websocket"},
    )


async def sync_endpoint(websocket: WebSocket) -> None:
    gate = server_state(websocket).gate
    client = websocket.client
    outcome = gate.admit(
        websocket.path_params["wedding_id"],
        websocket.path_params["doc"],
        token=bearer_token(
            websocket.query_params.get("token"), websocket.headers.get("authorization")
        ),
        headers=websocket.headers,
        address=client.host if client else "",
    )
    await _serve(websocket, gate, outcome)


async def collab_endpoint(websocket: WebSocket) -> None:
    """The Hocuspocus path (``/collab``, ``/collab/{wedding_id}``): its tokens come in band."""
    gate = server_state(websocket).gate
    client = websocket.client
    outcome = gate.admit_socket(
        websocket.path_params.get("wedding_id"),
        headers=websocket.headers,
        address=client.host if client else "",
    )
    await _serve(websocket, gate, outcome)


async def _serve(
    websocket: WebSocket, gate: Gate, outcome: Admitted | SocketAdmitted | Refusal
) -> None:
    """Refuse the upgrade the gate refused, else accept it and serve the connection (its
    slots given back if accepting fails)."""
    if isinstance(outcome, Refusal):
        await _refuse(websocket, outcome)
        return
    try:
        await websocket.accept()
    except BaseException:
        gate.release(outcome)
        raise
    client = websocket.client
    peer = f"{client.host}:{client.port}" if client else ""
    await gate.serve(StarletteTransport(websocket), outcome, peer=peer)


async def not_found_endpoint(websocket: WebSocket) -> None:
    gate = server_state(websocket).gate
    await _refuse(websocket, gate.refuse(NO_SUCH_DOCUMENT))
