"""The y-protocols wire codec: pure functions over bytes.

One binary WebSocket frame carries exactly one message, as the stock ``y-websocket``
provider sends it::

    sync       [0][subtype: varuint][payload: varUint8Array]   subtype 0 step1, 1 step2, 2 update
    awareness  [1][payload: varUint8Array]
    auth       [2][0 = permission denied][reason: varString]  (server to client only)
    query      [3]                                           (ask for all awareness states)

Decoding is strict: unknown types, truncated payloads and trailing bytes raise
:class:`~crdt_server.errors.ProtocolError`, the codec's only error.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from crdt_server.errors import ProtocolError
from crdt_server.lib0 import write_var_uint

__all__ = [
    "AuthDenied",
    "AwarenessMessage",
    "Message",
    "MessageType",
    "QueryAwareness",
    "SyncStep1",
    "SyncStep2",
    "SyncType",
    "SyncUpdate",
    "decode_message",
    "encode_awareness",
    "encode_permission_denied",
    "encode_query_awareness",
    "encode_sync_step1",
    "encode_sync_step2",
    "encode_update",
    "read_var_string",
    "read_var_uint",
    "write_var_string",
    "write_var_uint",
]

_MAX_VAR_UINT_BYTES = 8  # 56 bits: lib0 numbers never exceed 2**53


class MessageType(IntEnum):
    SYNC = 0
    AWARENESS = 1
    AUTH = 2
    QUERY_AWARENESS = 3


class SyncType(IntEnum):
    STEP1 = 0
    STEP2 = 1
    UPDATE = 2


@dataclass(frozen=True, slots=True)
class SyncStep1:
    """The sender's state vector: "send me what I am missing"."""

    state_vector: bytes


@dataclass(frozen=True, slots=True)
class SyncStep2:
    """The answer to a step 1: a Yjs update with everything the asker was missing."""

    update: bytes


@dataclass(frozen=True, slots=True)
class SyncUpdate:
    """A Yjs update made by the sender."""

    update: bytes


@dataclass(frozen=True, slots=True)
class AwarenessMessage:
    """An encoded awareness update (see :mod:`crdt_server.codec.awareness`)."""

    payload: bytes


@dataclass(frozen=True, slots=True)
class QueryAwareness:
    """A request for every awareness state the receiver knows."""


@dataclass(frozen=True, slots=True)
class AuthDenied:
    """Permission denied, with a reason (only servers send it)."""

    reason: str


Message = SyncStep1 | SyncStep2 | SyncUpdate | AwarenessMessage | QueryAwareness | AuthDenied


def write_var_string(text: str) -> bytes:
    raw = text.encode("utf-8")
    return write_var_uint(len(raw)) + raw


def read_var_uint(data: bytes, pos: int) -> tuple[int, int]:
    """Read a varuint at ``pos``; return ``(value, next position)``."""
    value = 0
    shift = 0
    end = min(len(data), pos + _MAX_VAR_UINT_BYTES)
    while pos < end:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
    if pos >= len(data):
        raise ProtocolError("truncated varuint")
    raise ProtocolError("varuint longer than 8 bytes")


def _read_var_bytes(data: bytes, pos: int) -> tuple[bytes, int]:
    length, pos = read_var_uint(data, pos)
    end = pos + length
    if end > len(data):
        raise ProtocolError(f"payload claims {length} bytes, {len(data) - pos} remain")
    return data[pos:end], end


def read_var_string(data: bytes, pos: int) -> tuple[str, int]:
    raw, pos = _read_var_bytes(data, pos)
    try:
        return raw.decode("utf-8"), pos
    except UnicodeDecodeError as exc:
        raise ProtocolError("string is not valid UTF-8") from exc


def _expect_end(data: bytes, pos: int) -> None:
    if pos != len(data):
        raise ProtocolError(f"{len(data) - pos} trailing bytes after the message")


def decode_message(frame: bytes) -> Message:
    """Decode one frame into one message, or raise :class:`ProtocolError`."""
    if not frame:
        raise ProtocolError("empty frame")
    kind, pos = read_var_uint(frame, 0)
    message: Message
    if kind == MessageType.SYNC:
        subtype, pos = read_var_uint(frame, pos)
        payload, pos = _read_var_bytes(frame, pos)
        if subtype == SyncType.STEP1:
            message = SyncStep1(payload)
        elif subtype == SyncType.STEP2:
            message = SyncStep2(payload)
        elif subtype == SyncType.UPDATE:
            message = SyncUpdate(payload)
        else:
            raise ProtocolError(f"unknown sync message type {subtype}")
    elif kind == MessageType.AWARENESS:
        payload, pos = _read_var_bytes(frame, pos)
        message = AwarenessMessage(payload)
    elif kind == MessageType.QUERY_AWARENESS:
        message = QueryAwareness()
    elif kind == MessageType.AUTH:
        subtype, pos = read_var_uint(frame, pos)
        if subtype != 0:
            raise ProtocolError(f"unknown auth message type {subtype}")
        reason, pos = read_var_string(frame, pos)
        message = AuthDenied(reason)
    else:
        raise ProtocolError(f"unknown message type {kind}")
    _expect_end(frame, pos)
    return message


def _sync(subtype: SyncType, payload: bytes) -> bytes:
    return bytes((MessageType.SYNC, subtype)) + write_var_uint(len(payload)) + payload


def encode_sync_step1(state_vector: bytes) -> bytes:
    return _sync(SyncType.STEP1, state_vector)


def encode_sync_step2(update: bytes) -> bytes:
    return _sync(SyncType.STEP2, update)


def encode_update(update: bytes) -> bytes:
    return _sync(SyncType.UPDATE, update)


def encode_awareness(payload: bytes) -> bytes:
    return bytes((MessageType.AWARENESS,)) + write_var_uint(len(payload)) + payload


def encode_query_awareness() -> bytes:
    return bytes((MessageType.QUERY_AWARENESS,))


def encode_permission_denied(reason: str) -> bytes:
    return bytes((MessageType.AUTH, 0)) + write_var_string(reason)
