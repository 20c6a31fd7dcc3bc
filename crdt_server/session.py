"""Serve one accepted connection: greet, then read frames until the peer or the server ends it.

Per frame: size check, strict decode, permission check, structural update check, apply,
then (in the room) commit and broadcast. Any error the peer caused closes only this
connection with its documented code; the room and every other connection carry on.
"""

from __future__ import annotations

import asyncio
import logging
import time

from crdt_server.auth import Principal
from crdt_server.awareness import decode_awareness, stamp_identity
from crdt_server.connection import Connection
from crdt_server.errors import (
    CloseCode,
    MessageTooBig,
    ProtocolError,
    ServerError,
    UnsupportedData,
)
from crdt_server.protocol import (
    AuthDenied,
    AwarenessMessage,
    Message,
    QueryAwareness,
    SyncStep1,
    SyncStep2,
    SyncUpdate,
    decode_message,
    encode_permission_denied,
)
from crdt_server.registry import RoomRegistry
from crdt_server.room import Room, RoomFailed
from crdt_server.settings import Settings
from crdt_server.transport import Transport, TransportClosed
from crdt_server.updates import UpdateError, inspect_update

__all__ = ["serve_connection"]

log = logging.getLogger("crdt_server.session")


async def serve_connection(
    transport: Transport,
    registry: RoomRegistry,
    name: str,
    principal: Principal,
    settings: Settings,
    *,
    peer: str = "",
) -> Connection:
    """Run one connection to the end; returns it (its ``close_code`` says how it ended)."""
    conn = Connection(
        transport,
        principal,
        max_queue_bytes=settings.outbound_queue_bytes,
        max_queue_messages=settings.outbound_queue_messages,
        close_timeout=settings.close_timeout_seconds,
        peer=peer,
    )
    room = await registry.acquire(name)
    conn.start()
    code: int = CloseCode.NORMAL
    reason = ""
    expiry: asyncio.TimerHandle | None = None
    if principal.expires_at is not None:
        expiry = asyncio.get_running_loop().call_later(
            max(0.0, principal.expires_at - time.time()),
            conn.request_close,
            CloseCode.TOKEN_EXPIRED,
            "token expired",
        )
    try:
        room.join(conn)
        await _read_loop(conn, room, settings)
    except ServerError as exc:
        code, reason = exc.close_code, exc.message
        log.info("closing %s in %s with %d: %s", conn.id, name, code, reason)
    except RoomFailed:
        code, reason = CloseCode.INTERNAL_ERROR, "storage failure, reconnect"
    except TransportClosed:
        pass
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if not conn.interrupted or task is None:
            raise
        task.uncancel()
    finally:
        if expiry is not None:
            expiry.cancel()
        room.leave(conn)
        registry.release(room)
    await conn.finish(code, reason)
    return conn


async def _read_loop(conn: Connection, room: Room, settings: Settings) -> None:
    max_bytes = settings.max_message_bytes
    while not conn.closing:
        frame = await conn.receive()
        if isinstance(frame, str):
            raise UnsupportedData("text frames are not part of the protocol; send binary")
        if len(frame) > max_bytes:
            raise MessageTooBig(f"message of {len(frame)} bytes, the limit is {max_bytes}")
        await _handle(conn, room, decode_message(frame), settings)
        if room.uncommitted_bytes > settings.max_uncommitted_bytes:
            # Backpressure: stop reading this writer until the store catches up.
            await room.flush()


async def _handle(conn: Connection, room: Room, message: Message, settings: Settings) -> None:
    if isinstance(message, SyncUpdate):
        await _handle_update(conn, room, message.update, step2=False)
    elif isinstance(message, SyncStep2):
        await _handle_update(conn, room, message.update, step2=True)
    elif isinstance(message, SyncStep1):
        await room.answer_step1(conn, message.state_vector)
    elif isinstance(message, AwarenessMessage):
        entries = decode_awareness(
            message.payload,
            max_state_bytes=settings.max_awareness_state_bytes,
            max_entries=settings.max_awareness_entries,
        )
        if conn.principal.authenticated:
            principal = conn.principal
            identity = {"id": principal.user_id, "name": principal.name, "role": principal.role}
            entries = [stamp_identity(entry, identity) for entry in entries]
        room.apply_awareness(conn, entries)
    elif isinstance(message, QueryAwareness):
        conn.send(room.awareness_frame())
    elif isinstance(message, AuthDenied):
        log.info("%s sent an auth message; ignored (only servers send them)", conn.id)


async def _handle_update(conn: Connection, room: Room, update: bytes, *, step2: bool) -> None:
    try:
        summary = inspect_update(update)
    except UpdateError as exc:
        raise ProtocolError(f"malformed update: {exc}") from exc
    if not conn.principal.can_write:
        # The step 2 every client sends on connect is no write attempt when it brings
        # nothing new: same structs, and (the client's delete set) nothing to count.
        attempt = not summary.is_empty and (not step2 or room.has_unknown_structs(summary))
        if attempt:
            conn.denied_writes += 1
            if conn.denied_writes == 1:
                conn.send(encode_permission_denied("this document is read-only for you"))
        return
    await room.apply(update, summary, conn.id)
