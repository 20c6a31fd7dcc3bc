"""The Hocuspocus protocol's framing: pure functions over bytes.

``@hocuspocus/provider`` 4.8 (``src/types.ts``) speaks y-protocols with the document's name
in front of every message, so one socket carries many documents::

    any message  [name: varString][type: varuint][body]
    sync         type 0, body as y-protocols' sync message      (both ways)
    awareness    type 1, body as y-protocols' awareness message (both ways)
    auth         type 2: [0][token: varString][version: varString]   client: here is my token
                         [0]                                         server: send your token
                         [1][reason: varString]                      server: permission denied
                         [2][scope: varString]                       server: authenticated
    query        type 3 (ask for every awareness state)             (both ways)
    stateless    type 5, [payload: varString]                       (both ways)
    close        type 7: client: detach this document; server: [reason: varString]
    sync status  type 8, [applied: varInt, 1 or 0]                  (server to client)
    ping, pong   a lone byte 9 or 10, no name                       (connection level)

The name may be a routing key, ``name\\0sessionId`` (``sessionAwareness: true``): the
server answers with the exact key a message came with.

Decoding is strict and bounded: a name over :data:`MAX_NAME_BYTES`, an unknown type, a
truncated field or trailing bytes raise :class:`~crdt_server.errors.ProtocolError`. The
y-protocols part (sync, awareness, query) is :mod:`crdt_server.codec.protocol`'s: a
:class:`Framed` message's ``body`` is exactly what a ``y-websocket`` client would send.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from crdt_server.codec.protocol import read_var_string, read_var_uint, write_var_string
from crdt_server.errors import ProtocolError
from crdt_server.lib0 import write_var_uint

__all__ = [
    "MAX_NAME_BYTES",
    "MAX_TOKEN_BYTES",
    "PING",
    "PONG",
    "Auth",
    "Detach",
    "Framed",
    "HocusType",
    "Ping",
    "Pong",
    "authenticated",
    "close_message",
    "decode_frame",
    "document_of",
    "framed",
    "permission_denied",
    "read_stateless",
    "stateless",
    "sync_status",
    "token_request",
]

MAX_NAME_BYTES = 512
"""Longest name (or routing key) read: a document name is far shorter; a session id is the
provider's ``Math.random().toString(36)``."""
MAX_TOKEN_BYTES = 16 * 1024
"""Longest token read from an auth message."""

PING = bytes((9,))
PONG = bytes((10,))
_SEPARATOR = "\0"


class HocusType(IntEnum):
    SYNC = 0
    AWARENESS = 1
    AUTH = 2
    QUERY_AWARENESS = 3
    STATELESS = 5
    CLOSE = 7
    SYNC_STATUS = 8
    PING = 9
    PONG = 10


class _AuthType(IntEnum):
    TOKEN = 0
    PERMISSION_DENIED = 1
    AUTHENTICATED = 2


@dataclass(frozen=True, slots=True)
class Ping:
    """The peer asks whether the connection lives (answer :data:`PONG`)."""


@dataclass(frozen=True, slots=True)
class Pong:
    """The peer answers our :data:`PING`."""


@dataclass(frozen=True, slots=True)
class Framed:
    """A message for the document ``key`` names: y-protocols' (sync, awareness, query),
    as y-websocket frames it, or a stateless one (``body`` from its type on; see
    :func:`read_stateless`)."""

    key: str
    body: bytes


@dataclass(frozen=True, slots=True)
class Auth:
    """The peer's token for the document ``key`` names (the version after it is ignored)."""

    key: str
    token: str


@dataclass(frozen=True, slots=True)
class Detach:
    """The peer detached the document ``key`` names (its provider was destroyed)."""

    key: str


Message = Ping | Pong | Framed | Auth | Detach


def document_of(key: str) -> str:
    """The document name of a routing key (``name\\0sessionId``), or the key itself."""
    return key.partition(_SEPARATOR)[0]


def decode_frame(frame: bytes) -> Message:
    """Decode one binary message, or raise :class:`ProtocolError`. The y-protocols body of
    a :class:`Framed` message is not decoded here (see :func:`decode_message
    <crdt_server.codec.protocol.decode_message>`)."""
    if not frame:
        raise ProtocolError("empty frame")
    if len(frame) == 1 and frame[0] == HocusType.PING:
        return Ping()
    if len(frame) == 1 and frame[0] == HocusType.PONG:
        return Pong()
    length, pos = read_var_uint(frame, 0)
    if length > MAX_NAME_BYTES:
        raise ProtocolError(f"document name of {length} bytes, the limit is {MAX_NAME_BYTES}")
    key, pos = read_var_string(frame, 0)
    if not key:
        raise ProtocolError("empty document name")
    start = pos
    kind, pos = read_var_uint(frame, pos)
    if kind in (HocusType.SYNC, HocusType.AWARENESS, HocusType.QUERY_AWARENESS):
        return Framed(key, frame[start:])
    if kind == HocusType.AUTH:
        subtype, pos = read_var_uint(frame, pos)
        if subtype != _AuthType.TOKEN:
            raise ProtocolError(f"auth message of type {subtype} (only servers send it)")
        length, _ = read_var_uint(frame, pos)
        if length > MAX_TOKEN_BYTES:
            raise ProtocolError(f"token of {length} bytes, the limit is {MAX_TOKEN_BYTES}")
        token, pos = read_var_string(frame, pos)
        if pos < len(frame):
            _version, pos = read_var_string(frame, pos)  # the provider's version: ignored
        _expect_end(frame, pos)
        return Auth(key, token)
    if kind == HocusType.STATELESS:
        _, pos = read_var_string(frame, pos)
        _expect_end(frame, pos)
        return Framed(key, frame[start:])
    if kind == HocusType.CLOSE:
        _expect_end(frame, pos)
        return Detach(key)
    raise ProtocolError(f"unknown message type {kind}")


def _expect_end(data: bytes, pos: int) -> None:
    if pos != len(data):
        raise ProtocolError(f"{len(data) - pos} trailing bytes after the message")


def framed(key: str, body: bytes) -> bytes:
    """The y-protocols message ``body`` for the document ``key`` names."""
    return write_var_string(key) + body


def authenticated(key: str, *, read_only: bool) -> bytes:
    scope = "readonly" if read_only else "read-write"
    return framed(key, bytes((HocusType.AUTH, _AuthType.AUTHENTICATED)) + write_var_string(scope))


def permission_denied(key: str, reason: str) -> bytes:
    body = bytes((HocusType.AUTH, _AuthType.PERMISSION_DENIED)) + write_var_string(reason)
    return framed(key, body)


def token_request(key: str) -> bytes:
    """Ask the provider for its token again (it calls its ``token`` function)."""
    return framed(key, bytes((HocusType.AUTH, _AuthType.TOKEN)))


def sync_status(applied: bool) -> bytes:
    """The body of a sync status: 1 once the peer's update is committed, 0 when it was
    dropped (lib0's varInt: one byte for 0 and 1)."""
    return bytes((HocusType.SYNC_STATUS, 1 if applied else 0))


def read_stateless(body: bytes) -> str | None:
    """The payload of a stateless message's body (from its type on), or ``None`` if it is
    no well-formed one."""
    try:
        kind, pos = read_var_uint(body, 0)
        payload, pos = read_var_string(body, pos)
    except ProtocolError:
        return None
    return payload if kind == HocusType.STATELESS and pos == len(body) else None


def stateless(payload: str) -> bytes:
    """The body of a stateless message."""
    return write_var_uint(HocusType.STATELESS) + write_var_string(payload)


def close_message(key: str, reason: str) -> bytes:
    """Tell the provider its document is closed (it reports close code 1000 with
    ``reason``; the socket stays open)."""
    return framed(key, bytes((HocusType.CLOSE,)) + write_var_string(reason))
