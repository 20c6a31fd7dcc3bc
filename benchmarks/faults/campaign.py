"""Run seeded fault schedules on a cluster of namespaced hosts and check every one.

    scripts/faults --schedules 4 --length 30 --seed 1 [--kinds pg-cut,server-kill]

Prints a line per schedule and a table per fault kind, writes the table and every
schedule's findings as JSON (``--json``), exits 1 if anything acknowledged was lost, a
replica diverged or an event is missing or doubled (availability is measured, not
judged). Needs root: ``scripts/setup-faults`` installs what it uses."""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import random
import re
import secrets
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import websockets

from benchmarks.faults.checker import (
    Replica,
    StoreView,
    check_events,
    lost_ops,
    read_store,
    room_state,
    same_state,
)
from benchmarks.faults.cluster import ClientHost, Cluster
from benchmarks.faults.kinds import KINDS, Fault, play, schedule, serial
from benchmarks.faults.netns import Network, leftovers, remove_run
from benchmarks.faults.report import markdown, print_table, table
from benchmarks.faults.watchers import Deliveries, Watch
from crdt_server.codec.updates import decode_state_vector

HEAL_WINDOW = 40.0
"""Seconds after a schedule ends for every op to be acknowledged and every replica to
converge; what is still missing then is reported."""
EVENTS_LAG = 30.0
"""Seconds the events of committed updates may take to be derived."""


@dataclass
class ScheduleResult:
    number: int
    seed: int
    faults: list[dict[str, Any]]
    acknowledged: int = 0
    sent: int = 0
    lost: int = 0
    lost_from_store: int = 0
    """Of :attr:`lost`, acknowledged ops the store itself does not hold (the rest are
    missing from a replica only: one served by a server still catching up)."""
    diverged: int = 0
    rooms_behind: int = 0
    """Servers' rooms (server, wedding) that did not hold what the store holds."""
    duplicated_events: int = 0
    missing_events: int = 0
    undelivered: int = 0
    """Events the store holds that never reached their wedding's webhook endpoint."""
    unreadable: int = 0
    """What a watcher received that it may not read (watchers.py)."""
    vendors_behind: int = 0
    """Vendors' devices (a projection) still without every guest at the end (watchers.py)."""
    watchers: dict[str, Any] = field(default_factory=dict)
    unavailability: dict[str, float] = field(default_factory=dict)
    """Per wedding: the longest an acknowledged op waited for its acknowledgement (s)."""
    recovery: float = 0.0
    """From the last heal until the last op sent before it was acknowledged (s)."""
    never_acknowledged: dict[str, int] = field(default_factory=dict)
    """Per protocol: ops still not acknowledged when the heal window ended."""
    longest_wait: dict[str, float] = field(default_factory=dict)
    """Per protocol: the longest an op waited for its acknowledgement (s)."""
    homes: dict[str, str] = field(default_factory=dict)
    """Per wedding: the server HAProxy sent its connections to before the faults."""
    healthy_unavailability: float | None = None
    """The longest wait of the weddings whose server was not a fault's target (s), where a
    fault targeted a server."""
    failed_steps: list[str] = field(default_factory=list)
    """A fault that could not be applied or healed (a server that did not start again)."""
    revived: list[str] = field(default_factory=list)
    """What had to be started again after the heal window for the next schedule."""
    reconnects: int = 0
    phone_restarts: int = 0
    """Phone apps killed and opened again on their store (``phone-restart``)."""
    phases: dict[str, float] = field(default_factory=dict)
    """Seconds each part of the schedule took: its writers started, the faults (the
    writing), the heal window, the replicas' final sync, the judging, the revival."""
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (
            self.lost
            or self.diverged
            or self.rooms_behind
            or self.duplicated_events
            or self.missing_events
            or self.undelivered
            or self.unreadable
            or self.vendors_behind
            or self.revived
            or self.failed_steps
        )


async def _connections(server: str) -> float:
    async with httpx.AsyncClient(timeout=5) as http:
        text = (await http.get(f"{server}/metrics")).text
    found = re.search(r'^crdt_sync_connections_total\{worker="0"\} ([0-9.e+]+)$', text, re.M)
    return float(found[1]) if found else 0.0


async def home_of(cluster: Cluster, wedding: str) -> str:
    """Which server HAProxy sends the wedding's connections to: the one whose count of
    connections grew by one probe's."""
    before = [await _connections(s.url) for s in cluster.servers]
    deadline = time.monotonic() + 30
    while True:  # HAProxy may still answer 502 while a server revived for this schedule starts
        try:
            async with websockets.connect(f"{cluster.url}/sync/{wedding}/guests", open_timeout=10):
                break
        except (OSError, TimeoutError, websockets.WebSocketException):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(1)
    after = [await _connections(s.url) for s in cluster.servers]
    grew = [s.name for s, b, a in zip(cluster.servers, before, after, strict=True) if a > b]
    return grew[0] if len(grew) == 1 else "?"


async def pick_weddings(
    cluster: Cluster, number: int, count: int
) -> tuple[list[str], dict[str, str]]:
    """``count`` weddings of schedule ``number`` and the server each lives on, named so
    that every server has at least one where ``count`` allows (HAProxy hashes the name):
    a fault of one server then always has weddings of its own and weddings of others."""
    weddings: list[str] = []
    homes: dict[str, str] = {}
    servers = {s.name for s in cluster.servers}
    for k in range(100):
        wedding = f"{cluster.network.tag}s{number}w{k}"
        home = await home_of(cluster, wedding)
        left = count - len(weddings)
        missing = servers - set(homes.values())
        if home in missing or left > len(missing):
            weddings.append(wedding)
            homes[wedding] = home
        if len(weddings) == count:
            break
    return weddings, homes


def writers_for(
    weddings: list[str], per_wedding: int, phones: Path | None = None
) -> list[dict[str, str]]:
    """``per_wedding`` writers of each wedding (y-websocket, Hocuspocus, pycrdt in turn),
    and, given ``phones``, one phone app each keeping its document in a folder there."""
    protocols = ["sync", "collab", "pycrdt"]
    writers = [
        {"wedding": w, "name": f"{w}-{protocols[i % 3]}{i}", "protocol": protocols[i % 3]}
        for w in weddings
        for i in range(per_wedding)
    ]
    if phones is not None:
        writers += [
            {"wedding": w, "name": f"{w}-phone", "protocol": "phone", "store": str(phones / w)}
            for w in weddings
        ]
    return writers


async def run_schedule(
    cluster: Cluster, args: argparse.Namespace, number: int, seed: int, deliveries: Deliveries
) -> ScheduleResult:
    rng = random.Random(seed)
    first = args.kinds[number % len(args.kinds)]
    servers = [s.name for s in cluster.servers]
    clients = sorted(n for n in cluster.network.hosts if n.startswith("c"))
    if args.serial:
        kinds = [
            args.kinds[(number * args.serial + i) % len(args.kinds)] for i in range(args.serial)
        ]
        faults = serial(rng, kinds, servers, args.length, clients)
    else:
        faults = schedule(rng, first, args.kinds, servers, args.length, args.overlap, clients)
    await asyncio.to_thread(cluster.wait_proxy_up)
    weddings, homes = await pick_weddings(cluster, number, args.weddings)
    watch = await Watch.start(deliveries, cluster.url, cluster.secret, weddings)
    phones = cluster.dir / "phones" if "phone-restart" in args.kinds else None
    writers = writers_for(weddings, args.writers, phones)
    client_hosts = [h for name, h in cluster.network.hosts.items() if name.startswith("c")]
    hosts: list[ClientHost] = []
    for i, host in enumerate(client_hosts):
        mine = writers[i :: len(client_hosts)]
        out = cluster.dir / f"schedule{number}-{host.name}.json"
        hosts.append(await ClientHost.start(host, cluster.url, mine, args.rate, out))
    failures: list[str] = []
    marks = [time.time()]
    try:
        for ch in hosts:
            await ch.ask(None, "ready", 90)
        started = time.time()
        marks.append(started)
        late = await play(cluster, faults, started, failures)
        await asyncio.sleep(max(0.0, started + args.length + late - time.time()))
        for ch in hosts:
            await ch.ask({"cmd": "stop"}, "stopped", 60)
        marks.append(time.time())
        deadline = time.monotonic() + HEAL_WINDOW
        while time.monotonic() < deadline:
            pending = 0
            for ch in hosts:
                pending += int((await ch.ask({"cmd": "drain"}, "drained", 60))["pending"])
            if pending == 0:
                break
            await asyncio.sleep(0.5)  # the clients' own reconnects: nothing to wait on
        marks.append(time.time())
        stores = {w: await read_store(cluster.database_url, w) for w in weddings}
        svs = {w: base64.b64encode(s.state_vector).decode() for w, s in stores.items()}
        for ch in hosts:
            await ch.ask({"cmd": "final", "svs": svs, "timeout": 20}, "final", 120)
        results = [
            r | {"host": ch.host.name} for ch in hosts for r in json.loads(ch.out.read_text())
        ]
    finally:
        for ch in hosts:
            await ch.close()
        await watch.stop()
    marks.append(time.time())
    verdict = await judge(cluster, number, seed, faults, weddings, results, stores)
    jumped = any(f.kind.name == "server-clock-jump" for f in faults)
    await watched(verdict, watch, cluster, stores, jumped)
    marks.append(time.time())
    verdict.homes = homes
    verdict.failed_steps = failures
    verdict.notes.extend(failures)
    revived = await asyncio.to_thread(cluster.revive)
    marks.append(time.time())
    parts = ("clients", "faults", "heal", "final", "judge", "revive")
    verdict.phases = {p: round(b - a, 1) for p, a, b in zip(parts, marks, marks[1:], strict=False)}
    verdict.revived = revived
    verdict.notes.extend(revived)
    targets = {f.target for f in faults}
    healthy = [w for w in weddings if homes.get(w) not in targets]
    if targets & {s.name for s in cluster.servers}:
        verdict.healthy_unavailability = max(
            (verdict.unavailability.get(w, 0.0) for w in healthy), default=None
        )
    elif targets & {h.name for h in client_hosts}:  # the writers on the other client hosts
        verdict.healthy_unavailability = max(
            (
                round(op["acked"] - op["sent"], 2)
                for r in results
                if r["host"] not in targets
                for op in r["ops"]
                if op["acked"] is not None
            ),
            default=None,
        )
    return verdict


async def watched(
    verdict: ScheduleResult,
    watch: Watch,
    cluster: Cluster,
    stores: dict[str, StoreView],
    jumped: bool,
) -> None:
    """The watchers' verdict: every stored event delivered at least once, nothing read
    that the reader may not. ``jumped``: a server's clock jumped, and deliveries it
    attempted while ten minutes ahead were refused (their timestamps) and are due again
    by that clock, ten minutes late: counted as late, not undelivered
    (docs/reliability/faults.md)."""

    async def reread() -> dict[str, list[int]]:
        views = {w: await read_store(cluster.database_url, w) for w in stores}
        return {w: [seq for seq, _, _ in v.events] for w, v in views.items()}

    guests = {w: set(store.content) for w, store in stores.items()}
    # Under a clock jump, deliveries refused for their timestamps are due ten minutes on:
    # no use waiting for them here.
    seen = await watch.judge(
        await reread(), reread, EVENTS_LAG, guests, deliveries_wait=5.0 if jumped else None
    )
    verdict.undelivered = seen.pop("undelivered")
    if jumped:
        seen["late_deliveries"], verdict.undelivered = verdict.undelivered, 0
    verdict.unreadable = seen.pop("unreadable")
    verdict.vendors_behind = seen.pop("vendors_behind")
    verdict.notes.extend(seen.pop("notes"))
    verdict.watchers = seen


async def rooms_behind(
    cluster: Cluster, weddings: list[str], stores: dict[str, StoreView], look: float = 10
) -> list[str]:
    """Each running server's room of each wedding that does not hold what the store holds,
    looked at again for ``look`` seconds (the bus may still be carrying the last commits),
    with what it lacks."""
    deadline = time.monotonic() + look
    while True:
        found: list[str] = []
        for server in cluster.servers:
            if not server.service.alive:
                continue
            for wedding in weddings:
                store = stores[wedding]
                try:
                    vector, content = await room_state(server.url, wedding)
                except (OSError, TimeoutError, websockets.WebSocketException) as exc:
                    found.append(f"{server.name}'s room of {wedding} could not be read: {exc!r}")
                    continue
                have, want = decode_state_vector(vector), decode_state_vector(store.state_vector)
                if have != want or content != store.content:
                    lacks = {
                        c: (have.get(c, 0), clock)
                        for c, clock in want.items()
                        if have.get(c, 0) != clock
                    }
                    found.append(
                        f"{server.name}'s room of {wedding} is not the store's: clocks "
                        f"(room, store) {lacks}, {len(content)} guests against "
                        f"{len(store.content)}"
                    )
        if not found or time.monotonic() > deadline:
            return found
        await asyncio.sleep(1)
        for w in weddings:
            stores[w] = await read_store(cluster.database_url, w)


async def judge(
    cluster: Cluster,
    number: int,
    seed: int,
    faults: list[Fault],
    weddings: list[str],
    results: list[dict[str, Any]],
    stores: dict[str, StoreView],
) -> ScheduleResult:
    result = ScheduleResult(
        number,
        seed,
        [
            {"kind": f.kind.name, "target": f.target, "start": f.start, "duration": f.duration}
            for f in faults
        ],
    )
    replicas = [Replica.of(r) for r in results]
    result.phone_restarts = sum(int(r.get("restarts", 0)) for r in results)
    # Whatever a replica holds that the store did not when it was read (a client resent
    # it after), the store must hold now: read again.
    for w in weddings:
        stores[w] = await read_store(cluster.database_url, w)
    for replica in replicas:
        store = stores[replica.wedding]
        result.reconnects += replica.reconnects
        result.sent += len(replica.ops)
        result.acknowledged += sum(1 for op in replica.ops if op["acked"] is not None)
        in_store = lost_ops(replica.ops, store.content)
        if in_store:
            result.notes.append(
                f"{replica.name}: {len(in_store)} acknowledged ops not in the store, "
                f"e.g. {in_store[:3]}"
            )
        result.lost_from_store += len(in_store)
        lost = set(in_store)
        for other in replicas:
            if other.wedding == replica.wedding:
                missing = lost_ops(replica.ops, other.content)
                if missing:
                    result.notes.append(
                        f"{replica.name}: {len(missing)} acknowledged ops not in "
                        f"{other.name}'s replica"
                    )
                lost |= set(missing)
        result.lost += len(lost)
        protocol = replica.protocol
        # An op never acknowledged is counted apart (a stock Hocuspocus provider counts a
        # SyncStatus 0 as never answered: docs/reliability/faults.md), not as a wait.
        result.longest_wait.setdefault(protocol, 0.0)
        for op in replica.ops:
            if op["acked"] is None:
                result.never_acknowledged[protocol] = result.never_acknowledged.get(protocol, 0) + 1
                continue
            waited = round(op["acked"] - op["sent"], 2)
            result.unavailability[replica.wedding] = max(
                result.unavailability.get(replica.wedding, 0.0), waited
            )
            result.longest_wait[protocol] = max(result.longest_wait[protocol], waited)
    # Diverged: a replica that does not hold what the store holds, looked at again for a
    # while (a client's re-sent update may still be committing).
    deadline = time.monotonic() + 10
    while True:
        apart = [r for r in replicas if not same_state(r, stores[r.wedding])]
        if not apart or time.monotonic() > deadline:
            break
        await asyncio.sleep(1)  # another process commits: look again
        for w in weddings:
            stores[w] = await read_store(cluster.database_url, w)
    result.diverged = len(apart)
    for replica in apart:
        result.notes.append(f"{replica.name} ({replica.protocol}) diverged from the store")
    # Each server's room of each wedding: what a client connecting there is served.
    behind = await rooms_behind(cluster, weddings, stores)
    result.rooms_behind = len(behind)
    result.notes.extend(behind)
    # Recovery: from the last heal until the last op sent before it was acknowledged (ops
    # never acknowledged are counted apart, per protocol).
    healed = max((f.healed_at for f in faults), default=0.0)
    result.recovery = round(
        max(
            (
                max(0.0, op["acked"] - healed)
                for replica in replicas
                for op in replica.ops
                if op["sent"] <= healed and op["acked"] is not None
            ),
            default=0.0,
        ),
        2,
    )
    deadline = time.monotonic() + EVENTS_LAG
    while True:
        checks = {w: check_events(stores[w]) for w in weddings}
        if all(c.ok for c in checks.values()) or time.monotonic() > deadline:
            break
        await asyncio.sleep(1)  # the derivation runs behind the commits: look again
        for w in weddings:
            stores[w] = await read_store(cluster.database_url, w)
    for c in checks.values():
        result.missing_events += c.missing
        result.duplicated_events += c.duplicated
        result.notes.extend(c.notes[:5])
    return result


def describe(number: int, seed: int, r: ScheduleResult) -> str:
    """One line for a schedule as it ends."""
    faults = ", ".join(f"{f['kind']}@{f['target']} {f['start']}+{f['duration']}s" for f in r.faults)
    worst = max(r.unavailability.values(), default=0.0)
    return (
        f"schedule {number} (seed {seed}): {faults}: {r.acknowledged}/{r.sent} acked, "
        f"lost {r.lost}, diverged {r.diverged}, rooms behind {r.rooms_behind}, "
        f"events doubled {r.duplicated_events} "
        f"missing {r.missing_events}, undelivered {r.undelivered}, unreadable {r.unreadable}, "
        f"vendors behind {r.vendors_behind} "
        f"{r.watchers}; longest wait {worst} s (weddings of healthy servers: "
        f"{r.healthy_unavailability}), recovery {r.recovery} s, reconnects {r.reconnects}, "
        + (f"phones restarted {r.phone_restarts}, " if r.phone_restarts else "")
        + f"never acknowledged {r.never_acknowledged or 0}, by protocol {r.longest_wait}, "
        f"homes {r.homes}" + ("" if r.ok else " FAILED")
    )


async def campaign(args: argparse.Namespace) -> int:
    run_id = secrets.token_hex(3)
    directory = Path(args.dir or f"/tmp/crdt-faults-{run_id}")
    directory.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 (before anything runs)
    os.chmod(directory, 0o755)
    print(f"run {run_id}: files in {directory}", flush=True)
    network = Network.create(run_id)
    cluster: Cluster | None = None
    results: list[ScheduleResult] = []
    try:
        for c in range(args.client_hosts):
            network.add(f"c{c + 1}", 31 + c)
        fake_clock = "server-clock-jump" in args.kinds
        standby = any(k.startswith("pg-failover") for k in args.kinds)
        cluster = await asyncio.to_thread(Cluster.build, network, directory, 2, fake_clock, standby)
        seeds = random.Random(args.seed)
        async with Deliveries(network.address(1)) as deliveries:
            for number in range(args.schedules):
                seed = seeds.randrange(2**32)
                result = await run_schedule(cluster, args, number, seed, deliveries)
                results.append(result)
                print(describe(number, seed, result), flush=True)
                print(f"  phases (s): {result.phases}", flush=True)
                for note in result.notes[:10]:
                    print(f"  {note}", flush=True)
    finally:
        if cluster is not None:
            await asyncio.to_thread(cluster.close)
            for node in cluster.nodes:
                if args.keep:
                    print(f"PostgreSQL's data ({node.host.name}): {node.dir}")
                else:
                    shutil.rmtree(node.dir, ignore_errors=True)
        network.remove()
    rows = table(results)
    print_table(rows)
    report = {
        "run_id": run_id, "seed": args.seed, "length_s": args.length, "rate": args.rate,
        "weddings": args.weddings, "writers_per_wedding": args.writers,
        "table": rows, "schedules": [asdict(r) | {"ok": r.ok} for r in results],
    }  # fmt: skip
    out = Path(args.json or directory / "faults.json")
    out.write_text(json.dumps(report, indent=2))  # noqa: ASYNC240 (after everything ran)
    out.with_suffix(".md").write_text(markdown(rows))  # noqa: ASYNC240 (likewise)
    print(f"JSON: {out}, Markdown: {out.with_suffix('.md')}")

    failed = [r for r in results if not r.ok]
    if failed:
        print(
            f"FAILED: {len(failed)} of {len(results)} schedules lost, diverged, left a room "
            "behind, miscounted events, left events undelivered or let a reader read too much"
        )
        return 1
    return 0


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="scripts/faults", description=__doc__.split("\n\n")[0])
    parser.add_argument("--schedules", type=int, default=4)
    parser.add_argument(
        "--length", type=float, default=30.0, help="seconds of writing per schedule"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--kinds", default=",".join(KINDS), help="comma separated: " + ", ".join(KINDS)
    )
    parser.add_argument(
        "--overlap", action="store_true", help="two faults per schedule, overlapping"
    )
    parser.add_argument(
        "--serial",
        type=int,
        default=0,
        metavar="N",
        help="N faults per schedule, one after another (the kinds in turn), in slots of "
        "LENGTH/N seconds: one heal window and check for all of them",
    )
    parser.add_argument("--weddings", type=int, default=3)
    parser.add_argument(
        "--writers",
        type=int,
        default=3,
        help="per wedding: y-websocket, hocuspocus, pycrdt in turn",
    )
    parser.add_argument("--rate", type=float, default=2.0, help="ops per second per writer")
    parser.add_argument("--client-hosts", type=int, default=2)
    parser.add_argument("--dir", help="where logs and data go (default /tmp/crdt-faults-RUN)")
    parser.add_argument("--json", help="write the report here (default DIR/faults.json)")
    parser.add_argument(
        "--keep", action="store_true", help="keep PostgreSQL's data folder (its path is printed)"
    )
    parser.add_argument("--clean", metavar="RUN_ID", help="remove what a run left behind, and exit")
    args = parser.parse_args(argv)
    args.kinds = [k for k in args.kinds.split(",") if k]
    unknown = [k for k in args.kinds if k not in KINDS]
    if unknown:
        parser.error(f"unknown kinds: {unknown}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if os.geteuid() != 0:
        print("scripts/faults: needs root (network namespaces, iptables)", file=sys.stderr)
        return 2
    if args.clean:
        remove_run(args.clean)
        for folder in Path(tempfile.gettempdir()).glob(f"flt{args.clean}-pg-*"):
            shutil.rmtree(folder, ignore_errors=True)
        print(f"removed run {args.clean}; left: {leftovers()}")
        return 0
    # Ctrl-C and SIGTERM unwind through the finally above, which removes the run's hosts.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        return asyncio.run(campaign(args))
    except KeyboardInterrupt:
        print("interrupted: the run's hosts are removed", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
