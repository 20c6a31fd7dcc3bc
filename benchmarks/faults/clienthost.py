"""A client host of the fault campaign: run inside its namespace (``ip netns exec``) as
``python -m benchmarks.faults.clienthost CONFIG``, it starts the host's writers (stock Node
Yjs clients, ``tests/js/faultclient.mjs``, and pycrdt clients of its own) and relays the
campaign's commands to them over stdin/stdout, one JSON object per line:

- ``{"cmd": "stop"}``: every writer stops writing; answer ``{"event": "stopped"}``.
- ``{"cmd": "drain"}``: ``{"event": "drained", "pending": n}`` (ops not acknowledged yet).
- ``{"cmd": "final", "svs": {wedding: b64}, "timeout": s}``: each writer waits until its
  replica holds the store's state vector, then the host writes every writer's ops and
  replica to CONFIG's ``out`` file and answers ``{"event": "final"}``.

A pycrdt writer acknowledges an op when the server's sync step 2 or updates carry every
clock up to its own (what the server echoes is committed: docs/guides/clients.md,
"Updates"); at each connect it asks for what the server holds beyond what it confirmed, so
an op stored without its echo reaching it is acknowledged by the next step 2."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import websockets
from pycrdt import (
    Doc,
    Map,
    Text,
    YMessageType,
    create_sync_message,
    create_update_message,
    handle_sync_message,
)

from crdt_server.codec.protocol import SyncStep2, SyncUpdate, decode_message
from crdt_server.codec.updates import decode_state_vector

ROOT = Path(__file__).resolve().parents[2]
NODE_CLIENT = ROOT / "tests" / "js" / "faultclient.mjs"


@dataclass
class PyWriter:
    """A pycrdt client over ``websockets`` that reconnects (as y-websocket does: a second
    up to 1 s apart) and writes the same ops as the Node writer."""

    url: str
    wedding: str
    name: str
    rate: float
    doc: Doc[Any] = field(default_factory=Doc)
    confirmed: Doc[Any] = field(default_factory=Doc)
    ops: list[dict[str, Any]] = field(default_factory=list)
    reconnects: int = 0
    echoed: int = 0
    writing: bool = True
    synced: asyncio.Event = field(default_factory=asyncio.Event)
    socket: Any = None
    outbox: asyncio.Queue[bytes] = field(default_factory=asyncio.Queue)

    def __post_init__(self) -> None:
        self.doc.observe(self._on_update)

    applying: bool = False

    def _on_update(self, event: Any) -> None:
        if not self.applying:  # the server's own updates are not sent back to it
            self.outbox.put_nowait(create_update_message(event.update))

    async def run(self) -> None:
        opens = 0
        while True:
            try:
                async with websockets.connect(
                    f"{self.url}/sync/{self.wedding}/guests", open_timeout=5, ping_interval=None
                ) as socket:
                    opens += 1
                    self.reconnects = opens - 1
                    self.socket = socket
                    # The step 1 of what the server confirmed, not of the document: its
                    # step 2 then carries this writer's own ops that it holds committed,
                    # the acknowledgement of an op whose echo a closed socket took (a
                    # commit that went through while the server saw it fail). Asked from
                    # the document, it would carry none of them, and every later echo
                    # would stay unchained behind the one missing.
                    await socket.send(create_sync_message(self.confirmed))
                    # What was written while offline travels in the step 2 answering the
                    # server's step 1; the queue of single updates starts afresh.
                    while not self.outbox.empty():
                        self.outbox.get_nowait()
                    sender = asyncio.create_task(self._send(socket))
                    try:
                        await self._receive(socket)
                    finally:
                        sender.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await sender
            except (OSError, websockets.WebSocketException, TimeoutError):
                pass
            self.socket = None
            await asyncio.sleep(0.5)  # the stock provider's back-off: nothing to wait on

    async def _send(self, socket: Any) -> None:
        while True:
            await socket.send(await self.outbox.get())

    async def _receive(self, socket: Any) -> None:
        async for message in socket:
            if not isinstance(message, bytes) or not message or message[0] != YMessageType.SYNC:
                continue
            decoded = decode_message(message)
            if isinstance(decoded, (SyncStep2, SyncUpdate)):
                self._acknowledge(decoded.update)
            self.applying = True
            try:
                reply = handle_sync_message(message[1:], self.doc)
            finally:
                self.applying = False
            if reply is not None:
                await socket.send(reply)
            if isinstance(decoded, SyncStep2):
                self.synced.set()

    def _acknowledge(self, update: bytes) -> None:
        # Everything the server sent, in a document of its own: its state vector says up
        # to which clock the server has committed this client's ops.
        with contextlib.suppress(Exception):
            self.confirmed.apply_update(update)
        clock = decode_state_vector(self.confirmed.get_state()).get(self.doc.client_id, 0)
        if clock > self.echoed:
            self.echoed = clock
            at = time.time()
            for op in self.ops:
                if op["acked"] is None and op["clock"] < clock:
                    op["acked"] = at

    async def write(self) -> None:
        guests = self.doc.get("guests", type=Map)
        n = 0
        guest: str | None = None
        op: dict[str, Any]
        while self.writing:
            op_id = f"{self.name}-{n}"
            if n % 4 == 0 or guest is None:
                guest = f"g-{self.name}-{n}"
                value = f"Guest {op_id}"
                guests[guest] = Map(
                    {"name": value, "side": "both", "rsvp": "pending", "notes": Text("")}
                )
                op = {"id": op_id, "kind": "guest", "guest": guest, "value": value}
            elif n % 4 == 1:
                value = "accepted" if (n >> 2) % 2 == 0 else "declined"
                guests[guest]["rsvp"] = value
                op = {"id": op_id, "kind": "rsvp", "guest": guest, "value": value}
            elif n % 4 == 2:
                value = f"<{op_id}>"
                notes = guests[guest]["notes"]
                notes.insert(len(notes), value)
                op = {"id": op_id, "kind": "text", "guest": guest, "value": value}
            else:
                value = f"Guest {op_id} renamed"
                guests[guest]["name"] = value
                op = {"id": op_id, "kind": "name", "guest": guest, "value": value}
            op["clock"] = decode_state_vector(self.doc.get_state()).get(self.doc.client_id, 0) - 1
            op["sent"] = time.time()
            op["acked"] = None
            self.ops.append(op)
            n += 1
            await asyncio.sleep(1 / self.rate)  # the steady rate is the point

    def holds(self, target: dict[int, int]) -> bool:
        mine = decode_state_vector(self.doc.get_state())
        return all(mine.get(client, 0) >= clock for client, clock in target.items())

    def result(self) -> dict[str, Any]:
        state = base64.b64encode(self.doc.get_update()).decode()
        return {"ops": self.ops, "state": state, "reconnects": self.reconnects}


@dataclass
class NodeWriter:
    """``node tests/js/faultclient.mjs`` as a child process. A phone (``protocol``
    ``phone``: a y-websocket app that keeps its document on disk, ``--store``) killed by
    the campaign (``phone-restart``) is started again on its store, as its user would."""

    wedding: str
    name: str
    protocol: str
    argv: list[str]
    process: asyncio.subprocess.Process
    replies: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)
    finished: bool = False
    restarts: int = 0

    @classmethod
    async def start(
        cls, url: str, wedding: str, name: str, protocol: str, rate: float, store: str = ""
    ) -> NodeWriter:
        argv = [
            os.environ.get("NODE", "node"), str(NODE_CLIENT), "--url", url, "--protocol",
            "sync" if protocol == "phone" else protocol, "--wedding", wedding, "--name", name,
            "--rate", str(rate), *(["--store", store] if store else []),
        ]  # fmt: skip
        writer = cls(wedding, name, protocol, argv, await cls._spawn(argv))
        asyncio.get_running_loop().create_task(writer._read())
        return writer

    @staticmethod
    async def _spawn(argv: list[str]) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            limit=64 * 1024 * 1024,
        )  # fmt: skip

    async def _read(self) -> None:
        while True:
            assert self.process.stdout is not None
            async for line in self.process.stdout:
                with contextlib.suppress(ValueError):
                    reply = json.loads(line)
                    if reply.get("event") == "final":
                        self.finished = True
                    if reply.get("event") != "ready" or not self.restarts:
                        self.replies.put_nowait(reply)
            await self.process.wait()
            if self.finished or self.protocol != "phone":
                break
            # Killed: the app is opened again on what it kept.
            self.restarts += 1
            self.process = await self._spawn(self.argv)
        self.replies.put_nowait({"event": "exit"})

    async def ask(self, command: dict[str, Any], event: str, timeout: float) -> dict[str, Any]:
        assert self.process.stdin is not None
        if command:
            self.process.stdin.write((json.dumps(command) + "\n").encode())
            await self.process.stdin.drain()
        async with asyncio.timeout(timeout):
            while True:
                reply = await self.replies.get()
                if reply.get("event") in (event, "exit", "error"):
                    return reply


async def main(config: dict[str, Any]) -> None:
    url: str = config["url"]
    rate: float = config["rate"]
    node: list[NodeWriter] = []
    py: list[PyWriter] = []
    tasks: list[asyncio.Task[None]] = []
    for spec in config["writers"]:
        if spec["protocol"] == "pycrdt":
            writer = PyWriter(url, spec["wedding"], spec["name"], rate)
            py.append(writer)
            tasks.append(asyncio.create_task(writer.run()))
        else:
            store = spec.get("store", "")
            node.append(
                await NodeWriter.start(
                    url, spec["wedding"], spec["name"], spec["protocol"], rate, store
                )
            )
    for w in node:
        reply = await w.ask({}, "ready", 60)
        if reply.get("event") != "ready":
            raise RuntimeError(f"{w.name}: {reply}")
    async with asyncio.timeout(60):
        for p in py:
            await p.synced.wait()
    for p in py:
        tasks.append(asyncio.create_task(p.write()))
    emit({"event": "ready"})
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        command = json.loads(line)
        cmd = command["cmd"]
        if cmd == "stop":
            for p in py:
                p.writing = False
            for w in node:
                await w.ask({"cmd": "stop"}, "stopped", 30)
            emit({"event": "stopped"})
        elif cmd == "drain":
            pending = sum(1 for p in py for op in p.ops if op["acked"] is None)
            for w in node:
                pending += int((await w.ask({"cmd": "drain"}, "drained", 30)).get("pending", 0))
            emit({"event": "drained", "pending": pending})
        elif cmd == "final":
            await final(command, config, py, node)
            emit({"event": "final"})
            return


async def final(
    command: dict[str, Any], config: dict[str, Any], py: list[PyWriter], node: list[NodeWriter]
) -> None:
    timeout: float = command.get("timeout", 20)
    results: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout

    async def py_final(p: PyWriter) -> None:
        target = decode_state_vector(base64.b64decode(command["svs"][p.wedding]))
        while not p.holds(target) and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.02)  # another task's socket fills the doc: nothing to await
        results.append({"name": p.name, "protocol": "pycrdt", "wedding": p.wedding, **p.result()})

    async def node_final(w: NodeWriter) -> None:
        sv = command["svs"][w.wedding]
        reply = await w.ask(
            {"cmd": "final", "sv": sv, "timeout_ms": int(timeout * 1000)}, "final", timeout + 30
        )
        reply["restarts"] = w.restarts
        results.append({"name": w.name, "protocol": w.protocol, "wedding": w.wedding, **reply})

    await asyncio.gather(*(py_final(p) for p in py), *(node_final(w) for w in node))
    await asyncio.to_thread(Path(config["out"]).write_text, json.dumps(results))


def emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    asyncio.run(main(json.loads(Path(sys.argv[1]).read_text())))
