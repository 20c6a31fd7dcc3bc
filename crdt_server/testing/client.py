"""A small y-protocols client over a real WebSocket, for tests and examples.

It keeps two pycrdt documents: ``doc`` (its own edits plus everything received) and
``confirmed`` (only what the server sent). An edit is durable once the server echoed it,
which shows as ``confirmed`` covering the edit's clocks.

It can go offline (:meth:`YClient.go_offline`) and come back (:meth:`YClient.reconnect`)
as an offline-first app does: edits made offline stay in ``doc`` and reach the server in
the client's sync step 2 on reconnect. :class:`crdt_server.testing.InProcessClient` has the
same interface without a socket.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

from pycrdt import Doc, TransactionEvent
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from crdt_server.codec.awareness import AwarenessEntry, decode_awareness, encode_awareness_entries
from crdt_server.codec.protocol import (
    AuthDenied,
    AwarenessMessage,
    SyncStep1,
    SyncStep2,
    SyncUpdate,
    decode_message,
    encode_awareness,
    encode_sync_step1,
    encode_sync_step2,
    encode_update,
)
from crdt_server.codec.updates import decode_state_vector

__all__ = ["YClient"]


class YClient:
    """A y-websocket-style client of one room: ``await YClient(ws_url, "w1/guests").connect()``."""

    def __init__(self, url: str, room: str, *, token: str | None = None) -> None:
        self.room = room
        self.url = f"{url}/{room}" + (f"?token={token}" if token else "")
        self.doc: Doc[Any] = Doc()
        self.confirmed: Doc[Any] = Doc()
        self.awareness: dict[int, dict[str, Any]] = {}
        self.denied: list[str] = []
        self.synced = asyncio.Event()
        self.closed = asyncio.Event()
        self.close_code: int | None = None
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._clock = 0
        self._changed = asyncio.Event()
        self._applying_remote = False
        self.doc.observe(self._on_local)

    def _on_local(self, event: TransactionEvent) -> None:
        # Offline edits are not queued: the reconnect's sync step 2 carries them.
        if not self._applying_remote and self._ws is not None:
            self._pending_sends.append(encode_update(event.update))

    _pending_sends: list[bytes] = []

    @property
    def online(self) -> bool:
        """Connected and not closed."""
        return self._ws is not None and not self.closed.is_set()

    async def connect(self, *, resync: bool = False, **kwargs: Any) -> YClient:
        """Open the socket and send sync step 1; :attr:`synced` is set on the server's step 2."""
        self._pending_sends = []
        self.synced.clear()
        self.closed.clear()
        self.close_code = None
        self._ws = await connect(self.url, max_size=None, **kwargs)
        self._reader = asyncio.create_task(self._read())
        try:
            # On a reconnect, ask from what the server confirmed: its step 2 then echoes our
            # own edits whose echo the lost connection took away (is_confirmed needs them).
            source = self.confirmed if resync else self.doc
            await self._ws.send(encode_sync_step1(source.get_state()))
        except ConnectionClosed:
            pass  # closed right after the upgrade: the reader records the close code
        return self

    async def _read(self) -> None:
        assert self._ws is not None
        try:
            async for frame in self._ws:
                assert isinstance(frame, bytes)
                message = decode_message(frame)
                if isinstance(message, SyncStep1):
                    await self._ws.send(
                        encode_sync_step2(self.doc.get_update(message.state_vector))
                    )
                elif isinstance(message, SyncStep2 | SyncUpdate):
                    self._applying_remote = True
                    try:
                        self.doc.apply_update(message.update)
                    finally:
                        self._applying_remote = False
                    self.confirmed.apply_update(message.update)
                    if isinstance(message, SyncStep2):
                        self.synced.set()
                elif isinstance(message, AwarenessMessage):
                    for entry in decode_awareness(
                        message.payload, max_state_bytes=1 << 20, max_entries=1 << 16
                    ):
                        if entry.removed:
                            self.awareness.pop(entry.client_id, None)
                        else:
                            self.awareness[entry.client_id] = json.loads(entry.state)
                elif isinstance(message, AuthDenied):
                    self.denied.append(message.reason)
                self._changed.set()
        except ConnectionClosed:
            pass
        finally:
            rcvd = self._ws.protocol.close_rcvd
            self.close_code = rcvd.code if rcvd is not None else 1006
            self.closed.set()
            self._changed.set()

    async def flush(self) -> None:
        """Send the updates made by local edits since the last flush."""
        assert self._ws is not None
        sends, self._pending_sends = self._pending_sends, []
        for frame in sends:
            await self._ws.send(frame)

    async def send_raw(self, frame: bytes | str) -> None:
        assert self._ws is not None
        await self._ws.send(frame)

    async def set_awareness(self, state: dict[str, Any] | None) -> None:
        assert self._ws is not None
        self._clock += 1
        entry = AwarenessEntry(self.doc.client_id, self._clock, json.dumps(state))
        await self._ws.send(encode_awareness(encode_awareness_entries([entry])))

    def unconfirmed(self) -> int:
        """How many clock units of this client's own edits the server has not echoed yet."""
        mine = decode_state_vector(self.doc.get_state()).get(self.doc.client_id, 0)
        echoed = decode_state_vector(self.confirmed.get_state()).get(self.doc.client_id, 0)
        return max(0, mine - echoed)

    def is_confirmed(self) -> bool:
        """True if the server echoed every edit this client made."""
        return self.unconfirmed() == 0

    async def wait(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        """Wait until ``predicate()`` holds, re-checking on every message; deadline-bound."""
        deadline = time.monotonic() + timeout
        while not predicate():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("condition not met in time")
            self._changed.clear()
            try:
                async with asyncio.timeout(min(remaining, 0.5)):
                    await self._changed.wait()
            except TimeoutError:
                continue

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            await self._reader

    async def go_offline(self) -> None:
        """Close the socket but keep the document: later edits wait for :meth:`reconnect`."""
        await self.close()
        self._ws = None
        self._pending_sends = []

    async def reconnect(self, timeout: float = 10.0) -> None:
        """Come back online and wait for the server's sync step 2 (offline edits go in ours)."""
        await self.connect(resync=True)
        await self.wait(self.synced.is_set, timeout)

    async def __aenter__(self) -> YClient:
        return await self.connect()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
