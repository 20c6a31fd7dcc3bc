"""The fault kinds and the seeded schedule. A fault is applied to one target (a server
host, Redis, PostgreSQL) for a drawn duration, then healed; :data:`KINDS` says how.

Partitions and loss are ``iptables`` rules in the target server's own namespace (so they
cut one host, whatever the others do): both ways drops what it sends to and receives from
the peer, one way only what it sends. ``netem`` (delay, reordering) is not in these
kernels: no kind here needs it, and the report says which are missing."""

from __future__ import annotations

import random
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass

from benchmarks.faults.cluster import Cluster
from benchmarks.faults.netns import Host

__all__ = ["KINDS", "Fault", "Kind", "schedule"]

LOSS = 0.2
"""The share of packets a lossy link drops."""
RATE = "256kbit"
"""What a slow link carries (``tc tbf``)."""


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


def _nothing(cluster: Cluster, target: str) -> None:
    return None


_PG, _LB = "PostgreSQL", "HAProxy (its clients)"
_KINDS = (
    Kind("pg-cut", f"a server cut from {_PG}, both ways", _cut("pg", True), _flush),
    Kind("pg-cut-oneway", f"a server's packets to {_PG} dropped", _cut("pg", False), _flush),
    Kind("pg-loss", f"{LOSS:.0%} loss between a server and {_PG}", _loss("pg"), _flush),
    Kind("redis-cut", "a server cut from Redis, both ways", _cut("redis", True), _flush),
    Kind("clients-cut", f"a server cut from {_LB}, both ways", _cut("lb", True), _flush),
    Kind("clients-cut-oneway", f"a server's packets to {_LB} dropped", _cut("lb", False), _flush),
    Kind("clients-loss", f"{LOSS:.0%} loss between a server and {_LB}", _loss("lb"), _flush),
    Kind("server-slow-link", f"a server's link limited to {RATE} (tc tbf)", _slow, _fast),
    Kind("server-kill", "a server SIGKILLed, started again", _signal(signal.SIGKILL), _back),
    Kind("server-stop", "a server SIGSTOPped, then SIGCONT", _signal(signal.SIGSTOP), _back),
    Kind("redis-kill", "Redis SIGKILLed, started again", _redis_kill, _redis_back),
    Kind("pg-restart-fast", f"{_PG} restart -m fast", _pg_restart("fast"), _nothing, True),
    Kind("pg-restart-immediate", f"{_PG} restart -m immediate", _pg_restart("immediate"),
         _nothing, True),
)  # fmt: skip
KINDS: dict[str, Kind] = {k.name: k for k in _KINDS}
SERVER_KINDS = {n for n in KINDS if n.split("-")[0] in ("pg", "redis", "clients", "server")}
SERVER_KINDS -= {"pg-restart-fast", "pg-restart-immediate"}


def schedule(
    rng: random.Random,
    first: str,
    kinds: list[str],
    servers: list[str],
    length: float,
    overlap: bool,
) -> list[Fault]:
    """One schedule of ``length`` seconds: a fault of kind ``first`` (and, when ``overlap``,
    one of a kind drawn from ``kinds`` on another target, starting while the first lasts),
    starting a fifth of the way in, lasting 5 s to half the schedule, on a drawn server
    where the kind targets one."""
    faults: list[Fault] = []
    names = [first, rng.choice(kinds)] if overlap else [first]
    for i, name in enumerate(names):
        kind = KINDS[name]
        if name in SERVER_KINDS:
            free = [s for s in servers if all(f.target != s for f in faults)] or servers
            target = rng.choice(free)
        else:
            target = name.split("-")[0]
        start = length * (0.2 + 0.15 * i) + rng.uniform(0, length * 0.05)
        duration = 0.0 if kind.instant else rng.uniform(5, max(5.0, length * 0.5))
        faults.append(Fault(kind, target, round(start, 1), round(duration, 1)))
    return faults
