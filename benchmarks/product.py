"""The product scenario (issue 40, goal 1): the whole product at speed in one process.

    .venv/bin/python -m benchmarks.run --product    # 1,000 weddings x 10: ours, y-websocket
    .venv/bin/python -m benchmarks.product --weddings 200 --rates 500,1000,2000 --servers ours
    .venv/bin/python -m benchmarks.product --tiny                 # a few seconds (the smoke test)
    .venv/bin/python -m benchmarks.product --saturday --servers ours,ours-postgres

``--weddings`` weddings of ``--members`` (10) members each. A member works on one of the
wedding's documents as the app's pages do: half of them on the guest list (RSVPs and meals),
3 in 10 on the timeline (moving an item: its start and end in one transaction), 2 in 10 on
the budget (recording payments and correcting their amounts): 5 / 3 / 2 of 10, 25 / 15 / 10
of 50. Every update is what a stock Yjs client sends: each writer holds a pycrdt document
with its own client id, makes the change in one transaction and sends the transaction's
update (``Doc.observe``), made before the timed part. A writer's first update adds its own
entry (a guest, a timeline item, a category and a payment); later ones change it, so every
update is one or more domain events.

Our server runs as shipped (SQLite ``synchronous=FULL``, echo after the commit, events,
conflicts and the calendar feed derived in the commit, webhooks on ``--webhook-weddings``
weddings delivering to a real receiver on 127.0.0.1, signatures verified on arrival), with
only the benchmark settings of ``scale.SCALE_ENV`` (abuse limits lifted, an auth secret for
the webhook API). ``ours-postgres`` is the same server on PostgreSQL
(``CRDT_SERVER_DATABASE_URL``: a database made for the run on ``--postgres-url``'s server,
dropped after it). y-websocket-server runs on the same load (it persists to LevelDB after
echoing and derives nothing).

The offered rate steps through ``--rates`` (updates/s in all, open loop, ``--step-seconds``
each) on one server; the result is the highest step with echo p99 < 100 ms and nothing lost
(every update echoed to its writer and delivered to every other member of its room). After
the last step a fresh client per room checks that the server holds every writer's clocks
(every acknowledged update is stored). Each step prints the machine's load average and the
CPU of every process that used any (the server, each load-generator process, this driver,
everything else on the machine).

The shape rule's row (issue 47): the kind index's memory per document and the rule's CPU
per update, on this scenario's stream for one wedding (``benchmarks.shapes_bench``).

The operators' rows: the server's RSS after the ramp and per connection (over its RSS up and
idle before it), and, for ours, a cold start after the verify: every member disconnects, the
server is stopped (SIGTERM) and started again on the same data, and every member reconnects
at ``--cold-ramp-rate``: process start to listening and to serving, the reconnecting
clients' connect-to-synced p50/p99, the time until every one is synced, and what they were
sent checked against every writer's clocks. The projected reader's row: on
``--projected-weddings`` weddings a vendor's socket reads the guest list (the server puts
it on the vendor's projection, a server-written copy without the guests' notes and contact),
and during each step a couple's probe socket sets a probe guest's meal once a second; the
row is the time from the probe's send to the vendor's copy holding it (the source's commit,
a projection round, its commit and broadcast), p50/p99 (those probe updates are not in
``sent``: 1 per second per wedding). ``--saturday`` is the brief's Saturday: 100
weddings x 50 members, 250 to 2,500 updates/s (a 10x RSVP wave), every step run.

``--workers N`` runs ours as N processes (``crdt-server serve --workers N``) sharing rooms
through the Redis bus at ``--redis-url``: the same scenario, for N workers' saturation
against one process's (``benchmarks/device_scale.sh`` runs 1, 2, 4 and 8 and the brief's
scale, 50,000 connections at 16,700 updates/s, on a many-core machine).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import secrets
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if not __package__:  # run as a file: benchmarks.* is found from the root
    print(
        f"run it from {ROOT} as: .venv/bin/python -m benchmarks.product [options]", file=sys.stderr
    )
    sys.exit(2)

import asyncpg  # noqa: E402
from pycrdt import Doc, Map, TransactionEvent  # noqa: E402

from benchmarks import loadgen, scale, shapes_bench  # noqa: E402
from benchmarks.loadgen import Metric, YPeer, clock_ranges  # noqa: E402
from benchmarks.servers import (  # noqa: E402
    ServerProcess,
    ServerSpec,
    node_ready,
    ours_spec,
    server_specs,
)
from crdt_server.auth.tokens import TokenCodec  # noqa: E402
from crdt_server.codec.protocol import encode_update  # noqa: E402
from crdt_server.testing.client import YClient  # noqa: E402

MEMBERS = 10
"""Members of a wedding unless ``--members`` says otherwise."""
SHAPE_UPDATES = 100
"""Updates per writer in the shape rule's row (:mod:`benchmarks.shapes_bench`)."""
SHARES: tuple[tuple[str, int], ...] = (("guests", 5), ("timeline", 3), ("budget", 2))
"""Which document a wedding's members work on, in tenths: half on the guest list, 3 in 10 on
the timeline, 2 in 10 on the budget."""


def docs_for(members: int) -> tuple[tuple[str, int], ...]:
    """How many of a wedding's ``members`` work on each document: :data:`SHARES` of them,
    whole members by the largest remainder (10: 5 / 3 / 2; 50: 25 / 15 / 10; 7: 4 / 2 / 1),
    at least one on each document."""
    if members < len(SHARES):
        raise ValueError(f"a wedding needs at least {len(SHARES)} members, one per document")
    whole = sum(share for _, share in SHARES)
    exact = [members * share / whole for _, share in SHARES]
    counts = [math.floor(x) for x in exact]
    by_remainder = sorted(range(len(SHARES)), key=lambda i: counts[i] - exact[i])
    for i in by_remainder[: members - sum(counts)]:
        counts[i] += 1
    assert sum(counts) == members and min(counts) >= 1, counts
    return tuple((doc, n) for (doc, _), n in zip(SHARES, counts, strict=True))


DOCS = docs_for(MEMBERS)
"""The documents of a wedding of :data:`MEMBERS`: 5 on the guest list, 3 on the timeline, 2
on the budget."""
EMPTY_UPDATE = b"\x00\x00"


# -- domain changes, as a stock Yjs client writes them ----------------------------------------


def _slot(n: int) -> tuple[str, str]:
    hour = 10 + n % 10
    return (f"2027-06-12T{hour:02d}:00:00+02:00", f"2027-06-12T{hour:02d}:45:00+02:00")


def _change(doc: Doc[Any], kind: str, cid: int, n: int) -> None:
    """The writer ``cid``'s ``n``-th change of a ``kind`` document (in a transaction)."""
    if kind == "guests":
        guests = doc.get("guests", type=Map)
        if n == 0:
            guests[f"g{cid}"] = Map(
                {"name": f"Guest {cid}", "household": f"h{cid % 97}", "side": "both",
                 "rsvp": "pending"}
            )  # fmt: skip
        elif n % 2:
            guests[f"g{cid}"]["rsvp"] = ("accepted", "declined", "pending")[n % 3]
        else:
            guests[f"g{cid}"]["meal"] = ("fish", "beef", "vegetarian", "vegan")[n % 4]
    elif kind == "timeline":
        items = doc.get("items", type=Map)
        start, end = _slot(n)
        if n == 0:
            items[f"t{cid}"] = Map(
                {"title": f"Moment {cid}", "start": start, "end": end, "location": "Garden",
                 "status": "planned"}
            )  # fmt: skip
        else:  # a move: both ends of the slot in one transaction
            item = items[f"t{cid}"]
            item["start"] = start
            item["end"] = end
    elif kind == "budget":
        categories = doc.get("categories", type=Map)
        payments = doc.get("payments", type=Map)
        if n == 0:
            categories[f"c{cid}"] = Map({"name": f"Vendors {cid}", "planned": 500_000})
        if n % 3 == 0:  # a new payment
            payments[f"p{cid}x{n}"] = Map(
                {"amount": 10_000 + n, "category_id": f"c{cid}", "date": "2027-05-01",
                 "payer": "Sam", "vendor": "Florist"}
            )  # fmt: skip
        else:  # its amount corrected
            payments[f"p{cid}x{n - n % 3}"]["amount"] = 12_000 + n
    else:
        raise ValueError(f"no changes for a {kind!r} document")


def domain_updates(kind: str, cid: int, count: int) -> list[tuple[bytes, int]]:
    """``count`` sync-update messages of writer ``cid`` on a ``kind`` document and how many
    clocks each takes: each the update of one transaction, as ``doc.on('update')`` gives it
    to a Yjs provider."""
    doc: Doc[Any] = Doc(client_id=cid)
    made: list[bytes] = []

    def on_transaction(event: TransactionEvent) -> None:
        made.append(event.update)

    doc.observe(on_transaction)
    for n in range(count):
        with doc.transaction():
            _change(doc, kind, cid, n)
    out = []
    for update in made:
        start, end = clock_ranges(update)[cid]
        out.append((encode_update(update), end - start))
    return out


def room_kind(room: str) -> str:
    return room.rsplit("/", 1)[-1]


# -- the agent -----------------------------------------------------------------------------


class ProductAgent(scale.Agent):
    """``scale.Agent`` whose writers send prepared domain changes (:func:`domain_updates`)."""

    def __init__(self) -> None:
        super().__init__()
        self.prepared: dict[int, list[tuple[bytes, int]]] = {}
        self.written: dict[str, dict[int, int]] = {}
        """room -> writer -> clocks prepared (the last step's are all sent)."""

    def _writers(
        self, rooms: list[str], id_base: int, writers_per_room: int
    ) -> list[tuple[str, int]]:
        """(room, client id) of every writer, numbered as ``Agent.sustain`` numbers them."""
        out: list[tuple[str, int]] = []
        for room in rooms:
            for _ in self.rooms.get(room, [])[:writers_per_room]:
                out.append((room, id_base + len(out)))
        return out

    async def prepare(
        self, rooms: list[str], id_base: int, count: int, writers_per_room: int = MEMBERS
    ) -> dict[str, Any]:
        """Make ``count`` updates for each writer (as many as it may send in a step)."""
        self.prepared.clear()
        t0 = time.perf_counter()
        for room, cid in self._writers(rooms, id_base, writers_per_room):
            self.prepared[cid] = domain_updates(room_kind(room), cid, count)
        return {"seconds": time.perf_counter() - t0}

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
        result = await super().sustain(
            rooms, writers_per_room, segments, t0, id_base, grace, pushback
        )
        for w in self.last_writers:
            self.written.setdefault(w.peer.wedding, {})[w.cid] = len(w.sent_at)
        return result

    def maker(self, room: str, cid: int) -> scale.Maker:
        updates = self.prepared[cid]
        return lambda _cid, n: updates[n]

    async def verify(self, rooms: list[str], connected: bool = False) -> dict[str, Any]:
        """A fresh client per room: does the server's sync step 2 hold every writer's clocks?
        ``connected``: the sync step 2 the room's first connected member got instead (after
        a cold start, what the reconnecting clients were sent)."""
        assert self.target is not None
        bad: list[str] = []
        for room in rooms:
            if connected:
                members = [p for p in self.rooms.get(room, []) if p.step2 is not None]
                if not members or not self._holds(room, members[0].step2 or EMPTY_UPDATE):
                    bad.append(room)
                continue
            peer = YPeer(self.target, room)
            try:
                await peer.open()
                await peer.wait_synced()
                if not self._holds(room, peer.step2 or EMPTY_UPDATE):
                    bad.append(room)
            finally:
                await loadgen.close_peers([peer], timeout=10.0)
        return {"rooms": len(rooms), "bad": bad}

    def _holds(self, room: str, step2: bytes) -> bool:
        """Does ``step2`` hold every clock every writer of ``room`` sent?"""
        held = clock_ranges(step2)
        return all(held.get(cid, (0, 0)) == (0, clocks)
                   for cid, clocks in self.written.get(room, {}).items())  # fmt: skip


# -- the controller --------------------------------------------------------------------------


QUIET_INTERVAL = 0.1
"""The quiet wedding's writer sends one guest edit every this many seconds (by default,
``--quiet-interval``). At the two-minute check's size (50 weddings) that is under a third of
what each busy wedding sends at 4x; at 1,000 weddings it is 5.6 times as much, so the "quiet"
wedding is the busiest one there: the burst's line says which it is."""


@dataclass
class Options:
    servers: list[str]
    weddings: int
    rates: list[float]
    step_seconds: float
    agents: int
    ramp_rate: float
    webhook_weddings: int
    grace: float
    keep_going: bool
    members: int = MEMBERS
    projected_weddings: int = 0
    """Weddings whose guest list a vendor reads through its projection (the probe's row)."""
    cold_ramp_rate: float = 2000.0
    """Connections reopened/s after the cold start (0: all at once)."""
    postgres_url: str = "postgresql://postgres@127.0.0.1:5432/postgres"
    """Where ``ours-postgres`` creates (and drops) its run's database."""
    title: str = "Product scenario"
    overload: bool = False
    """After the steps, the overload bursts (:func:`run_bursts`); no cold start then."""
    sustain_p99_ms: float = 100.0
    """A step is sustained with echo p99 under this (and nothing lost)."""
    burst_seconds: float = 60.0
    recovery_seconds: float = 15.0
    quiet_interval: float = QUIET_INTERVAL
    """``--overload``: the quiet wedding sends a guest edit every this many seconds."""
    workers: int = 1
    """Our server's processes (``crdt-server serve --workers N``, rooms shared through the
    Redis bus at ``redis_url``); the peers always run as one process."""
    redis_url: str = ""
    cold_start: bool = True
    """Ours, without ``--overload``: the cold start after the verify (``--no-cold-start``)."""
    run_id: str = field(default_factory=lambda: secrets.token_hex(3))

    @property
    def docs(self) -> tuple[tuple[str, int], ...]:
        return docs_for(self.members)


def proc_cpu() -> dict[int, tuple[str, float]]:
    """CPU seconds (user + system, all threads) of every process on the machine."""
    out: dict[int, tuple[str, float]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                raw = f.read()
        except OSError:
            continue
        comm = raw[raw.index(b"(") + 1 : raw.rindex(b")")].decode(errors="replace")
        fields = raw[raw.rindex(b")") + 2 :].split()
        out[int(name)] = (comm, (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"))
    return out


def cpu_table(
    before: dict[int, tuple[str, float]],
    after: dict[int, tuple[str, float]],
    wall: float,
    roles: dict[int, str],
) -> str:
    """Every process that used CPU over the window (0.5 % of a core or more), in % of one
    core, busiest first."""
    rows = []
    for pid, (comm, cpu) in after.items():
        used = cpu - before.get(pid, (comm, 0.0))[1]
        if wall > 0 and 100.0 * used / wall >= 0.5:
            rows.append((100.0 * used / wall, pid, comm, roles.get(pid, "other")))
    rows.sort(reverse=True)
    return "; ".join(f"{role} {comm}[{pid}] {pct:.0f}%" for pct, pid, comm, role in rows)


def loadavg() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


@dataclass
class Step:
    rate: float
    sent: int = 0
    sent_per_s: float = 0.0
    echo_p50: float | None = None
    echo_p99: float | None = None
    delivery_p99: float | None = None
    lost: int = 0
    missing: int = 0
    late: int = 0
    closed: int = 0
    closed_codes: dict[str, int] = field(default_factory=dict)
    """The close codes of the sockets the server closed in the step, each with its count."""
    server_ms_per_update: float | None = None
    generator_pct: list[float] = field(default_factory=list)
    server_pct: float = 0.0
    other_pct: float = 0.0
    database_pct: float | None = None
    """ours-postgres: CPU of PostgreSQL's processes (the backends of the run's database and
    the server's background processes), % of one core; not in ``server_pct``."""
    database_ms_per_update: float | None = None
    fsync_p50: float | None = None
    commit_p50: float | None = None
    updates_per_commit: float | None = None
    """Ours: updates per room commit in the step (``crdt_commit_batch_size``, the conflicts
    and projection rooms the server writes included): how many updates share each room's
    batch, and so each call of its commit-side hooks."""
    projected_p50: float | None = None
    """The projected reader: a probe write to the vendor's projected copy holding it, ms."""
    projected_p99: float | None = None
    projected_probes: int = 0
    projected_timeouts: int = 0
    load: str = ""
    processes: str = ""
    p99_bound: float = 100.0
    """Echo p99 (ms) a sustained step stays under (``--sustain-p99-ms``)."""

    @property
    def ok(self) -> bool:
        return (
            self.sent_per_s >= 0.95 * self.rate  # the load generator kept the offered rate
            and self.echo_p99 is not None
            and self.echo_p99 < self.p99_bound
            and self.lost == 0
            and self.missing == 0
            and self.closed == 0
        )


@dataclass
class Memory:
    """The server's RSS (the process and its children) around the ramp."""

    before_kib: int
    """Up and idle, before the first connection (after its own probe client)."""
    after_kib: int
    """Every connection open and synced (each room loaded, still empty), the server idle
    again; before the webhook endpoints are made and before the first step."""
    connections: int

    @property
    def per_connection_kib(self) -> float | None:
        return (self.after_kib - self.before_kib) / self.connections if self.connections else None


@dataclass
class ColdStart:
    """Stop the server after the last step, start it on the same data, every member back."""

    stop_seconds: float
    exit_code: int | None
    listening_seconds: float
    """Process spawned to its ``listening on`` line (to within the 50 ms log poll)."""
    serving_seconds: float
    """Process spawned to a probe client's sync step 2 (the harness's "ready")."""
    rate: float
    connections: int
    synced: int
    failed: dict[str, int]
    p50: float | None
    p99: float | None
    all_synced_seconds: float
    """From the first reconnect offered until every member's open call had returned."""
    rss_kib: int
    verified: str
    unstored: int


@dataclass
class Result:
    server: str
    steps: list[Step] = field(default_factory=list)
    verified: str = ""
    hooks: list[Metric] = field(default_factory=list)
    unstored: int = 0
    """Rooms whose sync step 2 misses a clock a writer sent."""
    memory: Memory | None = None
    cold: ColdStart | None = None
    notes: list[str] = field(default_factory=list)
    """Lines printed under the table (e.g. the PostgreSQL it ran on)."""
    bursts: list[Burst] = field(default_factory=list)

    @property
    def sustained(self) -> Step | None:
        good = [s for s in self.steps if s.ok]
        return max(good, key=lambda s: s.rate) if good else None


def fmt(value: float | None, spec: str = "{:.1f}") -> str:
    return "n/a" if value is None else spec.format(value)


PROBE_SECONDS = 1.0
"""How often the projected reader's probe writes, per wedding."""


class ProjectionProbe:
    """The projected reader (ours only): on each of ``weddings``, a vendor's socket on the
    guest list, which the server serves from the vendor's projection, and a couple's probe
    socket that, while :meth:`during` runs, sets a probe guest's meal every
    :data:`PROBE_SECONDS`; each probe's time from its send to the vendor's copy holding it
    is kept (the vendor's copy must never hold the probe guest's contact, written once)."""

    def __init__(self, server: ServerProcess, weddings: Sequence[str]) -> None:
        self.weddings = list(weddings)
        url = f"ws://{server.host}:{server.port}/sync"
        codec = TokenCodec(algorithms=["HS256"], secret=scale._SCALE_SECRET.encode())

        def token(role: str, w: str) -> str:
            return codec.mint(sub=f"probe-{role}", role=role, wedding=w, ttl=4 * 3600)

        self.pairs = [
            (YClient(url, f"{w}/guests", token=token("couple", w)),
             YClient(url, f"{w}/guests", token=token("vendor", w)))
            for w in self.weddings
        ]  # fmt: skip
        self.leaked = 0

    async def __aenter__(self) -> ProjectionProbe:
        try:
            for writer, reader in self.pairs:
                await writer.connect()
                await reader.connect()
                await writer.wait(writer.synced.is_set)
                await reader.wait(reader.synced.is_set)
                guests = writer.doc.get("guests", type=Map)
                with writer.doc.transaction():
                    guests["probe"] = Map(
                        {"name": "Probe", "rsvp": "accepted", "contact": "+44 probe-secret"}
                    )
                await writer.flush()
                await reader.wait(partial(_probe_meal_seen, reader), 30.0)
        except BaseException:
            await self.__aexit__()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        for writer, reader in self.pairs:
            with contextlib.suppress(Exception):
                await writer.close()
            with contextlib.suppress(Exception):
                await reader.close()

    @contextlib.asynccontextmanager
    async def during(self, step: Step) -> AsyncIterator[None]:
        """Probe while the body runs; fill ``step``'s projected-reader fields after it."""
        stop = asyncio.Event()
        lags: list[float] = []
        timeouts = [0]

        async def probe(k: int, writer: YClient, reader: YClient) -> None:
            await asyncio.sleep(PROBE_SECONDS * k / max(1, len(self.pairs)))  # spread out
            n = 0
            while not stop.is_set():
                n += 1
                value = f"meal-{n}"
                t0 = time.perf_counter()
                entry = writer.doc.get("guests", type=Map)["probe"]
                entry["meal"] = value
                await writer.flush()
                try:
                    await reader.wait(partial(_probe_meal_is, reader, value), 10.0)
                    lags.append(1000.0 * (time.perf_counter() - t0))
                except TimeoutError:
                    timeouts[0] += 1
                left = PROBE_SECONDS - (time.perf_counter() - t0)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), max(0.0, left))

        tasks = [asyncio.create_task(probe(k, *pair)) for k, pair in enumerate(self.pairs)]
        try:
            yield
        finally:
            stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
        self.leaked += sum(b"probe-secret" in r.doc.get_update() for _, r in self.pairs)
        step.projected_p50 = loadgen.percentile(lags, 50) if lags else None
        step.projected_p99 = loadgen.percentile(lags, 99) if lags else None
        step.projected_probes = len(lags)
        step.projected_timeouts = timeouts[0]


def _probe_meal_is(reader: YClient, value: str) -> bool:
    return _probe_meal(reader) == value


def _probe_meal_seen(reader: YClient) -> bool:
    return _probe_meal(reader) is not None


def _probe_meal(reader: YClient) -> str | None:
    """The probe guest's meal in ``reader``'s copy ("" once the guest is there)."""
    entry = reader.doc.get("guests", type=Map).get("probe")
    if entry is None or not hasattr(entry, "get"):
        return None
    return str(entry.get("meal") or "")


async def run_server(
    opts: Options, spec: ServerSpec, run_dir: Path, database: Database | None = None
) -> Result:
    result = Result(spec.name)
    ours = spec.name.startswith("ours")
    weddings = [f"pw{i}x{opts.run_id}" for i in range(opts.weddings)]
    parts = scale.split(weddings, opts.agents)
    server = await scale.start_server(spec, run_dir, opts.workers if ours else 1)
    try:
        async with scale.Agents(opts.agents, "benchmarks.product") as agents:
            await agents.hello(server)
            agent_rooms = [[f"{w}/{d}" for w in part for d, _ in opts.docs] for part in parts]
            rss0 = loadgen.process_rss_kib(server.pid)  # up and idle (scale.start_server)
            connections = 0
            for doc, members in opts.docs:
                t0 = time.perf_counter() + 0.3
                opened = await asyncio.gather(
                    *(a.call("open", rooms=[f"{w}/{doc}" for w in part], per_room=members,
                             rate=opts.ramp_rate / opts.agents, t0=t0)
                      for a, part in zip(agents.all, parts, strict=True))
                )  # fmt: skip
                failed = scale.merge_counts(opened, "failed")
                if failed:
                    raise RuntimeError(f"connections failed: {scale.codes_text(failed)}")
                connections += sum(len(r["times"]) for r in opened)
            await loadgen.wait_server_idle(server.pid, 60.0, quiet=1.0)
            result.memory = Memory(rss0, loadgen.process_rss_kib(server.pid), connections)
            rooms = len(weddings) * len(opts.docs)
            print_memory(spec.name, result.memory, rooms, database is not None)
            await run_steps(opts, server, agents, agent_rooms, weddings, ours, result, database)
            if ours and not opts.overload and opts.cold_start:
                result.cold = await cold_start(opts, server, agents, parts, agent_rooms)
                print_cold(spec.name, result.cold)
    finally:
        await server.stop()
    return result


async def run_steps(
    opts: Options,
    server: ServerProcess,
    agents: scale.Agents,
    agent_rooms: list[list[str]],
    weddings: list[str],
    ours: bool,
    result: Result,
    database: Database | None,
) -> None:
    """The webhook endpoints (ours), the steps, the check of what is stored, the webhook
    rows; the webhook receiver is stopped before it returns."""
    async with contextlib.AsyncExitStack() as stack:
        sink = None
        featured = ours and result.server != "ours-nofeatures"
        if featured and opts.webhook_weddings > 0:
            sink = await stack.enter_async_context(
                scale.WebhookSink(server, weddings[: opts.webhook_weddings])
            )
        probe = None
        if featured and opts.projected_weddings > 0:
            probe = await stack.enter_async_context(
                ProjectionProbe(server, weddings[: opts.projected_weddings])
            )
        await steps_and_verify(opts, server, agents, agent_rooms, ours, result, database, probe)
        if sink is not None:
            result.hooks = await sink.rows("webhooks")
        if probe is not None and probe.leaked:
            result.notes.append(f"PROJECTION LEAK: {probe.leaked} vendor copies hold a contact")


async def steps_and_verify(
    opts: Options,
    server: ServerProcess,
    agents: scale.Agents,
    agent_rooms: list[list[str]],
    ours: bool,
    result: Result,
    database: Database | None,
    probe: ProjectionProbe | None = None,
) -> None:
    roles = {server.pid: "server", os.getpid(): "driver"}
    for p in loadgen.process_tree(server.pid)[1:]:
        roles[p] = "server"
    for a in agents.all:
        assert a.proc is not None
        roles[a.proc.pid] = f"agent{a.index}"
    for k, rate in enumerate(opts.rates):
        await loadgen.wait_server_idle(server.pid, 60.0, quiet=1.0)
        step = await one_step(
            opts, server, agents, agent_rooms, rate, k, roles, ours, database, probe
        )
        result.steps.append(step)
        print_step(result.server, step)
        if not step.ok and not opts.keep_going:
            break
    if opts.overload:
        await run_bursts(opts, server, agents, agent_rooms, roles, result)
    verified = await asyncio.gather(
        *(a.call("verify", rooms=rooms) for a, rooms in zip(agents.all, agent_rooms,
                                                            strict=True))
    )  # fmt: skip
    result.verified = verified_text(verified)
    result.unstored = sum(len(v["bad"]) for v in verified)


def verified_text(verified: Sequence[dict[str, Any]]) -> str:
    bad = [r for v in verified for r in v["bad"]]
    total = sum(v["rooms"] for v in verified)
    return f"{total - len(bad)} of {total} rooms hold every writer's clocks"


async def cold_start(
    opts: Options,
    server: ServerProcess,
    agents: scale.Agents,
    parts: list[list[str]],
    agent_rooms: list[list[str]],
) -> ColdStart:
    """Every member disconnects; the server is stopped (SIGTERM: its graceful shutdown)
    and started again on the same data (the same data directory, or database); every
    member reconnects at ``--cold-ramp-rate``, each document's members interleaved with
    the others' (as clients coming back after a deploy do), and what they were sent is
    checked against every clock every writer sent."""
    await asyncio.gather(*(a.call("close", timeout=120.0) for a in agents.all))
    await loadgen.wait_server_idle(server.pid, 60.0, quiet=1.0)
    t = time.perf_counter()
    code = await server.stop(timeout=60.0)
    stop_seconds = time.perf_counter() - t
    await server.start(timeout=120.0)
    listening = server.listening_at - server.launched_at
    serving = server.serving_at - server.launched_at
    await agents.hello(server)  # a new port
    rate = opts.cold_ramp_rate
    t0 = time.perf_counter() + 0.3
    calls = [
        a.call("open", rooms=[f"{w}/{doc}" for w in part], per_room=members,
               rate=rate * members / opts.members / opts.agents, t0=t0)
        for a, part in zip(agents.all, parts, strict=True)
        for doc, members in opts.docs
    ]  # fmt: skip
    opened = await asyncio.gather(*calls)
    all_synced = time.perf_counter() - t0
    times = [t for r in opened for t in r["times"]]
    verified = await asyncio.gather(
        *(a.call("verify", rooms=rooms, connected=True)
          for a, rooms in zip(agents.all, agent_rooms, strict=True))
    )  # fmt: skip
    await loadgen.wait_server_idle(server.pid, 60.0, quiet=1.0)
    return ColdStart(
        stop_seconds=stop_seconds,
        exit_code=code,
        listening_seconds=listening,
        serving_seconds=serving,
        rate=rate,
        connections=opts.weddings * opts.members,
        synced=len(times),
        failed=dict(scale.merge_counts(opened, "failed")),
        p50=loadgen.percentile(times, 50),
        p99=loadgen.percentile(times, 99),
        all_synced_seconds=all_synced,
        rss_kib=loadgen.process_rss_kib(server.pid),
        verified=verified_text(verified),
        unstored=sum(len(v["bad"]) for v in verified),
    )


async def one_step(
    opts: Options,
    server: ServerProcess,
    agents: scale.Agents,
    agent_rooms: list[list[str]],
    rate: float,
    k: int,
    roles: dict[int, str],
    ours: bool,
    database: Database | None = None,
    probe: ProjectionProbe | None = None,
) -> Step:
    step = Step(rate, p99_bound=opts.sustain_p99_ms)
    per_writer = rate / (opts.weddings * opts.members)
    count = math.ceil(opts.step_seconds * per_writer)  # the most Agent.sustain sends
    id_base = 10_000_000 + 1_000_000 * k
    bases = [id_base + 100_000 * a.index for a in agents.all]
    await asyncio.gather(
        *(a.call("prepare", rooms=rooms, id_base=base, count=count,
                 writers_per_room=opts.members)
          for a, rooms, base in zip(agents.all, agent_rooms, bases, strict=True))
    )  # fmt: skip
    before = await scale.commit_buckets(server) if ours else {}
    counts0 = await scale.commit_counts(server) if ours else (0.0, 0.0)
    cpu0 = loadgen.process_cpu_seconds(server.pid)
    gen_pids = [a.proc.pid for a in agents.all if a.proc is not None]
    gen0 = [loadgen.process_cpu_seconds(p) for p in gen_pids]
    db_pids = await database.pids() if database is not None else set()
    procs0 = proc_cpu()
    window = scale.LoadWindow(server.pid, agents)
    wall0 = time.perf_counter()
    t0 = wall0 + 0.5
    probing = probe.during(step) if probe is not None else contextlib.nullcontext()
    with scale.FsyncProbe(server.data_dir, 20.0) as fsync:
        async with probing:
            results = await asyncio.gather(
                *(a.call("sustain", rooms=rooms, writers_per_room=opts.members,
                         segments=[[opts.step_seconds, per_writer]], t0=t0, id_base=base,
                         grace=opts.grace)
                  for a, rooms, base in zip(agents.all, agent_rooms, bases, strict=True))
            )  # fmt: skip
            await scale.settle(server.pid, list(zip(agents.all, results, strict=True)))
    wall = time.perf_counter() - wall0
    window.stop()
    procs1 = proc_cpu()
    if database is not None:
        db_pids |= await database.pids()
    cpu = loadgen.process_cpu_seconds(server.pid) - cpu0
    gen = [loadgen.process_cpu_seconds(p) - c for p, c in zip(gen_pids, gen0, strict=True)]
    after = await scale.commit_buckets(server) if ours else {}
    counts1 = await scale.commit_counts(server) if ours else (0.0, 0.0)
    if counts1[0] > counts0[0]:
        step.updates_per_commit = (counts1[1] - counts0[1]) / (counts1[0] - counts0[0])
    echo = scale.merge_hists(results, "echo")
    delivery = scale.merge_hists(results, "delivery")
    step.sent = sum(r["sent"] for r in results)
    step.sent_per_s = step.sent / max(r["send_seconds"] for r in results)
    step.echo_p50 = scale.hist_percentile(echo, 50)
    step.echo_p99 = scale.hist_percentile(echo, 99)
    step.delivery_p99 = scale.hist_percentile(delivery, 99)
    step.lost = sum(r["expected_echoes"] - r["echoes"] for r in results)
    step.missing = sum(r["expected_deliveries"] - r["deliveries"] for r in results)
    step.late = sum(r["late_echoes"] + r["late_deliveries"] for r in results)
    codes = scale.merge_counts(results, "closed")
    step.closed = sum(codes.values())
    step.closed_codes = dict(codes)
    step.server_ms_per_update = 1000.0 * cpu / step.sent if step.sent else None
    step.server_pct = 100.0 * cpu / wall
    step.generator_pct = [100.0 * g / wall for g in gen]
    rows = {m.name: m.value for m in window.metrics("w")}
    step.other_pct = rows.get("w: other processes CPU % (noise)") or 0.0
    if database is not None:
        used = sum(procs1[p][1] - procs0.get(p, procs1[p])[1] for p in db_pids if p in procs1)
        step.database_pct = 100.0 * used / wall
        step.database_ms_per_update = 1000.0 * used / step.sent if step.sent else None
        step.other_pct = max(0.0, step.other_pct - step.database_pct)
        roles.update(dict.fromkeys(db_pids, "postgres"))
    step.fsync_p50 = loadgen.percentile(fsync.times, 50)
    step.commit_p50 = scale.bucket_percentile(before, after, 50) if ours else None
    step.load = loadavg()
    step.processes = cpu_table(procs0, procs1, wall, roles)
    return step


def print_step(name: str, s: Step) -> None:
    gens = " + ".join(f"{g:.0f}" for g in s.generator_pct)
    database = ""
    if s.database_pct is not None:
        database = (f"PostgreSQL {fmt(s.database_ms_per_update, '{:.3f}')} ms CPU/update "
                    f"({s.database_pct:.0f}% of a core), ")  # fmt: skip
    print(
        f"[{name}] offered {s.rate:.0f}/s: sent {s.sent_per_s:.0f}/s, echo p50 "
        f"{fmt(s.echo_p50)} p99 {fmt(s.echo_p99)} ms, delivery p99 {fmt(s.delivery_p99)} ms, "
        f"lost {s.lost}, missing {s.missing}, late {s.late}, closed {s.closed} "
        f"({scale.codes_text(Counter(s.closed_codes))}), server "
        f"{fmt(s.server_ms_per_update, '{:.3f}')} ms CPU/update ({s.server_pct:.0f}% of a "
        f"core), {database}load generator {gens}% , other {s.other_pct:.0f}%, fsync probe p50 "
        f"{fmt(s.fsync_p50, '{:.2f}')} ms, commit p50 {fmt(s.commit_p50)} ms (bucket), "
        f"{fmt(s.updates_per_commit, '{:.2f}')} updates per room commit, "
        f"load average {s.load} -> {'ok' if s.ok else 'NOT sustained'}",
        flush=True,
    )
    if s.projected_probes or s.projected_timeouts:
        print(f"    {projected_text(s)}", flush=True)
    print(f"    processes: {s.processes}", flush=True)


def projected_text(s: Step) -> str:
    return (
        f"projected reader (a vendor's socket on the guest list, served its projection): a "
        f"probe write to the vendor's copy holding it p50 {fmt(s.projected_p50)} p99 "
        f"{fmt(s.projected_p99)} ms ({s.projected_probes} probes, {s.projected_timeouts} "
        "not seen within 10 s)"
    )


def mib(kib: float) -> str:
    return f"{kib / 1024:.1f} MiB"


def print_memory(name: str, m: Memory, rooms: int, postgres: bool = False) -> None:
    whose = "the process and its children" + ("; PostgreSQL's not counted" if postgres else "")
    print(
        f"[{name}] memory: RSS {mib(m.before_kib)} up and idle before the ramp, "
        f"{mib(m.after_kib)} after it ({m.connections} connections open and synced, {rooms} "
        f"rooms loaded, the server idle again; before the webhook endpoints and the first "
        f"step) -> {fmt(m.per_connection_kib)} KiB per connection ({whose})",
        flush=True,
    )


def print_cold(name: str, c: ColdStart) -> None:
    rate = f"{c.rate:.0f}/s" if c.rate > 0 else "all at once"
    failed = scale.codes_text(Counter(c.failed))
    print(
        f"[{name}] cold start: stopped (SIGTERM) in {c.stop_seconds:.2f} s, exit {c.exit_code}; "
        f"process start to listening {c.listening_seconds:.2f} s, to serving (a probe client "
        f"synced) {c.serving_seconds:.2f} s; {c.synced} of {c.connections} members reconnected "
        f"({rate}): connect-to-synced p50 {fmt(c.p50)} p99 {fmt(c.p99)} ms, every one synced "
        f"{c.all_synced_seconds:.2f} s after the first was offered (failed: {failed}); RSS "
        f"after {mib(c.rss_kib)}; stored: {c.verified} (the reconnected clients' sync step 2)",
        flush=True,
    )


def render(results: list[Result], opts: Options) -> str:
    split = " / ".join(f"{n} {doc}" for doc, n in opts.docs)
    lines = [
        f"## {opts.title}: {opts.weddings} weddings x {opts.members} members ({split}), steps "
        f"{', '.join(f'{r:.0f}' for r in opts.rates)} updates/s x {opts.step_seconds:g} s",
        "",
        f"| server | sustained updates/s (echo p99 < {opts.sustain_p99_ms:g} ms, nothing lost) "
        "| echo p50 / p99 ms "
        "| server CPU ms per update | load generator CPU % (per process) | stored "
        "| server RSS after the ramp (KiB per connection) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        m = r.memory
        memory = f"{mib(m.after_kib)} ({fmt(m.per_connection_kib)})" if m else ""
        s = r.sustained
        if s is None:
            lines.append(f"| {r.server} | none of the steps | | | | {r.verified} | {memory} |")
            continue
        gens = " + ".join(f"{g:.0f}" for g in s.generator_pct)
        cpu = fmt(s.server_ms_per_update, "{:.3f}")
        if s.database_pct is not None:
            cpu += f" + PostgreSQL {fmt(s.database_ms_per_update, '{:.3f}')}"
        lines.append(
            f"| {r.server} | {s.rate:.0f} (sent {s.sent_per_s:.0f}) | {fmt(s.echo_p50)} / "
            f"{fmt(s.echo_p99)} | {cpu} | {gens} | {r.verified} | {memory} |"
        )
    by = {r.server: r.sustained for r in results}
    ours, peer = by.get("ours"), by.get("y-websocket")
    if ours and peer and ours.server_ms_per_update and peer.server_ms_per_update:
        lines += [
            "",
            f"ours / y-websocket: sustained rate {ours.rate / peer.rate:.2f}x (goal >= 0.5), "
            f"CPU per update {ours.server_ms_per_update / peer.server_ms_per_update:.2f}x "
            "(goal <= 1.5)",
        ]
    for r in results:
        shown = r.sustained or (r.steps[-1] if r.steps else None)
        if shown is not None and (shown.projected_probes or shown.projected_timeouts):
            lines += [
                "",
                f"{r.server} at {shown.rate:.0f} updates/s, {opts.projected_weddings} "
                f"weddings: {projected_text(shown)}",
            ]
    cold = [(r.server, r.cold) for r in results if r.cold is not None]
    if cold:
        back = f"at {opts.cold_ramp_rate:.0f}/s" if opts.cold_ramp_rate > 0 else "all at once"
        lines += [
            "",
            f"Cold start (after the last step: SIGTERM, started again on the same data, every "
            f"member back {back}):",
            "",
            "| server | stop s | start to listening s | start to serving s | members synced "
            "| connect-to-synced p50 / p99 ms | all synced after s | RSS after | stored |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for name, c in cold:
            lines.append(
                f"| {name} | {c.stop_seconds:.2f} (exit {c.exit_code}) | "
                f"{c.listening_seconds:.2f} | {c.serving_seconds:.2f} | {c.synced} of "
                f"{c.connections} | {fmt(c.p50)} / {fmt(c.p99)} | {c.all_synced_seconds:.2f} | "
                f"{mib(c.rss_kib)} | {c.verified} |"
            )
    lines += render_bursts(results)
    for r in results:
        for hook in r.hooks:
            lines.append(f"{r.server} {hook.name}: {hook.text()}")
    for r in results:
        for note in r.notes:
            lines.append(f"{r.server}: {note}")
    return "\n".join(lines)


# -- overload (no collapse: the excess is pushed back) ------------------------------------

OVERLOAD_FACTORS = (4.0, 8.0)
"""``--overload``: the bursts offer these multiples of the sustainable rate."""
RECOVERED_MS = 100.0
"""Latency "back" after a burst: echo p99 under this (the writers' per second, and every
later quiet-wedding probe)."""


class QuietProbe:
    """A quiet wedding (not one of the load's) measured on its own: one writer on its guest
    list sends a guest edit every :data:`QUIET_INTERVAL` and times its echo, from this driver
    process (which does no other work while the agents send)."""

    def __init__(self, server: ServerProcess, run_id: str, interval: float) -> None:
        self.interval = interval
        self.target = loadgen.Target(server.host, server.port, server.pid)
        self.room = f"quiet{run_id}/guests"
        self.cid = 9_000_001
        self.probes: list[tuple[float, float | None]] = []
        """(send time, echo latency s or None) of each probe, in order."""
        self._ends: list[int] = []
        self._updates: list[tuple[bytes, int]] = []
        self.peer: YPeer | None = None

    async def __aenter__(self) -> QuietProbe:
        peer = self.peer = YPeer(self.target, self.room)
        await peer.open()
        await peer.wait_synced()
        peer.client_id = self.cid
        peer.on_update = self._on_update
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.peer is not None:
            await loadgen.close_peers([self.peer], timeout=10.0)

    def _on_update(self, peer: YPeer, payload: bytes, t: float) -> None:
        got = clock_ranges(payload).get(self.cid)
        if got is None:
            return
        prev = peer.seen.get(self.cid, 0)
        if got[1] <= prev:
            return
        peer.seen[self.cid] = got[1]
        for k in range(len(self.probes)):
            sent, lat = self.probes[k]
            if lat is None and self._ends[k] <= got[1]:
                self.probes[k] = (sent, t - sent)

    @contextlib.asynccontextmanager
    async def during(self, seconds: float) -> AsyncIterator[None]:
        """Probe while the body runs (at most ``seconds`` worth of prepared edits)."""
        assert self.peer is not None
        peer = self.peer
        first = len(self._updates)
        count = math.ceil(seconds / self.interval) + 10
        self._updates = domain_updates("guests", self.cid, first + count)
        stop = asyncio.Event()

        async def probing() -> None:
            k = first
            while not stop.is_set() and k < len(self._updates):
                message, clocks = self._updates[k]
                self._ends.append((self._ends[-1] if self._ends else 0) + clocks)
                self.probes.append((time.perf_counter(), None))
                peer.send(message)
                k += 1
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.interval)

        task = asyncio.create_task(probing())
        try:
            yield
        finally:
            stop.set()
            await task


@dataclass
class Burst:
    """One overload burst: ``factor`` x the sustainable rate for ``seconds``, then the
    recovery at half the sustainable rate."""

    factor: float
    rate: float
    sustainable: float
    seconds: float
    recovery_seconds: float
    wedding_rate: float = 0.0
    """Updates/s each busy wedding is offered in the burst."""
    quiet_rate: float = 0.0
    """Updates/s the quiet wedding sends: quiet only if well under :attr:`wedding_rate`."""
    offered: int = 0
    sent: int = 0
    """Updates the writers sent (the kernel took them), burst and recovery."""
    deferred: int = 0
    """Updates due and not sent: the writer's socket was backed up (pushed back)."""
    acknowledged_per_s: float = 0.0
    """Echoes to their writers that arrived inside the burst, per second."""
    echo_p50: float | None = None
    echo_p99: float | None = None
    """The writers' echo from their send, ms, of every update sent in the burst."""
    server_p99: float | None = None
    """From taken in to echoed (``crdt_broadcast_seconds``), ms, a bucket bound."""
    commit_p50: float | None = None
    commit_p99: float | None = None
    """A room's commit (its hooks and the store's append, ``crdt_commit_seconds``), ms,
    bucket bounds: how much of ``server_p99`` is the commit."""
    quiet_p50: float | None = None
    quiet_p99: float | None = None
    """The quiet wedding's echo, ms, of its probes sent during the burst (unechoed: inf)."""
    recovery: float | None = None
    """s from the burst's end until the writers' per-second echo p99 is under 100 ms for
    good (by send second, in the recovery at half the sustainable rate)."""
    quiet_recovery: float | None = None
    """s from the burst's end until every later quiet probe echoes under 100 ms."""
    lost: int = 0
    missing: int = 0
    late: int = 0
    closed: dict[str, int] = field(default_factory=dict)
    server_pct: float = 0.0
    load: str = ""
    processes: str = ""

    @property
    def accepted_ratio(self) -> float:
        return self.acknowledged_per_s / self.sustainable if self.sustainable else 0.0

    def goals(self) -> list[tuple[str, bool]]:
        def below(v: float | None, bound: float) -> bool:
            return v is not None and v < bound

        return [
            ("acknowledged >= 0.9x sustainable", self.accepted_ratio >= 0.9),
            ("echo p99 < 1 s", below(self.echo_p99, 1000.0)),
            ("quiet echo p99 < 100 ms", below(self.quiet_p99, 100.0)),
            ("recovered within 5 s", below(self.recovery, 5.0) and below(self.quiet_recovery, 5.0)),
            ("nothing lost", self.lost == 0 and self.missing == 0),
        ]


def _recovery(echo_by_sec: dict[int, scale.Hist], after: float) -> float | None:
    """s after ``after`` (s from t0) until every later send second's echo p99 is under
    :data:`RECOVERED_MS` (None: no later second measured)."""
    secs = sorted(s for s in echo_by_sec if s >= math.floor(after))
    if not secs:
        return None
    slow = [s for s in secs if (scale.hist_percentile(echo_by_sec[s], 99) or 0.0) >= RECOVERED_MS]
    if not slow:
        return 0.0
    if slow[-1] == secs[-1]:
        return math.inf  # never back inside the recovery window
    return max(0.0, slow[-1] + 1 - after)


async def one_burst(
    opts: Options,
    server: ServerProcess,
    agents: scale.Agents,
    agent_rooms: list[list[str]],
    burst: Burst,
    k: int,
    roles: dict[int, str],
    quiet: QuietProbe,
) -> None:
    writers = opts.weddings * opts.members
    per_writer = burst.rate / writers
    calm = 0.5 * burst.sustainable / writers
    count = math.ceil(burst.seconds * per_writer + burst.recovery_seconds * calm) + 2
    id_base = 50_000_000 + 1_000_000 * k
    bases = [id_base + 100_000 * a.index for a in agents.all]
    await asyncio.gather(
        *(a.call("prepare", rooms=rooms, id_base=base, count=count,
                 writers_per_room=opts.members)
          for a, rooms, base in zip(agents.all, agent_rooms, bases, strict=True))
    )  # fmt: skip
    page0 = await scale.metrics_text(server)
    cpu0 = loadgen.process_cpu_seconds(server.pid)
    procs0 = proc_cpu()
    wall0 = time.perf_counter()
    t0 = wall0 + 0.5
    first_probe = len(quiet.probes)
    segments = [[burst.seconds, per_writer], [burst.recovery_seconds, calm]]
    async with quiet.during(burst.seconds + burst.recovery_seconds + 5.0):
        results = await asyncio.gather(
            *(a.call("sustain", rooms=rooms, writers_per_room=opts.members,
                     segments=segments, t0=t0, id_base=base, grace=opts.grace, pushback=True)
              for a, rooms, base in zip(agents.all, agent_rooms, bases, strict=True))
        )  # fmt: skip
        await scale.settle(server.pid, list(zip(agents.all, results, strict=True)))
    wall = time.perf_counter() - wall0
    procs1 = proc_cpu()
    cpu = loadgen.process_cpu_seconds(server.pid) - cpu0
    page1 = await scale.metrics_text(server)
    end = t0 + burst.seconds
    echoed: Counter[int] = Counter()
    by_sec: dict[int, scale.Hist] = {}
    for r in results:
        echoed.update({int(s): n for s, n in r["echoed_by_sec"].items()})
        for s, h in r["echo_by_sec"].items():
            by_sec.setdefault(int(s), Counter()).update(scale.hist_load(h))
    burst.acknowledged_per_s = sum(n for s, n in echoed.items() if s < burst.seconds) / (
        burst.seconds
    )
    in_burst: scale.Hist = Counter()
    for s, h in by_sec.items():
        if s < burst.seconds:
            in_burst.update(h)
    burst.echo_p50 = scale.hist_percentile(in_burst, 50)
    burst.echo_p99 = scale.hist_percentile(in_burst, 99)
    burst.recovery = _recovery(by_sec, burst.seconds)
    burst.sent = sum(r["sent"] for r in results)
    burst.deferred = sum(r.get("deferred", 0) for r in results)
    burst.offered = burst.sent + burst.deferred
    burst.lost = sum(r["expected_echoes"] - r["echoes"] for r in results)
    burst.missing = sum(r["expected_deliveries"] - r["deliveries"] for r in results)
    burst.late = sum(r["late_echoes"] + r["late_deliveries"] for r in results)
    burst.closed = dict(scale.merge_counts(results, "closed"))
    burst.server_p99 = loadgen.bucket_p(
        loadgen.histogram(page0, "crdt_broadcast_seconds"),
        loadgen.histogram(page1, "crdt_broadcast_seconds"),
        99,
    )
    for q in (50, 99):
        value = loadgen.bucket_p(
            loadgen.histogram(page0, "crdt_commit_seconds"),
            loadgen.histogram(page1, "crdt_commit_seconds"),
            q,
        )
        setattr(burst, f"commit_p{q}", value)
    probes = quiet.probes[first_probe:]
    during = [1000.0 * lat if lat is not None else math.inf for s, lat in probes if s < end]
    burst.quiet_p50 = loadgen.percentile(during, 50) if during else None
    burst.quiet_p99 = loadgen.percentile(during, 99) if during else None
    after = [(s, lat) for s, lat in probes if s >= end]
    slow = [s for s, lat in after if lat is None or lat * 1000.0 >= RECOVERED_MS]
    burst.quiet_recovery = (max(slow) - end) if slow else (0.0 if after else None)
    burst.server_pct = 100.0 * cpu / wall
    burst.load = loadavg()
    burst.processes = cpu_table(procs0, procs1, wall, roles)


def print_burst(name: str, b: Burst) -> None:
    pushed = 100.0 * b.deferred / b.offered if b.offered else 0.0
    met = ", ".join(f"{goal}: {'met' if ok else 'NOT met'}" for goal, ok in b.goals())
    print(
        f"[{name}] overload {b.factor:g}x ({b.rate:.0f}/s offered for {b.seconds:g} s, "
        f"sustainable {b.sustainable:.0f}/s): acknowledged {b.acknowledged_per_s:.0f}/s "
        f"({b.accepted_ratio:.2f}x sustainable), pushed back {pushed:.0f}% of the due "
        f"updates, echo p50 {fmt(b.echo_p50)} p99 {fmt(b.echo_p99)} ms (from the writer's "
        f"send), taken in to echo p99 {fmt(b.server_p99, '{:.0f}')} ms (server, bucket bound; "
        f"a room's commit p50 {fmt(b.commit_p50, '{:.0f}')} p99 {fmt(b.commit_p99, '{:.0f}')}), "
        f"quiet wedding echo p50 {fmt(b.quiet_p50)} p99 {fmt(b.quiet_p99)} ms (it sends "
        f"{b.quiet_rate:.2f}/s, each busy wedding {b.wedding_rate:.2f}/s), recovery "
        f"{fmt(b.recovery)} s (writers) / {fmt(b.quiet_recovery)} s (quiet), lost {b.lost}, "
        f"missing {b.missing}, late {b.late}, closed {scale.codes_text(Counter(b.closed))}, "
        f"server {b.server_pct:.0f}% of a core, load average {b.load}\n    goals: {met}\n"
        f"    processes: {b.processes}",
        flush=True,
    )


async def run_bursts(
    opts: Options,
    server: ServerProcess,
    agents: scale.Agents,
    agent_rooms: list[list[str]],
    roles: dict[int, str],
    result: Result,
) -> None:
    """The overload bursts at :data:`OVERLOAD_FACTORS` x the rate the steps sustained."""
    sustained = result.sustained
    if sustained is None:
        result.notes.append("overload: no step sustained, so no sustainable rate to multiply")
        return
    async with QuietProbe(server, opts.run_id, opts.quiet_interval) as quiet:
        for k, factor in enumerate(OVERLOAD_FACTORS):
            await loadgen.wait_server_idle(server.pid, 60.0, quiet=1.0)
            burst = Burst(factor, factor * sustained.rate, sustained.rate,
                          opts.burst_seconds, opts.recovery_seconds,
                          wedding_rate=factor * sustained.rate / opts.weddings,
                          quiet_rate=1.0 / opts.quiet_interval)  # fmt: skip
            await one_burst(opts, server, agents, agent_rooms, burst, k, roles, quiet)
            result.bursts.append(burst)
            print_burst(result.server, burst)


def render_bursts(results: list[Result]) -> list[str]:
    rows = [(r.server, b) for r in results for b in r.bursts]
    if not rows:
        return []
    lines = [
        "",
        "Overload (the sustainable rate is the highest step above; each burst is followed by "
        "half that rate, the recovery):",
        "",
        "| server | burst | acknowledged /s (x sustainable, goal >= 0.9) | pushed back % "
        "| echo p50 / p99 ms (goal p99 < 1,000) | taken in to echo p99 ms (server) "
        "| quiet wedding echo p50 / p99 ms (goal p99 < 100) | recovery s writers / quiet "
        "(goal < 5) | lost / missing | closed | load average |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, b in rows:
        pushed = 100.0 * b.deferred / b.offered if b.offered else 0.0
        lines.append(
            f"| {name} | {b.factor:g}x = {b.rate:.0f}/s x {b.seconds:g} s | "
            f"{b.acknowledged_per_s:.0f} ({b.accepted_ratio:.2f}x) | {pushed:.0f} | "
            f"{fmt(b.echo_p50)} / {fmt(b.echo_p99)} | {fmt(b.server_p99, '{:.0f}')} | "
            f"{fmt(b.quiet_p50)} / {fmt(b.quiet_p99)} | {fmt(b.recovery)} / "
            f"{fmt(b.quiet_recovery)} | {b.lost} / {b.missing} | "
            f"{scale.codes_text(Counter(b.closed))} | {b.load} |"
        )
    return lines


@dataclass
class Database:
    """The PostgreSQL database of an ``ours-postgres`` run (:func:`fresh_database`)."""

    admin_url: str
    name: str
    about: str = ""
    """The PostgreSQL server's version and durability settings."""

    @property
    def url(self) -> str:
        return f"{self.admin_url.rsplit('/', 1)[0]}/{self.name}"

    async def admin(self) -> asyncpg.Connection:
        try:
            return await asyncpg.connect(self.admin_url, timeout=10)
        except (OSError, asyncpg.PostgresError) as exc:
            raise RuntimeError(f"PostgreSQL at {self.admin_url} unreachable: {exc!r}") from exc

    async def pids(self) -> set[int]:
        """PostgreSQL's processes that work for this run: the backends connected to its
        database and the server's background processes (WAL writer, checkpointer, ...)."""
        conn = await self.admin()
        try:
            rows = await conn.fetch(
                "SELECT pid FROM pg_stat_activity"
                " WHERE datname = $1 OR backend_type <> 'client backend'",
                self.name,
            )
        finally:
            await conn.close()
        return {int(r["pid"]) for r in rows}


@contextlib.asynccontextmanager
async def fresh_database(admin_url: str, run_id: str) -> AsyncIterator[Database]:
    """A new PostgreSQL database ``bench_product_<run id>`` on the server of ``admin_url``
    (connected to its maintenance database), dropped afterwards, also when the run fails or
    is interrupted."""
    db = Database(admin_url, f"bench_product_{run_id}")
    conn = await db.admin()
    try:
        await conn.execute(f'CREATE DATABASE "{db.name}"')
        about = [
            f"{key} {await conn.fetchval(f'SHOW {key}')}"
            for key in ("server_version", "fsync", "synchronous_commit", "full_page_writes")
        ]
    finally:
        await conn.close()
    db.about = f"database {db.name} (dropped after the run); PostgreSQL {', '.join(about)}"
    try:
        yield db
    finally:
        conn = await db.admin()
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{db.name}" WITH (FORCE)')
        finally:
            await conn.close()


async def run_one(opts: Options, spec: ServerSpec, run_dir: Path) -> Result:
    """:func:`run_server`; ``ours-postgres`` on a database of its own for the run."""
    if spec.name != "ours-postgres":
        return await run_server(opts, spec, run_dir)
    async with fresh_database(opts.postgres_url, opts.run_id) as db:
        print(f"[{spec.name}] {db.about}", flush=True)
        spec = replace(spec, env=(*spec.env, ("CRDT_SERVER_DATABASE_URL", db.url)))
        result = await run_server(opts, spec, run_dir, db)
        result.notes.append(db.about)
        return result


async def main_async(opts: Options, keep: bool, json_path: Path | None) -> int:
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):  # every server and agent is still stopped
        loop.add_signal_handler(sig, task.cancel)
    specs = dict(server_specs())
    specs["ours"] = ours_spec("ours", env=scale.SCALE_ENV, notes=specs["ours"].notes)
    specs["ours-postgres"] = ours_spec(
        "ours-postgres",
        env=scale.SCALE_ENV,
        notes="crdt-server on PostgreSQL (a fresh database per run), echo after commit",
    )
    specs["ours-nofeatures"] = ours_spec(
        "ours-nofeatures",
        env=(*scale.SCALE_ENV, ("CRDT_SERVER_FEATURES", "none")),
        notes="crdt-server with no feature (CRDT_SERVER_FEATURES=none): the sync path alone",
    )
    baseline = specs.get("ours-baseline")
    if baseline is not None:  # BENCH_BASELINE_SRC: another checkout, the same settings
        specs["ours-baseline"] = replace(baseline, env=(*baseline.env, *scale.SCALE_ENV))
    if opts.workers > 1:  # the same settings on N processes and the Redis bus
        specs["ours"] = scale.workers_spec(f"ours-{opts.workers}workers", opts.workers,
                                           opts.redis_url)  # fmt: skip
    unknown = [s for s in opts.servers if s not in specs]
    if unknown:
        raise SystemExit(f"unknown servers {unknown} (ours-baseline needs BENCH_BASELINE_SRC)")
    names = list(opts.servers)
    if "y-websocket" in names and not node_ready():
        print("y-websocket left out: run npm ci in benchmarks/node", file=sys.stderr)
        names.remove("y-websocket")
    print(f"load average at the start: {loadavg()} ({os.cpu_count()} cores)", flush=True)
    base = Path(tempfile.mkdtemp(prefix="product-bench-"))
    results: list[Result] = []
    try:
        for name in names:
            try:
                results.append(await run_one(opts, specs[name], base / name))
            except (OSError, RuntimeError, TimeoutError) as exc:  # the other servers still run
                print(f"[{name}] failed: {exc}", flush=True)
                results.append(Result(name, verified=f"failed: {exc}"))
    finally:
        if not keep:
            shutil.rmtree(base, ignore_errors=True)
    print()
    print(render(results, opts))
    # The shape rule's row (issue 47): the kind index of one wedding's documents after this
    # scenario's own stream, in this process (the servers are stopped by now).
    print()
    print(shapes_bench.table(shapes_bench.rows(opts.members, SHAPE_UPDATES, 3), opts.members,
                             SHAPE_UPDATES, 3))  # fmt: skip
    print(f"\nload average at the end: {loadavg()}")
    if json_path is not None:
        scale._write(
            json_path,
            json.dumps(
                {r.server: {"steps": [s.__dict__ | {"ok": s.ok} for s in r.steps],
                            "verified": r.verified,
                            "webhooks": {m.name: m.value for m in r.hooks},
                            "memory": r.memory and asdict(r.memory) | {
                                "per_connection_kib": r.memory.per_connection_kib},
                            "cold_start": r.cold and asdict(r.cold),
                            "overload": [asdict(b) | {"goals": dict(b.goals())}
                                         for b in r.bursts],
                            "notes": r.notes}
                 for r in results},
                indent=1,
            )
        )  # fmt: skip
    ours = [r for r in results if r.server in ("ours", "ours-postgres")]
    lost = any(s.lost or s.missing for r in ours for s in r.steps) or any(
        b.lost or b.missing for r in ours for b in r.bursts
    )
    unstored = any(r.unstored or (r.cold and r.cold.unstored) for r in ours)
    # A server that failed (to start, or on the way) measured nothing: the run is no
    # run of the goals, whichever server it was.
    failed = [r.server for r in results if r.verified.startswith("failed")]
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if lost or unstored or failed else 0


SATURDAY = {"weddings": 100, "members": 50, "rates": "250,500,1000,2500", "keep_going": True}
"""``--saturday``: a 10x RSVP wave over a base of 250 updates/s on 100 weddings of 50."""
TINY = {"weddings": 4, "webhook_weddings": 2, "projected_weddings": 2, "rates": "20,40",
        "step_seconds": 2.0, "agents": 1, "ramp_rate": 200.0, "grace": 10.0}  # fmt: skip
"""``--tiny``: a few seconds (tests/project/test_benchmarks.py)."""
OVERLOAD = {"servers": "ours", "rates": "150,225,325,450,650,900,1300,1800,2600",
            "step_seconds": 10.0, "keep_going": False}  # fmt: skip
"""``--overload``: finer steps to find the sustainable rate, then the bursts."""
DEFAULTS: dict[str, Any] = {
    "servers": "ours,y-websocket", "weddings": 1000, "members": MEMBERS,
    "rates": "1000,2000,3000,4000,5000,6000", "step_seconds": 20.0, "agents": 2,
    "ramp_rate": 500.0, "cold_ramp_rate": 2000.0, "webhook_weddings": 10,
    "projected_weddings": 10, "grace": 10.0, "keep_going": False,
}  # fmt: skip
SERVERS = ("ours", "ours-postgres", "ours-nofeatures", "y-websocket")


def parse(argv: Sequence[str] | None) -> tuple[Options, argparse.Namespace]:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.product", description=__doc__.split("\n\n")[0]
    )
    d = DEFAULTS
    p.add_argument("--agent", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--servers", help=f"comma separated, of {', '.join(SERVERS)} (and "
                   f"ours-baseline with BENCH_BASELINE_SRC); default {d['servers']}")  # fmt: skip
    p.add_argument("--weddings", type=int, help=f"default {d['weddings']}")
    p.add_argument("--members", type=int,
                   help=f"members per wedding (default {d['members']}), split over its guest "
                        "list, timeline and budget 5:3:2")  # fmt: skip
    p.add_argument("--rates", help="offered updates/s in all, one step each, in order "
                   f"(default {d['rates']})")  # fmt: skip
    p.add_argument("--step-seconds", type=float, help=f"default {d['step_seconds']:g}")
    p.add_argument("--agents", type=int, help=f"load-generator processes (default {d['agents']})")
    p.add_argument("--ramp-rate", type=float,
                   help=f"connections opened/s (default {d['ramp_rate']:g})")  # fmt: skip
    p.add_argument("--cold-ramp-rate", type=float,
                   help="connections reopened/s after the cold start, ours only; 0: all at "
                        f"once (default {d['cold_ramp_rate']:g})")  # fmt: skip
    p.add_argument("--webhook-weddings", type=int, help=f"default {d['webhook_weddings']}")
    p.add_argument("--projected-weddings", type=int,
                   help="weddings whose guest list a vendor reads through its projection, "
                        "probed once a second (ours; default "
                        f"{d['projected_weddings']})")  # fmt: skip
    p.add_argument("--grace", type=float,
                   help="s to wait for echoes and deliveries after a step's last send "
                        f"(default {d['grace']:g})")  # fmt: skip
    p.add_argument("--keep-going", action="store_true", default=None,
                   help="run every step, also after one was not sustained")  # fmt: skip
    p.add_argument("--postgres-url",
                   default=os.environ.get("BENCH_POSTGRES_URL", Options.postgres_url),
                   help="ours-postgres: the PostgreSQL (its maintenance database) to make "
                        "the run's database on (env BENCH_POSTGRES_URL; %(default)s)")  # fmt: skip
    preset = p.add_mutually_exclusive_group()
    preset.add_argument("--tiny", action="store_true",
                        help="4 weddings (2 with webhooks), 20 and 40 updates/s x 2 s")  # fmt: skip
    preset.add_argument("--saturday", action="store_true",
                        help="the Saturday burst: 100 weddings x 50 members, 250, 500, 1000 "
                             "and 2500 updates/s (a 10x RSVP wave), --keep-going")  # fmt: skip
    p.add_argument("--overload", action="store_true",
                   help="after the steps (by default finer ones, 10 s each: "
                        f"{OVERLOAD['rates']}), offer 4x and 8x the highest sustained step "
                        "for --burst-seconds each, then half of it for --recovery-seconds; "
                        "a quiet wedding is probed throughout; no cold start")  # fmt: skip
    p.add_argument("--sustain-p99-ms", type=float, default=Options.sustain_p99_ms,
                   help="a step is sustained with echo p99 under this (ms; %(default)g), "
                        "nothing lost and the offered rate sent; on a machine shared with "
                        "other work a higher bound still finds the rate the server keeps "
                        "up with")  # fmt: skip
    p.add_argument("--burst-seconds", type=float, default=Options.burst_seconds,
                   help="--overload: seconds per burst (%(default)g)")  # fmt: skip
    p.add_argument("--recovery-seconds", type=float, default=Options.recovery_seconds,
                   help="--overload: seconds at half the sustainable rate after each burst "
                        "(%(default)g)")  # fmt: skip
    p.add_argument("--quiet-interval", type=float, default=QUIET_INTERVAL,
                   help="--overload: the quiet wedding sends a guest edit every this many "
                        "seconds (%(default)g)")  # fmt: skip
    p.add_argument("--workers", type=int, default=1,
                   help="ours on this many processes (crdt-server serve --workers N), rooms "
                        "shared through the Redis bus at --redis-url (%(default)s)")  # fmt: skip
    p.add_argument("--redis-url",
                   default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15"),
                   help="--workers: the bus (env BENCH_REDIS_URL; %(default)s)")  # fmt: skip
    p.add_argument("--no-cold-start", action="store_true",
                   help="ours: skip the cold start after the verify")  # fmt: skip
    p.add_argument("--json", type=Path)
    p.add_argument("--keep", action="store_true", help="keep data directories and logs")
    args = p.parse_args(argv)
    # A preset fills only the options not given: --saturday --weddings 4 is 4 weddings.
    chosen = TINY if args.tiny else SATURDAY if args.saturday else {}
    if args.overload:
        chosen = {**OVERLOAD, **chosen}
    for key, default in DEFAULTS.items():
        if getattr(args, key) is None:
            setattr(args, key, chosen.get(key, default))
    if args.members < len(SHARES):
        p.error(f"--members: at least {len(SHARES)} (one per document)")
    opts = Options(
        servers=[s.strip() for s in args.servers.split(",") if s.strip()],
        weddings=args.weddings,
        rates=[float(r) for r in args.rates.split(",")],
        step_seconds=args.step_seconds,
        agents=args.agents,
        ramp_rate=args.ramp_rate,
        webhook_weddings=args.webhook_weddings,
        grace=args.grace,
        projected_weddings=min(args.projected_weddings, args.weddings),
        keep_going=args.keep_going,
        members=args.members,
        cold_ramp_rate=args.cold_ramp_rate,
        postgres_url=args.postgres_url,
        title="Saturday burst" if args.saturday else "Product scenario",
        overload=args.overload,
        sustain_p99_ms=args.sustain_p99_ms,
        burst_seconds=args.burst_seconds,
        recovery_seconds=args.recovery_seconds,
        quiet_interval=args.quiet_interval,
        workers=args.workers,
        redis_url=args.redis_url,
        cold_start=not args.no_cold_start,
    )
    return opts, args


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if "--agent" in argv:
        # BENCH_AGENT_LOOP=uvloop: the load generator on uvloop, for more sockets per core
        # where the generator, not the server, would be the limit (many-core runs).
        if os.environ.get("BENCH_AGENT_LOOP") == "uvloop":
            import uvloop

            uvloop.run(scale.agent_main(ProductAgent()))
        else:
            asyncio.run(scale.agent_main(ProductAgent()))
        return 0
    opts, args = parse(argv)
    try:
        return asyncio.run(main_async(opts, args.keep, args.json))
    except asyncio.CancelledError:
        print("interrupted; every server started was stopped", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
