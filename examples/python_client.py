"""A Python client: pycrdt's Provider over a WebSocket, editing the guest list.

Usage: ./scripts/example python_client ws://127.0.0.1:8000/sync [token]
"""

from __future__ import annotations

import asyncio
import json
import sys

from pycrdt import Doc, Map, Provider
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed


class WebsocketChannel:
    """Adapts a `websockets` connection to pycrdt's Channel (send, recv, async iteration)."""

    def __init__(self, websocket: ClientConnection, path: str) -> None:
        self._websocket = websocket
        self.path = path

    def __aiter__(self) -> WebsocketChannel:
        return self

    async def __anext__(self) -> bytes:
        try:
            return await self.recv()
        except ConnectionClosed:
            raise StopAsyncIteration from None

    async def send(self, message: bytes) -> None:
        await self._websocket.send(message)

    async def recv(self) -> bytes:
        return bytes(await self._websocket.recv())


async def main(url: str, token: str | None) -> None:
    room = "w42/guests"
    query = f"?token={token}" if token else ""
    doc: Doc[Map[object]] = Doc()
    guests = doc.get("guests", type=Map)
    async with (
        connect(f"{url}/{room}{query}") as websocket,
        Provider(doc, WebsocketChannel(websocket, room)) as provider,
    ):
        await provider.synced.wait()
        guests["g-ada"] = Map({"name": "Ada Lovelace", "rsvp": "pending"})
        print(json.dumps(guests.to_py(), sort_keys=True))
    # Leaving the Provider sends every pending update before the socket closes.


if __name__ == "__main__":
    server_url = sys.argv[1] if len(sys.argv) > 1 else "ws://127.0.0.1:8000/sync"
    asyncio.run(main(server_url, sys.argv[2] if len(sys.argv) > 2 else None))
