"""A real webhook receiver for tests: a Starlette app served by uvicorn on an ephemeral port.

It records every request (headers and raw body) and answers from a script: a list of
statuses given in advance (``answers``), then ``default``. ``hold`` makes it keep the next
requests waiting without an answer (a receiver that hangs, or a server killed mid-attempt).
Verify what it got with the ``standardwebhooks`` package, as a real receiver would::

    async with WebhookReceiver() as receiver:
        ...  # create an endpoint with receiver.url
        got = await receiver.wait_for(1)
        Webhook(secret).verify(got[0].body, got[0].headers)
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from crdt_server import clock

__all__ = ["Received", "WebhookReceiver"]


@dataclass(frozen=True, slots=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float = 0.0
    """When it arrived (Unix seconds)."""

    @property
    def id(self) -> str:
        return self.headers["webhook-id"]


@dataclass
class WebhookReceiver:
    """See the module docstring. ``url`` once entered (``async with``)."""

    answers: list[int] = field(default_factory=list)
    default: int = 200
    answer_body: bytes = b"ok"
    hold: bool = False
    received: list[Received] = field(default_factory=list)
    port: int = 0
    host: str = "127.0.0.1"
    """Where it listens: another address for senders in other network namespaces."""
    judge: Callable[[Received], int | None] | None = None
    """Answers a request before the script does (``None``: the script answers): a
    receiver that verifies what it gets and refuses what fails (400), as real ones do."""
    _server: uvicorn.Server | None = None
    _task: asyncio.Task[None] | None = None
    _arrived: asyncio.Condition = field(default_factory=asyncio.Condition)
    _release: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/hook"

    async def _endpoint(self, request: Request) -> Response:
        got = Received(request.url.path, dict(request.headers), await request.body(), clock.now())
        async with self._arrived:
            self.received.append(got)
            self._arrived.notify_all()
        if self.hold:
            await self._release.wait()
        judged = None if self.judge is None else self.judge(got)
        if judged is not None:
            return Response(self.answer_body, status_code=judged)
        status = self.answers.pop(0) if self.answers else self.default
        return Response(self.answer_body, status_code=status)

    async def wait_for(self, count: int, timeout: float = 20.0) -> list[Received]:
        """The first ``count`` requests, once they have arrived (or fail after ``timeout``)."""
        async with asyncio.timeout(timeout), self._arrived:
            await self._arrived.wait_for(lambda: len(self.received) >= count)
        return self.received[:count]

    def release(self) -> None:
        """Answer the held requests and stop holding."""
        self.hold = False
        self._release.set()

    async def __aenter__(self) -> WebhookReceiver:
        app = Starlette(routes=[Route("/{path:path}", self._endpoint, methods=["POST"])])
        config = uvicorn.Config(
            app, host=self.host, port=self.port, log_level="warning", lifespan="off"
        )
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve())
        async with asyncio.timeout(10):
            while not self._server.started:
                if self._task.done():
                    await self._task  # raises what stopped it
                    raise RuntimeError("the webhook receiver stopped at start-up")
                await asyncio.sleep(0.01)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._release.set()
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            try:
                async with asyncio.timeout(10):
                    await self._task
            except TimeoutError:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
