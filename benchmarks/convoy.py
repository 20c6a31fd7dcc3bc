"""The event loop beside a worker thread's long Python work: socket round trips on the
loop alone, beside a thread that never pauses, and beside one that calls
:func:`crdt_server.threads.share_gil` (as replays do), with ratios against alone.

    .venv/bin/python -m benchmarks.convoy [--trips 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import threading
import time

from crdt_server.threads import share_gil


def _busy(stop: threading.Event, sharing: bool) -> None:
    total = 0
    while not stop.is_set():
        for i in range(200):
            total += i
        if sharing:
            share_gil()


async def _trips(count: int) -> float:
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    loop = asyncio.get_running_loop()
    started = time.perf_counter()
    for _ in range(count):
        await loop.sock_sendall(a, b"x" * 10)
        await loop.sock_recv(b, 10)
    a.close()
    b.close()
    return time.perf_counter() - started


def measure(count: int, beside: str) -> float:
    stop = threading.Event()
    worker = None
    if beside != "alone":
        worker = threading.Thread(target=_busy, args=(stop, beside == "sharing"), daemon=True)
        worker.start()
    try:
        return asyncio.run(_trips(count))
    finally:
        stop.set()
        if worker is not None:
            worker.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trips", type=int, default=2000)
    args = parser.parse_args()
    alone = measure(args.trips, "alone")
    print(f"| beside | {args.trips} round trips (s) | / alone |")
    print("|---|---|---|")
    for beside in ("alone", "busy", "sharing"):
        seconds = alone if beside == "alone" else measure(args.trips, beside)
        print(f"| {beside} | {seconds:.3f} | {seconds / alone:.1f}x |")


if __name__ == "__main__":
    main()
