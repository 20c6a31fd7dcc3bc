"""Stack-level comparison: a broadcast of raw binary frames on picows against the same
broadcast on the native stack's way of framing (crdt_server.codec.websocket_frames on a
bare asyncio protocol, one ``transport.write`` of a ready frame per reader).

No rooms, no store: only what a WebSocket stack costs per delivery. One writer sends
``--messages`` frames at ``--rate`` per second; every connection (the writer included)
receives each. Prints delivery latency percentiles and the server process's CPU time.
picows is not a dependency of the project: ``pip install picows`` to run this.

    python -m benchmarks.picows_compare --readers 100 --messages 2000 --rate 200
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import resource
import statistics
import struct
import sys
import time
from multiprocessing.connection import Connection
from pathlib import Path

if not __package__:  # run as a file: benchmarks.* is found from the repository root
    print(
        f"run it from {Path(__file__).resolve().parents[1]} as: "
        ".venv/bin/python -m benchmarks.picows_compare [options]",
        file=sys.stderr,
    )
    sys.exit(2)

from benchmarks.wsclient import open_connection  # noqa: E402
from crdt_server.codec.websocket_frames import (  # noqa: E402
    Opcode,
    accept_key,
    apply_mask,
    frame_header,
    parse_header,
)


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class _Native(asyncio.Protocol):
    peers: set[_Native] = set()

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.open = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.buffer += data
        if not self.open:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buffer[:end]).decode("latin-1")
            del self.buffer[: end + 4]
            key = next(
                line.split(":", 1)[1].strip()
                for line in head.split("\r\n")
                if line.lower().startswith("sec-websocket-key:")
            )
            self.transport.write(
                b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n"
                b"connection: Upgrade\r\nsec-websocket-accept: "
                + accept_key(key).encode()
                + b"\r\n\r\n"
            )
            self.open = True
            self.peers.add(self)
        pos = 0
        while True:
            header = parse_header(self.buffer, pos)
            if header is None or len(self.buffer) - pos - header.size < header.length:
                break
            start = pos + header.size
            payload = self.buffer[start : start + header.length]
            if header.mask is not None:
                payload = bytearray(apply_mask(payload, header.mask))
            pos = start + header.length
            if header.opcode == Opcode.BINARY:
                frame = frame_header(Opcode.BINARY, len(payload)) + payload
                for peer in self.peers:
                    if peer.transport is not None:
                        peer.transport.write(frame)
        del self.buffer[:pos]

    def connection_lost(self, exc: Exception | None) -> None:
        self.peers.discard(self)


async def _serve(kind: str, pipe: Connection) -> None:
    loop = asyncio.get_running_loop()
    if kind == "picows":
        from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_create_server

        peers: set[WSTransport] = set()

        class Listener(WSListener):  # type: ignore[misc]
            def on_ws_connected(self, transport: WSTransport) -> None:
                peers.add(transport)

            def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
                if frame.msg_type == WSMsgType.BINARY:
                    data = frame.get_payload_as_bytes()
                    for peer in peers:
                        peer.send(WSMsgType.BINARY, data)

            def on_ws_disconnected(self, transport: WSTransport) -> None:
                peers.discard(transport)

        server = await ws_create_server(lambda request: Listener(), "127.0.0.1", 0)
    else:
        server = await loop.create_server(_Native, "127.0.0.1", 0)
    cpu_start = _cpu()  # after imports and listening: only the serving is counted
    pipe.send(server.sockets[0].getsockname()[1])
    await loop.run_in_executor(None, pipe.recv)  # "report"
    pipe.send(_cpu() - cpu_start)
    server.close()


def _server_main(kind: str, pipe: Connection) -> None:
    import uvloop

    uvloop.run(_serve(kind, pipe))


async def _measure(port: int, readers: int, messages: int, rate: float) -> list[float]:
    latencies: list[float] = []
    done = asyncio.Event()
    expected = messages * (readers + 1)

    def on_message(payload: bytes, now: float) -> None:
        latencies.append(now - struct.unpack("!d", payload[:8])[0])
        if len(latencies) >= expected:
            done.set()

    conns = [
        await open_connection("raw", "127.0.0.1", port, "/", on_message, 10)
        for _ in range(readers + 1)
    ]
    writer = conns[0]
    for _ in range(messages):
        writer.send(struct.pack("!d", time.perf_counter()) + os.urandom(56))
        await asyncio.sleep(1 / rate)
    try:
        async with asyncio.timeout(30):
            await done.wait()
    finally:
        for conn in conns:
            conn.abort()
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--readers", type=int, default=100)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=200.0)
    args = parser.parse_args()
    for kind in ("native", "picows"):
        ours, theirs = multiprocessing.Pipe()
        process = multiprocessing.Process(target=_server_main, args=(kind, theirs))
        process.start()
        port = ours.recv()
        latencies = asyncio.run(_measure(port, args.readers, args.messages, args.rate))
        ours.send("report")
        cpu = ours.recv()
        process.join(10)
        ms = sorted(x * 1000 for x in latencies)
        p = statistics.quantiles(ms, n=100)
        deliveries = len(ms)
        print(
            f"{kind:7} deliveries {deliveries}  p50 {p[49]:.2f} ms  p99 {p[98]:.2f} ms  "
            f"server CPU {cpu:.2f} s ({cpu / deliveries * 1e6:.1f} us/delivery)"
        )


if __name__ == "__main__":
    main()
