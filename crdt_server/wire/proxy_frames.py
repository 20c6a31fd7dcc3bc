"""The frames of the owner proxy (:mod:`crdt_server.wire.proxy`): a request's head, its
body and the answer, both ways over a worker's ``h{index}`` socket.

A frame is a 4-byte length and a 1-byte kind, then the payload (at most :data:`MAX_CHUNK`
bytes of body per frame; a head at most ``_MAX_HEAD``).
"""

from __future__ import annotations

import asyncio
import json
import struct
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

STATE_KEY = "crdt_server.wire.proxy"
"""The key of a worker's :class:`ProxyClient` in the ASGI lifespan state."""
PROXIED_KEY = "crdt_server.proxied_from"
"""In the scope of a request run for another worker: that worker's index."""

MAX_CHUNK = 64 * 1024
"""The most body bytes in one frame."""
_FRAME = struct.Struct("!IB")
_DEADLINE = struct.Struct("!d")
_MAX_HEAD = 256 * 1024
"""The largest request or response head frame taken (uvicorn's own head limit is lower)."""
_QUEUED_FRAMES = 16
"""Frames of one request the owner holds before it stops reading (the rest waits in the
socket: the accepting worker then stops reading the client's body)."""
_SENDER_BUFFER = 1 << 20
"""Bytes of an answer the accepting worker holds before it stops reading from the owner."""
_IDLE_PER_PEER = 32
"""Idle channels kept per owner for the next requests."""

# Sender to owner.
_REQUEST, _BODY, _BODY_END, _DISCONNECT, _DONE = 1, 2, 3, 4, 5
# Owner to sender.
_ACK, _LATE, _START, _RBODY, _REND = 16, 17, 18, 19, 20


def _frame(kind: int, payload: bytes = b"") -> bytes:
    return _FRAME.pack(len(payload), kind) + payload


def _body_frames(body: bytes, more: bool, mid: int, last: int) -> bytes:
    """``body`` as frames of at most :data:`MAX_CHUNK` bytes; the last one of kind
    ``last`` unless ``more``."""
    parts = [body[i : i + MAX_CHUNK] for i in range(0, len(body), MAX_CHUNK)] or [b""]
    out = [_frame(mid, part) for part in parts[:-1]]
    out.append(_frame(mid if more else last, parts[-1]))
    return b"".join(out)


def _encode_head(scope: Scope, sender: int) -> bytes:
    client = scope.get("client")
    server = scope.get("server")
    head = {
        "from": sender,
        "method": scope["method"],
        "scheme": scope.get("scheme", "http"),
        "http_version": scope.get("http_version", "1.1"),
        "path": scope["path"],
        "raw_path": (scope.get("raw_path") or scope["path"].encode()).decode("latin-1"),
        "query_string": scope.get("query_string", b"").decode("latin-1"),
        "root_path": scope.get("root_path", ""),
        "headers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in scope["headers"]],
        "client": list(client) if client else None,
        "server": list(server) if server else None,
    }
    return json.dumps(head, separators=(",", ":")).encode()


def _decode_head(data: bytes) -> Scope:
    head = json.loads(data)
    client, server = head["client"], head["server"]
    return {
        PROXIED_KEY: int(head["from"]),
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": str(head["http_version"]),
        "method": str(head["method"]),
        "scheme": str(head["scheme"]),
        "path": str(head["path"]),
        "raw_path": str(head["raw_path"]).encode("latin-1"),
        "query_string": str(head["query_string"]).encode("latin-1"),
        "root_path": str(head["root_path"]),
        "headers": [
            (str(k).encode("latin-1"), str(v).encode("latin-1")) for k, v in head["headers"]
        ],
        "client": (str(client[0]), int(client[1])) if client else None,
        "server": (str(server[0]), server[1]) if server else None,
        "extensions": {},
    }


async def _read_frames(
    reader: asyncio.StreamReader, frames: asyncio.Queue[tuple[int, bytes] | None]
) -> None:
    """Every frame of a channel into ``frames`` (``None`` at its end): one reader, so a
    request's ``receive`` cancelled mid-wait loses no frame."""
    try:
        while True:
            head = await reader.readexactly(_FRAME.size)
            length, kind = _FRAME.unpack(head)
            if length > _MAX_HEAD:
                break
            payload = await reader.readexactly(length) if length else b""
            await frames.put((kind, payload))
    except (asyncio.IncompleteReadError, OSError):
        pass
    await frames.put(None)
