"""One client connection: a bounded outbound queue drained by one writer task.

Rooms call :meth:`Connection.send` synchronously; it never waits. While nothing is queued
or in flight, a frame is written at once from ``send`` itself: the transport's ``send``
rarely has to wait (the socket takes the bytes), and a broadcast to many connections then
costs no task switch per connection. If it does have to wait, a writer task is started to
finish it and to drain the frames that queue behind it, in order; it ends when the queue
is empty, so an idle connection holds no task, coroutine or event (fewer objects for the
garbage collector to walk when thousands are open). A close request also runs on a writer
task. A connection whose queue
passes its byte or message bound is a slow consumer: its queue is dropped at once (the
memory is released) and it is closed with 1013, after which the client resyncs on
reconnect. Closing never hangs on a peer that stopped reading: the close handshake has a
deadline, after which the session's pending read is interrupted.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable, Coroutine, Generator
from typing import Any

from crdt_server import clock
from crdt_server.auth.principals import Principal
from crdt_server.core.metrics import Metrics
from crdt_server.errors import CloseCode
from crdt_server.wire.transport import Transport, TransportClosed

__all__ = ["Connection", "newest_serial"]

log = logging.getLogger("crdt_server.core.connection")
_ids = itertools.count(1)
_newest = 0


def newest_serial() -> int:
    """The serial of the newest connection made in this process so far."""
    return _newest


class Connection:
    # Slots: one of these lives as long as its socket (no __dict__ on each idle one).
    __slots__ = (
        "_close_request",
        "_close_started",
        "_close_timeout",
        "_max_bytes",
        "_max_messages",
        "_metrics",
        "_queue",
        "_queued_bytes",
        "_reader",
        "_sending",
        "_started",
        "_suspended",
        "_transport",
        "_transport_gone",
        "_writer",
        "close_code",
        "connected_at",
        "denied_writes",
        "frames_sent",
        "id",
        "interrupted",
        "last_activity",
        "overflowed",
        "peer",
        "principal",
        "serial",
        "stateless",
        "write_stateless",
    )

    def __init__(
        self,
        transport: Transport,
        principal: Principal,
        *,
        max_queue_bytes: int,
        max_queue_messages: int,
        close_timeout: float,
        peer: str = "",
        metrics: Metrics | None = None,
    ) -> None:
        global _newest
        self.serial = _newest = next(_ids)
        """Connections made later in this process have greater serials."""
        self.id = f"c{self.serial}"
        self.principal = principal
        self.peer = peer
        self._transport = transport
        self._max_bytes = max_queue_bytes
        self._max_messages = max_queue_messages
        self._close_timeout = close_timeout
        self._metrics = metrics or Metrics()
        # A list, not a deque: an empty deque is 770 bytes (its first block), a list 64, on
        # every connection; the queue is short (max_queue_messages) and usually empty.
        self._queue: list[bytes] = []
        self._queued_bytes = 0
        self._close_request: tuple[int, str] | None = None
        self._transport_gone = False
        """The peer went away: nothing more to send, not even a close frame."""
        self._sending = False
        """The writer task is waiting for the transport to take a frame."""
        self._suspended: _Resume | None = None
        """A send started in :meth:`send` that had to wait, not picked up by the writer yet."""
        self._reader: asyncio.Task[object] | None = None
        self._started = False
        self._writer: asyncio.Task[None] | None = None
        """Only while there is something to write or a close to make."""
        self._close_started = False
        self.close_code: int | None = None
        """The code this connection was closed with, once closed."""
        self.overflowed = False
        self.last_activity = clock.now()
        """When the peer last sent a frame (Unix time)."""
        self.connected_at = self.last_activity
        """When the connection was accepted (Unix time)."""
        self.denied_writes = 0
        """Write attempts refused because this connection is read-only."""
        self.interrupted = False
        """Set when a close timed out and the reader was cancelled to end the session."""
        self.frames_sent = 0
        """Frames given to :meth:`send` so far (the session's keepalive reads it)."""
        self.stateless = False
        """Whether the peer speaks Hocuspocus's stateless messages (see
        :class:`crdt_server.core.session.Dialect`)."""
        self.write_stateless: Callable[[str], bytes] | None = None
        """How a stateless message is framed for this peer (``None``: it speaks none)."""

    @property
    def closing(self) -> bool:
        return self._close_request is not None

    @property
    def queued_bytes(self) -> int:
        return self._queued_bytes

    def start(self) -> None:
        """Start sending; the calling task becomes the reader that a close may interrupt."""
        self._reader = asyncio.current_task()
        self._started = True
        if self._queue or self._close_request is not None:
            self._ensure_writer()

    async def receive(self) -> bytes | str:
        """The peer's next message (see :meth:`Transport.receive`)."""
        message = await self._transport.receive()
        self.last_activity = clock.now()
        return message

    def wait_message(self) -> Coroutine[Any, Any, bytes | str]:
        """The transport's own wait for the peer's next message: :meth:`receive` without
        a coroutine of the connection's around it, which an idle connection would hold for
        as long as it waits (about 200 bytes on each; issue 76). The caller says
        :meth:`mark_activity` once the message has come."""
        return self._transport.receive()

    def mark_activity(self) -> None:
        """The peer has just sent a frame (``last_activity``)."""
        self.last_activity = clock.now()

    def receive_ready(self) -> bytes | str | None:
        """The peer's next message if it has arrived already (see
        :meth:`Transport.receive_ready`)."""
        message = self._transport.receive_ready()
        if message is not None:
            self.last_activity = clock.now()
        return message

    def tell(self, payload: str) -> bool:
        """Send the server's own stateless message (JSON text) if the peer speaks them (a
        Hocuspocus provider's document); ``False`` if it does not (y-websocket)."""
        if self.write_stateless is None:
            return False
        self.send(self.write_stateless(payload))
        return True

    def send(self, frame: bytes) -> None:
        """Write or queue one frame; never waits. Overflow closes the connection with 1013."""
        if self._close_request is not None:
            return
        self.frames_sent += 1
        queue = self._queue
        if not queue and not self._sending and self._suspended is None and self._started:
            self._send_now(frame)
            return
        # A frame always fits an empty queue, however large: only a backlog is overflow.
        if queue and (
            self._queued_bytes + len(frame) > self._max_bytes or len(queue) >= self._max_messages
        ):
            self.overflowed = True
            self._metrics.queue_overflows.inc()
            log.warning(
                "slow consumer %s: %d bytes in %d messages queued, closing with 1013",
                self.id,
                self._queued_bytes,
                len(queue),
            )
            self.request_close(CloseCode.TRY_AGAIN_LATER, "slow consumer")
            return
        queue.append(frame)
        self._queued_bytes += len(frame)
        self._metrics.bytes_out += len(frame)
        self._ensure_writer()

    def flush(self) -> None:
        """Write now what the transport holds back until the end of the loop turn (the
        native WebSocket stack merges a turn's frames into one write): a room calls it once
        it has distributed a committed batch, so the echo does not wait for the rest of the
        turn. A transport that holds nothing back has no ``flush``."""
        flush = getattr(self._transport, "flush", None)
        if flush is not None:
            flush()

    def _send_now(self, frame: bytes) -> None:
        """Drive the transport's send from here; only if it has to wait is it handed over."""
        self._metrics.bytes_out += len(frame)
        send = self._transport.send(frame)
        try:
            waiting_on = send.send(None)
        except StopIteration:
            return
        except TransportClosed as exc:
            self._transport_closed(exc)  # nothing more to write, not even a close frame
            return
        except Exception:
            log.exception("connection %s: sending failed", self.id)
            self.request_close(CloseCode.INTERNAL_ERROR, "internal error")
            return
        self._suspended = _Resume(send, waiting_on)
        self._ensure_writer()

    def _ensure_writer(self) -> None:
        """Start a writer task unless one is running (before :meth:`start`, none is)."""
        if self._started and (self._writer is None or self._writer.done()):
            self._writer = asyncio.create_task(self._write_loop(), name=f"writer-{self.id}")

    def request_close(self, code: int, reason: str = "") -> None:
        """Drop whatever is queued and close with ``code``; safe to call more than once."""
        if self._close_request is not None:
            return
        self._close_request = (code, reason)
        self._queue.clear()
        self._queued_bytes = 0
        if self._transport_gone:
            return
        if self._sending and self._writer is not None:
            # The writer is stuck on a peer that does not read; stop waiting for it.
            self._writer.cancel()
        else:
            self._drop_suspended()
            self._ensure_writer()

    async def wait_closed(self) -> None:
        """Wait for the writer to finish (after a close request or a dead transport)."""
        if self._writer is not None:
            await asyncio.shield(self._writer)

    async def finish(self, code: int = CloseCode.NORMAL, reason: str = "") -> None:
        """Close (if not already closing) and wait until the writer is done."""
        self.request_close(code, reason)
        writer = self._writer
        if writer is None or writer.done():
            if not self._transport_gone:
                await self._close_transport()
            return
        try:
            await asyncio.shield(writer)
        except asyncio.CancelledError:
            writer.cancel()
            raise

    async def _write_loop(self) -> None:
        queue = self._queue
        try:
            while self._close_request is None:
                suspended = self._suspended
                if suspended is not None:
                    self._suspended = None
                    self._sending = True
                    try:
                        await suspended
                    finally:
                        self._sending = False
                    continue
                if not queue:
                    return  # idle: the next frame is written from send() again
                frame = queue.pop(0)
                self._queued_bytes -= len(frame)
                self._sending = True
                try:
                    await self._transport.send(frame)
                finally:
                    self._sending = False
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if self._close_request is None or task is None:
                raise
            task.uncancel()  # our own cancel from request_close: go on and close
        except TransportClosed as exc:
            self._transport_closed(exc)
            return
        finally:
            self._drop_suspended()
        if not self._transport_gone:
            await self._close_transport()

    def _drop_suspended(self) -> None:
        if self._suspended is not None:
            self._suspended.close()
            self._suspended = None

    def _transport_closed(self, exc: TransportClosed) -> None:
        self.close_code = exc.code
        self._transport_gone = True
        self._close_request = self._close_request or (exc.code, exc.reason)
        self._queue.clear()
        self._queued_bytes = 0

    async def _close_transport(self) -> None:
        if self._close_started:
            return
        self._close_started = True
        code, reason = self._close_request or (CloseCode.NORMAL, "")
        self.close_code = code
        try:
            async with asyncio.timeout(self._close_timeout):
                await self._transport.close(code, reason)
        except TimeoutError:
            log.info("connection %s did not take its close frame in time; dropping it", self.id)
            self._interrupt_reader()
        except TransportClosed:
            pass

    def _interrupt_reader(self) -> None:
        reader = self._reader
        if reader is not None and not reader.done() and reader is not asyncio.current_task():
            self.interrupted = True
            reader.cancel("connection closed")


class _Resume:
    """Awaitable that finishes a coroutine started outside any task, which suspended on
    ``waiting_on``: what ``await`` would have done had a task run it from the start."""

    __slots__ = ("_coro", "_waiting_on")

    def __init__(self, coro: Coroutine[Any, Any, None], waiting_on: Any) -> None:
        self._coro = coro
        self._waiting_on = waiting_on

    def close(self) -> None:
        self._coro.close()

    def __await__(self) -> Generator[Any, Any, None]:
        coro, value = self._coro, self._waiting_on
        while True:
            try:
                sent = yield value
            except BaseException as exc:
                try:
                    value = coro.throw(exc)
                except StopIteration:
                    return
            else:
                try:
                    value = coro.send(sent)
                except StopIteration:
                    return
