"""The server end of RFC 6455 on a bare asyncio protocol: uvicorn's WebSocket protocol for
the sync path.

uvicorn parses the HTTP request and, on an upgrade, hands the connection to the class it
was configured with (``ws=``). This one answers the sync path (``/sync/{wedding}/{doc}``)
and the Hocuspocus path (``/collab``, ``/collab/{wedding}``) itself: the upgrade checks
are the gate's (:class:`~crdt_server.wire.gate.UpgradeGate`, which
:class:`crdt_server.edge.upgrade.Gate` is), the frames are read and written here, and the
session gets a :class:`~crdt_server.wire.transport.Transport` whose ``send`` adds a ready
frame to what the connection writes, in one ``transport.write``, once its room has
distributed a batch or at the end of the loop turn (:class:`Outbox`). No ASGI messages, no
per-connection parser objects: that is most of the cost of a connection and of a broadcast
otherwise. Beside it: the upgrade's HTTP side (:mod:`~crdt_server.wire.handshake`), the
keepalive pings (:mod:`~crdt_server.wire.keepalive`) and the writes at the end of a loop
turn (:mod:`~crdt_server.wire.outbox`).

Everything else goes to uvicorn's own WebSocket protocol and from there to the ASGI app:
other paths, and an app that did not yield a gate in its lifespan state. This protocol
negotiates no extension (permessage-deflate is not offered, whatever uvicorn's
``ws_per_message_deflate`` says).

What it does, by the RFC: client frames must be masked; RSV bits, unknown opcodes, control
frames that are fragmented or over 125 bytes, a continuation with no message started or a
new message inside a fragmented one close with 1002; a message over the size limit closes
with 1009 as soon as its header says so (nothing is buffered for it); a text message that
is not UTF-8 closes with 1007; pings are answered; the close handshake echoes the peer's
code, and the server closes TCP first. A connection that sends nothing for
``ws_ping_interval`` is pinged; one that then stays silent for another interval is dropped
(one whose reading the server paused, its messages unconsumed, is not silent).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar, cast
from urllib.parse import unquote

from crdt_server.codec.websocket_frames import (
    FrameError,
    apply_mask,
    check_client_frame,
    decode_close,
    encode_close,
    frame_header,
    parse_header,
)
from crdt_server.errors import CloseCode
from crdt_server.wire.affinity import STATE_KEY as AFFINITY_KEY
from crdt_server.wire.affinity import Affinity
from crdt_server.wire.gate import STATE_KEY, Refusal, UpgradeGate, admit_path, gated
from crdt_server.wire.handshake import (
    TrustedProxies,
    accept_response,
    check_upgrade,
    client_address,
    parse_head,
    refusal_response,
)
from crdt_server.wire.keepalive import Pinged, Pinger
from crdt_server.wire.outbox import Outbox
from crdt_server.wire.transport import TransportClosed
from crdt_server.wire.uvicorn_private import Config, ServerState, WebSocketsSansIOProtocol

__all__ = ["Outbox", "Pinger", "SyncWebSocketProtocol"]

log = logging.getLogger("crdt_server.wire.websocket")

_A = TypeVar("_A")
_T = TypeVar("_T")
_MAX_HEAD = 64 * 1024
_PROTOCOL_ERROR = 1002
"""Not in :class:`CloseCode`: the session never sends it; only the frame layer does."""
_ABNORMAL = 1006
_NO_STATUS = 1005
_PINGER_KEY = "crdt_server.wire.websocket.pinger"
_OUTBOX_KEY = "crdt_server.wire.websocket.outbox"
_PROXIES_KEY = "crdt_server.wire.websocket.proxies"
"""Where the server's :class:`Pinger`, :class:`Outbox` and :class:`TrustedProxies` live in
the lifespan state: built by the first connection that needs them, shared by all."""
_READ_PAUSE_MESSAGES = 64
"""Messages the session has not read yet before reading from the socket pauses."""
_MERGE_BYTES = 64 * 1024
"""Frames waiting for the end of the loop turn past this many bytes are written at once: the
transport's own buffer then applies backpressure (``pause_writing``) as before."""

_CONT, _TEXT, _BINARY, _CLOSE, _PING, _PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
_HANDSHAKE, _OPEN, _CLOSING, _CLOSED = range(4)


def _per_server(app_state: dict[str, Any], key: str, build: Callable[[_A], _T], argument: _A) -> _T:
    """The one ``build(argument)`` of this server, kept in its lifespan state."""
    shared = app_state.get(key)
    if shared is None:
        shared = app_state[key] = build(argument)
    return cast(_T, shared)


class SyncWebSocketProtocol(asyncio.Protocol):
    """One upgraded connection; uvicorn builds it as ``ws_protocol_class(config=..., ...)``."""

    __slots__ = (
        "_app_state",
        "_buffer",
        "_close",
        "_closed",
        "_config",
        "_delegate",
        "_drained",
        "_fragments",
        "_fragments_size",
        "_fragments_text",
        "_heard",
        "_ping_slot",
        "_lost",
        "_max_size",
        "_max_out",
        "_messages",
        "_out",
        "_out_bytes",
        "_outbox",
        "_paused_reading",
        "_pinged",
        "_server_state",
        "_state",
        "_transport",
        "_waiter",
        "_writable",
    )

    def __init__(
        self, config: Config, server_state: ServerState, app_state: dict[str, Any]
    ) -> None:
        self._config = config
        self._server_state = server_state
        self._app_state = app_state
        self._transport: asyncio.Transport | None = None
        self._delegate: asyncio.Protocol | None = None
        self._state = _HANDSHAKE
        self._buffer = bytearray()
        self._max_size = 0
        self._max_out = 0
        """Bytes the transport may hold for this peer unsent (control frames included)."""
        # A list, not a deque: 64 bytes instead of 770 on every connection; reading pauses
        # at _READ_PAUSE_MESSAGES, so it stays short.
        self._messages: list[bytes | str] = []
        self._waiter: asyncio.Future[None] | None = None
        self._paused_reading = False
        self._writable = True
        self._drained: asyncio.Future[None] | None = None
        self._lost: asyncio.Future[None] | None = None
        self._fragments: list[bytes] | None = None
        self._fragments_size = 0
        self._fragments_text = False
        self._close: tuple[int, str] | None = None
        """The close the session sees: the peer's code, or why the connection ended."""
        self._closed = False
        self._heard = True
        self._pinged = False
        self._ping_slot: list[Pinged] | None = None
        self._outbox: Outbox | None = None
        self._out: list[bytes] | None = None
        """Frames sent in this loop turn, written together after it (see :class:`Outbox`)."""
        self._out_bytes = 0

    # -- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass
        self._server_state.connections.add(self)  # type: ignore[arg-type]

    def data_received(self, data: bytes) -> None:
        if self._delegate is not None:
            self._delegate.data_received(data)
            return
        if self._state == _HANDSHAKE:
            self._buffer += data
            try:
                self._handshake()
            except Exception:
                log.exception("WebSocket upgrade failed")
                if self._state == _HANDSHAKE and self._delegate is None:
                    self._respond(Refusal(500, "internal error"))
            return
        if self._state == _CLOSED:
            return
        self._heard = True
        buffer = self._buffer
        buffer += data
        try:
            consumed = self._parse(buffer)
        except FrameError as exc:
            self._fail(exc.code, exc.reason)
            return
        if consumed:
            del buffer[:consumed]

    def eof_received(self) -> bool | None:
        if self._delegate is not None:
            return self._delegate.eof_received()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if self._delegate is not None:
            self._delegate.connection_lost(exc)
            return
        self._server_state.connections.discard(self)
        self._state = _CLOSED
        self._closed = True
        if self._close is None:
            self._close = (_ABNORMAL, "")
        if self._ping_slot is not None:
            Pinger.remove(self, self._ping_slot)  # added once, at the accept
            self._ping_slot = None
        self._buffer.clear()
        self._fragments = None
        self._out = None
        self._out_bytes = 0
        self._writable = True
        for future in (self._waiter, self._drained, self._lost):
            if future is not None and not future.done():
                future.set_result(None)

    def pause_writing(self) -> None:
        if self._delegate is not None:
            self._delegate.pause_writing()
            return
        self._writable = False

    def resume_writing(self) -> None:
        if self._delegate is not None:
            self._delegate.resume_writing()
            return
        self._writable = True
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    def shutdown(self) -> None:
        """uvicorn's graceful shutdown: close with 1012 (clients come back to a new server)."""
        transport = self._transport
        if transport is None or self._closed:
            return
        if self._state == _OPEN:
            self._end(CloseCode.SERVICE_RESTART, "server restart")
        transport.close()

    # -- the Transport seam (what the session uses) ----------------------------------------

    async def receive(self) -> bytes | str:
        while (message := self.receive_ready()) is None:
            if self._close is not None:
                raise TransportClosed(*self._close)
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return message

    def receive_ready(self) -> bytes | str | None:
        messages = self._messages
        if not messages:
            return None
        message = messages.pop(0)
        if self._paused_reading and len(messages) < _READ_PAUSE_MESSAGES // 2:
            self._paused_reading = False
            if self._transport is not None and not self._closed:
                self._transport.resume_reading()
        return message

    async def send(self, data: bytes) -> None:
        if self._state != _OPEN or self._transport is None:
            raise TransportClosed(*(self._close or (_ABNORMAL, "")))
        outbox = self._outbox
        assert outbox is not None
        frame = outbox.frame(data)
        out = self._out
        if out is None:
            self._out = [frame]
            self._out_bytes = len(frame)
            outbox.add(self)
        else:
            out.append(frame)
            self._out_bytes += len(frame)
        if self._out_bytes > _MERGE_BYTES:
            self._write_out()
        if not self._writable:
            self._drained = asyncio.get_running_loop().create_future()
            try:
                await self._drained
            finally:
                self._drained = None
            if self._closed:
                raise TransportClosed(*(self._close or (_ABNORMAL, "")))

    async def close(self, code: int, reason: str = "") -> None:
        if self._closed:
            return
        if self._state == _OPEN:
            self._end(code, reason)
        if self._lost is None:
            self._lost = asyncio.get_running_loop().create_future()
        await asyncio.shield(self._lost)

    # -- the handshake ---------------------------------------------------------------------

    def _handshake(self) -> None:
        head_end = self._buffer.find(b"\r\n\r\n")
        if head_end < 0:
            if len(self._buffer) > _MAX_HEAD:
                self._respond(Refusal(431, "request head too large"))
            return
        head = bytes(self._buffer[:head_end]).decode("latin-1")
        del self._buffer[: head_end + 4]
        method, target, headers = parse_head(head)
        raw_path, _, query = target.partition("?")
        path = unquote(raw_path)
        gate = cast("UpgradeGate[Any] | None", self._app_state.get(STATE_KEY))
        if gate is not None and gated(path) and self._hand_off(gate, path, head):
            return
        assert self._transport is not None
        trusted = self._config.forwarded_allow_ips if self._config.proxy_headers else None
        address, port = client_address(
            self._transport.get_extra_info("peername"),
            headers.get("x-forwarded-for"),
            None
            if trusted is None
            else partial(_per_server, self._app_state, _PROXIES_KEY, TrustedProxies, trusted),
        )
        peer = f"{address}:{port}"
        outcome: Any
        refusal = check_upgrade(method, headers)
        if refusal is not None:
            outcome = gate.refuse(refusal) if gate is not None else refusal
        elif not gated(path) or gate is None:
            self._hand_over(head)
            return
        else:
            outcome = admit_path(gate, path, query, headers, address)
        # The access log line uvicorn writes for a WebSocket (tokens are redacted by the
        # handler's filter, see crdt_server.cli.logs).
        if isinstance(outcome, Refusal):
            log.info('%s - "WebSocket %s" %d', peer, target, outcome.status)
            self._respond(outcome)
            return
        log.info('%s - "WebSocket %s" [accepted]', peer, target)
        assert gate is not None
        self._accept(gate, outcome, headers["sec-websocket-key"], peer)

    def _hand_off(self, gate: UpgradeGate[Any], path: str, head: str) -> bool:
        """Give the connection to the worker that owns its wedding (``--workers``, see
        :mod:`crdt_server.wire.affinity`); ``False``: it is served here (this worker owns
        it, there is one process, or the owner cannot take it now)."""
        affinity = self._app_state.get(AFFINITY_KEY)
        if not isinstance(affinity, Affinity):
            return False
        to = affinity.owner_elsewhere(path)
        if to is None:
            return False
        transport = self._transport
        assert transport is not None
        sock = transport.get_extra_info("socket")
        data = head.encode("latin-1") + b"\r\n\r\n" + bytes(self._buffer)
        metrics = gate.registry.metrics
        if sock is None or not affinity.hand_off(to, sock.fileno(), data):
            metrics.served_off_owner.inc()
            return False
        metrics.handed_off.labels(str(to)).inc()
        # The connection lives on in the owner: close this descriptor only (no shutdown, no
        # close frame; the peer sees nothing).
        self._server_state.connections.discard(self)
        self._state = _CLOSED
        self._closed = True
        self._close = (_ABNORMAL, "handed off")
        self._buffer.clear()
        transport.abort()
        return True

    def _respond(self, refusal: Refusal) -> None:
        assert self._transport is not None
        self._transport.write(refusal_response(refusal))
        self._state = _CLOSED
        self._closed = True
        self._transport.close()

    def _hand_over(self, head: str) -> None:
        """Let uvicorn's own protocol (and the ASGI app) have this connection."""
        assert self._transport is not None
        self._server_state.connections.discard(self)
        delegate = WebSocketsSansIOProtocol(
            config=self._config, server_state=self._server_state, app_state=self._app_state
        )
        self._delegate = delegate
        delegate.connection_made(self._transport)
        delegate.data_received(head.encode("latin-1") + b"\r\n\r\n" + bytes(self._buffer))
        self._buffer.clear()

    def _accept(self, gate: UpgradeGate[Any], admitted: Any, key: str, peer: str) -> None:
        assert self._transport is not None
        self._transport.write(accept_response(key))
        self._state = _OPEN
        self._max_size = gate.settings.max_message_bytes
        self._max_out = gate.settings.outbound_queue_bytes
        self._outbox = _per_server(self._app_state, _OUTBOX_KEY, Outbox, None)
        interval = self._config.ws_ping_interval
        if interval:
            pinger = _per_server(self._app_state, _PINGER_KEY, Pinger, interval)
            self._ping_slot = pinger.add(self)
        task = asyncio.get_running_loop().create_task(self._run(gate, admitted, peer))
        tasks = self._server_state.tasks
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        if self._buffer:  # frames that came with the request
            self.data_received(b"")

    async def _run(self, gate: UpgradeGate[Any], admitted: Any, peer: str) -> None:
        try:
            await gate.serve(self, admitted, peer=peer)
        except Exception:
            log.exception("connection from %s failed", peer)
        finally:
            if not self._closed and self._transport is not None:
                self._reset()

    def _reset(self) -> None:
        """Drop a peer that did not finish the close handshake: abort with a TCP reset, so
        the kernel frees the socket's buffers now instead of retrying a peer that is not
        reading."""
        assert self._transport is not None
        self._out = None
        self._out_bytes = 0
        sock = self._transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self._transport.abort()

    # -- frames ----------------------------------------------------------------------------

    def _parse(self, buffer: bytearray) -> int:
        """Handle every whole frame at the start of ``buffer``; return the bytes used."""
        pos = 0
        end = len(buffer)
        while self._state != _CLOSED:
            header = parse_header(buffer, pos)
            if header is None:
                break
            check_client_frame(header, self._max_size, self._fragments_size)
            start = pos + header.size
            length = header.length
            if end - start < length:
                break
            assert header.mask is not None  # checked above
            payload = apply_mask(memoryview(buffer)[start : start + length], header.mask)
            pos = start + length
            self._frame(header.opcode, header.fin, payload)
        return pos

    def _frame(self, opcode: int, fin: bool, payload: bytes) -> None:
        if opcode == _BINARY or opcode == _TEXT:
            if self._fragments is not None:
                raise FrameError(_PROTOCOL_ERROR, "new message inside a fragmented one")
            if fin:
                self._deliver(payload, opcode == _TEXT)
            else:
                self._fragments = [payload]
                self._fragments_size = len(payload)
                self._fragments_text = opcode == _TEXT
        elif opcode == _CONT:
            if self._fragments is None:
                raise FrameError(_PROTOCOL_ERROR, "continuation with no message started")
            self._fragments.append(payload)
            self._fragments_size += len(payload)
            if fin:
                message = b"".join(self._fragments)
                self._fragments = None
                self._fragments_size = 0
                self._deliver(message, self._fragments_text)
        elif opcode == _PING:
            if self._state == _OPEN and self._transport is not None:
                self._write_control(frame_header(_PONG, len(payload)) + payload)
        elif opcode == _PONG:
            self._pinged = False
        else:
            self._peer_closed(payload)

    def flush(self) -> None:
        """Write what was sent in this turn now (see :meth:`Connection.flush
        <crdt_server.core.connection.Connection.flush>`)."""
        self._write_out()

    def _write_out(self) -> None:
        """Write the frames sent since the last write, in order, in one ``write``."""
        out = self._out
        if out is None:
            return
        self._out = None
        self._out_bytes = 0
        transport = self._transport
        if transport is None or transport.is_closing():
            return  # aborted or lost: nothing more goes out
        transport.write(out[0] if len(out) == 1 else b"".join(out))

    def _write_control(self, frame: bytes) -> None:
        """Write a pong or ping: control frames count toward the outbound cap like data. A
        peer that sends pings and never reads the pongs is a slow consumer: it gets 1013
        and the socket is aborted (its unsent bytes are dropped, the memory released)."""
        transport = self._transport
        assert transport is not None
        self._write_out()
        if transport.get_write_buffer_size() + len(frame) > self._max_out:
            log.warning("slow consumer: pongs not read, closing with 1013")
            self._close = (CloseCode.TRY_AGAIN_LATER, "slow consumer")
            self._state = _CLOSED
            if self._waiter is not None and not self._waiter.done():
                self._waiter.set_result(None)
            self._reset()
            return
        transport.write(frame)

    def _deliver(self, payload: bytes, text: bool) -> None:
        if self._state != _OPEN:
            return  # after our close frame, data is read and dropped
        message: bytes | str = payload
        if text:
            try:
                message = payload.decode("utf-8")
            except UnicodeDecodeError:
                raise FrameError(CloseCode.INVALID_PAYLOAD, "text message is not UTF-8") from None
        messages = self._messages
        messages.append(message)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)
        if len(messages) >= _READ_PAUSE_MESSAGES and not self._paused_reading:
            self._paused_reading = True
            assert self._transport is not None
            self._transport.pause_reading()

    def _peer_closed(self, payload: bytes) -> None:
        code, reason = decode_close(payload)
        if self._state == _OPEN:
            self._close = (code, reason)  # the session sees the peer's close
            self._end(code if payload else None, "")
        self._finish()

    # -- ending ----------------------------------------------------------------------------

    def _end(self, code: int | None, reason: str) -> None:
        """Send our close frame (``None``: one without a code) and stop taking messages."""
        assert self._transport is not None
        payload = encode_close(code, reason)
        self._write_out()  # what the session sent before closing goes out first
        self._transport.write(frame_header(_CLOSE, len(payload)) + payload)
        self._state = _CLOSING
        if self._paused_reading:  # the peer's close frame must still be read
            self._paused_reading = False
            self._transport.resume_reading()
        if self._close is None:
            self._close = (code if code is not None else _NO_STATUS, reason)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _fail(self, code: int, reason: str) -> None:
        log.info("closing a WebSocket with %d: %s", code, reason)
        if self._state == _OPEN:
            self._end(code, reason)
        self._close = (code, reason)
        self._finish()

    def _finish(self) -> None:
        """The close handshake is over (or failed): the server closes TCP first."""
        self._state = _CLOSED
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)
        if self._transport is not None:
            self._transport.close()

    def _ping(self) -> None:
        """One keepalive tick: ping a peer silent since the last tick, drop one that stayed
        silent after its ping."""
        if self._state != _OPEN or self._transport is None:
            return
        if self._paused_reading:
            # Not silent: we stopped reading it (its messages wait for the session), so
            # what it sent since, a pong too, is still in the socket.
            self._heard = True
        if not self._heard:
            if self._pinged:
                log.info("a WebSocket peer did not answer a ping; dropping it")
                self._close = (_ABNORMAL, "keepalive timeout")
                self._reset()
                return
            self._write_control(frame_header(_PING, 0))
            self._pinged = True
        self._heard = False
