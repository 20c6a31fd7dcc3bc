"""The fault kinds and the seeded schedule. A fault is applied to one target (a server
host, Redis, PostgreSQL) for a drawn duration, then healed; :data:`KINDS` says how.

Partitions and loss are ``iptables`` rules in the target server's own namespace (so they
cut one host, whatever the others do): both ways drops what it sends to and receives from
the peer, one way only what it sends. ``netem`` (delay, reordering) is not in these
kernels: no kind here needs it, and the report says which are missing.

A kind that repeats (a link flapping, a clock jumping forwards and backwards) cycles
through its steps in a thread of its own until the heal stops it: :func:`_cycle`."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from benchmarks.faults.clockprobe import probe
from benchmarks.faults.cluster import Cluster
from benchmarks.faults.netns import Host
from benchmarks.faults.pgnodes import failover, rebuild

__all__ = ["KINDS", "Fault", "Kind", "play", "schedule", "serial", "target_of"]

LOSS = 0.2
"""The share of packets a lossy link drops."""
RATE = "256kbit"
"""What a slow link carries (``tc tbf``)."""
JUMP = 600
"""How far a server's wall clock jumps, forwards then backwards (seconds)."""
FLAP = (2.0, 3.0)
"""A flapping link: seconds down, then seconds up, again until healed."""
OFFLINE_BEFORE_KILL = 1.6
"""Seconds a phone app writes offline before it is killed (``phone-restart``)."""


@dataclass(frozen=True)
class Kind:
    name: str
    what: str
    apply: Callable[[Cluster, str], None]
    heal: Callable[[Cluster, str], None]
    instant: bool = False
    """Applied and over at once (a PostgreSQL restart): its duration is how long it took."""


@dataclass
class Fault:
    kind: Kind
    target: str
    start: float
    """Seconds after the schedule's writers started."""
    duration: float
    applied_at: float = 0.0
    healed_at: float = 0.0


def _peer(cluster: Cluster, peer: str) -> Host:
    if peer == "pg":
        return cluster.postgres.host
    if peer == "redis":
        return cluster.redis.service.host
    return cluster.proxy.host


def _cut(peer: str, both: bool) -> Callable[[Cluster, str], None]:
    def apply(cluster: Cluster, target: str) -> None:
        host = cluster.server(target).service.host
        address = _peer(cluster, peer).address
        host.iptables("-A", "OUTPUT", "-d", address, "-j", "DROP")
        if both:
            host.iptables("-A", "INPUT", "-s", address, "-j", "DROP")

    return apply


def _cut_servers(cluster: Cluster, target: str) -> None:
    """The target server cut from every other server, both ways (they meet only through
    Redis and PostgreSQL: nothing should notice)."""
    host = cluster.server(target).service.host
    for other in cluster.servers:
        if other.name != target:
            address = other.service.host.address
            host.iptables("-A", "OUTPUT", "-d", address, "-j", "DROP")
            host.iptables("-A", "INPUT", "-s", address, "-j", "DROP")


def _loss(peer: str) -> Callable[[Cluster, str], None]:
    def apply(cluster: Cluster, target: str) -> None:
        host = cluster.server(target).service.host
        address = _peer(cluster, peer).address
        for chain, way in (("OUTPUT", "-d"), ("INPUT", "-s")):
            host.iptables(
                "-A", chain, way, address, "-m", "statistic", "--mode", "random",
                "--probability", str(LOSS), "-j", "DROP",
            )  # fmt: skip

    return apply


def _flush(cluster: Cluster, target: str) -> None:
    cluster.server(target).service.host.flush()


def _slow(cluster: Cluster, target: str) -> None:
    # tbf is in these kernels (netem is not): everything the server sends, at RATE.
    cluster.server(target).service.host.run(
        "tc", "qdisc", "add", "dev", "eth0", "root", "tbf", "rate", RATE, "burst", "16kb",
        "latency", "400ms",
    )  # fmt: skip


def _fast(cluster: Cluster, target: str) -> None:
    cluster.server(target).service.host.run("tc", "qdisc", "del", "dev", "eth0", "root")


def _signal(sig: int) -> Callable[[Cluster, str], None]:
    def apply(cluster: Cluster, target: str) -> None:
        cluster.server(target).service.send(sig)

    return apply


def _back(cluster: Cluster, target: str) -> None:
    server = cluster.server(target)
    server.service.send(signal.SIGCONT)
    time.sleep(0.5)  # a resumed process may still exit (its watchdog): look again after
    if not server.service.alive:
        server.service.stop()
        server.start()


def _redis_kill(cluster: Cluster, target: str) -> None:
    cluster.redis.service.stop(signal.SIGKILL)


def _redis_back(cluster: Cluster, target: str) -> None:
    cluster.redis.start()


def _pg_restart(mode: str) -> Callable[[Cluster, str], None]:
    def apply(cluster: Cluster, target: str) -> None:
        cluster.postgres.restart(mode)

    return apply


def _failover(fence: str) -> Callable[[Cluster, str], None]:
    """The standby promoted (the old primary fenced first: :func:`failover`); the cluster's
    primary is the promoted one from now on, its standby the old primary (down, or
    running unfenced on its own timeline) until the heal rebuilds it."""

    def apply(cluster: Cluster, target: str) -> None:
        old, new = cluster.postgres, cluster.standby
        if new is None:
            raise RuntimeError("no standby: Cluster.build(standby=True)")
        failover(old, new, fence)
        cluster.postgres, cluster.standby = new, old

    return apply


def _rebuild(cluster: Cluster, target: str) -> None:
    assert cluster.standby is not None
    rebuild(cluster.standby, cluster.postgres)


def _nothing(cluster: Cluster, target: str) -> None:
    return None


Step = tuple[Callable[[Cluster, str], None], float]
_CYCLES: dict[tuple[str, str], tuple[threading.Event, threading.Thread]] = {}


def _cycle(
    name: str, steps: list[Step], end: Callable[[Cluster, str], None]
) -> tuple[Callable[[Cluster, str], None], Callable[[Cluster, str], None]]:
    """Apply and heal of a repeating fault: each step's action, then its seconds, in turn
    (in a daemon thread) until the heal, which stops the thread and runs ``end``."""

    def run(cluster: Cluster, target: str, stop: threading.Event) -> None:
        while True:
            for action, seconds in steps:
                if stop.is_set():
                    return
                try:
                    action(cluster, target)
                except RuntimeError:  # the run is being removed under it: nothing to do
                    return
                if stop.wait(seconds):
                    return

    def apply(cluster: Cluster, target: str) -> None:
        before = _CYCLES.pop((name, target), None)
        if before is not None:  # the same kind on the same target again: one cycle at a time
            before[0].set()
            before[1].join(30)
        stop = threading.Event()
        thread = threading.Thread(
            target=run, args=(cluster, target, stop), name=f"{name}@{target}", daemon=True
        )
        _CYCLES[(name, target)] = (stop, thread)
        thread.start()

    def heal(cluster: Cluster, target: str) -> None:
        running = _CYCLES.pop((name, target), None)
        if running is not None:
            running[0].set()
            running[1].join(30)
        end(cluster, target)

    return apply, heal


def _clock(offset: int) -> Callable[[Cluster, str], None]:
    # libfaketime (FAKETIME_NO_CACHE) reads the file at every call for the wall clock.
    def apply(cluster: Cluster, target: str) -> None:
        path = cluster.clock_file(target)
        path.with_suffix(".new").write_text(f"{offset:+d}\n")
        path.with_suffix(".new").replace(path)
        if offset:
            probe(cluster, target, offset)

    return apply


def _link(state: str) -> Callable[[Cluster, str], None]:
    def apply(cluster: Cluster, target: str) -> None:
        cluster.network.hosts[target].run("ip", "link", "set", "eth0", state)

    return apply


def _kill_phones(cluster: Cluster, target: str) -> None:
    """The client host offline (its link down) for :data:`OFFLINE_BEFORE_KILL` seconds,
    then every phone app on it SIGKILLed mid-edit (what it wrote offline is only in its
    store); its client host opens each again on its store, still offline."""
    host = cluster.network.hosts[target]
    host.run("ip", "link", "set", "eth0", "down")
    time.sleep(OFFLINE_BEFORE_KILL)  # the fault's shape: edits made offline, then the kill
    pids = host.run("ip", "netns", "pids", host.netns, check=False).stdout.split()
    for pid in pids:
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue  # gone already
        if any(a.endswith(b"faultclient.mjs") for a in argv) and b"--store" in argv:
            os.kill(int(pid), signal.SIGKILL)


_JUMPS = _cycle("server-clock-jump", [(_clock(JUMP), 4.0), (_clock(-JUMP), 4.0)], _clock(0))
_FLAPS = _cycle("clients-flap", [(_link("down"), FLAP[0]), (_link("up"), FLAP[1])], _link("up"))


_PG, _LB = "PostgreSQL", "HAProxy (its clients)"
_KINDS = (
    Kind("pg-cut", f"a server cut from {_PG}, both ways", _cut("pg", True), _flush),
    Kind("pg-cut-oneway", f"a server's packets to {_PG} dropped", _cut("pg", False), _flush),
    Kind("pg-loss", f"{LOSS:.0%} loss between a server and {_PG}", _loss("pg"), _flush),
    Kind("redis-cut", "a server cut from Redis, both ways", _cut("redis", True), _flush),
    Kind("clients-cut", f"a server cut from {_LB}, both ways", _cut("lb", True), _flush),
    Kind("servers-cut", "a server cut from the other servers, both ways", _cut_servers, _flush),
    Kind("clients-cut-oneway", f"a server's packets to {_LB} dropped", _cut("lb", False), _flush),
    Kind("clients-loss", f"{LOSS:.0%} loss between a server and {_LB}", _loss("lb"), _flush),
    Kind("server-slow-link", f"a server's link limited to {RATE} (tc tbf)", _slow, _fast),
    Kind("server-kill", "a server SIGKILLed, started again", _signal(signal.SIGKILL), _back),
    Kind("server-stop", "a server SIGSTOPped, then SIGCONT", _signal(signal.SIGSTOP), _back),
    Kind("redis-kill", "Redis SIGKILLed, started again", _redis_kill, _redis_back),
    Kind("pg-restart-fast", f"{_PG} restart -m fast", _pg_restart("fast"), _nothing, True),
    Kind("pg-restart-immediate", f"{_PG} restart -m immediate", _pg_restart("immediate"),
         _nothing, True),
    Kind("pg-failover", f"{_PG} failed over to its synchronous standby, the primary "
         "fenced first (stopped -m immediate)", _failover("stop"), _rebuild),
    Kind("pg-failover-dropped", f"{_PG} failed over to its synchronous standby, the "
         "primary fenced first by dropping its port (still running)", _failover("drop"),
         _rebuild),
    Kind("pg-failover-unfenced", f"{_PG} failed over to its synchronous standby, the "
         "primary left running read-write", _failover("none"), _rebuild),
    Kind("server-clock-jump", f"a server's wall clock {JUMP // 60} min forwards, then "
         "backwards, every 4 s (libfaketime)", *_JUMPS),
    Kind("phone-restart", f"a client host offline; {OFFLINE_BEFORE_KILL} s later its phone "
         "apps (y-websocket, their document on disk) SIGKILLed mid-edit and opened again "
         "offline; back online at the heal", _kill_phones, _link("up")),
    Kind("clients-flap", f"a client host's link down {FLAP[0]:.0f} s, up {FLAP[1]:.0f} s, "
         "again", *_FLAPS),
)  # fmt: skip
KINDS: dict[str, Kind] = {k.name: k for k in _KINDS}
SERVER_KINDS = {n for n in KINDS if n.split("-")[0] in ("pg", "redis", "clients", "server")}
SERVER_KINDS -= {"pg-restart-fast", "pg-restart-immediate", "clients-flap"}
SERVER_KINDS -= {n for n in KINDS if n.startswith("pg-failover")}
SERVER_KINDS |= {"servers-cut"}
SERVER_KINDS -= {"phone-restart"}
CLIENT_KINDS = {"clients-flap", "phone-restart"}
"""Kinds whose target is a client host."""


def target_of(
    rng: random.Random, name: str, servers: list[str], clients: list[str] | None, taken: set[str]
) -> str:
    """A fault of kind ``name``'s target: a drawn server (or client host) not in ``taken``
    where the kind targets one, else the service it names (``pg``, ``redis``)."""
    if name in SERVER_KINDS or name in CLIENT_KINDS:
        pool = servers if name in SERVER_KINDS else clients or ["c1"]
        free = [s for s in pool if s not in taken] or pool
        return rng.choice(free)
    return name.split("-")[0]


def schedule(
    rng: random.Random,
    first: str,
    kinds: list[str],
    servers: list[str],
    length: float,
    overlap: bool,
    clients: list[str] | None = None,
) -> list[Fault]:
    """One schedule of ``length`` seconds: a fault of kind ``first`` (and, when ``overlap``,
    one of a kind drawn from ``kinds`` on another target, starting while the first lasts),
    starting a fifth of the way in, lasting 5 s to half the schedule, on a drawn server
    where the kind targets one (a drawn client host of ``clients`` for a client kind)."""
    faults: list[Fault] = []
    names = [first, rng.choice(kinds)] if overlap else [first]
    for i, name in enumerate(names):
        kind = KINDS[name]
        target = target_of(rng, name, servers, clients, {f.target for f in faults})
        start = length * (0.2 + 0.15 * i) + rng.uniform(0, length * 0.05)
        duration = 0.0 if kind.instant else rng.uniform(5, max(5.0, length * 0.5))
        faults.append(Fault(kind, target, round(start, 1), round(duration, 1)))
    return faults


SHORTEST = {"server-clock-jump": 4.5, "clients-flap": 2.5, "phone-restart": 2.5}
"""Seconds a kind needs to show itself in a serial schedule (others: 2 s): a clock jumped
forwards and then backwards (4 s a step), a link down once (2 s), phone apps killed after
1.6 s offline."""


def serial(
    rng: random.Random,
    kinds: list[str],
    servers: list[str],
    length: float,
    clients: list[str] | None = None,
) -> list[Fault]:
    """One schedule of ``length`` seconds with a fault of each of ``kinds``, one after
    another: each in a slot of its own (``length / len(kinds)``), starting a tenth of the
    way into it and lasting 2 s (or what the kind needs: :data:`SHORTEST`) to half the
    slot, on a drawn target; the rest of the slot is the writers' recovery before the next
    fault. A kind applied at once (a restart) lasts what it takes."""
    slot = length / max(1, len(kinds))
    faults: list[Fault] = []
    for i, name in enumerate(kinds):
        kind = KINDS[name]
        target = target_of(rng, name, servers, clients, set())
        shortest = SHORTEST.get(name, 2.0)
        duration = 0.0 if kind.instant else max(shortest, rng.uniform(2.0, max(2.0, slot * 0.5)))
        faults.append(Fault(kind, target, round(slot * (i + 0.1), 1), round(duration, 1)))
    return faults


async def _step(action: str, cluster: Cluster, fault: Fault, failures: list[str]) -> None:
    """Apply or heal ``fault``; a failure (a killed server that does not start again) is
    a finding of the schedule, not the end of the campaign."""
    try:
        await asyncio.to_thread(getattr(fault.kind, action), cluster, fault.target)
    except (RuntimeError, TimeoutError, OSError, subprocess.SubprocessError) as exc:
        failures.append(f"{fault.kind.name}@{fault.target}: {action} failed: {exc}"[:400])


async def play(cluster: Cluster, faults: list[Fault], started: float, failures: list[str]) -> float:
    """Apply each fault at its start (seconds after ``started``, a Unix time) and heal it
    its duration after it was applied, in time order: a fault over before the next one
    starts is healed first. An action that overruns (a server that takes 30 s to start
    again on a loaded machine, a standby rebuilt) pushes every later start back as much,
    so that each fault keeps the quiet time before it; how far they were pushed."""
    due = [(started + f.start, i, "apply", f) for i, f in enumerate(faults)]
    shift = 0.0
    while due:
        due.sort(key=lambda d: (d[0] + (shift if d[2] == "apply" else 0.0), d[1]))
        at, i, action, fault = due.pop(0)
        at += shift if action == "apply" else 0.0
        await asyncio.sleep(max(0.0, at - time.time()))
        if action == "apply":
            fault.applied_at = time.time()
            await _step("apply", cluster, fault, failures)
            if fault.kind.instant:
                fault.healed_at = time.time()
                fault.duration = round(fault.healed_at - fault.applied_at, 1)
            else:
                due.append((fault.applied_at + fault.duration, i, "heal", fault))
        else:
            await _step("heal", cluster, fault, failures)
            fault.healed_at = time.time()
        shift += max(0.0, time.time() - max(at, fault.applied_at) - _PROMPT)
    return shift


_PROMPT = 1.0
"""Seconds an action may take without pushing the later ones back."""
