"""The owner's side of the owner proxy (:mod:`crdt_server.wire.proxy`): requests another
worker passes to this one, run through this worker's app, the answer streamed back."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from crdt_server.codec.problem_details import PROBLEM_JSON, problem_json
from crdt_server.wire.affinity import peer_uid
from crdt_server.wire.proxy_frames import (
    _ACK,
    _BODY,
    _BODY_END,
    _DEADLINE,
    _DONE,
    _FRAME,
    _LATE,
    _MAX_HEAD,
    _QUEUED_FRAMES,
    _RBODY,
    _REND,
    _REQUEST,
    _START,
    App,
    Message,
    Scope,
    _body_frames,
    _decode_head,
    _frame,
    _read_frames,
)

__all__ = ["ProxyServer"]

log = logging.getLogger("crdt_server.wire.proxy")

# -- the owner's side -----------------------------------------------------------------------


class ProxyServer:
    """The owner's side: requests other workers pass to this one, run through ``app`` with
    ``state()`` (a copy of the lifespan state) in their scope."""

    def __init__(
        self,
        index: int,
        run_dir: Path,
        app: App,
        state: Callable[[], dict[str, Any]],
        *,
        clock: Callable[[], float] = time.monotonic,
        on_adopted: Callable[[], None] | None = None,
    ) -> None:
        self.index = index
        self.run_dir = run_dir
        self._app = app
        self._state = state
        self._clock = clock
        self._on_adopted = on_adopted
        self._server: asyncio.AbstractServer | None = None
        self._idle: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.refused_peers = 0
        self.closed_late = 0
        """Requests read past their deadline and not run (their sender served them)."""

    @property
    def path(self) -> str:
        return str(self.run_dir / f"h{self.index}")

    async def start(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)  # the socket of this index's previous process
        self._server = await asyncio.start_unix_server(
            self._connection, path=self.path, limit=_MAX_HEAD + _FRAME.size
        )
        os.chmod(self.path, 0o600)

    def close(self) -> None:
        """Take no more requests: the listener and the idle channels close (the senders
        serve what they send from now on); requests running now finish."""
        if self._server is not None:
            self._server.close()
            self._server = None
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
        for writer in list(self._idle):
            writer.close()
        self._idle.clear()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        sock = writer.get_extra_info("socket")
        try:
            if sock is None or peer_uid(sock) != os.getuid():
                self.refused_peers += 1
                log.warning("proxy socket: refused a connection from another user")
                return
            frames: asyncio.Queue[tuple[int, bytes] | None] = asyncio.Queue(_QUEUED_FRAMES)
            reading = asyncio.get_running_loop().create_task(_read_frames(reader, frames))
            try:
                while await self._one(frames, writer):
                    pass
            finally:
                reading.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reading
        except Exception:
            log.exception("proxy socket: a channel failed")
        finally:
            self._idle.discard(writer)
            writer.close()

    async def _one(
        self, frames: asyncio.Queue[tuple[int, bytes] | None], writer: asyncio.StreamWriter
    ) -> bool:
        """Serve the channel's next request; ``False``: the channel ends."""
        self._idle.add(writer)
        got = await frames.get()
        self._idle.discard(writer)
        if got is None or self._server is None:
            return False
        kind, payload = got
        if kind != _REQUEST or len(payload) < _DEADLINE.size:
            log.warning("proxy socket: dropped a channel out of step")
            return False
        (deadline,) = _DEADLINE.unpack_from(payload)
        if self._clock() >= deadline:
            self.closed_late += 1
            log.warning("proxy socket: a request came past its deadline; not run here")
            return False
        writer.write(_frame(_ACK))
        # The acknowledgement is in the sender's socket before the deadline: the sender,
        # which reads what is queued before it gives up, lets go of the request.
        if writer.transport.get_write_buffer_size() or self._clock() >= deadline:
            self.closed_late += 1
            writer.write(_frame(_LATE))
            log.warning("proxy socket: a request was taken past its deadline; not run here")
            return False
        if self._on_adopted is not None:
            self._on_adopted()
        try:
            scope = _decode_head(payload[_DEADLINE.size :])
        except (ValueError, KeyError, TypeError, IndexError):
            log.warning("proxy socket: dropped a malformed request")
            return False
        scope["state"] = self._state()
        return await _Run(scope, frames, writer).run(self._app)


class _Run:
    """One request run for another worker."""

    def __init__(
        self,
        scope: Scope,
        frames: asyncio.Queue[tuple[int, bytes] | None],
        writer: asyncio.StreamWriter,
    ) -> None:
        self.scope = scope
        self.frames = frames
        self.writer = writer
        self.gone = False
        self.ended = False
        """The sender said the client disconnected, or the channel ended."""
        self.started = False
        self.finished = False

    async def receive(self) -> Message:
        if self.ended:
            return {"type": "http.disconnect"}
        got = await self.frames.get()
        if got is None:
            self.ended = self.gone = True
            return {"type": "http.disconnect"}
        kind, payload = got
        if kind == _BODY or kind == _BODY_END:
            return {"type": "http.request", "body": payload, "more_body": kind == _BODY}
        self.ended = True
        if kind == _DONE:  # out of step: the sender never sends it before the answer ends
            self.gone = True
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        if self.gone or self.finished:
            return
        kind = message["type"]
        if kind == "http.response.start" and not self.started:
            self.started = True
            head = {
                "status": int(message["status"]),
                "headers": [
                    [bytes(k).decode("latin-1"), bytes(v).decode("latin-1")]
                    for k, v in message.get("headers", ())
                ],
            }
            self.writer.write(_frame(_START, json.dumps(head, separators=(",", ":")).encode()))
        elif kind == "http.response.body" and self.started:
            more = bool(message.get("more_body", False))
            body = bytes(message.get("body", b""))
            self.writer.write(_body_frames(body, more, _RBODY, _REND))
            self.finished = not more
        else:
            return
        try:
            await self.writer.drain()
        except OSError:
            self.gone = True

    async def run(self, app: App) -> bool:
        try:
            await app(self.scope, self.receive, self.send)
        except Exception:
            log.exception("a request run for another worker failed")
        if not self.finished:
            if self.started or self.gone:
                return False  # cut short: the sender cuts the client's connection too
            body = problem_json(500, "internal error")
            await self.send(
                {
                    "type": "http.response.start",
                    "status": 500,
                    "headers": [
                        (b"content-type", PROBLEM_JSON.encode()),
                        (b"content-length", str(len(body)).encode()),
                    ],
                }
            )
            await self.send({"type": "http.response.body", "body": body})
        # What is left of the body, and the client's disconnect, up to the sender's DONE.
        while not self.gone:
            got = await self.frames.get()
            if got is None:
                return False
            if got[0] == _DONE:
                return True
        return False
