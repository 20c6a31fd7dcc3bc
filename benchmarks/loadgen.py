"""The load generator: lean y-protocols clients and the five scenarios.

Every client is a :class:`YPeer`: one WebSocket (see :mod:`benchmarks.wsclient`) that sends
sync step 1 on open, answers the server's step 1 with an empty step 2 and hands updates and
awareness payloads to per-scenario callbacks. Nothing is applied to a document on the hot
path: deliveries are identified by the clock ranges in the received update
(:func:`crdt_server.codec.updates.inspect_update`), which is exact because every writer has its own
client id and its update ``i`` is one one-character Text insert at clock ``i``.

Update frames are real Yjs updates made by pycrdt before a scenario starts
(:func:`text_updates`), encoded once and sent as they are.

Each scenario returns a list of :class:`Metric`; every loop is bounded by a count and every
wait by a deadline.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import math
import os
import re
import resource
import secrets
import statistics
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache

from pycrdt import Doc, Text, TransactionEvent

from benchmarks.wsclient import WireConnection, open_connection
from crdt_server.codec.protocol import encode_awareness, encode_sync_step1, encode_update
from crdt_server.codec.protocol import write_var_string as _var_string
from crdt_server.codec.protocol import write_var_uint as _var_uint
from crdt_server.codec.updates import inspect_update
from crdt_server.wire.affinity import owner

__all__ = [
    "Metric",
    "Target",
    "coldload",
    "connections",
    "fanout",
    "overload",
    "presence",
    "text_updates",
    "throughput",
]

DOC = "timeline"
EMPTY_STATE_VECTOR = b"\x00"
EMPTY_UPDATE = b"\x00\x00"
STEP1 = encode_sync_step1(EMPTY_STATE_VECTOR)
EMPTY_STEP2 = bytes((0, 1)) + _var_uint(len(EMPTY_UPDATE)) + EMPTY_UPDATE
CONNECT_TIMEOUT = 30.0
SYNC_TIMEOUT = 30.0


# -- metrics and CPU --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Metric:
    """One table row's value for one server. ``better`` is ``"lower"``, ``"higher"`` or ``""``."""

    name: str
    value: float | None
    fmt: str = "{:.1f}"
    better: str = ""
    note: str = ""
    ratio: bool = True
    """Whether an ``ours / peer`` ratio of this row means anything."""

    def text(self) -> str:
        if self.value is None:
            return "n/a" + (f" ({self.note})" if self.note else "")
        out = self.fmt.format(self.value)
        return out + (f" ({self.note})" if self.note else "")


_TICKS = os.sysconf("SC_CLK_TCK")


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (``crdt-server serve --workers N``: the supervisor
    and its worker processes), from ``/proc/PID/task/*/children``."""
    out: list[int] = []
    todo = [pid]
    while todo and len(out) < 4096:
        current = todo.pop()
        out.append(current)
        try:
            tasks = os.listdir(f"/proc/{current}/task")
        except OSError:
            continue
        for tid in tasks:
            try:
                with open(f"/proc/{current}/task/{tid}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
            except OSError:
                continue
    return out


def _one_cpu_seconds(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
    except OSError:
        return 0.0  # exited in between
    fields = raw[raw.rindex(b")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def process_cpu_seconds(pid: int) -> float:
    """user + system CPU seconds of a process (all its threads) and of its child processes
    (the workers of ``--workers N``), from /proc/PID/stat."""
    return sum(_one_cpu_seconds(p) for p in process_tree(pid))


def _one_rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return 0
    return 0


def process_rss_kib(pid: int) -> int:
    """VmRSS of a process plus that of its child processes (summed over the workers)."""
    total = sum(_one_rss_kib(p) for p in process_tree(pid))
    if not total:
        raise RuntimeError(f"no VmRSS for pid {pid}")
    return total


def machine_busy_seconds() -> float:
    """CPU seconds all processes used (all cores), from the first line of /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    busy = sum(fields[:8]) - idle  # user nice system idle iowait irq softirq steal
    return busy / _TICKS


def self_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class CpuWindow:
    """CPU use of the server and of this process between ``start`` and ``stop``."""

    pid: int
    wall0: float = 0.0
    server0: float = 0.0
    client0: float = 0.0
    machine0: float = 0.0
    wall: float = 0.0
    server: float = 0.0
    client: float = 0.0
    machine: float = 0.0

    def start(self) -> CpuWindow:
        self.wall0 = time.perf_counter()
        self.server0 = process_cpu_seconds(self.pid)
        self.client0 = self_cpu_seconds()
        self.machine0 = machine_busy_seconds()
        return self

    def stop(self) -> CpuWindow:
        self.wall = time.perf_counter() - self.wall0
        self.server = process_cpu_seconds(self.pid) - self.server0
        self.client = self_cpu_seconds() - self.client0
        self.machine = machine_busy_seconds() - self.machine0
        return self

    @property
    def other_pct(self) -> float:
        """CPU used by every other process on the machine (noise), % of one core."""
        other = max(0.0, self.machine - self.server - self.client)
        return 100.0 * other / self.wall if self.wall > 0 else 0.0

    @property
    def server_pct(self) -> float:
        return 100.0 * self.server / self.wall if self.wall > 0 else 0.0

    @property
    def client_pct(self) -> float:
        return 100.0 * self.client / self.wall if self.wall > 0 else 0.0

    def metrics(self, prefix: str) -> list[Metric]:
        return [
            Metric(f"{prefix}: server CPU % of one core", self.server_pct, "{:.0f}", ""),
            Metric(
                f"{prefix}: load-generator CPU % of one core",
                self.client_pct,
                "{:.0f}",
                ratio=False,
            ),
            Metric(
                f"{prefix}: other processes CPU % (noise)", self.other_pct, "{:.0f}", ratio=False
            ),
        ]


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100) of unsorted values; None if empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return ordered[rank - 1]


def latency_metrics(prefix: str, seconds: Sequence[float]) -> list[Metric]:
    ms = [s * 1000.0 for s in seconds]
    out = [Metric(f"{prefix} p{q} ms", percentile(ms, q), "{:.2f}", "lower") for q in (50, 95, 99)]
    out.append(Metric(f"{prefix} max ms", max(ms) if ms else None, "{:.1f}", "lower"))
    return out


# -- updates ----------------------------------------------------------------------------


@cache
def text_updates(client_id: int, count: int, root: str = "t") -> tuple[bytes, ...]:
    """``count`` real Yjs updates by pycrdt: update ``i`` appends one character at clock ``i``."""
    doc: Doc[Text] = Doc(client_id=client_id)
    text = doc.get(root, type=Text)
    updates: list[bytes] = []

    def keep(event: TransactionEvent) -> None:
        updates.append(event.update)

    subscription = doc.observe(keep)
    alphabet = "abcdefghijklmnopqrstuvwxyz"
    for i in range(count):
        text += alphabet[i % 26]
    doc.unobserve(subscription)
    assert len(updates) == count
    return tuple(updates)


@cache
def update_messages(client_id: int, count: int) -> tuple[bytes, ...]:
    """:func:`text_updates` as y-protocols sync update messages."""
    return tuple(encode_update(u) for u in text_updates(client_id, count))


def clock_ranges(update: bytes) -> dict[int, tuple[int, int]]:
    return inspect_update(update).structs


def awareness_message(client_id: int, clock: int, state: dict[str, object]) -> bytes:
    entry = _var_uint(client_id) + _var_uint(clock) + _var_string(json.dumps(state))
    return encode_awareness(_var_uint(1) + entry)


def awareness_ids(payload: bytes) -> list[tuple[int, int]]:
    """(client id, clock) of each entry of an awareness payload; states are skipped."""
    out: list[tuple[int, int]] = []
    count, pos = _read_uint(payload, 0)
    for _ in range(min(count, 1 << 16)):
        client, pos = _read_uint(payload, pos)
        clock, pos = _read_uint(payload, pos)
        size, pos = _read_uint(payload, pos)
        pos += size
        out.append((client, clock))
    return out


def _read_uint(data: bytes, pos: int) -> tuple[int, int]:
    value = 0
    shift = 0
    for _ in range(8):
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
    raise ValueError("varuint too long")


# -- the target server and the clients ----------------------------------------------------


@dataclass
class Target:
    """Where the scenarios connect, and how to reach the server process."""

    host: str
    port: int
    pid: int
    dialect: str = "y-websocket"
    """``y-websocket`` (one document per socket) or ``hocuspocus`` (document-name prefix)."""
    client: str = "raw"
    """WebSocket transport of the load generator: ``raw`` or ``websockets``."""
    source: str | None = None
    """Local address to bind before connecting (``127.0.0.x``), so a load generator spread
    over several addresses does not run out of ephemeral ports."""
    restart: Callable[[], Awaitable[None]] | None = None
    """Stop and start the server on the same data directory (updates host/port/pid)."""
    collab_path: str = "/"
    """Where a ``hocuspocus`` socket opens (Hocuspocus: ``/``; crdt-server: ``/collab``)."""
    run_id: str = field(default_factory=lambda: secrets.token_hex(3))
    _rooms: int = 0

    def room(self, label: str) -> str:
        """A fresh wedding id, unique in this run."""
        self._rooms += 1
        return f"{label}{self._rooms}x{self.run_id}"


UpdateHandler = Callable[["YPeer", bytes, float], None]


class YPeer:
    """One y-protocols client of one document; callbacks run inside ``data_received``."""

    __slots__ = (
        "target",
        "wedding",
        "conn",
        "prefix",
        "synced",
        "synced_at",
        "step2",
        "on_update",
        "on_awareness",
        "authenticated",
        "cursor",
        "seen",
        "sent",
        "acked",
        "client_id",
        "clock",
        "early",
    )

    def __init__(self, target: Target, wedding: str, doc: str = DOC) -> None:
        self.target = target
        self.wedding = wedding
        self.conn: WireConnection | None = None
        self.prefix = b""
        if target.dialect == "hocuspocus":
            self.prefix = _var_string(f"{wedding}/{doc}")
        self.synced: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self.authenticated: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.synced_at = 0.0
        self.step2: bytes | None = None
        self.on_update: UpdateHandler | None = None
        self.on_awareness: UpdateHandler | None = None
        # Per-scenario counters (kept here to avoid a dict lookup per message).
        self.cursor = 0
        self.seen: dict[int, int] = {}
        self.sent = 0
        self.acked = 0
        self.client_id = 0
        self.clock = 0
        self.early: list[bytes] = []
        """Replies due before ``open`` returned (a greeting in the same read as the 101)."""

    @property
    def path(self) -> str:
        if self.target.dialect == "hocuspocus":
            return self.target.collab_path
        if "/" in self.wedding:  # "wedding/doc": a document other than the timeline
            return f"/sync/{self.wedding}"
        return f"/sync/{self.wedding}/{DOC}"

    async def open(self) -> YPeer:
        target = self.target
        self.conn = await open_connection(
            target.client,
            target.host,
            target.port,
            self.path,
            self._on_frame,
            CONNECT_TIMEOUT,
            source=target.source,
        )
        await self.attach(self.conn)
        return self

    async def attach(self, conn: WireConnection) -> None:
        """Start this document on ``conn`` (its own socket, or a shared Hocuspocus one)."""
        self.conn = conn
        early, self.early = self.early, []
        if self.prefix:
            # Hocuspocus: authenticate first (an empty token; the server has no auth hook).
            conn.send(self.prefix + bytes((2, 0)) + _var_string(""))
            async with asyncio.timeout(CONNECT_TIMEOUT):
                await self.authenticated
        conn.send(self.prefix + STEP1)
        for message in early:
            conn.send(message)

    def send(self, message: bytes) -> None:
        data = self.prefix + message if self.prefix else message
        if self.conn is None:
            self.early.append(data)
        else:
            self.conn.send(data)

    def _on_frame(self, frame: bytes, t: float) -> None:
        if self.prefix:
            if not frame.startswith(self.prefix):
                return
            frame = frame[len(self.prefix) :]
        kind = frame[0]
        if kind == 0 or (kind == 4 and self.prefix):  # Hocuspocus: 4 = sync reply
            sub = frame[1]
            size, pos = _read_uint(frame, 2)
            payload = frame[pos : pos + size]
            if sub == 2:
                if self.on_update is not None:
                    self.on_update(self, payload, t)
            elif sub == 1:
                if self.step2 is None:
                    self.step2 = payload
                    self.synced_at = t
                    if not self.synced.done():
                        self.synced.set_result(t)
                if self.on_update is not None:
                    self.on_update(self, payload, t)
            elif sub == 0:
                self.send(EMPTY_STEP2)
        elif kind == 1:
            if self.on_awareness is not None:
                size, pos = _read_uint(frame, 1)
                self.on_awareness(self, frame[pos : pos + size], t)
        elif kind == 2 and self.prefix:
            # Hocuspocus auth: [2][subtype] (0 token, 1 permission denied, 2 authenticated).
            if len(frame) > 1 and frame[1] == 2 and not self.authenticated.done():
                self.authenticated.set_result(None)
            elif len(frame) > 1 and frame[1] == 1 and not self.authenticated.done():
                self.authenticated.set_exception(ConnectionError("hocuspocus denied access"))

    async def wait_synced(self, timeout: float = SYNC_TIMEOUT) -> float:
        async with asyncio.timeout(timeout):
            return await self.synced

    async def close(self, timeout: float = 5.0) -> None:
        if self.conn is not None:
            await self.conn.close(timeout)


class MuxSocket:
    """The documents of one wedding as an app opens them: on a ``hocuspocus`` target, one
    socket carrying every document (each a :class:`YPeer` sharing it, frames routed by
    their name); on a ``y-websocket`` target, one socket per document.

    On a ``hocuspocus`` target ``wedding`` may be several weddings (their documents all on
    the one socket), and ``path`` where it opens (the target's ``collab_path`` unless
    given: crdt-server's ``/collab/{wedding_id}`` is routed to the wedding's owner worker).
    """

    def __init__(
        self,
        target: Target,
        wedding: str | Sequence[str],
        docs: Sequence[str],
        path: str | None = None,
    ) -> None:
        weddings = [wedding] if isinstance(wedding, str) else list(wedding)
        self.target = target
        self.path = path or target.collab_path
        self.peers = [YPeer(target, w, doc) for w in weddings for doc in docs]
        if target.dialect != "hocuspocus":
            if len(weddings) != 1:
                raise ValueError("one wedding per socket set on a y-websocket target")
            for peer, doc in zip(self.peers, docs, strict=True):
                peer.wedding = f"{weddings[0]}/{doc}"
        self.conns: list[WireConnection] = []

    def _route(self, frame: bytes, t: float) -> None:
        for peer in self.peers:
            if frame.startswith(peer.prefix):
                peer._on_frame(frame, t)
                return

    async def open(self) -> MuxSocket:
        target = self.target
        if target.dialect != "hocuspocus":
            for peer in self.peers:
                await peer.open()
                assert peer.conn is not None
                self.conns.append(peer.conn)
            return self
        conn = await open_connection(
            target.client,
            target.host,
            target.port,
            self.path,
            self._route,
            CONNECT_TIMEOUT,
            source=target.source,
        )
        self.conns.append(conn)
        await asyncio.gather(*(peer.attach(conn) for peer in self.peers))
        return self

    async def wait_synced(self, timeout: float = SYNC_TIMEOUT) -> float:
        return max(await asyncio.gather(*(p.wait_synced(timeout) for p in self.peers)))

    async def close(self, timeout: float = 5.0) -> None:
        await asyncio.gather(*(c.close(timeout) for c in self.conns), return_exceptions=True)


async def open_peers(
    target: Target,
    weddings: Iterable[str],
    into: list[YPeer],
    concurrency: int = 50,
    deadline: float = 120.0,
) -> list[YPeer]:
    """Open and sync one peer per wedding id (repeat an id for several peers in a room).

    Every peer that opened is also appended to ``into`` at once, so the caller can close
    them all even when a later one fails.
    """
    sem = asyncio.Semaphore(concurrency)

    async def one(wedding: str) -> YPeer:
        async with sem:
            peer = YPeer(target, wedding)
            await peer.open()
            into.append(peer)
            await peer.wait_synced()
            return peer

    async with asyncio.timeout(deadline):
        return list(await asyncio.gather(*(one(w) for w in weddings)))


async def close_peers(peers: Iterable[YPeer], timeout: float = 20.0) -> None:
    peers = list(peers)
    try:
        async with asyncio.timeout(timeout):
            await asyncio.gather(*(p.close(timeout) for p in peers), return_exceptions=True)
    except TimeoutError:
        for p in peers:
            if p.conn is not None:
                p.conn.abort()


class ServerClosed(RuntimeError):
    """The server closed connections in the middle of a scenario."""


def check_open(peers: Sequence[YPeer]) -> None:
    """Raise :class:`ServerClosed` if the server closed any of ``peers``."""
    closed = [p for p in peers if p.conn is not None and p.conn.closed.done()]
    if closed:
        codes = Counter(getattr(p.conn, "close_code", None) for p in closed)
        raise ServerClosed(
            f"the server closed {len(closed)} of {len(peers)} connections "
            f"(close codes: {dict(codes)})"
        )


async def wait_until(
    predicate: Callable[[], bool],
    timeout: float,
    step: float = 0.01,
    watch: Sequence[YPeer] = (),
) -> bool:
    """Poll ``predicate`` until true or ``timeout`` seconds passed; returns the last value.

    Raises :class:`ServerClosed` as soon as the server closed one of ``watch``.
    """
    deadline = time.perf_counter() + timeout
    while not predicate():
        check_open(watch)
        if time.perf_counter() > deadline:
            return False
        await asyncio.sleep(step)
    return True


async def send_paced(
    count: int, rate: float, send: Callable[[int], object], sent_at: list[float]
) -> None:
    """Open loop: send ``i`` (``send(i)``) at ``t0 + i / rate`` whatever the server answers (a
    late one goes at once), stamping ``sent_at[i]`` just before it goes."""
    t0 = time.perf_counter()
    for i in range(count):
        delay = t0 + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        sent_at[i] = time.perf_counter()
        send(i)


# -- scenarios ------------------------------------------------------------------------------

WRITER_BASE_ID = 1_000_000


async def fanout(
    target: Target, readers: int, rate: float, duration: float, grace: float = 10.0
) -> list[Metric]:
    """1 writer + ``readers`` readers in one room, updates at ``rate``/s for ``duration`` s."""
    label = f"fanout {readers} readers"
    count = max(1, int(rate * duration))
    writer_id = WRITER_BASE_ID
    messages = update_messages(writer_id, count)
    wedding = target.room("fan")
    sent_at = [0.0] * count
    latencies: list[float] = []
    acks: list[float] = []

    def on_update(peer: YPeer, payload: bytes, t: float) -> None:
        rng = clock_ranges(payload).get(writer_id)
        if rng is None or rng[1] <= peer.cursor:
            return
        start = max(rng[0], peer.cursor)
        end = min(rng[1], count)
        out = acks if peer is writer_peer else latencies
        for i in range(start, end):
            out.append(t - sent_at[i])
        peer.cursor = max(peer.cursor, rng[1])

    opened: list[YPeer] = []
    try:
        peers = await open_peers(target, [wedding] * readers, opened)
        writer_peer = (await open_peers(target, [wedding], opened))[0]
        everyone = [*peers, writer_peer]
        for p in everyone:
            p.on_update = on_update
        cpu = CpuWindow(target.pid).start()
        await send_paced(count, rate, lambda i: writer_peer.send(messages[i]), sent_at)
        await wait_until(lambda: all(p.cursor >= count for p in everyone), grace, watch=everyone)
        cpu.stop()
    finally:
        await close_peers(opened)
    missing = readers * count - len(latencies)
    return [
        *latency_metrics(f"{label}: delivery latency", latencies),
        Metric(f"{label}: missing deliveries (of {readers * count})", missing, "{:.0f}", "lower"),
        Metric(
            f"{label}: writer echo (ack) p50 ms",
            percentile([a * 1000.0 for a in acks], 50),
            "{:.2f}",
            "lower",
        ),
        *cpu.metrics(label),
    ]


async def throughput(
    target: Target,
    rooms: int,
    writers: int,
    duration: float,
    window: int,
    budget: int,
    drain: float = 30.0,
    settle: float = 180.0,
) -> list[Metric]:
    """``rooms`` x ``writers``: every writer keeps ``window`` updates in flight for ``duration``."""
    label = f"throughput {rooms}x{writers}"
    ids = [WRITER_BASE_ID + 10 + k for k in range(writers)]
    messages = {cid: update_messages(cid, budget) for cid in ids}
    weddings = [target.room("tp") for _ in range(rooms)]
    state = {"open": False, "deliveries": 0}

    def pump(peer: YPeer) -> None:
        if not state["open"]:
            return
        frames = messages[peer.client_id]
        limit = min(peer.acked + window, budget)
        while peer.sent < limit:
            peer.send(frames[peer.sent])
            peer.sent += 1

    def on_update(peer: YPeer, payload: bytes, t: float) -> None:
        seen = peer.seen
        delivered = 0
        for cid, (start, end) in clock_ranges(payload).items():
            prev = seen.get(cid, 0)
            if end > prev:
                delivered += end - max(start, prev)
                seen[cid] = end
        state["deliveries"] += delivered
        mine = seen.get(peer.client_id, 0)
        if mine > peer.acked:
            peer.acked = mine
            pump(peer)

    opened: list[YPeer] = []
    try:
        peers = await open_peers(target, [w for w in weddings for _ in range(writers)], opened)
        members = {w: peers[i * writers : (i + 1) * writers] for i, w in enumerate(weddings)}
        for room_peers in members.values():
            for k, p in enumerate(room_peers):
                p.client_id = ids[k]
                p.on_update = on_update
        cpu = CpuWindow(target.pid).start()
        state["open"] = True
        for p in peers:
            pump(p)
        await asyncio.sleep(duration)
        state["open"] = False
        cpu.stop()
        check_open(peers)
        accepted = sum(p.acked for p in peers)
        deliveries = state["deliveries"]
        exhausted = sum(1 for p in peers if p.sent >= budget)
        drained = await wait_until(
            lambda: all(p.acked >= p.sent for p in peers), drain, watch=peers
        )
        drained_at = time.perf_counter()
        # Convergence: every member saw every update; a fresh client's step 2 has them all.
        checkers = await open_peers(target, weddings, opened)
        converged = 0
        unconverged: list[str] = []
        for wedding, checker in zip(weddings, checkers, strict=True):
            expected = {p.client_id: p.sent for p in members[wedding]}
            fresh = clock_ranges(checker.step2 or EMPTY_UPDATE)
            fresh_missing = sum(
                n - (fresh.get(cid, (0, 0))[1] if fresh.get(cid, (0, 0))[0] == 0 else 0)
                for cid, n in expected.items()
            )
            members_missing = sum(
                max(0, n - m.seen.get(cid, 0))
                for m in members[wedding]
                for cid, n in expected.items()
            )
            if fresh_missing == 0 and members_missing == 0:
                converged += 1
            else:
                unconverged.append(
                    f"{wedding} (members miss {members_missing} deliveries, a fresh client"
                    f" {fresh_missing} updates)"
                )
        for line in unconverged:
            print(f"  {label}: not converged: {line}", file=sys.stderr, flush=True)
        # A server that echoes before it persists may still be writing: time until idle.
        idle_at = await wait_server_idle(target.pid, settle, quiet=2.5)
    finally:
        await close_peers(opened)
    sent = sum(p.sent for p in peers)
    note = "writers ran out of pre-made updates" if exhausted else ""
    return [
        Metric(f"{label}: updates accepted/s (echoed to sender)", accepted / cpu.wall, "{:.0f}",
               "higher", note),
        Metric(f"{label}: deliveries/s (updates received by members)", deliveries / cpu.wall,
               "{:.0f}", "higher"),
        *cpu.metrics(label),
        Metric(f"{label}: server CPU ms per accepted update",
               1000.0 * cpu.server / accepted if accepted else None, "{:.3f}", "lower"),
        Metric(f"{label}: busy after the last echo (background writes) s",
               max(0.0, idle_at - drained_at) if idle_at is not None else None, "{:.2f}",
               "lower", "" if idle_at is not None else f"still busy after {settle:.0f} s",
               ratio=False),
        Metric(f"{label}: rooms converged (of {rooms})", converged, "{:.0f}", "higher",
               "; ".join([*([] if drained else
                            [f"not drained: {sent - sum(p.acked for p in peers)} unechoed"]),
                          *(["not converged: " + ", ".join(unconverged)] if unconverged
                            else [])])),
    ]  # fmt: skip


class NotConverged(AssertionError):
    """A room of our server did not converge: a bug, never a figure."""


CONVERGED = re.compile(r"rooms converged \(of (\d+)\)$")


def check_converged(metrics: list[Metric], server: str) -> None:
    """Raise :class:`NotConverged` if a run's "rooms converged (of N)" is under N."""
    for m in metrics:
        match = CONVERGED.search(m.name)
        if match and (m.value is None or m.value < int(match.group(1))):
            raise NotConverged(f"{server}: {m.name} = {m.value}; {m.note}")


async def open_synced(
    target: Target,
    plan: Sequence[str],
    concurrency: int,
    peers: list[YPeer],
    times: list[float],
    *,
    timeout: float = SYNC_TIMEOUT,
    on_synced: Callable[[YPeer], None] | None = None,
) -> None:
    """Open a peer to each wedding of ``plan`` (one per entry), ``concurrency`` at a time:
    every peer opened goes into ``peers`` (the caller closes them), and each that synced
    within ``timeout`` adds its connect-to-synced ms to ``times`` and is given to
    ``on_synced``; one that failed to connect or sync adds nothing (a failed connection)."""
    sem = asyncio.Semaphore(concurrency)

    async def one(wedding: str) -> None:
        async with sem:
            peer = YPeer(target, wedding)
            t0 = time.perf_counter()
            try:
                await peer.open()
                peers.append(peer)
                t1 = await peer.wait_synced(timeout)
            except (OSError, TimeoutError, ConnectionError):
                return
            times.append((t1 - t0) * 1000.0)
            if on_synced is not None:
                on_synced(peer)

    await asyncio.gather(*(one(w) for w in plan))


async def connections(
    target: Target, count: int, per_room: int, concurrency: int, settle: float = 2.0
) -> list[Metric]:
    """``count`` idle synced connections (``per_room`` per room): time to synced, RSS growth."""
    label = f"connections {count}"
    rooms = math.ceil(count / per_room)
    weddings = [target.room("idle") for _ in range(rooms)]
    plan = [weddings[i // per_room] for i in range(count)]
    rss0 = process_rss_kib(target.pid)
    times: list[float] = []
    peers: list[YPeer] = []
    cpu = CpuWindow(target.pid).start()
    try:
        async with asyncio.timeout(max(120.0, count / 20)):
            await open_synced(target, plan, concurrency, peers, times)  # failed: count - synced
        cpu.stop()
        total = cpu.wall
        await asyncio.sleep(settle)
        rss1 = process_rss_kib(target.pid)
    finally:
        await close_peers(peers, timeout=60.0)
    synced = len(times)
    return [
        *[
            Metric(f"{label}: time to synced p{q} ms", percentile(times, q), "{:.1f}", "lower")
            for q in (50, 99)
        ],
        Metric(f"{label}: all connected+synced in s", total, "{:.2f}", "lower"),
        Metric(f"{label}: server RSS KiB per connection", (rss1 - rss0) / synced if synced
               else None, "{:.1f}", "lower"),
        Metric(f"{label}: failed connections", count - synced, "{:.0f}", "lower"),
        Metric(f"{label}: server CPU ms per connection (connect + sync)",
               1000.0 * cpu.server / synced if synced else None, "{:.2f}", "lower"),
        Metric(f"{label}: load-generator CPU ms per connection",
               1000.0 * cpu.client / synced if synced else None, "{:.2f}", ratio=False),
        Metric(f"{label}: other processes CPU % (noise)", cpu.other_pct, "{:.0f}", ratio=False),
    ]  # fmt: skip


MUX_DOCS = ("timeline", "guests", "seating", "budget")
"""The documents of a wedding an app opens (the planner app also joins its conflicts room)."""


async def multiplex(
    target: Target,
    sockets: int,
    readers: int,
    rate: float,
    duration: float,
    concurrency: int = 50,
    docs: Sequence[str] = MUX_DOCS,
    settle: float = 2.0,
    grace: float = 10.0,
    span: int = 1,
) -> list[Metric]:
    """A wedding's documents on one socket (``hocuspocus`` targets: Hocuspocus itself, or
    crdt-server's ``/collab``), or one socket each (``y-websocket``: crdt-server's
    ``/sync``), as an app opens them.

    Connect: ``sockets`` weddings opened (``concurrency`` at a time), each with every
    document of ``docs`` synced: time to the last document synced, server CPU and RSS
    growth per wedding. Fan-out: one writer and ``readers`` readers of one wedding, every
    one with all ``docs`` open; the writer updates the first at ``rate`` for ``duration``:
    delivery latency to the readers, whose other documents share their sockets.

    ``span`` > 1: the variant for crdt-server with ``--workers span`` (and its bus), see
    :func:`multiplex_span`."""
    if span > 1:
        return await multiplex_span(
            target, sockets, readers, rate, duration, span,
            concurrency=concurrency, docs=docs, settle=settle, grace=grace,
        )  # fmt: skip
    n = len(docs)
    label = f"multiplex {n} docs"
    rss0 = process_rss_kib(target.pid)
    sem = asyncio.Semaphore(concurrency)
    times: list[float] = []
    opened: list[MuxSocket] = []

    async def one(wedding: str) -> None:
        async with sem:
            app = MuxSocket(target, wedding, docs)
            t0 = time.perf_counter()
            try:
                await app.open()
                opened.append(app)
                t1 = await app.wait_synced()
                times.append((t1 - t0) * 1000.0)
            except (OSError, TimeoutError, ConnectionError):
                pass  # counted as sockets - synced

    weddings = [target.room("mux") for _ in range(sockets)]
    cpu = CpuWindow(target.pid).start()
    try:
        async with asyncio.timeout(max(120.0, sockets / 10)):
            await asyncio.gather(*(one(w) for w in weddings))
        cpu.stop()
        await asyncio.sleep(settle)
        rss1 = process_rss_kib(target.pid)
        socket_count = sum(len(app.conns) for app in opened)
    finally:
        await asyncio.gather(*(app.close(10.0) for app in opened), return_exceptions=True)
    metrics = [
        Metric(f"{label}: sockets per wedding", socket_count / len(opened) if opened else None,
               "{:.0f}", ratio=False),
        *_synced_metrics(label, "wedding", sockets, times, n, rss1 - rss0, cpu),
    ]  # fmt: skip

    # Fan-out through multiplexed sockets: the writer's first document to every reader's.
    count = max(1, int(rate * duration))
    writer_id = WRITER_BASE_ID
    messages = update_messages(writer_id, count)
    wedding = target.room("muxfan")
    sent_at = [0.0] * count
    latencies: list[float] = []
    fan = f"{label}: fan-out to {readers} readers"
    apps: list[MuxSocket] = []

    def on_update(peer: YPeer, payload: bytes, t: float) -> None:
        rng = clock_ranges(payload).get(writer_id)
        if rng is None or rng[1] <= peer.cursor:
            return
        if peer is not writer:
            for i in range(max(rng[0], peer.cursor), min(rng[1], count)):
                latencies.append(t - sent_at[i])
        peer.cursor = max(peer.cursor, rng[1])

    try:
        for _ in range(readers + 1):
            app = MuxSocket(target, wedding, docs)
            await app.open()
            apps.append(app)
            await app.wait_synced()
        writer = apps[-1].peers[0]
        watched = [app.peers[0] for app in apps]
        for peer in watched:
            peer.on_update = on_update
        cpu = CpuWindow(target.pid).start()
        await send_paced(count, rate, lambda i: writer.send(messages[i]), sent_at)
        await wait_until(lambda: all(p.cursor >= count for p in watched), grace)
        cpu.stop()
    finally:
        await asyncio.gather(*(app.close(10.0) for app in apps), return_exceptions=True)
    return [
        *metrics,
        *latency_metrics(f"{fan}: delivery latency", latencies),
        Metric(f"{fan}: missing deliveries (of {readers * count})",
               readers * count - len(latencies), "{:.0f}", "lower"),
        *cpu.metrics(fan),
    ]  # fmt: skip


def owned_weddings(target: Target, label: str, workers: int) -> list[str]:
    """Fresh wedding ids, the i-th owned by worker i of ``workers`` (crdt-server's
    ``--workers`` affinity, :func:`crdt_server.wire.affinity.owner`)."""
    found: dict[int, str] = {}
    for _ in range(1000 * workers):  # bounded: each id lands on a given worker 1 in N
        wedding = target.room(label)
        found.setdefault(owner(wedding, workers), wedding)
        if len(found) == workers:
            return [found[i] for i in range(workers)]
    raise RuntimeError(f"no wedding id owned by each of {workers} workers")


class MuxApp:
    """An app with the documents of several weddings open: on one bare ``/collab`` socket
    (``spanning``: served where it landed, the other owners' rooms reached through the
    bus), or one ``/collab/{wedding_id}`` socket per wedding (each handed to its owner)."""

    def __init__(
        self, target: Target, weddings: Sequence[str], docs: Sequence[str], spanning: bool
    ) -> None:
        self.firsts: list[YPeer] = []
        if spanning:
            self.sockets = [MuxSocket(target, weddings, docs)]
            self.firsts = self.sockets[0].peers[:: len(docs)]
        else:
            base = target.collab_path.rstrip("/")
            self.sockets = [MuxSocket(target, w, docs, path=f"{base}/{w}") for w in weddings]
            self.firsts = [socket.peers[0] for socket in self.sockets]

    async def open(self) -> MuxApp:
        await asyncio.gather(*(socket.open() for socket in self.sockets))
        return self

    async def wait_synced(self, timeout: float = SYNC_TIMEOUT) -> float:
        return max(await asyncio.gather(*(s.wait_synced(timeout) for s in self.sockets)))

    async def close(self, timeout: float = 5.0) -> None:
        await asyncio.gather(*(s.close(timeout) for s in self.sockets), return_exceptions=True)


async def multiplex_span(
    target: Target,
    sockets: int,
    readers: int,
    rate: float,
    duration: float,
    span: int,
    concurrency: int = 50,
    docs: Sequence[str] = MUX_DOCS,
    settle: float = 2.0,
    grace: float = 10.0,
) -> list[Metric]:
    """The multiplex scenario on crdt-server with ``--workers span`` and its bus: every
    app holds the documents of ``span`` weddings, one owned by each worker, first on one
    ``/collab/{wedding_id}`` socket per wedding (each served by its owner), then on one bare
    ``/collab`` socket spanning them (served where it landed: the rooms of the weddings
    another worker owns are also loaded there and kept in step through the bus).

    Per way, the same sizes as :func:`multiplex`: ``sockets`` apps connected, time to every
    document synced; then one writer app and ``readers`` reader apps on one set of
    weddings, the writer updating each wedding's first document in turn, ``rate`` updates
    a second in all for ``duration``: delivery latency to the readers' documents and server
    CPU (all its processes) per update."""
    if target.dialect != "hocuspocus":
        raise ValueError("multiplex with span > 1 needs a Hocuspocus-dialect target")
    metrics: list[Metric] = []
    for spanning in (False, True):
        way = "bare /collab spanning the owners" if spanning else "/collab/{w} per wedding"
        label = f"multiplex {len(docs)} docs x {span} weddings, {way}"
        metrics += await _span_connect(
            target, label, sockets, span, docs, spanning, concurrency, settle
        )
        metrics += await _span_fanout(
            target, label, readers, rate, duration, span, docs, spanning, grace
        )
    return metrics


async def _span_connect(
    target: Target,
    label: str,
    apps: int,
    span: int,
    docs: Sequence[str],
    spanning: bool,
    concurrency: int,
    settle: float,
) -> list[Metric]:
    rss0 = process_rss_kib(target.pid)
    sem = asyncio.Semaphore(concurrency)
    times: list[float] = []
    opened: list[MuxApp] = []

    async def one(weddings: list[str]) -> None:
        async with sem:
            app = MuxApp(target, weddings, docs, spanning)
            opened.append(app)
            t0 = time.perf_counter()
            try:
                await app.open()
                t1 = await app.wait_synced()
                times.append((t1 - t0) * 1000.0)
            except (OSError, TimeoutError, ConnectionError):
                pass  # counted as apps - synced

    plans = [owned_weddings(target, "span", span) for _ in range(apps)]
    cpu = CpuWindow(target.pid).start()
    try:
        async with asyncio.timeout(max(120.0, apps / 10)):
            await asyncio.gather(*(one(p) for p in plans))
        cpu.stop()
        await asyncio.sleep(settle)
        rss1 = process_rss_kib(target.pid)
    finally:
        await asyncio.gather(*(app.close(10.0) for app in opened), return_exceptions=True)
    return [
        Metric(f"{label}: sockets per app", len(opened[0].sockets) if opened else None,
               "{:.0f}", ratio=False),
        *_synced_metrics(label, "app", apps, times, len(docs) * span, rss1 - rss0, cpu),
    ]  # fmt: skip


def _synced_metrics(
    label: str, unit: str, count: int, times: list[float], n: int, rss: float, cpu: CpuWindow
) -> list[Metric]:
    """The rows of ``count`` connecting ``unit``s (a wedding's socket, an app's sockets),
    each syncing ``n`` documents: sync time, server RSS and CPU per synced one, the failures
    and the load generator's CPU."""
    synced = len(times)
    return [
        *[
            Metric(f"{label}: {count} {unit}s, all documents synced p{q} ms",
                   percentile(times, q), "{:.1f}", "lower")
            for q in (50, 99)
        ],
        Metric(f"{label}: server RSS KiB per {unit} ({n} documents)",
               rss / synced if synced else None, "{:.1f}", "lower"),
        Metric(f"{label}: server CPU ms per {unit} (connect + {n} syncs)",
               1000.0 * cpu.server / synced if synced else None, "{:.2f}", "lower"),
        Metric(f"{label}: failed {unit}s (of {count})", count - synced, "{:.0f}", "lower"),
        Metric(f"{label}: load-generator CPU ms per {unit}",
               1000.0 * cpu.client / synced if synced else None, "{:.2f}", ratio=False),
    ]  # fmt: skip


async def _span_fanout(
    target: Target,
    label: str,
    readers: int,
    rate: float,
    duration: float,
    span: int,
    docs: Sequence[str],
    spanning: bool,
    grace: float,
) -> list[Metric]:
    per = max(1, math.ceil(rate * duration / span))
    count = per * span
    ids = [WRITER_BASE_ID + k for k in range(span)]
    messages = [update_messages(cid, per) for cid in ids]
    weddings = owned_weddings(target, "spanfan", span)
    sent_at = [[0.0] * per for _ in range(span)]
    latencies: list[float] = []
    wedding_of: dict[YPeer, int] = {}
    fan = f"{label}: fan-out to {readers} readers"
    apps: list[MuxApp] = []

    def on_update(peer: YPeer, payload: bytes, t: float) -> None:
        k = wedding_of[peer]
        rng = clock_ranges(payload).get(ids[k])
        if rng is None or rng[1] <= peer.cursor:
            return
        if peer not in writers:
            for j in range(max(rng[0], peer.cursor), min(rng[1], per)):
                latencies.append(t - sent_at[k][j])
        peer.cursor = max(peer.cursor, rng[1])

    def send(i: int) -> None:
        k, j = i % span, i // span
        sent_at[k][j] = time.perf_counter()
        writers[k].send(messages[k][j])

    stamps = [0.0] * count  # send_paced's own stamps; the per-wedding ones are sent_at
    try:
        for _ in range(readers + 1):
            app = MuxApp(target, weddings, docs, spanning)
            apps.append(app)
            await app.open()
            await app.wait_synced()
        writers = apps[-1].firsts
        watched: list[YPeer] = []
        for app in apps:
            for k, peer in enumerate(app.firsts):
                wedding_of[peer] = k
                peer.on_update = on_update
                watched.append(peer)
        cpu = CpuWindow(target.pid).start()
        await send_paced(count, rate, send, stamps)
        await wait_until(lambda: all(p.cursor >= per for p in watched), grace)
        cpu.stop()
    finally:
        await asyncio.gather(*(app.close(10.0) for app in apps), return_exceptions=True)
    return [
        *latency_metrics(f"{fan}: delivery latency", latencies),
        Metric(f"{fan}: missing deliveries (of {readers * count})",
               readers * count - len(latencies), "{:.0f}", "lower"),
        Metric(f"{fan}: server CPU ms per update (all processes)",
               1000.0 * cpu.server / count, "{:.2f}", "lower"),
        *cpu.metrics(fan),
    ]  # fmt: skip


async def coldload(
    target: Target, updates: int, restarts: int, window: int = 64, settle_timeout: float = 300.0
) -> list[Metric]:
    """Persist ``updates`` one-char updates, restart, time connect -> sync step 2 (median)."""
    label = f"coldload {updates} updates"
    assert target.restart is not None
    writer_id = WRITER_BASE_ID + 5
    messages = update_messages(writer_id, updates)
    wedding = target.room("cold")
    opened: list[YPeer] = []

    def on_update(peer: YPeer, payload: bytes, t: float) -> None:
        rng = clock_ranges(payload).get(writer_id)
        if rng is not None and rng[1] > peer.acked:
            peer.acked = rng[1]
        limit = min(peer.acked + window, updates)
        while peer.sent < limit:
            peer.send(messages[peer.sent])
            peer.sent += 1

    try:
        writer = (await open_peers(target, [wedding], opened))[0]
        writer.client_id = writer_id
        t0 = time.perf_counter()
        writer.on_update = on_update
        on_update(writer, EMPTY_UPDATE, 0.0)
        echoed = await wait_until(lambda: writer.acked >= updates, 300.0, watch=[writer])
        write_seconds = time.perf_counter() - t0
    finally:
        await close_peers(opened)
    # Let the server finish what it persists in the background (Hocuspocus debounces 2 s,
    # pycrdt-websocket writes each update in its own transaction after the echo).
    echoed_at = time.perf_counter()
    idle_at = await wait_server_idle(target.pid, settle_timeout, quiet=2.5)
    step2_times: list[float] = []
    full_times: list[float] = []
    complete = 0
    full_at: list[float] = []

    def on_load(peer: YPeer, payload: bytes, t: float) -> None:
        # Whatever brings the writer's clocks: the step 2, or updates sent after it (a server
        # that answers before it loaded the document from its store sends the rest later).
        rng = clock_ranges(payload).get(writer_id)
        if rng is not None and rng[0] <= peer.cursor < rng[1]:
            peer.cursor = rng[1]
            if peer.cursor >= updates:
                full_at.append(t)

    for _ in range(restarts):
        await target.restart()
        peer = YPeer(target, wedding)
        peer.on_update = on_load
        full_at.clear()
        t1 = time.perf_counter()
        try:
            await peer.open()
            t2 = await peer.wait_synced(120.0)
            step2_times.append(t2 - t1)
            rng = clock_ranges(peer.step2 or EMPTY_UPDATE).get(writer_id, (0, 0))
            complete += rng == (0, updates)
            if await wait_until(lambda: bool(full_at), 60.0):
                full_times.append(full_at[0] - t1)
        finally:
            await close_peers([peer])
    return [
        Metric(f"{label}: write all (window {window}) s", write_seconds if echoed else None,
               "{:.2f}", "lower", "" if echoed else "not all echoed"),
        Metric(f"{label}: busy after the last echo (background writes) s",
               max(0.0, idle_at - echoed_at) if idle_at is not None else None, "{:.2f}", "lower",
               "" if idle_at is not None else f"still busy after {settle_timeout:.0f} s",
               ratio=False),
        Metric(f"{label}: connect -> step 2 after restart, median ms",
               statistics.median(step2_times) * 1000.0 if step2_times else None, "{:.1f}",
               "lower"),
        Metric(f"{label}: step 2 had every update (of {restarts} restarts)", complete, "{:.0f}",
               "higher"),
        Metric(f"{label}: connect -> whole document received, median ms",
               statistics.median(full_times) * 1000.0 if full_times else None, "{:.1f}", "lower",
               "" if len(full_times) == restarts else f"{restarts - len(full_times)} never"),
    ]  # fmt: skip


async def wait_server_idle(
    pid: int, timeout: float, quiet: float = 1.0, step: float = 0.25
) -> float | None:
    """Wait until the process used under 2% of a core over the last ``quiet`` seconds
    (bounded): a server still working through a backlog uses most of one, while the ticks of
    its periodic tasks (a sweep, a presence expiry), which a loaded machine stretches past
    2% of a single ``step`` now and then, never keep it from counting as quiet.

    Returns when (``time.perf_counter()``) the quiet period began, or None on timeout.
    """
    start = time.perf_counter()
    samples: collections.deque[tuple[float, float]] = collections.deque()
    samples.append((start, process_cpu_seconds(pid)))
    while True:
        await asyncio.sleep(step)
        now = time.perf_counter()
        samples.append((now, process_cpu_seconds(pid)))
        while len(samples) > 2 and now - samples[1][0] >= quiet:
            samples.popleft()  # keep one sample at least ``quiet`` old
        began, before = samples[0]
        if now - began >= quiet and samples[-1][1] - before <= 0.02 * (now - began):
            return began
        if now - start > timeout:
            return None


async def presence(
    target: Target, clients: int, rounds: int, rate: float, grace: float = 10.0
) -> list[Metric]:
    """``clients`` in one room; each round one of them changes its awareness state."""
    label = f"presence {clients} clients"
    wedding = target.room("aw")
    base = WRITER_BASE_ID + 1000
    rounds_by_id: dict[tuple[int, int], int] = {}
    sent_at = [0.0] * rounds
    latencies: list[float] = []
    opened: list[YPeer] = []

    def on_awareness(peer: YPeer, payload: bytes, t: float) -> None:
        for client, clock in awareness_ids(payload):
            r = rounds_by_id.get((client, clock))
            if r is not None and client != peer.client_id and r >= peer.cursor:
                latencies.append(t - sent_at[r])
                peer.cursor = r + 1
                peer.acked += 1

    try:
        peers = await open_peers(target, [wedding] * clients, opened)
        for k, p in enumerate(peers):
            p.client_id = base + k
            p.on_awareness = on_awareness
        cpu = CpuWindow(target.pid).start()
        messages: list[tuple[YPeer, bytes]] = []
        for r in range(rounds):
            sender = peers[r % clients]
            sender.clock += 1
            rounds_by_id[(sender.client_id, sender.clock)] = r
            message = awareness_message(
                sender.client_id,
                sender.clock,
                {"user": {"name": f"guest {r % clients}", "color": "#30bced"}, "cursor": r},
            )
            messages.append((sender, message))
        await send_paced(rounds, rate, lambda r: messages[r][0].send(messages[r][1]), sent_at)
        expected = rounds * (clients - 1)
        await wait_until(lambda: sum(p.acked for p in peers) >= expected, grace, watch=peers)
        cpu.stop()
    finally:
        await close_peers(opened)
    return [
        *latency_metrics(f"{label}: awareness latency", latencies),
        Metric(f"{label}: missing deliveries (of {expected})", expected - len(latencies),
               "{:.0f}", "lower"),
        *cpu.metrics(label),
    ]  # fmt: skip


# -- overload (no collapse: the excess is pushed back) ------------------------------------


async def _metrics_page(target: Target) -> str:
    """The server's ``/metrics`` page ("" if it has none or cannot be read)."""
    try:
        async with asyncio.timeout(10.0):
            reader, writer = await asyncio.open_connection(target.host, target.port)
            writer.write(b"GET /metrics HTTP/1.0\r\nHost: bench\r\n\r\n")
            body = (await reader.read()).decode(errors="replace")
            writer.close()
    except (OSError, TimeoutError):
        return ""
    return body


def histogram(page: str, name: str) -> dict[float, float]:
    """A Prometheus histogram's cumulative buckets from a ``/metrics`` page."""
    out: dict[float, float] = {}
    for line in page.splitlines():
        if line.startswith(f"{name}_bucket{{"):
            bound = line.split('le="', 1)[1].split('"', 1)[0]
            out[math.inf if bound == "+Inf" else float(bound)] = float(line.rsplit(" ", 1)[1])
    return out


def _counter(page: str, name: str) -> float | None:
    for line in page.splitlines():
        if line.startswith(f"{name} "):
            return float(line.rsplit(" ", 1)[1])
    return None


def bucket_p(before: dict[float, float], after: dict[float, float], q: float) -> float | None:
    """Upper bound (ms) of the bucket holding the q-th percentile between two scrapes."""
    bounds = sorted(after)
    if not bounds:
        return None
    total = after[bounds[-1]] - before.get(bounds[-1], 0.0)
    if total <= 0:
        return None
    for b in bounds:
        if after[b] - before.get(b, 0.0) >= q / 100.0 * total:
            return b * 1000.0
    return None


def backed_up(peer: YPeer) -> bool:
    """Whether the kernel refused some of what ``peer`` wrote: TCP's window is shut (the
    server is not reading it), so a client that respects backpressure waits."""
    conn = peer.conn
    transport = getattr(conn, "_transport", None)
    if transport is None:
        ws = getattr(conn, "_ws", None)
        transport = getattr(ws, "transport", None)
        if len(getattr(conn, "_outbox", ())):
            return True
    return transport is not None and transport.get_write_buffer_size() > 0


async def overload(
    target: Target,
    rooms: int,
    writers: int,
    sustainable: float,
    factors: Sequence[float] = (4.0, 8.0),
    duration: float = 60.0,
    probe_interval: float = 0.1,
    recovery_window: float = 30.0,
) -> list[Metric]:
    """``rooms`` x ``writers`` offered ``factor`` x ``sustainable`` updates/s in all, open
    loop, for ``duration`` per factor, while a quiet wedding's writer sends one update
    every ``probe_interval`` and times its echo.

    A writer whose socket the kernel stopped taking (the server paused reading it) waits
    until it takes again, as a client that respects TCP's backpressure does (a browser's
    ``bufferedAmount``): the excess is pushed back, counted as ``deferred``; every update
    it does send is timed from that send. Rows per factor: the rate the server acknowledged
    (echoes to their writers inside the window, per second), the writers' echo p50/p99
    from their send (it includes the time an update waited in the kernel's buffers behind
    a paused read), the server's own from taking an update in to echoing it
    (``crdt_broadcast_seconds``, ours only: bucket bounds), the quiet wedding's echo p99,
    and the recovery: from the end of the burst until every later probe echoes within
    100 ms. After the last factor every room must hold every update sent (converged)."""
    label = f"overload {rooms}x{writers}"
    per_writer_max = [
        math.ceil(f * sustainable * duration / (rooms * writers)) + 10 for f in factors
    ]
    budget = sum(per_writer_max) + 10
    ids = [WRITER_BASE_ID + 10 + k for k in range(writers)]
    messages = {cid: update_messages(cid, budget) for cid in ids}
    probe_id = WRITER_BASE_ID + 5
    probe_budget = int((len(factors) * (duration + recovery_window + 30)) / probe_interval) + 100
    probe_messages = update_messages(probe_id, probe_budget)
    weddings = [target.room("ov") for _ in range(rooms)]
    quiet_wedding = target.room("quiet")
    echoes: list[tuple[float, float]] = []  # (echo time, latency) of the writers' updates
    probes: list[tuple[float, float | None]] = []  # (send time, latency)

    def on_update(peer: YPeer, payload: bytes, t: float) -> None:
        for cid, (_, end) in clock_ranges(payload).items():
            prev = peer.seen.get(cid, 0)
            if end <= prev:
                continue
            peer.seen[cid] = end
            if cid == peer.client_id:
                if cid == probe_id:
                    for k in range(prev, end):
                        if k < len(probes):
                            probes[k] = (probes[k][0], t - probes[k][0])
                else:
                    times = peer_times[id(peer)]
                    for k in range(prev, min(end, len(times))):
                        echoes.append((t, t - times[k]))
                peer.acked = end

    peer_times: dict[int, list[float]] = {}
    opened: list[YPeer] = []
    metrics: list[Metric] = []
    try:
        peers = await open_peers(target, [w for w in weddings for _ in range(writers)], opened)
        members = {w: peers[i * writers : (i + 1) * writers] for i, w in enumerate(weddings)}
        for room_peers in members.values():
            for k, p in enumerate(room_peers):
                p.client_id = ids[k]
                p.on_update = on_update
                peer_times[id(p)] = []
        (probe,) = await open_peers(target, [quiet_wedding], opened)
        probe.client_id = probe_id
        probe.on_update = on_update
        stop_probe = asyncio.Event()

        async def probing() -> None:
            while not stop_probe.is_set() and probe.sent < probe_budget:
                probes.append((time.perf_counter(), None))
                probe.send(probe_messages[probe.sent])
                probe.sent += 1
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(probe_interval):
                        await stop_probe.wait()

        prober = asyncio.create_task(probing())
        for factor in factors:
            rate = factor * sustainable
            per_writer = rate / (rooms * writers)
            step = f"{label} at {factor:g}x ({rate:.0f}/s offered)"
            page0 = await _metrics_page(target)
            echoes.clear()
            first_probe = len(probes)
            cpu = CpuWindow(target.pid).start()
            t0 = time.perf_counter()
            end = t0 + duration
            phase = {id(p): (i % 1000) / 1000.0 for i, p in enumerate(peers)}
            offered = deferred = 0
            next_due = {id(p): t0 + phase[id(p)] / per_writer for p in peers}
            while True:
                now = time.perf_counter()
                if now >= end:
                    break
                for p in peers:
                    due = next_due[id(p)]
                    while due <= now and due < end:
                        offered += 1
                        due += 1.0 / per_writer
                        if p.sent >= budget or backed_up(p):
                            deferred += 1
                            continue
                        peer_times[id(p)].append(time.perf_counter())
                        p.send(messages[p.client_id][p.sent])
                        p.sent += 1
                    next_due[id(p)] = due
                await asyncio.sleep(0.005)
            burst_end = time.perf_counter()
            acknowledged = sum(1 for t, _ in echoes if t <= burst_end)
            in_window = [lat for t, lat in echoes if t <= burst_end]
            cpu.stop()
            page1 = await _metrics_page(target)
            # Recovery: the burst is over (writers stop); wait for every sent update's echo
            # and for the quiet wedding's echo to be back under 100 ms for good.
            await wait_until(lambda: all(p.acked >= p.sent for p in peers), recovery_window)
            await asyncio.sleep(3.0)  # 30 more probes, to see the echo stay fast
            after = [(s, lat) for s, lat in probes[first_probe:] if s >= burst_end]
            slow = [s for s, lat in after if lat is None or lat > 0.1]
            recovered = (max(slow) - burst_end) if slow else 0.0
            during = [lat for s, lat in probes[first_probe:] if s < burst_end]
            quiet = [lat if lat is not None else math.inf for lat in during]
            accepted0 = _counter(page0, "crdt_updates_accepted_total")
            accepted1 = _counter(page1, "crdt_updates_accepted_total")
            server_p99 = bucket_p(
                histogram(page0, "crdt_broadcast_seconds"),
                histogram(page1, "crdt_broadcast_seconds"),
                99,
            )
            metrics += [
                Metric(f"{step}: offered updates/s", offered / duration, "{:.0f}", ratio=False),
                Metric(
                    f"{step}: acknowledged updates/s (echoed inside the burst)",
                    acknowledged / duration, "{:.0f}", "higher",
                    f"{acknowledged / duration / sustainable:.2f}x the sustainable rate",
                ),
                Metric(
                    f"{step}: taken in by the server updates/s",
                    (accepted1 - accepted0) / duration
                    if accepted0 is not None and accepted1 is not None else None,
                    "{:.0f}", "", "crdt_updates_accepted",
                ),
                Metric(f"{step}: pushed back (not sent while TCP's window was shut) %",
                       100.0 * deferred / offered if offered else None, "{:.0f}", ratio=False),
                *latency_metrics(f"{step}: echo from the writer's send", in_window),
                Metric(f"{step}: echo from taken in p99 ms (server, bucket bound)", server_p99,
                       "{:.0f}", "lower", "crdt_broadcast_seconds"),
                *latency_metrics(f"{step}: quiet wedding echo", quiet),
                Metric(f"{step}: recovery s (quiet echo back under 100 ms)",
                       recovered if after else None, "{:.1f}", "lower",
                       "" if after else "no probe after the burst"),
                *cpu.metrics(step),
            ]  # fmt: skip
        stop_probe.set()
        await prober
        # Convergence: a fresh client of each room holds every writer's every update.
        checkers = await open_peers(target, weddings, opened)
        converged = 0
        for wedding, checker in zip(weddings, checkers, strict=True):
            fresh = clock_ranges(checker.step2 or EMPTY_UPDATE)
            if all(fresh.get(p.client_id, (0, 0))[1] >= p.sent for p in members[wedding]):
                converged += 1
        metrics.append(
            Metric(f"{label}: rooms converged (of {rooms})", converged, "{:.0f}", "higher")
        )
    finally:
        await close_peers(opened)
    return metrics
