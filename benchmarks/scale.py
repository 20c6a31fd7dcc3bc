"""The ``scale`` profile (issue 22): the brief's scale targets, measured, against the goals.

    .venv/bin/python -m benchmarks.run --scale                       # the issue's figures
    .venv/bin/python -m benchmarks.scale --small --servers ours       # 2,000 connections ...
    .venv/bin/python -m benchmarks.scale --targets connections --conn-single 18000
    .venv/bin/python -m benchmarks.scale --estimate                   # how long, per target

Targets (``--targets``, any of them):

* ``connections`` (1): one process at ``--conn-single`` connections and ``--workers``
  processes (``crdt-server serve --workers N``, rooms shared through Redis) at
  ``--conn-workers``; opened at ``--ramp-rate`` per second; connect-to-synced p50/p99,
  server RSS per connection over the idle server (summed over the worker processes), then
  ``--edit-fraction`` of them edit ``--edit-rate`` times a second for ``--edit-seconds``:
  delivery p99 and every update checked at every reader.
* ``durable`` (2): ``--dur-rooms`` x ``--dur-writers`` writers (each also a reader of its
  room) sending ``--dur-rate`` updates/s in all for ``--dur-seconds``, open loop; echo
  p50/p99 (ours echoes after the commit), delivery p99, every update checked at every
  member, server CPU per 1,000 updates, and beside it the fsync floor (a probe fsyncing in
  the server's data directory during the run) and our commit latency (``/metrics``).
* ``fanout`` (3): ``run.py``'s fan-out scenario (1 writer, ``--fanout-readers`` readers,
  ``--fanout-rate`` updates/s for ``--fanout-seconds``) on ours and every peer, with the
  fsync probe beside it: delivery p50/p99 against y-websocket's.
* ``presence`` (4): ``--presence-clients`` in one room, each moving a cursor
  ``--presence-rate`` times a second for ``--presence-seconds``: awareness relay p50/p99 and
  every client's last state checked at every other client.
* ``workers`` (5): one process against ``--compare-workers`` processes on throughput
  (``run.py``'s 10x10 saturation scenario) and fan-out to 100 readers.
* ``standard`` (6): ``run.py``'s five scenarios (``--std-size``: its full sizes, its quick
  ones, or a few seconds) on ours and every peer: ours ahead of every peer on each row.
  With ``fanout`` in the same run, fan-out runs once and its rows serve both targets.
* ``burst`` (7): ``--burst-rooms`` x 10 writers at ``--burst-steady-rate`` updates/s, then
  ``--burst-factor`` times that for ``--burst-seconds`` while ``--burst-guests`` guests join
  one room at once and RSVP (one update each) and two planners rebuild a seating chart;
  then the steady rate again. Refusals by close code (only 1013 and 429 are documented
  ones), updates lost, and the recovery time (until the echo p99 of each second is back
  within twice the pre-burst p99).

The load generator is spread over ``--agents`` processes (``-m benchmarks.scale --agent``),
each binding its connections to its own source address ``127.0.0.x`` before connecting, so
ephemeral ports do not run out. A room lives inside one agent (so delivery latencies are
measured on one clock in one process); the presence room is spread over every agent and
carries the send time in the awareness state (CLOCK_MONOTONIC is the same for every process
on the machine). Every run starts a fresh server and data directory; every wait has a
deadline; every server is stopped by PID.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import gc
import json
import math
import os
import random
import secrets
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import httpx
from standardwebhooks import Webhook, WebhookVerificationError

ROOT = Path(__file__).resolve().parents[1]
if not __package__:  # run as a file: benchmarks.* is found from the root
    print(f"run it from {ROOT} as: .venv/bin/python -m benchmarks.scale [options]", file=sys.stderr)
    sys.exit(2)

from benchmarks import loadgen  # noqa: E402
from benchmarks.loadgen import (  # noqa: E402
    Metric,
    Target,
    YPeer,
    clock_ranges,
    percentile,
    process_cpu_seconds,
    process_rss_kib,
    process_tree,
    wait_server_idle,
)
from benchmarks.run import SCENARIOS, Profiler, Runner, Sizes, run_one, scenario_runs  # noqa: E402
from benchmarks.servers import (  # noqa: E402
    PEERS,
    ServerProcess,
    ServerSpec,
    node_ready,
    ours_spec,
    server_specs,
)
from crdt_server.auth.tokens import TokenCodec  # noqa: E402
from crdt_server.codec.protocol import encode_awareness, encode_update  # noqa: E402
from crdt_server.codec.protocol import write_var_string as _var_string  # noqa: E402
from crdt_server.codec.protocol import write_var_uint as _var_uint  # noqa: E402
from crdt_server.testing.receiver import WebhookReceiver  # noqa: E402

TARGETS = ("connections", "durable", "fanout", "presence", "workers", "standard", "burst")
"""Targets 1 to 7 of issue 22, in its order."""

_SCALE_SECRET = "scale-benchmark-secret-at-least-32-bytes"
SCALE_ENV: tuple[tuple[str, str], ...] = (
    # On top of servers.OURS_ENV (which lifts the per-address and per-connection rates):
    # the load generator's connections come from a handful of loopback addresses, and a
    # 50,000-connection run holds more rooms than the default cap.
    ("CRDT_SERVER_MAX_PENDING_HANDSHAKES_PER_ADDRESS", "1000000"),
    ("CRDT_SERVER_MAX_ROOMS", "1000000"),
    # Webhooks on, as shipped: the driver creates endpoints through the API (a planner's
    # token) that deliver to its own receiver on 127.0.0.1.
    ("CRDT_SERVER_AUTH_SECRET", _SCALE_SECRET),
    ("CRDT_SERVER_WEBHOOK_ALLOW_PRIVATE", "true"),
)
"""Benchmark settings of our server in the scale profile (documented in the README)."""

DOCUMENTED_REFUSALS = {"1013", "429"}

LATE_CAP = 300.0
"""After ``--grace``, how long at most to wait for a busy server to send what it still owes
(until its CPU is quiet): what comes then is late, what never comes is lost."""
WEBHOOK_CAP = 120.0
"""After a run's updates are settled, how long to wait for webhook deliveries still owed."""
LATE_ROW = "updates echoed late (after --grace, before the server went quiet)"


# -- updates made by hand ----------------------------------------------------------------


ITEM_START = "2027-06-12T15:00:00+02:00"
ITEM_END = "2027-06-12T16:00:00+02:00"
ITEM_CLOCKS = 4
"""Clocks of a writer's first update (its item's map and three fields); later ones take one."""


def item_update(client_id: int, n: int, title: str = "a") -> bytes:
    """The Yjs v1 update pycrdt makes for a writer's ``n``-th edit of its own timeline item
    (byte for byte; ``tests/project/test_scale_bench.py`` checks it). Update 0 adds a valid item,
    ``items["b<client id>"] = Map({"title", "start", "end"})`` (clocks 0 to 3); every later
    one sets its ``title`` again (one clock each, deleting the title before). Each is one
    domain event (``timeline.item_added``, then ``timeline.item_updated``), so the server
    derives, checks, stores and sends events as shipped. Made without pycrdt so 10,000
    writers x 500 updates cost nothing to prepare."""
    client = _var_uint(client_id)

    def value(text: str) -> bytes:  # ContentAny: one string
        return b"\x01\x77" + _var_string(text)

    if n == 0:  # root "items", key b<id>: a new Map (type ref 1), then its fields
        structs = b"\x27\x01" + _var_string("items") + _var_string(f"b{client_id}") + b"\x01"
        for key, text in (("title", title), ("start", ITEM_START), ("end", ITEM_END)):
            # parent: the item's map (client id, clock 0)
            structs += b"\x28\x00" + client + b"\x00" + _var_string(key) + value(text)
        return b"\x01\x04" + client + b"\x00" + structs + b"\x00"
    clock = n + ITEM_CLOCKS - 1
    # origin: the title before it (whose parent and key it inherits), which it deletes
    before = _var_uint(1 if n == 1 else clock - 1)
    deletes = b"\x01" + client + b"\x01" + before + b"\x01"  # one range of length 1
    return (
        b"\x01\x01" + client + _var_uint(clock) + b"\xa8" + client + before + value(title) + deletes
    )


def item_message(client_id: int, n: int) -> bytes:
    return encode_update(item_update(client_id, n, "abcdefghijklmnopqrstuvwxyz"[n % 26]))


# -- histograms (0.1 ms buckets; mergeable across agents) -----------------------------------


Hist = Counter[int]


def record(hist: Hist, seconds: float) -> None:
    hist[max(0, int(seconds * 10_000.0))] += 1


def hist_percentile(hist: Hist, q: float) -> float | None:
    """Nearest-rank percentile of a histogram, in ms (0.1 ms resolution)."""
    total = sum(hist.values())
    if not total:
        return None
    rank = max(1, math.ceil(q / 100.0 * total))
    seen = 0
    for bucket in sorted(hist):
        seen += hist[bucket]
        if seen >= rank:
            return (bucket + 1) / 10.0
    return None


def hist_json(hist: Hist) -> dict[str, int]:
    return {str(k): v for k, v in hist.items()}


def hist_load(raw: dict[str, int]) -> Hist:
    return Counter({int(k): v for k, v in raw.items()})


# -- the agent: one load-generator process -----------------------------------------------


Maker = Callable[[int, int], tuple[bytes, int]]
"""``(client id, n) -> (message, clocks)``: a writer's ``n``-th update and how many clocks
it takes."""


def item_maker(client_id: int, n: int) -> tuple[bytes, int]:
    """The scale profile's writers: :func:`item_message` (its own timeline item's title)."""
    return item_message(client_id, n), ITEM_CLOCKS if n == 0 else 1


@dataclass
class Writer:
    peer: YPeer
    cid: int
    phase: float
    make: Maker = item_maker
    sent_at: list[float] = field(default_factory=list)
    """When the update holding each clock was sent, by clock."""
    ends: list[int] = field(default_factory=list)
    """The clock after each update sent (its last clock + 1), ascending."""
    skipped: int = 0
    """Updates that fell due and were not sent (``sustain``'s ``pushback``)."""

    @property
    def sent(self) -> int:
        """Updates sent."""
        return len(self.ends)

    def updates_within(self, clocks: int) -> int:
        """How many of the writer's updates its first ``clocks`` clocks hold (all or none
        of an update arrives, so an update is there once its last clock is)."""
        return bisect.bisect_right(self.ends, clocks)

    def send(self) -> None:
        message, clocks = self.make(self.cid, self.sent)
        self.sent_at.extend([time.perf_counter()] * clocks)
        self.ends.append(len(self.sent_at))
        self.peer.send(message)


def _reason(exc: BaseException) -> str:
    text = str(exc)
    if "upgrade refused" in text:
        parts = text.split()
        for part in parts:
            if part.isdigit() and len(part) == 3:
                return part
        return "refused"
    if isinstance(exc, TimeoutError):
        return "timeout"
    return type(exc).__name__


class Agent:
    """Holds connections and runs the commands the controller sends (JSON lines)."""

    def __init__(self) -> None:
        self.target: Target | None = None
        self.rooms: dict[str, list[YPeer]] = {}
        self.failed: Counter[str] = Counter()
        self._presence: tuple[Hist, dict[int, dict[int, int]]] = (Counter(), {})
        self._settling: dict[int, tuple[Callable[[], tuple[int, int, int, int]], list[YPeer]]]
        self._settling = {}
        self.last_writers: list[Writer] = []
        """The writers of the last ``sustain`` run, once it has sent everything."""
        """id_base of a ``sustain`` run -> its counter and the peers still counting for it."""

    def maker(self, room: str, cid: int) -> Maker:
        """What writer ``cid`` of ``room`` sends (:func:`item_maker` here; the product
        scenario's agent sends domain changes it prepared)."""
        return item_maker

    def closed_codes(self) -> Counter[str]:
        codes: Counter[str] = Counter()
        for peers in self.rooms.values():
            for p in peers:
                if p.conn is not None and p.conn.closed.done():
                    codes[str(getattr(p.conn, "close_code", None) or "dropped")] += 1
        return codes

    async def hello(self, host: str, port: int, dialect: str, source: str) -> dict[str, Any]:
        self.target = Target(host, port, 0, dialect, "raw", source=source)
        return {}

    async def open(self, rooms: list[str], per_room: int, rate: float, t0: float) -> dict[str, Any]:
        """Open ``per_room`` connections to each room, connection i at ``t0 + i / rate``."""
        target = self.target
        assert target is not None
        plan = [room for room in rooms for _ in range(per_room)]
        times: list[float] = []
        failed: Counter[str] = Counter()

        async def one(i: int, room: str) -> None:
            delay = (t0 + (i / rate if rate > 0 else 0.0)) - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            peer = YPeer(target, room)
            start = time.perf_counter()
            try:
                await peer.open()
                self.rooms.setdefault(room, []).append(peer)
                synced = await peer.wait_synced()
                times.append((synced - start) * 1000.0)
            except (OSError, TimeoutError, ConnectionError) as exc:
                failed[_reason(exc)] += 1
                if peer.conn is not None:
                    peer.conn.abort()
                    members = self.rooms.get(room, [])
                    if peer in members:
                        members.remove(peer)

        await asyncio.gather(*(one(i, r) for i, r in enumerate(plan)))
        self.failed.update(failed)
        return {"times": [round(t, 2) for t in times], "failed": dict(failed)}

    async def sustain(
        self,
        rooms: list[str],
        writers_per_room: int,
        segments: list[list[float]],
        t0: float,
        id_base: int,
        grace: float,
        pushback: bool = False,
    ) -> dict[str, Any]:
        """Writers send open loop on the rate ``segments`` ([[seconds, per-writer rate]]);
        every member of a room checks every update of every writer arrived.

        ``pushback``: a writer whose socket the kernel stopped taking (the server paused
        reading it, TCP's window is shut) does not send an update that falls due then, as a
        browser that watches ``bufferedAmount`` does: the update is counted as ``deferred``
        (the overload benchmark, :mod:`benchmarks.product`)."""
        writers: dict[int, Writer] = {}
        members: list[YPeer] = []
        rng = random.Random(id_base)
        for room in rooms:
            room_peers = self.rooms.get(room, [])
            members.extend(room_peers)
            for p in room_peers[:writers_per_room]:
                cid = id_base + len(writers)
                p.client_id = cid
                writers[cid] = Writer(p, cid, rng.random(), self.maker(room, cid))
        delivery: Hist = Counter()
        echo: Hist = Counter()
        echo_by_sec: dict[int, Hist] = {}
        echoed_by_sec: Counter[int] = Counter()
        """Echoes to their writers by the second (from ``t0``) they arrived in."""
        deferred = 0

        def on_update(peer: YPeer, payload: bytes, t: float) -> None:
            seen = peer.seen
            for cid, (start, end) in clock_ranges(payload).items():
                w = writers.get(cid)
                if w is None:
                    continue
                prev = seen.get(cid, 0)
                if start <= prev < end:
                    sent_at = w.sent_at
                    ends = w.ends
                    top = min(end, len(sent_at))
                    # one latency per update: at its last clock
                    first = bisect.bisect_right(ends, prev)
                    last = bisect.bisect_right(ends, top)
                    if cid == peer.client_id:
                        if last > first:
                            echoed_by_sec[int(t - t0)] += last - first
                        for j in range(first, last):
                            sent = sent_at[ends[j] - 1]
                            lat = t - sent
                            record(echo, lat)
                            sec = int(sent - t0)
                            bucket = echo_by_sec.get(sec)
                            if bucket is None:
                                bucket = echo_by_sec[sec] = Counter()
                            record(bucket, lat)
                    else:
                        for j in range(first, last):
                            record(delivery, t - sent_at[ends[j] - 1])
                    seen[cid] = end

        for p in members:
            p.on_update = on_update
        # Schedule: writer w's update k of a segment at t0 + segment start + (phase_w + k) /
        # rate, every one due inside the segment (so a rate under one update per segment
        # still offers its rate over all the writers: some send one, some none).
        plan: list[tuple[float, float, float]] = []  # (start, rate, seconds)
        offset = 0.0
        for seconds, rate in segments:
            plan.append((offset, rate, seconds))
            offset += seconds

        def counts(w: Writer) -> list[int]:
            return [max(0, math.ceil(seconds * rate - w.phase)) if rate > 0 else 0
                    for _, rate, seconds in plan]  # fmt: skip

        planned = {cid: counts(w) for cid, w in writers.items()}
        totals = {cid: sum(c) for cid, c in planned.items()}

        def due(w: Writer, i: int) -> float:
            for (start, rate, _), count in zip(plan, planned[w.cid], strict=True):
                if i < count:
                    return t0 + start + (w.phase + i) / rate
                i -= count
            return math.inf

        import heapq

        heap = [(due(w, 0), cid) for cid, w in writers.items() if totals[cid]]
        heapq.heapify(heap)
        while heap:
            now = time.perf_counter()
            when = heap[0][0]
            if when > now:
                await asyncio.sleep(min(when - now, 0.05))
                continue
            while heap and heap[0][0] <= now:
                _, cid = heapq.heappop(heap)
                w = writers[cid]
                i = w.sent
                if w.peer.conn is None or w.peer.conn.closed.done():
                    continue  # the server closed it: counted in closed_codes
                skipped = w.skipped
                if pushback and loadgen.backed_up(w.peer):
                    w.skipped += 1  # this due update is not sent: the next one is due
                    deferred += 1
                else:
                    w.send()
                if i + skipped + 1 < totals[cid]:
                    heapq.heappush(heap, (due(w, i + skipped + 1), cid))
            await asyncio.sleep(0)
        sent_done = time.perf_counter()
        self.last_writers = list(writers.values())

        def expected() -> tuple[int, int, int, int]:
            exp_d = got_d = exp_e = got_e = 0
            for room in rooms:
                room_peers = self.rooms.get(room, [])
                room_writers = [writers[p.client_id] for p in room_peers[:writers_per_room]]
                for w in room_writers:
                    n = w.sent
                    for m in room_peers:
                        got = min(w.updates_within(m.seen.get(w.cid, 0)), n)
                        if m is w.peer:
                            exp_e += n
                            got_e += got
                        else:
                            exp_d += n
                            got_d += got
            return exp_d, got_d, exp_e, got_e

        deadline = time.perf_counter() + grace
        while time.perf_counter() < deadline:
            exp_d, got_d, exp_e, got_e = expected()
            if got_d >= exp_d and got_e >= exp_e:
                break
            await asyncio.sleep(0.05)
        exp_d, got_d, exp_e, got_e = expected()
        # The peers go on counting: a server behind on its backlog may still send what is
        # missing. ``settle`` (once the server is quiet) tells late from lost.
        self._settling[id_base] = (expected, members)
        return {
            "key": id_base,
            "delivery": hist_json(delivery),
            "echo": hist_json(echo),
            "echo_by_sec": {str(k): hist_json(v) for k, v in echo_by_sec.items()},
            "echoed_by_sec": {str(k): v for k, v in echoed_by_sec.items()},
            "deferred": deferred,
            "sent": sum(w.sent for w in writers.values()),
            "expected_deliveries": exp_d,
            "deliveries": got_d,
            "expected_echoes": exp_e,
            "echoes": got_e,
            "send_seconds": sent_done - t0,
            "closed": dict(self.closed_codes()),
        }

    async def settle(self, key: int) -> dict[str, Any]:
        """The final counts of the ``sustain`` run ``key`` (once what arrives has stopped
        changing them, 5 s at most); its peers stop counting."""
        expected, members = self._settling.pop(key)
        counts = expected()
        deadline = time.perf_counter() + 5.0
        while time.perf_counter() < deadline:
            await asyncio.sleep(0.5)
            now = expected()
            if now == counts:
                break
            counts = now
        for p in members:
            p.on_update = None
        return {"deliveries": counts[1], "echoes": counts[3]}

    async def presence(
        self,
        room: str,
        id_base: int,
        rate: float,
        seconds: float,
        t0: float,
    ) -> dict[str, Any]:
        """Every local member of ``room`` moves its cursor ``rate`` times a second."""
        peers = self.rooms.get(room, [])
        latency: Hist = Counter()
        last: dict[int, dict[int, int]] = {}
        for k, p in enumerate(peers):
            p.client_id = id_base + k
            last[p.client_id] = {}

        def on_awareness(peer: YPeer, payload: bytes, t: float) -> None:
            mine = last[peer.client_id]
            for client, clock, sent in awareness_entries(payload):
                if client == peer.client_id or clock <= mine.get(client, 0):
                    continue
                mine[client] = clock
                if sent is not None:
                    record(latency, t - sent)

        for p in peers:
            p.on_awareness = on_awareness
        rng = random.Random(id_base)
        phases = [rng.random() for _ in peers]
        rounds = int(seconds * rate)
        heap = [(t0 + phases[k] / rate, k, 0) for k in range(len(peers))]
        import heapq

        heapq.heapify(heap)
        while heap:
            now = time.perf_counter()
            if heap[0][0] > now:
                await asyncio.sleep(min(heap[0][0] - now, 0.05))
                continue
            while heap and heap[0][0] <= time.perf_counter():
                _, k, r = heapq.heappop(heap)
                p = peers[k]
                p.clock += 1
                state = {
                    "t": time.perf_counter(),
                    "user": {"name": f"guest {k}", "color": "#30bced"},
                    "cursor": {"x": r, "y": k},
                }
                entry = _var_uint(p.client_id) + _var_uint(p.clock) + _var_string(json.dumps(state))
                p.send(encode_awareness(_var_uint(1) + entry))
                if r + 1 < rounds:
                    heapq.heappush(heap, (t0 + (phases[k] + r + 1) / rate, k, r + 1))
            await asyncio.sleep(0)
        self._presence = (latency, last)
        return {"final": {str(p.client_id): p.clock for p in peers}}

    async def presence_check(self, final: dict[str, int], grace: float) -> dict[str, Any]:
        latency, last = self._presence
        want = {int(k): v for k, v in final.items()}

        def missing() -> int:
            out = 0
            for me, seen in last.items():
                out += sum(1 for c, clock in want.items() if c != me and seen.get(c, 0) < clock)
            return out

        await loadgen.wait_until(lambda: not missing(), grace, step=0.05)
        return {
            "latency": hist_json(latency),
            "missing_last_state": missing(),
            "closed": dict(self.closed_codes()),
        }

    async def status(self) -> dict[str, Any]:
        return {"closed": dict(self.closed_codes()), "failed": dict(self.failed)}

    async def close(self) -> dict[str, Any]:
        codes = self.closed_codes()
        peers = [p for ps in self.rooms.values() for p in ps]
        await loadgen.close_peers(peers, timeout=60.0)
        self.rooms.clear()
        return {"closed": dict(codes)}


_SENT = b'{"t":'


def awareness_entries(payload: bytes) -> list[tuple[int, int, float | None]]:
    """(client id, clock, send time) of each entry; the send time is the state's first
    field as :meth:`Agent.presence` writes it (read without a JSON parse: 500 states a
    second reach 99 clients each)."""
    out: list[tuple[int, int, float | None]] = []
    read = loadgen._read_uint
    count, pos = read(payload, 0)
    for _ in range(min(count, 1 << 16)):
        client, pos = read(payload, pos)
        clock, pos = read(payload, pos)
        size, pos = read(payload, pos)
        sent: float | None = None
        if payload.startswith(_SENT, pos):  # '{"t": 12.5,' (Python) or '{"t":12.5,' (JS)
            end = payload.find(b",", pos + len(_SENT), pos + size)
            if end > 0:
                try:
                    sent = float(payload[pos + len(_SENT) : end])
                except ValueError:
                    sent = None
        pos += size
        out.append((client, clock, sent))
    return out


async def agent_main(agent: Agent | None = None) -> None:
    """``--agent``: read JSON commands from stdin, answer each on stdout with its ``id``."""
    gc.collect()
    gc.disable()
    agent = agent or Agent()
    loop = asyncio.get_running_loop()
    out_lock = asyncio.Lock()
    tasks: set[asyncio.Task[None]] = set()

    async def handle(line: str) -> None:
        msg = json.loads(line)
        cmd = msg.pop("cmd")
        ident = msg.pop("id")
        try:
            result = await getattr(agent, cmd)(**msg)
            reply = {"id": ident, "ok": True, "result": result}
        except Exception as exc:  # reported to the controller, which fails the run
            reply = {"id": ident, "ok": False, "error": repr(exc)}
        async with out_lock:
            sys.stdout.write(json.dumps(reply) + "\n")
            sys.stdout.flush()

    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            break
        if not line.strip():
            continue
        task = asyncio.create_task(handle(line))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    await agent.close()


# -- the controller ------------------------------------------------------------------------


class AgentProc:
    """One agent process, spoken to over pipes."""

    def __init__(self, index: int, module: str = "benchmarks.scale") -> None:
        self.index = index
        self.module = module
        self.source = f"127.0.0.{2 + index}"
        self.proc: asyncio.subprocess.Process | None = None
        self._next = 0
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            self.module,
            "--agent",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=1 << 28,
            cwd=ROOT,
        )
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        while True:
            line = await self.proc.stdout.readline()
            if not line:
                break
            msg = json.loads(line)
            fut = self._waiting.pop(msg["id"], None)
            if fut is not None and not fut.done():
                if msg["ok"]:
                    fut.set_result(msg["result"])
                else:
                    fut.set_exception(RuntimeError(f"agent {self.index}: {msg['error']}"))
        for fut in self._waiting.values():
            if not fut.done():
                fut.set_exception(RuntimeError(f"agent {self.index} exited"))

    async def call(self, cmd: str, timeout: float = 1800.0, **params: Any) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdin is not None
        self._next += 1
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[self._next] = fut
        self.proc.stdin.write(
            (json.dumps({"cmd": cmd, "id": self._next, **params}) + "\n").encode()
        )
        await self.proc.stdin.drain()
        async with asyncio.timeout(timeout):
            return await fut

    async def stop(self) -> None:
        proc = self.proc
        if proc is None:
            return
        with contextlib.suppress(Exception):
            await self.call("close", timeout=90.0)
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), 15.0)
        except TimeoutError:
            proc.kill()
            await proc.wait()
        if self._reader is not None:
            self._reader.cancel()
        self.proc = None


class Agents:
    def __init__(self, count: int, module: str = "benchmarks.scale") -> None:
        self.all = [AgentProc(i, module) for i in range(count)]

    async def __aenter__(self) -> Agents:
        await asyncio.gather(*(a.start() for a in self.all))
        return self

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.gather(*(a.stop() for a in self.all), return_exceptions=True)

    async def hello(self, server: ServerProcess) -> None:
        await asyncio.gather(
            *(
                a.call("hello", host=server.host, port=server.port,
                       dialect=server.spec.dialect, source=a.source)
                for a in self.all
            )
        )  # fmt: skip


def split(items: Sequence[str], parts: int) -> list[list[str]]:
    return [list(items[i::parts]) for i in range(parts)]


async def settle(pid: int, runs: Sequence[tuple[AgentProc, dict[str, Any]]]) -> None:
    """Tell late from lost in ``sustain`` results: if anything is missing after the grace
    period, wait until the server's CPU is quiet (it has sent all it will; ``LATE_CAP`` at
    most), then take each run's final counts. What arrived meanwhile is late
    (``late_echoes``, ``late_deliveries``); what is still missing is lost."""
    if any(r["echoes"] < r["expected_echoes"] or r["deliveries"] < r["expected_deliveries"]
           for _, r in runs):  # fmt: skip
        if await wait_server_idle(pid, LATE_CAP, quiet=2.5) is None:
            for _, r in runs:
                r["cut_off"] = True  # still working through its backlog at LATE_CAP
    finals = await asyncio.gather(*(a.call("settle", key=r["key"]) for a, r in runs))
    for (_, r), final in zip(runs, finals, strict=True):
        r["late_echoes"] = final["echoes"] - r["echoes"]
        r["late_deliveries"] = final["deliveries"] - r["deliveries"]
        r["echoes"], r["deliveries"] = final["echoes"], final["deliveries"]


def loss_rows(label: str, runs: Sequence[dict[str, Any]]) -> list[Metric]:
    """Lost, missing and late, over settled ``sustain`` results (see :func:`settle`)."""
    exp_e = sum(r["expected_echoes"] for r in runs)
    exp_d = sum(r["expected_deliveries"] for r in runs)
    lost = exp_e - sum(r["echoes"] for r in runs)
    missing = exp_d - sum(r["deliveries"] for r in runs)
    late_e = sum(r["late_echoes"] for r in runs)
    late_d = sum(r["late_deliveries"] for r in runs)
    cut = (f"; the server was still busy {LATE_CAP:.0f} s after the grace: counted then"
           if any(r.get("cut_off") for r in runs) else "")  # fmt: skip
    return [
        goal(Metric(f"{label}: updates lost (never echoed to the writer)", lost, "{:.0f}",
                    "lower", f"of {exp_e}{cut}"), "<=", 0, "0"),
        goal(Metric(f"{label}: deliveries missing (never arrived)", missing, "{:.0f}", "lower",
                    f"of {exp_d}{cut}"), "<=", 0, "0"),
        Metric(f"{label}: {LATE_ROW}", late_e, "{:.0f}", "lower", f"deliveries: {late_d}"),
    ]  # fmt: skip


def merge_hists(results: Sequence[dict[str, Any]], key: str) -> Hist:
    total: Hist = Counter()
    for r in results:
        total.update(hist_load(r[key]))
    return total


def merge_counts(results: Sequence[dict[str, Any]], key: str) -> Counter[str]:
    total: Counter[str] = Counter()
    for r in results:
        total.update(r.get(key, {}))
    return total


def codes_text(codes: Counter[str]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in sorted(codes.items())) or "none"


@dataclass
class Options:
    servers: list[str]
    targets: list[str]
    agents: int
    ramp_rate: float
    conn_single: int
    conn_workers: int
    workers: int
    conn_per_room: int
    edit_fraction: float
    edit_rate: float
    edit_seconds: float
    dur_rooms: int
    dur_writers: int
    dur_rate: float
    dur_compare_workers: bool
    dur_seconds: float
    presence_clients: int
    presence_rate: float
    presence_seconds: float
    compare_workers: int
    compare_seconds: float
    burst_rooms: int
    burst_steady_rate: float
    burst_factor: float
    burst_seconds: float
    burst_before: float
    burst_after: float
    burst_guests: int
    grace: float
    redis_url: str
    fanout_readers: list[int] = field(default_factory=lambda: [10, 100])
    fanout_rate: float = 50.0
    fanout_seconds: float = 10.0
    std_size: str = "full"
    fsync_probe_hz: float = 20.0
    webhook_weddings: int = 10
    run_id: str = field(default_factory=lambda: secrets.token_hex(3))
    _rooms: int = 0

    def room(self, kind: str) -> str:
        self._rooms += 1
        return f"sc{kind}{self._rooms}x{self.run_id}"


def workers_spec(name: str, workers: int, redis_url: str) -> ServerSpec:
    return ours_spec(
        name,
        "--workers", str(workers), "--redis-url", redis_url,
        env=SCALE_ENV,
        notes=f"crdt-server, {workers} worker processes on one SQLite file, Redis bus",
    )  # fmt: skip


def scale_specs(opts: Options) -> dict[str, ServerSpec]:
    specs = dict(server_specs())
    specs["ours"] = ours_spec("ours", env=SCALE_ENV, notes=specs["ours"].notes)
    baseline = specs.get("ours-baseline")
    if baseline is not None:  # BENCH_BASELINE_SRC: another checkout, the same settings
        specs["ours-baseline"] = replace(baseline, env=(*baseline.env, *SCALE_ENV))
    specs[f"ours-{opts.workers}workers"] = workers_spec(
        f"ours-{opts.workers}workers", opts.workers, opts.redis_url
    )
    specs[f"ours-{opts.compare_workers}workers"] = workers_spec(
        f"ours-{opts.compare_workers}workers", opts.compare_workers, opts.redis_url
    )
    return specs


async def start_server(spec: ServerSpec, run_dir: Path, workers: int) -> ServerProcess:
    os.makedirs(run_dir)
    server = ServerProcess(spec, run_dir)
    try:  # also when cancelled (--max-minutes, SIGTERM): the server is stopped by PID
        await server.start(timeout=60.0)
        if workers > 1:
            deadline = time.monotonic() + 60.0
            while len(process_tree(server.pid)) < workers + 1:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{spec.name}: {workers} workers did not start")
                await asyncio.sleep(0.1)
        # The idle baseline: wait until start-up work is over.
        await wait_server_idle(server.pid, 20.0, quiet=1.0)
    except BaseException:
        await server.stop()
        raise
    return server


@dataclass
class Goal:
    op: str
    """``<``, ``<=`` or ``>=`` against ``value``; or ``ahead``: ours ahead of ``peers`` (every
    peer of the run when empty) in the row's ``better`` direction."""
    value: float
    text: str
    peers: tuple[str, ...] = ()

    def met(self, v: float | None) -> bool | None:
        if v is None:
            return None
        if self.op == "<":
            return v < self.value
        if self.op == "<=":
            return v <= self.value
        return v >= self.value

    def met_against(
        self, ours: Metric | None, theirs: dict[str, Metric | None], peers: Sequence[str]
    ) -> bool | None:
        """Whether ``ours`` met the goal; for ``ahead``, against the peers in the run.

        Ahead means strictly better, or level (a count such as 0 missing deliveries or 10
        of 10 rooms converged, which a continuous measurement never is). None when it
        cannot be told: no value of ours, or a peer the goal names has no value."""
        if ours is None or ours.value is None:
            return None
        if self.op != "ahead":
            return self.met(ours.value)
        wanted = [p for p in (self.peers or peers) if p in peers]
        values = [(theirs.get(p) or Metric("", None)).value for p in wanted]
        if not wanted or any(v is None for v in values):
            return None
        if ours.better == "lower":
            return all(ours.value <= v for v in values if v is not None)
        if ours.better == "higher":
            return all(ours.value >= v for v in values if v is not None)
        return None


GOALS: dict[str, Goal] = {}


def goal(metric: Metric, op: str, value: float, text: str) -> Metric:
    GOALS[metric.name] = Goal(op, value, text)
    return metric


def ahead(metric: Metric, peers: tuple[str, ...] = ()) -> Metric:
    """A goal of being ahead of ``peers`` (of every peer in the run when empty)."""
    GOALS[metric.name] = Goal("ahead", 0.0, f"ahead of {', '.join(peers) or 'every peer'}",
                              peers)  # fmt: skip
    return metric


class LoadWindow:
    """CPU of the server (all its processes), of the load generator (every agent and this
    driver) and of every other process on the machine, over one phase: the rows that say
    whether the load generator, not the server, was the limit."""

    def __init__(self, server_pid: int, agents: Agents) -> None:
        self.server_pid = server_pid
        self.agent_pids = [a.proc.pid for a in agents.all if a.proc is not None]
        self._start = self._sample()
        self._stop = self._start

    def _sample(self) -> tuple[float, float, float, float]:
        generator = loadgen.self_cpu_seconds() + sum(
            process_cpu_seconds(p) for p in self.agent_pids
        )
        return (
            time.perf_counter(),
            process_cpu_seconds(self.server_pid),
            generator,
            loadgen.machine_busy_seconds(),
        )

    def stop(self) -> LoadWindow:
        self._stop = self._sample()
        return self

    def metrics(self, label: str) -> list[Metric]:
        wall, server, generator, machine = (b - a for a, b in zip(self._start, self._stop,
                                                                  strict=True))  # fmt: skip
        if wall <= 0:
            return []
        other = max(0.0, machine - server - generator)
        return [
            Metric(f"{label}: server CPU % of one core", 100.0 * server / wall, "{:.0f}", ""),
            Metric(f"{label}: load-generator CPU % of one core (all agents)",
                   100.0 * generator / wall, "{:.0f}", ratio=False),
            Metric(f"{label}: other processes CPU % (noise)", 100.0 * other / wall, "{:.0f}",
                   ratio=False),
        ]  # fmt: skip


class FsyncProbe:
    """fsync a small file in ``directory`` ``hz`` times a second on a thread: the floor a
    durable commit cannot go under, on the same disk and under the same load."""

    def __init__(self, directory: Path, hz: float) -> None:
        self.path = directory / "fsync-probe"
        self.hz = hz
        self.times: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            block = b"x" * 4096
            while not self._stop.wait(1.0 / self.hz) and len(self.times) < 1_000_000:
                os.pwrite(fd, block, 0)
                t0 = time.perf_counter()
                os.fsync(fd)
                self.times.append((time.perf_counter() - t0) * 1000.0)
        finally:
            os.close(fd)

    def __enter__(self) -> FsyncProbe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10.0)


async def webhook_sink(
    stack: contextlib.AsyncExitStack,
    opts: Options,
    spec: ServerSpec,
    server: ServerProcess,
    rooms: Sequence[str],
) -> WebhookSink | None:
    """A :class:`WebhookSink` on the first ``--webhook-weddings`` of ``rooms`` (each room
    is its own wedding) when ``spec`` is ours; ``None`` for a peer."""
    if not spec.name.startswith("ours") or opts.webhook_weddings <= 0:
        return None
    return await stack.enter_async_context(WebhookSink(server, rooms[: opts.webhook_weddings]))


class WebhookSink:
    """Webhooks on, as shipped: one endpoint (every event type) on each of ``weddings``,
    created through the API with a planner's token, delivering to a real receiver in this
    process (``crdt_server.testing.WebhookReceiver``: uvicorn on 127.0.0.1). Ours only: the
    peers have no webhooks. :meth:`rows` waits until every event the server stored for
    those weddings has arrived (``WEBHOOK_CAP`` at most), verifies each delivery's signature
    with ``standardwebhooks`` as a receiver would, and reports what is missing and the
    time from the event's commit to its arrival."""

    def __init__(self, server: ServerProcess, weddings: Sequence[str]) -> None:
        self.weddings = list(weddings)
        self.receiver = WebhookReceiver()
        self.hooks: dict[str, Webhook] = {}
        self.got: dict[tuple[str, int], float] = {}
        """(wedding, seq) of each event delivered and verified -> commit to arrival, ms."""
        self.unverified = 0
        self._verified = 0
        self._verifier: asyncio.Task[None] | None = None
        self._http = httpx.AsyncClient(base_url=f"http://{server.host}:{server.port}", timeout=30)
        codec = TokenCodec(algorithms=["HS256"], secret=_SCALE_SECRET.encode())
        self._auth = {
            w: {"Authorization": "Bearer " + codec.mint(sub="scale", role="planner", wedding=w,
                                                        ttl=4 * 3600)}
            for w in self.weddings
        }  # fmt: skip

    async def __aenter__(self) -> WebhookSink:
        await self.receiver.__aenter__()
        try:
            for w in self.weddings:
                answer = await self._http.post(
                    f"/api/weddings/{w}/webhooks",
                    json={"url": f"{self.receiver.url}/{w}"},
                    headers=self._auth[w],
                )
                answer.raise_for_status()
                self.hooks[w] = Webhook(answer.json()["secret"])
        except BaseException:
            await self.__aexit__()
            raise
        self._verifier = asyncio.create_task(self._verify_while_running())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._verifier is not None:
            self._verifier.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._verifier
        await self._http.aclose()
        await self.receiver.__aexit__(None, None, None)

    async def _stored(self, wedding: str, after: int) -> int:
        """The wedding's last event seq (seqs are gapless from 1, so also its count)."""
        while True:
            answer = await self._http.get(
                f"/api/weddings/{wedding}/events",
                params={"after": after, "limit": 500},
                headers=self._auth[wedding],
            )
            answer.raise_for_status()
            page = answer.json()
            if page["events"]:
                after = page["events"][-1]["seq"]
            if page["next"] is None:
                return after

    def _verify_new(self) -> None:
        """Verify what arrived since the last call, as a receiver would on arrival (the
        Standard Webhooks timestamp check accepts 5 minutes: done later, a run whose
        deliveries lag would fail it for the harness's delay, not the server's)."""
        received = self.receiver.received
        for r in received[self._verified :]:
            wedding = r.path.rsplit("/", 1)[-1]
            try:
                body = self.hooks[wedding].verify(r.body, r.headers)
            except (KeyError, WebhookVerificationError):
                self.unverified += 1
                continue
            event = body["data"]
            at = datetime.fromisoformat(event["at"].replace("Z", "+00:00")).timestamp()
            key = (wedding, int(event["seq"]))
            if key not in self.got:  # at least once: a retry of a delivery counts once
                self.got[key] = max(0.0, r.at - at) * 1000.0
        self._verified = len(received)

    async def _verify_while_running(self) -> None:
        while True:
            self._verify_new()
            await asyncio.sleep(0.2)

    async def rows(self, label: str) -> list[Metric]:
        got = self.got
        last: dict[str, int] = dict.fromkeys(self.weddings, 0)
        deadline = time.monotonic() + WEBHOOK_CAP
        while True:
            self._verify_new()
            for w in self.weddings:
                last[w] = await self._stored(w, last[w])
            expected = sum(last.values())
            if len(got) >= expected or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        lags = list(got.values())
        note = f"of {expected} events in {len(self.weddings)} weddings"
        if self.unverified:
            note += f"; {self.unverified} failed verification"
        return [
            goal(Metric(f"{label}: webhook events not delivered {WEBHOOK_CAP:.0f} s after it",
                        expected - len(got), "{:.0f}", "lower", note), "<=", 0, "0"),
            Metric(f"{label}: webhook commit to receiver p50 ms", percentile(lags, 50),
                   "{:.0f}", "lower"),
            Metric(f"{label}: webhook commit to receiver p99 ms", percentile(lags, 99),
                   "{:.0f}", "lower"),
        ]  # fmt: skip


async def metrics_text(server: ServerProcess | Target) -> str:
    """Our ``/metrics`` page ("" if it cannot be read)."""
    try:
        async with asyncio.timeout(10.0):
            reader, writer = await asyncio.open_connection(server.host, server.port)
            writer.write(b"GET /metrics HTTP/1.0\r\nHost: bench\r\n\r\n")
            body = (await reader.read()).decode(errors="replace")
            writer.close()
    except (OSError, TimeoutError):
        return ""
    return body


async def commit_buckets(server: ServerProcess | Target) -> dict[float, float]:
    """Our ``crdt_commit_seconds`` histogram from ``/metrics`` (cumulative, per bound)."""
    out: dict[float, float] = {}
    for line in (await metrics_text(server)).splitlines():
        if line.startswith("crdt_commit_seconds_bucket{"):
            bound = line.split('le="', 1)[1].split('"', 1)[0]
            out[math.inf if bound == "+Inf" else float(bound)] = float(line.rsplit(" ", 1)[1])
    return out


async def commit_counts(server: ServerProcess | Target) -> tuple[float, float]:
    """(commits, updates committed) so far, from our ``crdt_commit_batch_size``."""
    count = total = 0.0
    for line in (await metrics_text(server)).splitlines():
        if line.startswith("crdt_commit_batch_size_count "):
            count = float(line.rsplit(" ", 1)[1])
        elif line.startswith("crdt_commit_batch_size_sum "):
            total = float(line.rsplit(" ", 1)[1])
    return count, total


def with_commits(runner: Runner, into: list[Metric]) -> Runner:
    """``runner`` with our commit latency (``/metrics``, bucket bounds) and updates per
    commit over it appended to ``into``: how close to the fsync floor a commit runs, and
    whether a lone update is committed alone."""

    async def run(target: Target) -> list[Metric]:
        before, (c0, u0) = await commit_buckets(target), await commit_counts(target)
        metrics = await runner(target)
        after, (c1, u1) = await commit_buckets(target), await commit_counts(target)
        into[:] = [
            Metric("our commit p50 ms (bucket bound)", bucket_percentile(before, after, 50),
                   "{:.1f}", "", ratio=False),
            Metric("our commit p99 ms (bucket bound)", bucket_percentile(before, after, 99),
                   "{:.1f}", "", ratio=False),
            Metric("our updates per commit", (u1 - u0) / (c1 - c0) if c1 > c0 else None,
                   "{:.2f}", "", ratio=False),
        ]  # fmt: skip
        return metrics

    return run


def bucket_percentile(
    before: dict[float, float], after: dict[float, float], q: float
) -> float | None:
    """Upper bound (ms) of the histogram bucket holding the q-th percentile of the window."""
    bounds = sorted(after)
    if not bounds:
        return None
    total = after[bounds[-1]] - before.get(bounds[-1], 0.0)
    if total <= 0:
        return None
    rank = q / 100.0 * total
    for b in bounds:
        if after[b] - before.get(b, 0.0) >= rank:
            return b * 1000.0
    return None


# -- the targets -----------------------------------------------------------------------------


async def target_connections(
    opts: Options, spec: ServerSpec, run_dir: Path, count: int, workers: int
) -> list[Metric]:
    """Target 1 at ``count`` connections on ``spec`` (``workers`` processes)."""
    label = f"1 connections {count} ({workers} process{'es' if workers > 1 else ''})"
    server = await start_server(spec, run_dir, workers)
    try:
        async with Agents(opts.agents) as agents:
            await agents.hello(server)
            rooms = [opts.room("c") for _ in range(math.ceil(count / opts.conn_per_room))]
            parts = split(rooms, opts.agents)
            rss0 = process_rss_kib(server.pid)
            cpu0 = process_cpu_seconds(server.pid)
            window = LoadWindow(server.pid, agents)
            t0 = time.perf_counter() + 0.5
            opened = await asyncio.gather(
                *(
                    a.call("open", rooms=part, per_room=opts.conn_per_room,
                           rate=opts.ramp_rate / opts.agents, t0=t0)
                    for a, part in zip(agents.all, parts, strict=True)
                )
            )  # fmt: skip
            wall = time.perf_counter() - t0
            cpu = process_cpu_seconds(server.pid) - cpu0
            window.stop()
            times = [t for r in opened for t in r["times"]]
            failed = merge_counts(opened, "failed")
            await wait_server_idle(server.pid, 30.0, quiet=1.0)
            rss1 = process_rss_kib(server.pid)
            synced = len(times)
            # 1 % edit once a second: writers spread over the rooms of every agent.
            t1 = time.perf_counter() + 0.5
            edits = await asyncio.gather(
                *(
                    a.call("sustain", rooms=part[: max(0, round(opts.edit_fraction * len(part)
                                                                * opts.conn_per_room))],
                           writers_per_room=1,
                           segments=[[opts.edit_seconds, opts.edit_rate]], t0=t1,
                           id_base=2_000_000 + 100_000 * a.index, grace=opts.grace)
                    for a, part in zip(agents.all, parts, strict=True)
                )
            )  # fmt: skip
            await settle(server.pid, list(zip(agents.all, edits, strict=True)))
            status = await asyncio.gather(*(a.call("status") for a in agents.all))
    finally:
        await server.stop()
    delivery = merge_hists(edits, "delivery")
    exp = sum(r["expected_deliveries"] for r in edits)
    got = sum(r["deliveries"] for r in edits)
    writers = sum(
        min(len(p), round(opts.edit_fraction * len(p) * opts.conn_per_room)) for p in parts
    )
    closed = merge_counts(status, "closed")
    return [
        Metric(f"{label}: time to synced p50 ms", percentile(times, 50), "{:.1f}", "lower"),
        goal(Metric(f"{label}: time to synced p99 ms", percentile(times, 99), "{:.1f}", "lower"),
             "<", 100.0, "< 100 ms"),
        goal(Metric(f"{label}: failed connections", count - synced, "{:.0f}", "lower",
                    codes_text(failed) if failed else ""), "<=", 0, "0"),
        Metric(f"{label}: ramp ({opts.ramp_rate:.0f}/s) took s", wall, "{:.1f}", "lower",
               ratio=False),
        goal(Metric(f"{label}: server RSS KiB per connection (all processes)",
                    (rss1 - rss0) / synced if synced else None, "{:.1f}", "lower"),
             "<", 8.0, "< 8 KiB"),
        Metric(f"{label}: server CPU ms per connection", 1000.0 * cpu / synced if synced
               else None, "{:.2f}", "lower"),
        goal(Metric(f"{label}: edit ({writers} writers x {opts.edit_rate:g}/s): delivery p99 ms",
                    hist_percentile(delivery, 99), "{:.1f}", "lower"), "<", 100.0, "< 100 ms"),
        goal(Metric(f"{label}: edit: missing deliveries", exp - got, "{:.0f}", "lower",
                    f"of {exp}"), "<=", 0, "0"),
        goal(Metric(f"{label}: connections the server closed", sum(closed.values()), "{:.0f}",
                    "lower", codes_text(closed) if closed else ""), "<=", 0, "0"),
        *window.metrics(label),
    ]  # fmt: skip


async def open_rooms(
    opts: Options, agents: Agents, rooms: list[list[str]], per_room: int
) -> tuple[list[float], Counter[str]]:
    t0 = time.perf_counter() + 0.3
    opened = await asyncio.gather(
        *(
            a.call("open", rooms=part, per_room=per_room, rate=opts.ramp_rate / opts.agents,
                   t0=t0)
            for a, part in zip(agents.all, rooms, strict=True)
        )
    )  # fmt: skip
    failed = merge_counts(opened, "failed")
    if failed:
        raise RuntimeError(f"connections failed while setting up: {codes_text(failed)}")
    return [t for r in opened for t in r["times"]], failed


async def target_durable(
    opts: Options, spec: ServerSpec, run_dir: Path, workers: int = 1
) -> list[Metric]:
    """Target 2: an open loop at ``--dur-rate`` (the same offered load on every server,
    ``workers`` processes of ours with ``--dur-compare-workers``)."""
    label = f"2 durable {opts.dur_rate:.0f} updates/s, {opts.dur_rooms}x{opts.dur_writers}"
    writers_total = opts.dur_rooms * opts.dur_writers
    per_writer = opts.dur_rate / writers_total
    server = await start_server(spec, run_dir, workers)
    try:
        async with Agents(opts.agents) as agents, contextlib.AsyncExitStack() as stack:
            await agents.hello(server)
            rooms = [opts.room("d") for _ in range(opts.dur_rooms)]
            parts = split(rooms, opts.agents)
            await open_rooms(opts, agents, parts, opts.dur_writers)
            sink = await webhook_sink(stack, opts, spec, server, rooms)
            before = await commit_buckets(server)
            cpu0 = process_cpu_seconds(server.pid)
            window = LoadWindow(server.pid, agents)
            t0 = time.perf_counter() + 0.5
            with FsyncProbe(run_dir, opts.fsync_probe_hz) as probe:
                results = await asyncio.gather(
                    *(
                        a.call("sustain", rooms=part, writers_per_room=opts.dur_writers,
                               segments=[[opts.dur_seconds, per_writer]], t0=t0,
                               id_base=3_000_000 + 100_000 * a.index, grace=opts.grace)
                        for a, part in zip(agents.all, parts, strict=True)
                    )
                )  # fmt: skip
                await settle(server.pid, list(zip(agents.all, results, strict=True)))
            cpu = process_cpu_seconds(server.pid) - cpu0
            window.stop()
            after = await commit_buckets(server)
            hook_rows = await sink.rows(label) if sink is not None else []
    finally:
        await server.stop()
    echo = merge_hists(results, "echo")
    delivery = merge_hists(results, "delivery")
    sent = sum(r["sent"] for r in results)
    send_seconds = max(r["send_seconds"] for r in results)
    closed = merge_counts(results, "closed")
    fs = probe.times
    return [
        goal(Metric(f"{label}: updates sent/s (open loop)", sent / send_seconds, "{:.0f}",
                    "higher"), ">=", opts.dur_rate * 0.98, f">= {opts.dur_rate * 0.98:.0f}"),
        *loss_rows(label, results),
        Metric(f"{label}: echo (ack) p50 ms", hist_percentile(echo, 50), "{:.1f}", "lower"),
        goal(Metric(f"{label}: echo (ack) p99 ms", hist_percentile(echo, 99), "{:.1f}",
                    "lower"), "<", 100.0, "< 100 ms"),
        Metric(f"{label}: delivery p50 ms", hist_percentile(delivery, 50), "{:.1f}", "lower"),
        Metric(f"{label}: delivery p99 ms", hist_percentile(delivery, 99), "{:.1f}", "lower"),
        Metric(f"{label}: server CPU ms per 1,000 updates", 1e6 * cpu / sent if sent else None,
               "{:.0f}", "lower"),
        Metric(f"{label}: fsync probe p50 ms (the floor)", percentile(fs, 50), "{:.2f}", "",
               ratio=False),
        Metric(f"{label}: fsync probe p99 ms", percentile(fs, 99), "{:.2f}", "", ratio=False),
        Metric(f"{label}: our commit p50 ms (bucket bound)", bucket_percentile(before, after, 50),
               "{:.1f}", "", ratio=False),
        Metric(f"{label}: our commit p99 ms (bucket bound)", bucket_percentile(before, after, 99),
               "{:.1f}", "", ratio=False),
        goal(Metric(f"{label}: connections the server closed", sum(closed.values()), "{:.0f}",
                    "lower", codes_text(closed) if closed else ""), "<=", 0, "0"),
        *hook_rows,
        *window.metrics(label),
    ]  # fmt: skip


async def target_presence(opts: Options, spec: ServerSpec, run_dir: Path) -> list[Metric]:
    n = opts.presence_clients
    label = f"4 presence {n} clients x {opts.presence_rate:g}/s"
    server = await start_server(spec, run_dir, 1)
    try:
        async with Agents(opts.agents) as agents:
            await agents.hello(server)
            room = opts.room("p")
            shares = [n // opts.agents + (1 if i < n % opts.agents else 0)
                      for i in range(opts.agents)]  # fmt: skip
            t0 = time.perf_counter() + 0.3
            await asyncio.gather(
                *(a.call("open", rooms=[room], per_room=k, rate=opts.ramp_rate, t0=t0)
                  for a, k in zip(agents.all, shares, strict=True) if k)
            )  # fmt: skip
            window = LoadWindow(server.pid, agents)
            t1 = time.perf_counter() + 0.5
            active = [(a, k) for a, k in zip(agents.all, shares, strict=True) if k]
            finals = await asyncio.gather(
                *(a.call("presence", room=room, id_base=5_000_000 + 1000 * a.index,
                         rate=opts.presence_rate, seconds=opts.presence_seconds, t0=t1)
                  for a, _ in active)
            )  # fmt: skip
            final: dict[str, int] = {}
            for r in finals:
                final.update(r["final"])
            checks = await asyncio.gather(
                *(a.call("presence_check", final=final, grace=opts.grace) for a, _ in active)
            )
            window.stop()
    finally:
        await server.stop()
    latency = merge_hists(checks, "latency")
    missing = sum(r["missing_last_state"] for r in checks)
    closed = merge_counts(checks, "closed")
    return [
        Metric(f"{label}: awareness relay p50 ms", hist_percentile(latency, 50), "{:.1f}",
               "lower"),
        goal(Metric(f"{label}: awareness relay p99 ms", hist_percentile(latency, 99), "{:.1f}",
                    "lower"), "<", 50.0, "< 50 ms"),
        Metric(f"{label}: relayed states seen", sum(latency.values()), "{:.0f}", "",
               ratio=False),
        goal(Metric(f"{label}: last states missing", missing, "{:.0f}", "lower",
                    f"of {n * (n - 1)}"), "<=", 0, "0"),
        goal(Metric(f"{label}: connections the server closed", sum(closed.values()), "{:.0f}",
                    "lower", codes_text(closed) if closed else ""), "<=", 0, "0"),
        *window.metrics(label),
    ]  # fmt: skip


async def target_workers(
    opts: Options, spec: ServerSpec, run_dir: Path, workers: int
) -> list[Metric]:
    """Target 5: run.py's throughput 10x10 and fan-out 100 on one or several processes."""
    out: list[Metric] = []
    runners: list[tuple[str, Callable[[Target], Awaitable[list[Metric]]]]] = [
        ("throughput", partial(loadgen.throughput, rooms=10, writers=10,
                               duration=opts.compare_seconds, window=8, budget=20_000)),
        ("fanout", partial(loadgen.fanout, readers=100, rate=50.0,
                           duration=opts.compare_seconds)),
    ]  # fmt: skip
    for name, runner in runners:
        server = await start_server(spec, run_dir / name, workers)
        try:
            target = Target(server.host, server.port, server.pid, spec.dialect)
            metrics = await runner(target)
        finally:
            await server.stop()
        # Every room converged, on one process or several: one that did not is a bug (its
        # rooms and what each missed are in the error), never a figure.
        loadgen.check_converged(metrics, f"{spec.name} ({workers} process(es))")
        for m in metrics:
            if "noise" in m.name or "load-generator" in m.name or "busy after" in m.name:
                continue
            out.append(Metric(f"5 workers: {m.name}", m.value, m.fmt, m.better, m.note))
    return out


def standard_sizes(opts: Options) -> Sizes:
    """``run.py``'s sizes for target 6 (``--std-size``), with target 3's fan-out sizes, so
    a run of both measures fan-out once."""
    base = {"full": Sizes(), "quick": Sizes.quick(), "tiny": TINY_STANDARD}[opts.std_size]
    return replace(base, fanout_readers=tuple(opts.fanout_readers), fanout_rate=opts.fanout_rate,
                   fanout_seconds=opts.fanout_seconds)  # fmt: skip


TINY_STANDARD = Sizes(
    fanout_seconds=1.0, tp_rooms=2, tp_writers=3, tp_seconds=1.0, tp_budget=3000,
    conn_sizes=(100,), cold_updates=300, cold_restarts=1, presence_clients=(10,),
    presence_rounds=10,
)  # fmt: skip
"""Target 6 at a few seconds per scenario (``--tiny``)."""

STANDARD = "6 standard: "
"""Target 6's rows are ``run.py``'s, under this prefix."""


async def run_scenario(
    opts: Options,
    spec: ServerSpec,
    run_dir: Path,
    label: str,
    runner: Runner,
    prefixes: Sequence[str],
    probe: bool = False,
) -> list[Metric]:
    """One size of one of ``run.py``'s scenarios on a fresh ``spec`` server (``run.run_one``,
    the standard comparison's own code), its rows under each of ``prefixes``; with ``probe``,
    the fsync floor measured beside it."""
    os.makedirs(run_dir)
    commits: list[Metric] = []
    if probe and spec.name.startswith("ours") and "workers" not in spec.name:
        runner = with_commits(runner, commits)
    with contextlib.ExitStack() as stack:
        fsync = stack.enter_context(FsyncProbe(run_dir, opts.fsync_probe_hz)) if probe else None
        try:
            metrics = await run_one(spec, label, runner, run_dir, "raw", Profiler(None, 0.0))
        finally:
            gc.disable()  # run_one turns the driver's collector back on
    if fsync is not None:
        name = metrics[0].name.split(":", 1)[0] if metrics else label
        fs = fsync.times
        at = next((i for i, m in enumerate(metrics) if "missing" in m.name), len(metrics))
        echo = next((m.value for m in metrics if "writer echo (ack) p50" in m.name), None)
        floor = percentile(fs, 50)
        metrics[at:at] = [
            Metric(f"{name}: fsync probe p50 ms (the floor)", floor, "{:.2f}", "",
                   ratio=False),
            # Issue 40, goal 3: what the echo costs besides the disk (ours echoes after the
            # commit's fsync; the peers before they write).
            Metric(f"{name}: writer echo p50 minus fsync probe p50 ms (the non-disk part)",
                   echo - floor if echo is not None and floor is not None else None,
                   "{:.2f}", "lower"),
            Metric(f"{name}: fsync probe p99 ms", percentile(fs, 99), "{:.2f}", "", ratio=False),
            *(replace(m, name=f"{name}: {m.name}") for m in commits),
        ]  # fmt: skip
    out: list[Metric] = []
    for prefix in prefixes:
        for m in metrics:
            row = replace(m, name=prefix + m.name)
            if prefix == STANDARD and len(prefixes) > 1 and not (row.better and row.ratio):
                continue  # target 3's rows just above have the CPU and fsync figures
            if prefix == STANDARD and row.better and row.ratio:
                row = ahead(row)
            elif prefix != STANDARD:
                if "delivery latency p50" in m.name or "delivery latency p99" in m.name:
                    row = ahead(row, ("y-websocket",))
                elif "missing" in m.name:
                    row = goal(row, "<=", 0, "0")
            out.append(row)
    return out


async def target_burst(opts: Options, spec: ServerSpec, run_dir: Path) -> list[Metric]:
    steady = opts.burst_steady_rate
    label = f"7 burst {opts.burst_factor:g}x {steady:.0f} updates/s for {opts.burst_seconds:g} s"
    writers_total = opts.burst_rooms * 10
    per_writer = steady / writers_total
    segments = [
        [opts.burst_before, per_writer],
        [opts.burst_seconds, per_writer * opts.burst_factor],
        [opts.burst_after, per_writer],
    ]
    server = await start_server(spec, run_dir, 1)
    try:
        async with Agents(opts.agents + 1) as agents, contextlib.AsyncExitStack() as stack:
            await agents.hello(server)
            main = Agents(0)
            main.all = agents.all[:-1]
            extra = agents.all[-1]
            rooms = [opts.room("b") for _ in range(opts.burst_rooms)]
            parts = split(rooms, opts.agents)
            await open_rooms(opts, main, parts, 10)
            planners_room = opts.room("seat")
            guests_room = opts.room("rsvp")
            sink = await webhook_sink(stack, opts, spec, server, [guests_room, *rooms])
            await extra.call("open", rooms=[planners_room], per_room=2, rate=0.0, t0=0.0)
            t0 = time.perf_counter() + 0.5
            burst_at = t0 + opts.burst_before

            async def guests() -> tuple[dict[str, Any], dict[str, Any]]:
                # 200 guests open the RSVP page at once, then each RSVPs once.
                room = guests_room
                await asyncio.sleep(max(0.0, burst_at - time.perf_counter()))
                opened = await extra.call(
                    "open", rooms=[room], per_room=opts.burst_guests, rate=0.0, t0=burst_at
                )
                rsvp = await extra.call(
                    "sustain",
                    rooms=[room],
                    writers_per_room=opts.burst_guests,
                    segments=[[1.0, 1.0]],
                    t0=time.perf_counter() + 0.05,
                    id_base=7_000_000,
                    grace=opts.grace,
                )
                return opened, rsvp

            cpu0 = process_cpu_seconds(server.pid)

            window = LoadWindow(server.pid, agents)
            results, (g_open, g_rsvp), planners = await asyncio.gather(
                asyncio.gather(
                    *(
                        a.call("sustain", rooms=part, writers_per_room=10, segments=segments,
                               t0=t0, id_base=6_000_000 + 100_000 * a.index, grace=opts.grace)
                        for a, part in zip(main.all, parts, strict=True)
                    )
                ),
                guests(),
                extra.call("sustain", rooms=[planners_room], writers_per_room=2,
                           segments=[[opts.burst_before, 0.0],
                                     [opts.burst_seconds, 20.0]],
                           t0=t0, id_base=7_500_000, grace=opts.grace),
            )  # fmt: skip
            await settle(
                server.pid,
                [*zip(main.all, results, strict=True), (extra, g_rsvp), (extra, planners)],
            )
            cpu = process_cpu_seconds(server.pid) - cpu0
            window.stop()
            status = await asyncio.gather(*(a.call("status") for a in agents.all))
            hook_rows = await sink.rows(label) if sink is not None else []
    finally:
        await server.stop()
    everything = [*results, g_rsvp, planners]
    sent = sum(r["sent"] for r in everything)
    refusals = merge_counts(status, "closed") + merge_counts(status, "failed")
    undocumented = sum(v for k, v in refusals.items() if k not in DOCUMENTED_REFUSALS)
    by_sec: dict[int, Hist] = {}
    for r in results:
        for sec, h in r["echo_by_sec"].items():
            by_sec.setdefault(int(sec), Counter()).update(hist_load(h))
    before_end = int(opts.burst_before)
    burst_end = int(opts.burst_before + opts.burst_seconds)
    pre: Hist = Counter()
    during: Hist = Counter()
    for sec, h in by_sec.items():
        if 1 <= sec < before_end:  # the first second warms up
            pre.update(h)
        elif before_end <= sec < burst_end:
            during.update(h)
    pre_p99 = hist_percentile(pre, 99)
    recovery: float | None = None
    if pre_p99 is not None:
        bound = max(2.0 * pre_p99, pre_p99 + 5.0)
        after = sorted(s for s in by_sec if s >= burst_end)
        recovery = float(len(after)) if after else None
        for i, sec in enumerate(after):
            if all((hist_percentile(by_sec[s], 99) or 0.0) <= bound for s in after[i:]):
                recovery = float(sec - burst_end)
                break
    guest_times = g_open["times"]
    return [
        Metric(f"{label}: echo p99 before the burst ms", pre_p99, "{:.1f}", "lower"),
        Metric(f"{label}: echo p99 during the burst ms", hist_percentile(during, 99), "{:.1f}",
               "lower"),
        Metric(f"{label}: recovery after the burst s (echo p99 back within 2x)", recovery,
               "{:.0f}", "lower", "" if recovery is not None or pre_p99 is None
               else "never within the run"),
        *loss_rows(label, everything),
        Metric(f"{label}: refusals (closed or refused, by code)", sum(refusals.values()),
               "{:.0f}", "lower", codes_text(refusals) if refusals else ""),
        goal(Metric(f"{label}: refusals other than 1013/429", undocumented, "{:.0f}", "lower"),
             "<=", 0, "0"),
        Metric(f"{label}: {opts.burst_guests} guests joining at once: synced p99 ms",
               percentile(guest_times, 99), "{:.1f}", "lower"),
        Metric(f"{label}: server CPU ms per 1,000 updates", 1e6 * cpu / sent if sent else None,
               "{:.0f}", "lower"),
        *hook_rows,
        *window.metrics(label),
    ]  # fmt: skip


# -- driver ----------------------------------------------------------------------------------


Job = Callable[[Path], Awaitable[list[Metric]]]


def jobs_for(opts: Options, specs: dict[str, ServerSpec]) -> list[tuple[str, str, Job]]:
    """(row group, column, job): which server runs which target."""
    out: list[tuple[str, str, Job]] = []
    singles = [s for s in opts.servers if s in ("ours", "ours-baseline") or s in PEERS]
    wk = f"ours-{opts.workers}workers"
    cw = f"ours-{opts.compare_workers}workers"
    for t in opts.targets:
        if t == "connections":
            for s in singles:
                job = partial(target_connections, opts, specs[s], count=opts.conn_single, workers=1)
                out.append((t, s, job))
            if "ours" in opts.servers and opts.workers > 1:
                job = partial(target_connections, opts, specs[wk], count=opts.conn_workers,
                              workers=opts.workers)  # fmt: skip
                out.append((t, "ours", job))
        elif t == "durable":
            out.extend((t, s, partial(target_durable, opts, specs[s])) for s in singles)
            if "ours" in opts.servers and opts.dur_compare_workers:
                job = partial(target_durable, opts, specs[cw], workers=opts.compare_workers)
                out.append((t, cw, job))
        elif t == "presence":
            out.extend((t, s, partial(target_presence, opts, specs[s])) for s in singles)
        elif t == "workers" and "ours" in opts.servers:
            out.append((t, "ours", partial(target_workers, opts, specs["ours"], workers=1)))
            job = partial(target_workers, opts, specs[cw], workers=opts.compare_workers)
            out.append((t, cw, job))
        elif t == "burst":
            out.extend((t, s, partial(target_burst, opts, specs[s])) for s in singles)
        elif t in ("fanout", "standard"):
            # One job per scenario size and server, the servers taking turns (as in run.py).
            # Target 3 is run.py's fan-out with the fsync probe; target 6 reuses its runs
            # when both are asked for.
            both = "fanout" in opts.targets and "standard" in opts.targets
            for name in ("fanout",) if t == "fanout" else SCENARIOS:
                if t == "standard" and name == "fanout" and both:
                    continue
                if t == "fanout":
                    prefixes = ["3 ", STANDARD] if both else ["3 "]
                else:
                    prefixes = [STANDARD]
                for label, runner in scenario_runs(name, standard_sizes(opts)):
                    for s in singles:
                        job = partial(
                            run_scenario,
                            opts,
                            specs[s],
                            label=label,
                            runner=runner,
                            prefixes=prefixes,
                            probe=t == "fanout",
                        )
                        out.append((t, s, job))
    return out  # fmt: skip


def render(results: dict[str, dict[str, Metric]], columns: list[str]) -> str:
    rows: list[str] = []
    for per in results.values():
        for name in per:
            if name not in rows:
                rows.append(name)
    peers = [c for c in columns if c in PEERS or c.startswith("ours-")]
    header = ["metric", "goal", *columns, "ours: goal met", *[f"ours / {p}" for p in peers]]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    for row in rows:
        g = GOALS.get(row)
        cells = [row, g.text if g else ""]
        for c in columns:
            m = results.get(c, {}).get(row)
            cells.append(m.text() if m else "")
        ours = results.get("ours", {}).get(row)
        if ours is None:
            ours = next((results[c][row] for c in columns
                         if c.startswith("ours") and row in results.get(c, {})), None)  # fmt: skip
        singles = [c for c in columns if c in PEERS]
        others = {c: results.get(c, {}).get(row) for c in singles}
        met = g.met_against(ours, others, singles) if g else None
        cells.append("" if met is None else ("met" if met else "**not met**"))
        base = results.get("ours", {}).get(row)
        for p in peers:
            theirs = results.get(p, {}).get(row)
            if not (base and theirs and base.ratio and base.value is not None
                    and theirs.value is not None):  # fmt: skip
                cells.append("")
            elif theirs.value == 0:
                cells.append("=" if base.value == 0 else "")
            else:
                cells.append(f"{base.value / theirs.value:.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _write(path: Path, text: str) -> None:
    path.write_text(text)


def median_metric(metrics: list[Metric]) -> Metric:
    from benchmarks.run import median_metric as median

    return median(metrics)


SETUP_SECONDS = 8.0
"""A run's fixed cost in ``estimate``: server start and idle wait, agents, closing."""

DRAIN_SECONDS = {"pycrdt-websocket": (35.0, 17.0), "y-websocket": (43.0, 3.0)}
"""Seconds a server stays busy after the last echo of ``run.py``'s throughput and coldload
(its writes queued behind the echo; the driver waits for them, at most 180 s) at run.py's
full sizes, as measured in its run of 2026-11-22 (benchmarks/README.md), scaled by the
amount of work; on a loaded machine they grew to 39 and 181 s at the quick sizes."""


def estimate(opts: Options, repeat: int) -> list[tuple[str, int, float]]:
    """(target, runs, seconds) the run would take at ``opts``, when nothing is lost (a run
    missing deliveries waits up to ``--grace`` more). Calibrated on measured runs: the
    figures in benchmarks/README.md ("How long a run takes")."""
    singles = len([s for s in opts.servers if s == "ours" or s in PEERS])
    ours = "ours" in opts.servers
    ramp = max(opts.ramp_rate, 1.0)
    sizes = standard_sizes(opts)
    out: list[tuple[str, int, float]] = []
    for t in opts.targets:
        if t == "connections":
            one = SETUP_SECONDS + opts.conn_single / ramp * 1.8 + opts.edit_seconds
            runs, secs = singles, singles * one
            if ours and opts.workers > 1:
                runs += 1
                secs += SETUP_SECONDS + opts.conn_workers / ramp * 1.8 + opts.edit_seconds
        elif t == "durable":
            runs = singles
            conns = opts.dur_rooms * opts.dur_writers
            secs = singles * (SETUP_SECONDS + conns / ramp + opts.dur_seconds)
        elif t == "fanout":
            runs = singles * len(opts.fanout_readers)
            secs = runs * (4.0 + opts.fanout_seconds)
        elif t == "presence":
            runs = singles
            secs = singles * (SETUP_SECONDS + opts.presence_clients / ramp + opts.presence_seconds)
        elif t == "workers":
            runs = 2 * ours
            secs = runs * 2 * (SETUP_SECONDS + opts.compare_seconds + 8.0)
        elif t == "standard":
            per = 0.0
            runs = 0
            for name in SCENARIOS:
                if name == "fanout" and "fanout" in opts.targets:
                    continue
                for label, _ in scenario_runs(name, sizes):
                    runs += singles
                    if name == "fanout":
                        per += 4.0 + sizes.fanout_seconds
                    elif name == "throughput":
                        per += 4.0 + sizes.tp_seconds + 10.0  # drain, convergence, idle wait
                        per += sum(DRAIN_SECONDS.get(s, (0.0, 0.0))[0] for s in opts.servers
                                   ) / max(1, singles) * sizes.tp_seconds / 10.0  # fmt: skip
                    elif name == "connections":
                        per += 4.0 + int(label.split("-")[1]) / 1500.0
                    elif name == "coldload":
                        per += 4.0 + sizes.cold_updates / 8000.0 + sizes.cold_restarts * 1.5
                        per += sum(DRAIN_SECONDS.get(s, (0.0, 0.0))[1] for s in opts.servers
                                   ) / max(1, singles) * sizes.cold_updates / 10_000  # fmt: skip
                    else:
                        per += 4.0 + sizes.presence_rounds / sizes.presence_rate
            secs = singles * per
        elif t == "burst":
            runs = singles
            secs = singles * (SETUP_SECONDS + opts.burst_rooms * 10 / ramp + opts.burst_before
                              + opts.burst_seconds + opts.burst_after)  # fmt: skip
        else:
            continue
        out.append((t, runs * repeat, secs * repeat))
    return out


def estimate_text(parts: list[tuple[str, int, float]]) -> str:
    total = sum(s for _, _, s in parts)
    each = ", ".join(f"{t} {s / 60:.0f} min ({n} runs)" for t, n, s in parts)
    return f"estimated time: {total / 60:.0f} min ({each}), more if runs lose updates (--grace)"


async def main_async(
    opts: Options,
    repeat: int,
    keep: bool,
    json_out: Path | None,
    max_minutes: float = 0.0,
) -> int:
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    from benchmarks.run import loadavg, machine

    specs = scale_specs(opts)
    for s in opts.servers:
        if s not in specs:
            raise SystemExit(f"unknown server {s!r}")
        if s in ("y-websocket", "hocuspocus") and not node_ready():
            raise SystemExit(f"{s} needs `npm ci` in benchmarks/node (see benchmarks/README.md)")
    info = machine()
    print("# crdt-server scale profile (issue 22)\n", flush=True)
    print(", ".join(f"{k}: {v}" for k, v in info.items()), flush=True)
    print(estimate_text(estimate(opts, repeat)), flush=True)
    runs: dict[str, dict[str, list[Metric]]] = {}
    columns: list[str] = []
    errors: list[str] = []
    skipped: list[str] = []
    run_root = Path(tempfile.mkdtemp(prefix="crdt-scale-"))
    started = time.perf_counter()
    deadline = started + 60.0 * max_minutes if max_minutes > 0 else math.inf
    gc.collect()
    gc.disable()
    try:
        jobs = jobs_for(opts, specs)
        for attempt in range(1, repeat + 1):
            for n, (group, column, job) in enumerate(jobs):
                if column not in columns:
                    columns.append(column)
                t0 = time.perf_counter()
                if t0 >= deadline:
                    skipped.append(f"{column} {group}#{attempt}")
                    continue
                try:
                    async with asyncio.timeout(min(3600.0, deadline - t0)):
                        metrics = await job(run_root / f"{n}-{column}-{group}-{attempt}")
                except Exception as exc:
                    if isinstance(exc, TimeoutError) and time.perf_counter() >= deadline - 1.0:
                        # Cut at --max-minutes: its rows keep the runs that finished.
                        skipped.append(f"{column} {group}#{attempt} (cut at --max-minutes)")
                        print(f"  {group:12} {column:18} cut at --max-minutes",
                              file=sys.stderr, flush=True)  # fmt: skip
                        continue
                    errors.append(f"{column} {group}#{attempt}: {exc!r}")
                    print(f"  {group:12} {column:18} FAILED: {exc!r}", file=sys.stderr,
                          flush=True)  # fmt: skip
                    continue
                for m in metrics:
                    runs.setdefault(column, {}).setdefault(m.name, []).append(m)
                took = time.perf_counter() - t0
                print(f"  {group:12} {column:18} #{attempt} done in {took:5.1f} s",
                      file=sys.stderr, flush=True)  # fmt: skip
    finally:
        gc.enable()
        if keep:
            print(f"run directory kept: {run_root}", file=sys.stderr)
        else:
            shutil.rmtree(run_root, ignore_errors=True)
    results = {c: {k: median_metric(v) for k, v in r.items()} for c, r in runs.items()}
    print()
    print(render(results, columns))
    print()
    sizes = {k: v for k, v in vars(opts).items() if not k.startswith("_") and k != "run_id"}
    print(f"sizes: {json.dumps(sizes)}")
    print(f"repeat: {repeat} (cells are medians)")
    print(f"total time: {time.perf_counter() - started:.0f} s")
    print(f"loadavg at end: {loadavg()}")
    if skipped:
        print(f"\nnot run (--max-minutes {max_minutes:g}): {len(skipped)} runs")
        for k in skipped:
            print(f"- {k}")
    if errors:
        print("\nerrors:")
        for e in errors:
            print(f"- {e}")
    if json_out:
        _write(json_out, json.dumps({
            "machine": info, "sizes": sizes, "repeat": repeat, "errors": errors,
            "skipped": skipped,
            "runs": {c: {k: [m.value for m in ms] for k, ms in r.items()}
                     for c, r in runs.items()},
        }, indent=2))  # fmt: skip
    return 1 if errors else 0


PRESETS: dict[str, dict[str, Any]] = {
    "small": dict(conn_single=2000, conn_workers=4000, ramp_rate=500.0, edit_seconds=20.0,
                  dur_rooms=100, dur_rate=1000.0, dur_seconds=30.0, presence_seconds=15.0,
                  compare_seconds=10.0, burst_rooms=100, burst_steady_rate=100.0,
                  burst_seconds=20.0, burst_before=10.0, burst_after=20.0,
                  fanout_seconds=5.0, std_size="quick"),
    "tiny": dict(conn_single=40, conn_workers=60, workers=2, compare_workers=2, agents=2,
                 ramp_rate=200.0, edit_fraction=0.1, edit_seconds=2.0, dur_rooms=4,
                 dur_writers=3, dur_rate=60.0, dur_seconds=2.0, presence_clients=6,
                 presence_seconds=2.0, compare_seconds=1.0, burst_rooms=3,
                 burst_steady_rate=15.0, burst_seconds=2.0, burst_before=2.0,
                 burst_after=2.0, burst_guests=10, grace=15.0, fanout_seconds=1.0,
                 std_size="tiny", webhook_weddings=2),
}  # fmt: skip


def parse(argv: Sequence[str] | None = None) -> tuple[Options, argparse.Namespace]:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--servers", default="ours," + ",".join(PEERS))
    p.add_argument("--targets", default=",".join(TARGETS), help=", ".join(TARGETS))
    p.add_argument("--small", action="store_true", help="2,000 connections, 1,000 updates/s...")
    p.add_argument("--tiny", action="store_true", help="a few seconds (the test's smoke run)")
    p.add_argument("--repeat", type=int, default=3, help="runs per cell (medians)")
    p.add_argument("--agents", type=int, default=4, help="load-generator processes")
    p.add_argument("--ramp-rate", type=float, default=1000.0, help="connections opened per s")
    p.add_argument("--conn-single", type=int, default=18_000)
    p.add_argument("--conn-workers", type=int, default=50_000)
    p.add_argument("--workers", type=int, default=3, help="server processes for --conn-workers")
    p.add_argument("--conn-per-room", type=int, default=10)
    p.add_argument("--edit-fraction", type=float, default=0.01)
    p.add_argument("--edit-rate", type=float, default=1.0, help="updates/s per editor")
    p.add_argument("--edit-seconds", type=float, default=60.0)
    p.add_argument("--dur-rooms", type=int, default=1000)
    p.add_argument("--dur-writers", type=int, default=10)
    p.add_argument("--dur-rate", type=float, default=16_700.0, help="updates/s in all")
    p.add_argument(
        "--dur-compare-workers",
        action="store_true",
        help="also run target 2 on --compare-workers processes (the same load)",
    )
    p.add_argument("--dur-seconds", type=float, default=300.0)
    p.add_argument("--presence-clients", type=int, default=100)
    p.add_argument("--presence-rate", type=float, default=5.0, help="cursor moves/s per client")
    p.add_argument("--presence-seconds", type=float, default=30.0)
    p.add_argument("--compare-workers", type=int, default=os.cpu_count() or 2)
    p.add_argument("--compare-seconds", type=float, default=10.0)
    p.add_argument("--burst-rooms", type=int, default=1000, help="rooms of 10 writers")
    p.add_argument("--burst-steady-rate", type=float, default=1670.0, help="updates/s in all")
    p.add_argument("--burst-factor", type=float, default=10.0)
    p.add_argument("--burst-seconds", type=float, default=60.0)
    p.add_argument("--burst-before", type=float, default=30.0)
    p.add_argument("--burst-after", type=float, default=60.0)
    p.add_argument("--burst-guests", type=int, default=200)
    p.add_argument("--grace", type=float, default=30.0, help="wait for late deliveries, s")
    p.add_argument(
        "--webhook-weddings",
        type=int,
        default=10,
        help="targets 2 and 7, ours: weddings with a webhook endpoint (every event type)",
    )
    p.add_argument("--fanout-readers", default="10,100", help="target 3: readers per run")
    p.add_argument("--fanout-rate", type=float, default=50.0, help="target 3: updates/s")
    p.add_argument("--fanout-seconds", type=float, default=10.0, help="target 3: seconds")
    p.add_argument(
        "--std-size",
        choices=("full", "quick", "tiny"),
        default="full",
        help="target 6: run.py's sizes (full), its --quick ones, or a few seconds",
    )
    p.add_argument(
        "--max-minutes",
        type=float,
        default=0.0,
        help="stop starting runs after this long (0: no bound); see --estimate",
    )
    p.add_argument(
        "--estimate",
        action="store_true",
        help="print how long the run would take, per target, and exit",
    )
    p.add_argument(
        "--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")
    )
    p.add_argument("--json", type=Path)
    p.add_argument("--keep", action="store_true")
    p.add_argument("--agent", action="store_true", help=argparse.SUPPRESS)
    # Defaults first, then the preset, then whatever was given explicitly.
    args = p.parse_args(argv)
    explicit = {k for k, v in vars(args).items() if v != p.get_default(k)}
    for preset in ("tiny", "small"):
        if getattr(args, preset):
            for k, v in PRESETS[preset].items():
                if k not in explicit:
                    setattr(args, k, v)
    names = {f.name for f in Options.__dataclass_fields__.values()}
    params = {k: v for k, v in vars(args).items() if k in names}
    params["servers"] = [s.strip() for s in args.servers.split(",") if s.strip()]
    params["targets"] = [t.strip() for t in args.targets.split(",") if t.strip()]
    if isinstance(params["fanout_readers"], str):
        params["fanout_readers"] = [int(x) for x in params["fanout_readers"].split(",") if x]
    for t in params["targets"]:
        if t not in TARGETS:
            raise SystemExit(f"unknown target {t!r}; known: {', '.join(TARGETS)}")
    return Options(**params), args


def main(argv: Sequence[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    if "--agent" in argv:
        asyncio.run(agent_main())
        return 0
    opts, args = parse(argv)
    if args.estimate:
        print(estimate_text(estimate(opts, args.repeat)))
        return 0
    try:
        return asyncio.run(main_async(opts, args.repeat, args.keep, args.json, args.max_minutes))
    except asyncio.CancelledError:
        print("interrupted; every server started was stopped", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
