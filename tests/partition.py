"""A TCP proxy in front of a real service (PostgreSQL, Redis) that the test can cut (issue 74).

A server is pointed at the proxy's port instead of the service's; :meth:`BlackHoleProxy.cut`
then stops forwarding in both directions without closing anything, as a network partition
does (packets dropped, no reset): the service still holds its side of each connection, the
server waits on its side, and connections opened during the cut never reach the service.
:meth:`BlackHoleProxy.cut_after` cuts right after the client sent a given byte string (a
commit's lock request), so a test cuts a server off at the worst moment, deterministically.
:meth:`BlackHoleProxy.heal` resumes forwarding for new connections; those that were cut are
closed then (the bytes dropped meanwhile are gone, so they could not go on).
"""

from __future__ import annotations

import asyncio
import contextlib

__all__ = ["BlackHoleProxy"]


class BlackHoleProxy:
    """Forwards 127.0.0.1:``port`` (picked at :meth:`start`) to 127.0.0.1:``target``."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.port = 0
        self.is_cut = False
        self._needle: bytes | None = None
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._cut_writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.cut_happened = asyncio.Event()
        self._healed = asyncio.Event()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in self._writers:
            writer.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await task

    def cut(self) -> None:
        """Drop everything from now on, both ways, closing nothing."""
        self.is_cut = True
        self._healed.clear()
        self._cut_writers |= self._writers
        self.cut_happened.set()

    def cut_after(self, needle: bytes) -> None:
        """Forward the next chunk a client sends that holds ``needle``, then :meth:`cut`."""
        self._needle = needle

    def heal(self) -> None:
        """Forward again (new connections); the connections that were cut are closed."""
        self.is_cut = False
        self._needle = None
        self.cut_happened.clear()
        for writer in self._cut_writers:
            writer.close()
        self._cut_writers.clear()
        self._healed.set()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        try:
            if self.is_cut:  # never reaches the service: read and drop until healed
                self._cut_writers.add(writer)
                while await reader.read(65536):
                    pass
                return
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
            self._writers.add(up_writer)
            try:
                await asyncio.gather(
                    self._pipe(reader, up_writer, outward=True),
                    self._pipe(up_reader, writer, outward=False),
                )
            finally:
                up_writer.close()
                self._writers.discard(up_writer)
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            self._writers.discard(writer)
            self._tasks.discard(task)

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, outward: bool
    ) -> None:
        try:
            while data := await reader.read(65536):
                if self.is_cut:
                    self._cut_writers.add(writer)
                    continue  # dropped on the floor, the connection left open
                writer.write(data)
                await writer.drain()
                if outward and self._needle is not None and self._needle in data:
                    self._needle = None
                    self.cut()
            if self.is_cut or writer in self._cut_writers:
                # A FIN does not cross a partition either: the other side learns nothing
                # until the partition heals (or its own timeouts give up).
                self._cut_writers.add(writer)
                await self._healed.wait()
        finally:
            writer.close()
