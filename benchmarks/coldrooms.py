"""A cold restart with many rooms stored: every room's members reconnect at once and each
connection loads its room from the store (``run.py --scenarios coldrooms``).

Fill: ``rooms`` rooms, each written by one writer with ``updates`` one-character updates
(all sent at once, each room's writer waits for its echoes). The server is restarted on
the same data, then ``members`` clients per room connect all at once (``concurrency`` in
flight): connect-to-synced p50/p99 per connection, the time until every one is synced, and
the rooms whose first sync step 2 held every update.
"""

from __future__ import annotations

import asyncio
import time

from benchmarks.loadgen import (
    EMPTY_UPDATE,
    WRITER_BASE_ID,
    CpuWindow,
    Metric,
    Target,
    YPeer,
    clock_ranges,
    close_peers,
    open_peers,
    open_synced,
    percentile,
    update_messages,
    wait_server_idle,
    wait_until,
)

__all__ = ["coldrooms"]


async def coldrooms(
    target: Target,
    rooms: int,
    updates: int,
    members: int = 1,
    concurrency: int = 1000,
    chunk: int = 200,
) -> list[Metric]:
    """See the module docstring."""
    assert target.restart is not None
    label = f"coldrooms {rooms} rooms"
    writer_id = WRITER_BASE_ID + 7
    messages = update_messages(writer_id, updates)
    weddings = [target.room("cr") for _ in range(rooms)]

    def on_update(peer: YPeer, payload: bytes, t: float) -> None:
        rng = clock_ranges(payload).get(writer_id)
        if rng is not None and rng[1] > peer.acked:
            peer.acked = rng[1]

    t_fill = time.perf_counter()
    for start in range(0, rooms, chunk):
        opened: list[YPeer] = []
        try:
            writers = await open_peers(target, weddings[start : start + chunk], opened)
            for writer in writers:
                writer.client_id = writer_id
                writer.on_update = on_update
                for message in messages:
                    writer.send(message)
            done = await wait_until(
                lambda ws=writers: all(w.acked >= updates for w in ws), 300.0, watch=writers
            )
            if not done:
                raise TimeoutError(f"{label}: the fill's echoes did not all come")
        finally:
            await close_peers(opened)
    fill_seconds = time.perf_counter() - t_fill
    await wait_server_idle(target.pid, 120.0, quiet=2.0)

    await target.restart()
    times: list[float] = []
    complete: set[str] = set()
    peers: list[YPeer] = []

    def check(peer: YPeer) -> None:
        if clock_ranges(peer.step2 or EMPTY_UPDATE).get(writer_id) == (0, updates):
            complete.add(peer.wedding)

    plan = [w for _ in range(members) for w in weddings]
    cpu = CpuWindow(target.pid).start()
    try:
        async with asyncio.timeout(max(120.0, len(plan) / 20)):
            await open_synced(
                target, plan, concurrency, peers, times, timeout=120.0, on_synced=check
            )  # failed: len(plan) - synced
        cpu.stop()
    finally:
        await close_peers(peers, timeout=60.0)
    synced = len(times)
    return [
        Metric(f"{label}: fill ({updates} updates each) s", fill_seconds, "{:.1f}", ratio=False),
        *[
            Metric(f"{label}: reconnect to synced p{q} ms", percentile(times, q), "{:.1f}",
                   "lower")
            for q in (50, 99)
        ],
        Metric(f"{label}: all {len(plan)} reconnected+synced in s", cpu.wall, "{:.2f}", "lower"),
        Metric(f"{label}: rooms whose step 2 had every update", len(complete), "{:.0f}",
               "higher"),
        Metric(f"{label}: failed connections", len(plan) - synced, "{:.0f}", "lower"),
        Metric(f"{label}: server CPU ms per connection",
               1000.0 * cpu.server / synced if synced else None, "{:.2f}", "lower"),
        Metric(f"{label}: other processes CPU % (noise)", cpu.other_pct, "{:.0f}", ratio=False),
    ]  # fmt: skip
