"""A wedding's HTTP requests served by its owner worker (``--workers N``).

A WebSocket connection of a wedding is handed whole to the wedding's owner worker
(:mod:`crdt_server.wire.affinity`). An HTTP connection cannot be: a kept-alive connection
may carry requests for several weddings, one after another. So the worker that accepted it
proxies each request that names a wedding it does not own (``/api/weddings/{w}...``,
``/sync/{w}/...``: :func:`~crdt_server.wire.affinity.wedding_of_path`) to the owner, one
request at a time, over a Unix stream socket of the owner's (``h{index}`` in the workers'
private run directory, 0600, the peer's uid checked): :class:`OwnerProxy`, the outermost
ASGI layer of a worker's app, sends the request's head; the owner (:class:`ProxyServer`)
runs it through its own app and streams the answer back (an SSE stream included) while
the request's body, and the client's disconnect, flow the other way. The owner then loads
the wedding's documents, not the accepting worker, and no bus message is needed to keep
two copies in step.

Each request has the hand-off's deadline (``CRDT_SERVER_HANDOFF_TIMEOUT_SECONDS``), with
the hand-off's rule (:mod:`crdt_server.wire.handoff`): the owner acknowledges, reads the
clock again, and runs the request only when both readings are before the deadline; the
sender, at the deadline, reads whatever is queued before it gives up. A request the owner
has not acknowledged in time (it is stopped, or stuck in a long turn) or cannot be sent
(the owner is restarting) is served by the accepting worker, and that owner gets no
request for one more timeout. A request is thus run by exactly one worker. An owner that
goes away after it took a request answers nothing more: the client gets 502 (or, mid-
answer, a cut connection), as from any server that dies.

Frames, both ways: a 4-byte length and a 1-byte kind, then the payload (at most
:data:`MAX_CHUNK` bytes of body per frame). Bodies stay bounded as without the proxy: the
owner's routes refuse a body over their limit, the accepting worker's HTTP protocol keeps
its deadlines, and at most a few frames wait on either side (reading pauses beyond).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

from crdt_server.codec.problem_details import PROBLEM_JSON, problem_json
from crdt_server.wire.affinity import owner, peer_uid, wedding_of_path
from crdt_server.wire.proxy_frames import (
    _ACK,
    _BODY,
    _BODY_END,
    _DEADLINE,
    _DISCONNECT,
    _DONE,
    _FRAME,
    _IDLE_PER_PEER,
    _LATE,
    _MAX_HEAD,
    _RBODY,
    _REND,
    _REQUEST,
    _SENDER_BUFFER,
    _START,
    MAX_CHUNK,
    PROXIED_KEY,
    STATE_KEY,
    App,
    Message,
    Receive,
    Scope,
    Send,
    _body_frames,
    _encode_head,
    _frame,
)

__all__ = [
    "App",
    "MAX_CHUNK",
    "PROXIED_KEY",
    "STATE_KEY",
    "Message",
    "OwnerProxy",
    "ProxyClient",
    "ProxyServer",
    "Scope",
]

from crdt_server.wire.proxy_owner import ProxyServer

log = logging.getLogger("crdt_server.wire.proxy")

# -- the accepting worker's side ------------------------------------------------------------


class _Channel:
    """One connection to an owner's proxy socket, carrying one request at a time.

    Read by a callback of the loop's reader into a queue of frames, not by a coroutine: a
    frame read is never lost to a cancelled wait, and :meth:`poll` reads what the kernel
    holds now (what the owner acknowledged before the deadline is there by then)."""

    def __init__(self, sock: socket.socket, loop: asyncio.AbstractEventLoop) -> None:
        self.sock = sock
        self._loop = loop
        self._buffer = bytearray()
        self._frames: deque[tuple[int, bytes]] = deque()
        self._queued = 0
        self._waiter: asyncio.Future[None] | None = None
        self._reading = True
        """Registered with the loop's reader (not paused, not ended)."""
        self.eof = False
        self.broken = False
        """A frame was cut short or the stream is out of step: never reused."""
        loop.add_reader(sock.fileno(), self.poll)

    def _stop_reading(self) -> None:
        if self._reading:
            self._loop.remove_reader(self.sock.fileno())
            self._reading = False

    def close(self) -> None:
        self._stop_reading()
        self.eof = True
        self.sock.close()
        self._wake()

    @property
    def idle_ok(self) -> bool:
        return not (self.eof or self.broken or self._frames or self._buffer)

    def poll(self) -> None:
        """Read what is queued in the kernel (never blocks)."""
        while not self.eof and self._reading:
            try:
                data = self.sock.recv(MAX_CHUNK * 4)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                data = b""
            if not data or self.broken:
                self._stop_reading()
                self.eof = True
                break
            self._buffer += data
            self._parse()
            if self.broken:
                self._stop_reading()
                self.eof = True
            elif self._queued > _SENDER_BUFFER:
                self._stop_reading()
        self._wake()

    def _parse(self) -> None:
        buffer = self._buffer
        pos = 0
        while len(buffer) - pos >= _FRAME.size:
            length, kind = _FRAME.unpack_from(buffer, pos)
            if length > _MAX_HEAD:
                self.broken = True
                return
            end = pos + _FRAME.size + length
            if len(buffer) < end:
                break
            self._frames.append((kind, bytes(buffer[pos + _FRAME.size : end])))
            self._queued += length
            pos = end
        del buffer[:pos]

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def has_frame(self) -> bool:
        return bool(self._frames)

    async def wait(self, seconds: float | None = None) -> None:
        """Until a frame is queued or the channel ends (or ``seconds`` pass)."""
        if self._frames or self.eof:
            return
        self._waiter = self._loop.create_future()
        try:
            await asyncio.wait({self._waiter}, timeout=seconds)
        finally:
            self._waiter = None

    async def frame(self) -> tuple[int, bytes] | None:
        """The next frame; ``None`` once the channel has ended."""
        while not self._frames:
            if self.eof:
                return None
            await self.wait()
        kind, payload = self._frames.popleft()
        self._queued -= len(payload)
        if not self._reading and not self.eof and self._queued <= _SENDER_BUFFER // 2:
            self._reading = True
            self._loop.add_reader(self.sock.fileno(), self.poll)
        return kind, payload

    def send_now(self, data: bytes) -> bool:
        """Send ``data`` whole without waiting; ``False`` (nothing sent) when it does not
        fit in the socket's buffer at once."""
        try:
            sent = self.sock.send(data)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            self.eof = True
            return False
        if sent < len(data):
            self.broken = True
            return False
        return True

    async def send(self, data: bytes) -> None:
        """Send ``data`` whole (backpressure: waits while the owner is not reading)."""
        try:
            await self._loop.sock_sendall(self.sock, data)
        except BaseException:
            self.broken = True
            raise


class ProxyClient:
    """The accepting worker's side: which requests go to another worker, and their
    channels (a few idle ones kept per owner)."""

    def __init__(
        self,
        index: int,
        count: int,
        run_dir: Path,
        *,
        timeout: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.index = index
        self.count = count
        self.run_dir = run_dir
        self.timeout = timeout
        self._clock = clock
        self._idle: dict[int, list[_Channel]] = {}
        self._late_until: dict[int, float] = {}
        self.on_proxied: Callable[[int], None] | None = None
        """Called with the owner's index for each request the owner took."""
        self.on_served_here: Callable[[], None] | None = None
        """Called for each request served here although another worker owns its wedding."""
        self.served_here = 0
        """Requests served here although another worker owns their wedding."""

    def socket_path(self, index: int) -> str:
        return str(self.run_dir / f"h{index}")

    def owner_elsewhere(self, path: str) -> int | None:
        wedding = wedding_of_path(path)
        if wedding is None:
            return None
        to = owner(wedding, self.count)
        return None if to == self.index else to

    def close(self) -> None:
        for channels in self._idle.values():
            for channel in channels:
                channel.close()
        self._idle.clear()

    def _channel(self, to: int, loop: asyncio.AbstractEventLoop) -> _Channel | None:
        idle = self._idle.get(to)
        while idle:
            channel = idle.pop()
            channel.poll()
            if channel.idle_ok:
                return channel
            channel.close()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            sock.connect(self.socket_path(to))
            if peer_uid(sock) != os.getuid():
                raise PermissionError("proxy socket of another user")
        except OSError:
            sock.close()
            return None
        return _Channel(sock, loop)

    def _release(self, to: int, channel: _Channel) -> None:
        idle = self._idle.setdefault(to, [])
        if channel.idle_ok and len(idle) < _IDLE_PER_PEER:
            idle.append(channel)
        else:
            channel.close()

    def _served_here(self) -> bool:
        self.served_here += 1
        if self.on_served_here is not None:
            self.on_served_here()
        return False

    async def forward(self, to: int, scope: Scope, receive: Receive, send: Send) -> bool:
        """Run the request on worker ``to``; ``False`` when it did not take it in time (or
        cannot be reached): nothing of the request was read, the caller serves it."""
        now = self._clock()
        if self._late_until.get(to, now) > now:
            return self._served_here()
        loop = asyncio.get_running_loop()
        channel = self._channel(to, loop)
        if channel is None:
            return self._served_here()
        deadline = now + self.timeout
        request = _frame(_REQUEST, _DEADLINE.pack(deadline) + _encode_head(scope, self.index))
        if len(request) > _MAX_HEAD or not channel.send_now(request):
            channel.close()
            return self._served_here()
        while not channel.has_frame() and not channel.eof:
            left = deadline - self._clock()
            if left <= 0:
                break
            await channel.wait(left)
        channel.poll()  # what the owner queued before the deadline is read now
        first = await channel.frame() if channel.has_frame() else None
        if first is None or first[0] != _ACK:
            if first is None and not channel.eof:
                self._late_until[to] = self._clock() + self.timeout
                log.warning(
                    "worker %d did not take a request within %g s: it is served here",
                    to,
                    self.timeout,
                )
            channel.close()
            return self._served_here()
        if self.on_proxied is not None:
            self.on_proxied(to)
        self._late_until.pop(to, None)
        await self._exchange(to, channel, receive, send)
        return True

    async def _exchange(self, to: int, channel: _Channel, receive: Receive, send: Send) -> None:
        """The owner took the request: its body (and the client's disconnect) to the owner,
        its answer back."""
        consumed: list[bool] = []
        pump = asyncio.get_running_loop().create_task(self._pump(channel, receive, consumed))
        started = finished = late = False
        try:
            while True:
                got = await channel.frame()
                if got is None:
                    break
                kind, payload = got
                if kind == _LATE and not started:
                    # It acknowledged, found itself past the deadline, and did not run it:
                    # served here, unless part of the body went to it already.
                    if not consumed:
                        raise _Late
                    late = True
                    break
                if kind == _START:
                    head = json.loads(payload)
                    await send(
                        {
                            "type": "http.response.start",
                            "status": int(head["status"]),
                            "headers": [
                                (str(k).encode("latin-1"), str(v).encode("latin-1"))
                                for k, v in head["headers"]
                            ],
                        }
                    )
                    started = True
                elif kind == _RBODY or kind == _REND:
                    more = kind == _RBODY
                    await send({"type": "http.response.body", "body": payload, "more_body": more})
                    if not more:
                        finished = True
                        break
                else:
                    channel.broken = True
                    break
        finally:
            pump.cancel()
            try:
                await asyncio.wait({pump})  # never raises the pump's own cancellation
            finally:
                if pump.done() and not pump.cancelled() and pump.exception() is not None:
                    channel.broken = True  # its client went away mid-body, or the owner
                reusable = finished and pump.done() and not channel.broken
                if reusable and channel.send_now(_frame(_DONE)):
                    self._release(to, channel)
                else:
                    channel.close()
        if not started:
            status = 503 if late else 502
            if late:
                message = "the worker serving this wedding was busy; try again"
            else:
                message = "the worker serving this wedding went away; try again"
                log.warning("worker %d went away before answering a request it took", to)
            body = problem_json(status, message)
            await send(
                {
                    "type": "http.response.start",
                    "status": status,
                    "headers": [
                        (b"content-type", PROBLEM_JSON.encode()),
                        (b"content-length", str(len(body)).encode()),
                        (b"retry-after", b"1"),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
        elif not finished:
            raise ConnectionError(f"worker {to} went away mid-answer")

    @staticmethod
    async def _pump(channel: _Channel, receive: Receive, consumed: list[bool]) -> None:
        while True:
            message = await receive()
            if not consumed:
                consumed.append(True)
            kind = message["type"]
            if kind == "http.request":
                more = bool(message.get("more_body", False))
                body = bytes(message.get("body", b""))
                await channel.send(_body_frames(body, more, _BODY, _BODY_END))
            elif kind == "http.disconnect":
                await channel.send(_frame(_DISCONNECT))
                return


class _Late(Exception):
    """The owner acknowledged a request past its deadline and did not run it."""


class OwnerProxy:
    """The outermost ASGI layer of a worker's app: a request naming a wedding another
    worker owns is run there (:meth:`ProxyClient.forward`), else here."""

    def __init__(self, app: App) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and PROXIED_KEY not in scope:
            state = scope.get("state")
            client = state.get(STATE_KEY) if state else None
            if isinstance(client, ProxyClient):
                to = client.owner_elsewhere(scope["path"])
                if to is not None:
                    try:
                        if await client.forward(to, scope, receive, send):
                            return
                    except _Late:
                        client._served_here()
        await self.app(scope, receive, send)
