"""CPU per POST of asyncio HTTP/1.1 clients, the way webhooks and push send: kept-alive
connections to one receiver, a signed-sized JSON body, the answer's status and at most 1 KiB
of its body read.

    .venv/bin/python -m benchmarks.http_clients                    # 3 rounds, 5,000 POSTs each
    .venv/bin/python -m benchmarks.http_clients --posts 1000 --rounds 1 --clients httpx,aiohttp

The receiver runs in a child process (a raw asyncio HTTP/1.1 server answering ``200 ok``),
so the figure is the client's own CPU (``time.process_time`` of this process, every thread
counted: a client that works on threads of its own is charged for them). Each client sends
``--posts`` requests with ``--concurrency`` in flight over at most that many connections,
to ``http://receiver.test:PORT/hook`` with the name pinned to ``127.0.0.1`` the way the SSRF
guard pins it (each client's own way: a URL carrying the address with the name in ``Host``
and TLS server name for httpx, a resolver answering the checked address for aiohttp and
aiosonic, ``resolve`` for pyreqwest). Rounds interleave the clients (A B C A B C ...) and
the table gives each one's median. A client whose package is not installed is skipped.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if not __package__:  # run as a file: the receiver is started as this module
    print(
        f"run it from {ROOT} as: .venv/bin/python -m benchmarks.http_clients [options]",
        file=sys.stderr,
    )
    sys.exit(2)

PAYLOAD = (
    b'{"type":"custom.bench","timestamp":"2026-11-26T10:00:00Z","data":{'
    + b'"x":"'
    + (b"a" * 600)
    + b'"}}'
)
HEADERS = {
    "content-type": "application/json",
    "user-agent": "crdt-server-webhooks/1",
    "webhook-id": "msg_2bYv7fPq3JwC1kX0aLzE9sRt",
    "webhook-timestamp": "1795000000",
    "webhook-signature": "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4=",
}
HOST = "receiver.test"
MAX_ANSWER = 1024

Post = Callable[[], Awaitable[int]]


def serve(port_out: int) -> None:
    """The receiver (child process): keep-alive HTTP/1.1, ``200 ok`` to every request."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                await reader.readexactly(length)
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        os.write(port_out, f"{port}\n".encode())
        await server.serve_forever()

    asyncio.run(main())


async def httpx_client(port: int, concurrency: int) -> tuple[Post, Callable[[], Awaitable[None]]]:
    import httpx

    client = httpx.AsyncClient(
        timeout=10,
        follow_redirects=False,
        trust_env=False,
        limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
    )
    url = f"http://127.0.0.1:{port}/hook"
    headers = {"host": f"{HOST}:{port}", **HEADERS}

    async def post() -> int:
        request = client.build_request(
            "POST", url, content=PAYLOAD, headers=headers, extensions={"sni_hostname": HOST}
        )
        response = await client.send(request, stream=True)
        try:
            kept = bytearray()
            async for chunk in response.aiter_raw():
                kept += chunk
                if len(kept) >= MAX_ANSWER:
                    break
        finally:
            await response.aclose()
        return response.status_code

    return post, client.aclose


async def aiohttp_client(port: int, concurrency: int) -> tuple[Post, Callable[[], Awaitable[None]]]:
    import aiohttp
    from aiohttp.abc import AbstractResolver, ResolveResult

    class Pinned(AbstractResolver):
        async def resolve(
            self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
        ) -> list[ResolveResult]:
            return [
                {
                    "hostname": host,
                    "host": "127.0.0.1",
                    "port": port,
                    "family": socket.AF_INET,
                    "proto": 0,
                    "flags": socket.AI_NUMERICHOST,
                }
            ]

        async def close(self) -> None:
            pass

    connector = aiohttp.TCPConnector(
        resolver=Pinned(), limit=concurrency, limit_per_host=concurrency, use_dns_cache=False
    )
    session = aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=10),
        trust_env=False,
        auto_decompress=False,
        skip_auto_headers=("accept", "accept-encoding"),
    )
    url = f"http://{HOST}:{port}/hook"

    async def post() -> int:
        async with session.post(
            url, data=PAYLOAD, headers=HEADERS, allow_redirects=False
        ) as response:
            await response.content.read(MAX_ANSWER)
            return response.status

    return post, session.close


async def aiosonic_client(
    port: int, concurrency: int
) -> tuple[Post, Callable[[], Awaitable[None]]]:
    import aiosonic
    from aiosonic.resolver import DefaultResolver

    class Pinned(DefaultResolver):  # type: ignore[misc]
        async def resolve(self, host: str, port: int = 0, family: int = socket.AF_INET) -> Any:
            return [
                {
                    "hostname": host,
                    "host": "127.0.0.1",
                    "port": port,
                    "family": socket.AF_INET,
                    "proto": 0,
                    "flags": socket.AI_NUMERICHOST,
                }
            ]

    connector = aiosonic.TCPConnector(
        pool_configs={":default": {"size": concurrency}}, resolver=Pinned(), use_dns_cache=False
    )
    client = aiosonic.HTTPClient(connector=connector)
    url = f"http://{HOST}:{port}/hook"

    async def post() -> int:
        response = await client.post(url, data=PAYLOAD, headers=HEADERS)
        await response.content()
        return int(response.status_code)

    async def close() -> None:
        await connector.cleanup()

    return post, close


async def pyreqwest_client(
    port: int, concurrency: int
) -> tuple[Post, Callable[[], Awaitable[None]]]:
    from pyreqwest.client import ClientBuilder

    client = (
        ClientBuilder()
        .resolve(HOST, "127.0.0.1", port)
        .http1_only()
        .max_connections(concurrency)
        .no_proxy()
        .build()
    )
    await client.__aenter__()
    url = f"http://{HOST}:{port}/hook"

    async def post() -> int:
        response = await client.post(url).headers(HEADERS).body_bytes(PAYLOAD).build().send()
        await response.bytes()
        return int(response.status)

    return post, client.close


CLIENTS: dict[str, Callable[[int, int], Awaitable[tuple[Post, Callable[[], Awaitable[None]]]]]] = {
    "httpx": httpx_client,
    "aiohttp": aiohttp_client,
    "aiosonic": aiosonic_client,
    "pyreqwest": pyreqwest_client,
}


async def one_round(name: str, port: int, posts: int, concurrency: int) -> tuple[float, float]:
    """CPU microseconds per POST and POSTs per second, for ``posts`` POSTs."""
    post, close = await CLIENTS[name](port, concurrency)
    try:
        for _ in range(concurrency * 2):  # connections opened, imports and caches warm
            assert await post() == 200
        left = posts

        async def worker() -> None:
            nonlocal left
            while left > 0:
                left -= 1
                status = await post()
                if status != 200:
                    raise RuntimeError(f"{name}: HTTP {status}")

        cpu, wall = time.process_time(), time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    finally:
        await close()
    return cpu / posts * 1e6, posts / wall


def installed(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--posts", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--clients", default=",".join(CLIENTS))
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve is not None:
        serve(args.serve)
        return
    names = [n for n in args.clients.split(",") if n]
    unknown = [n for n in names if n not in CLIENTS]
    if unknown:
        parser.error(f"unknown clients: {', '.join(unknown)} (known: {', '.join(CLIENTS)})")
    names = [n for n in names if installed(n)]
    read, write = os.pipe()
    child = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.http_clients", "--serve", str(write)],
        pass_fds=(write,),
    )
    os.close(write)
    try:
        with os.fdopen(read) as pipe:
            port = int(pipe.readline())
        cpu: dict[str, list[float]] = {n: [] for n in names}
        rate: dict[str, list[float]] = {n: [] for n in names}
        for _ in range(args.rounds):
            for name in names:
                us, per_second = asyncio.run(one_round(name, port, args.posts, args.concurrency))
                cpu[name].append(us)
                rate[name].append(per_second)
    finally:
        child.terminate()
        child.wait(10)
    print(
        f"| client ({args.posts} POSTs x {args.rounds} rounds, {args.concurrency} in flight,"
        f" load {os.getloadavg()[0]:.1f}) | CPU us per POST (runs; median) | POSTs/s (median) |"
    )
    print("|---|---|---|")
    for name in names:
        runs = ", ".join(f"{v:.0f}" for v in cpu[name])
        print(
            f"| {name} | {runs}; **{statistics.median(cpu[name]):.0f}** |"
            f" {statistics.median(rate[name]):.0f} |"
        )


if __name__ == "__main__":
    main()
