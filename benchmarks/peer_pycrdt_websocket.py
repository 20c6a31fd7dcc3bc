"""pycrdt-websocket as the benchmark's in-run peer: ``ASGIServer`` + ``SQLiteYStore`` on uvicorn.

    python benchmarks/peer_pycrdt_websocket.py --port 0 --data-dir DIR

Prints ``pycrdt-websocket listening on http://127.0.0.1:PORT`` once the socket is bound.

pycrdt-websocket names a room after the request path (``scope["path"]``), so
``/sync/{wedding_id}/{doc}`` works as it is: every distinct path is a room. Its stock
``WebsocketServer`` creates rooms without a store; as in jupyter-collaboration, rooms here
get an ``SQLiteYStore`` (one SQLite file, one connection per room, one commit per update)
and are filled from it before their first client is served. Rooms stay loaded
(``auto_clean_rooms=False``).

uvicorn runs with the same WebSocket implementation and limits as ``crdt-server``
(``websockets-sansio``, 8 MiB messages, no compression) so that the comparison is about the
sync servers, not the WebSocket stacks.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import socket
from pathlib import Path

import uvicorn
from anyio import Event
from pycrdt.store import SQLiteYStore, YDocNotFound
from pycrdt.websocket import ASGIServer, WebsocketServer, YRoom
from pycrdt.websocket.websocket_server import exception_logger

log = logging.getLogger("peer")


class StoredWebsocketServer(WebsocketServer):
    """A ``WebsocketServer`` whose rooms persist to (and load from) one SQLite file."""

    def __init__(self, db_path: Path) -> None:
        super().__init__(
            rooms_ready=False, auto_clean_rooms=False, exception_handler=exception_logger, log=log
        )
        self._store_class = type("Store", (SQLiteYStore,), {"db_path": str(db_path)})
        self._loaded: dict[str, Event] = {}

    async def get_room(self, name: str) -> YRoom:
        room = self.rooms.get(name)
        if room is not None:
            await self._loaded[name].wait()
            return room
        loaded = self._loaded[name] = Event()
        store = self._store_class(path=name, log=log)
        room = YRoom(ready=False, ystore=store, exception_handler=exception_logger, log=log)
        self.rooms[name] = room
        await self.start_room(room)  # the room starts its store
        await store.started.wait()
        try:
            await store.apply_updates(room.ydoc)
        except YDocNotFound:
            pass
        room.ready = True
        await room.ydoc_observed.wait()  # updates from now on are broadcast and stored
        loaded.set()
        return room


async def serve(port: int, data_dir: Path, log_level: str) -> None:
    sock = socket.socket(socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    websocket_server = StoredWebsocketServer(data_dir / "ystore.db")
    config = uvicorn.Config(
        ASGIServer(websocket_server),
        ws="websockets-sansio",
        ws_max_size=8 * 1024 * 1024,
        ws_per_message_deflate=False,
        log_level=log_level,
        access_log=False,
        lifespan="on",
    )
    server = uvicorn.Server(config)
    async with websocket_server:
        print(f"pycrdt-websocket listening on http://127.0.0.1:{sock.getsockname()[1]}", flush=True)
        await server.serve(sockets=[sock])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args()
    logging.basicConfig(level=args.log_level.upper())
    args.data_dir.mkdir(parents=True, exist_ok=True)
    asyncio.run(serve(args.port, args.data_dir, args.log_level))


if __name__ == "__main__":
    main()
