"""The HTTP API for clients that are not live editors: read, write, sync, operate, inspect.

Same permissions as the WebSocket rooms: the token (``Authorization: Bearer`` or the
``token`` query parameter) must let the caller read the document, and write it for the
endpoints that change it. Every change is answered only after it is committed.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import asdict
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from crdt_server.auth.principals import Authenticator, AuthError, Principal
from crdt_server.codec.protocol import read_var_uint, write_var_uint
from crdt_server.core.hooks import Actor
from crdt_server.core.room import RoomFailed
from crdt_server.core.weddings import WeddingService
from crdt_server.edge.admin import ApiError, json_error, json_object
from crdt_server.errors import PeerError
from crdt_server.names import document_name, valid_wedding_id
from documents import DOCUMENT_KINDS, OperationError
from storage import DocumentStore

__all__ = ["rest_routes"]

BINARY = "application/octet-stream"


def _token(request: Request) -> str | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.query_params.get("token") or None


def _principal(request: Request, wedding_id: str, doc: str, *, write: bool) -> Principal:
    if document_name(wedding_id, doc) is None:
        raise ApiError(404, "no such document")
    authenticator: Authenticator = request.app.state.authenticator
    try:
        principal = authenticator.authenticate(wedding_id, doc, _token(request), request.headers)
    except AuthError as exc:
        raise ApiError(exc.status_code, exc.message) from exc
    if write and not principal.can_write:
        raise ApiError(403, f"{doc!r} is read-only for you")
    return principal


def _readable(request: Request, wedding_id: str) -> set[str]:
    """The documents of the wedding the caller may read (403 if none, 401 on a bad token)."""
    if not valid_wedding_id(wedding_id):
        raise ApiError(404, "no such wedding")
    readable: set[str] = set()
    for doc in DOCUMENT_KINDS:
        try:
            _principal(request, wedding_id, doc, write=False)
        except ApiError as exc:
            if exc.status_code != 403:
                raise
        else:
            readable.add(doc)
    if not readable:
        raise ApiError(403, "no document of this wedding is open to you")
    return readable


def _service(request: Request) -> WeddingService:
    service: WeddingService = request.app.state.weddings
    return service


def _origin(principal: Principal) -> Actor:
    return Actor(principal.user_id, principal.role, f"http:{principal.user_id}")


async def _guarded(request: Request, handler: Any) -> Response:
    """Translate domain and protocol errors into HTTP answers."""
    try:
        response: Response = await handler(request)
        return response
    except ApiError as exc:
        return json_error(exc)
    except OperationError as exc:
        return json_error(ApiError(exc.status, str(exc)))
    except PeerError as exc:
        return json_error(ApiError(413 if exc.close_code == 1009 else 400, exc.message))
    except RoomFailed as exc:
        return json_error(ApiError(503, f"the store could not commit, retry: {exc}"))


async def _read(request: Request) -> Response:
    wedding_id, doc = request.path_params["wedding_id"], request.path_params["doc"]
    _principal(request, wedding_id, doc, write=False)
    service = _service(request)
    if BINARY in request.headers.get("accept", ""):
        update = await service.snapshot(f"{wedding_id}/{doc}")
        return Response(update, media_type=BINARY)
    return JSONResponse(await service.read_json(wedding_id, doc))


async def _update(request: Request) -> Response:
    wedding_id, doc = request.path_params["wedding_id"], request.path_params["doc"]
    principal = _principal(request, wedding_id, doc, write=True)
    body = await request.body()
    if not body:
        raise ApiError(400, "the body must be a binary Yjs update")
    changed = await _service(request).apply_update(f"{wedding_id}/{doc}", body, _origin(principal))
    return JSONResponse({"committed": True, "changed": changed})


def _b64(data: dict[str, Any], key: str) -> bytes:
    value = data.get(key, "")
    if not isinstance(value, str):
        raise ApiError(400, f"'{key}' must be base64 text")
    try:
        return base64.b64decode(value, validate=True)
    except binascii.Error as exc:
        raise ApiError(400, f"'{key}' is not valid base64") from exc


def _var_bytes(body: bytes, pos: int) -> tuple[bytes, int]:
    try:
        length, pos = read_var_uint(body, pos)
    except PeerError as exc:
        raise ApiError(400, f"binary sync body: {exc.message}") from exc
    if pos + length > len(body):
        raise ApiError(400, "binary sync body is truncated")
    return body[pos : pos + length], pos + length


async def _sync(request: Request) -> Response:
    """The client sends its state vector and pending update; gets what it is missing."""
    wedding_id, doc = request.path_params["wedding_id"], request.path_params["doc"]
    binary = request.headers.get("content-type", "").startswith(BINARY)
    # A read-only client may sync down; its pending update must then be empty.
    principal = _principal(request, wedding_id, doc, write=False)
    body = await request.body()
    if binary:
        state_vector, pos = _var_bytes(body, 0)
        update, pos = _var_bytes(body, pos)
        if pos != len(body):
            raise ApiError(400, "trailing bytes after the binary sync body")
    else:
        try:
            data = json.loads(body)
        except ValueError as exc:
            raise ApiError(400, "the body must be JSON or application/octet-stream") from exc
        if not isinstance(data, dict):
            raise ApiError(400, "the body must be a JSON object")
        state_vector, update = _b64(data, "state_vector") or b"\x00", _b64(data, "update")
    if update and not principal.can_write:
        raise ApiError(403, f"{doc!r} is read-only for you")
    service = _service(request)
    name = f"{wedding_id}/{doc}"
    diff = await service.sync(name, state_vector or b"\x00", update, _origin(principal))
    server_state = await service.state_vector(name)
    if binary:
        out = write_var_uint(len(diff)) + diff + write_var_uint(len(server_state)) + server_state
        return Response(out, media_type=BINARY)
    return JSONResponse(
        {
            "update": base64.b64encode(diff).decode(),
            "state_vector": base64.b64encode(server_state).decode(),
        }
    )


async def _ops(request: Request) -> Response:
    wedding_id, doc = request.path_params["wedding_id"], request.path_params["doc"]
    principal = _principal(request, wedding_id, doc, write=True)
    op = await json_object(request)
    result = await _service(request).operate(wedding_id, doc, op, _origin(principal))
    return JSONResponse({"committed": True, "result": result})


async def _history(request: Request) -> Response:
    wedding_id, doc = request.path_params["wedding_id"], request.path_params["doc"]
    _principal(request, wedding_id, doc, write=False)
    try:
        limit = int(request.query_params.get("limit", "100"))
    except ValueError as exc:
        raise ApiError(400, "'limit' must be a number") from exc
    store: DocumentStore = request.app.state.store
    entries = await store.history(f"{wedding_id}/{doc}", max(1, min(limit, 1000)))
    return JSONResponse({"history": [asdict(e) for e in entries]})


async def _presence(request: Request) -> Response:
    wedding_id = request.path_params["wedding_id"]
    docs = _readable(request, wedding_id)
    entries = _service(request).presence(wedding_id, docs)
    return JSONResponse({"presence": [asdict(e) for e in entries]})


async def _conflicts(request: Request) -> Response:
    wedding_id = request.path_params["wedding_id"]
    docs = _readable(request, wedding_id)
    found = await _service(request).conflicts(wedding_id, docs)
    return JSONResponse(
        {
            "conflicts": [
                {"code": c.code, "paths": list(c.paths), "message": c.message} for c in found
            ]
        }
    )


def _route(path: str, handler: Any, method: str) -> Route:
    async def endpoint(request: Request) -> Response:
        return await _guarded(request, handler)

    return Route(path, endpoint, methods=[method], name=handler.__name__.strip("_"))


def rest_routes() -> list[Route]:
    doc = "/api/weddings/{wedding_id}/docs/{doc}"
    return [
        _route(doc, _read, "GET"),
        _route(f"{doc}/update", _update, "POST"),
        _route(f"{doc}/sync", _sync, "POST"),
        _route(f"{doc}/ops", _ops, "POST"),
        _route(f"{doc}/history", _history, "GET"),
        _route("/api/weddings/{wedding_id}/presence", _presence, "GET"),
        _route("/api/weddings/{wedding_id}/conflicts", _conflicts, "GET"),
    ]
