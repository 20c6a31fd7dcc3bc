"""What the server is doing, for Prometheus: one registry per app, passed down explicitly.

Also :class:`StoreHealth`, the readiness signal: red from a failed commit until the next
commit succeeds.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from crdt_server import clock
from crdt_server.storage import StoreUnavailable

__all__ = ["CONTENT_TYPE_LATEST", "BusLink", "Metrics", "StoreHealth"]

log = logging.getLogger("crdt_server.core.metrics")

_DERIVATION_LOG_SECONDS = 3600.0
"""A derivation failure of one kind (step and exception type) is logged once this often."""

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class Metrics:
    """Every metric the server exports, registered in its own registry.

    The counters bumped once per frame per connection are plain integers (``bytes_in``,
    ``bytes_out``, ``updates_accepted``, ``awareness_messages``, ``connections_open``,
    ``rooms_loaded``, ``updates_waiting_turn``) read at scrape time, so the hot path pays an
    integer add, not a lock.
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.bytes_in = 0
        self.bytes_out = 0
        self.updates_accepted = 0
        self.awareness_messages = 0
        self.connections_open = 0
        self.rooms_loaded = 0
        self.quarantined_clients = 0
        """(room, Yjs client) pairs refused since their update stalled a server."""
        self.updates_waiting_turn = 0
        """Sessions whose next update waits for its turn (:mod:`crdt_server.core.pacing`)."""
        self.backlog_updates = 0
        """Updates accepted and not yet committed, all rooms (:mod:`crdt_server.core.backlog`)."""
        self.reads_paused = 0
        """Connections not read now because their room is over its backlog bound."""
        self.registry.register(_HotCollector(self))
        self._links: _LinkCollector | None = None
        self._derivation_logged: dict[tuple[str, str], float] = {}
        self.worker = "0"
        """This process's worker index (``--workers``; 0 for a single process)."""
        self._add_backlog_metrics(self.registry)
        self._add_sync_metrics(self.registry)
        self._add_http_metrics(self.registry)
        self._add_worker_metrics(self.registry)

    def _add_backlog_metrics(self, r: CollectorRegistry) -> None:
        """Reading paused, and what it cost, while a room is over its backlog bound."""
        self.backlog_pauses = Counter(
            "crdt_backlog_pauses",
            "Times a connection's reading paused because its room was over its backlog bound",
            registry=r,
        )
        self.backlog_pause_limits = Counter(
            "crdt_backlog_pause_limits",
            "Connections closed with 1013 because their reading stayed paused for"
            " CRDT_SERVER_MAX_READ_PAUSE_SECONDS",
            registry=r,
        )
        self.backlog_drops = Counter(
            "crdt_backlog_drops",
            "Hocuspocus updates not applied because their room was over its backlog bound"
            " (the server pulls them later and answers them then)",
            registry=r,
        )

    def _add_sync_metrics(self, r: CollectorRegistry) -> None:
        """The sync path: connections, refusals, commits, broadcasts and what failed."""
        self.connections_closed = Counter(
            "crdt_connections_closed", "Closed connections by close code", ["code"], registry=r
        )
        self.upgrades_refused = Counter(
            "crdt_upgrades_refused",
            "WebSocket upgrades refused, by HTTP status",
            ["status"],
            registry=r,
        )
        self.updates_rejected = Counter(
            "crdt_updates_rejected", "Frames or updates rejected, by reason", ["reason"], registry=r
        )
        self.commit_seconds = Histogram(
            "crdt_commit_seconds", "Store commit latency", buckets=_LATENCY_BUCKETS, registry=r
        )
        self.commit_batch = Histogram(
            "crdt_commit_batch_size", "Updates per room commit", buckets=_BATCH_BUCKETS, registry=r
        )
        self.broadcast_seconds = Histogram(
            "crdt_broadcast_seconds",
            "From applying an update to broadcasting it (includes the commit)",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.queue_overflows = Counter(
            "crdt_outbound_queue_overflows", "Slow consumers closed with 1013", registry=r
        )
        self.store_errors = Counter(
            "crdt_store_errors", "Failed store operations", ["op"], registry=r
        )
        self.derivation_failures = Counter(
            "crdt_derivation_failures",
            "Failures of what the domain derives from committed updates (the updates were"
            " kept), by step",
            ["step"],
            registry=r,
        )
        self.edits_rolled_back = Counter(
            "crdt_server_edits_rolled_back",
            "Server-side edits (HTTP operations...) refused after they wrote to a room's"
            " document, which was rebuilt without them (every domain operation checks before"
            " it writes: this stays 0)",
            registry=r,
        )
        self.loop_stalls = Counter(
            "crdt_loop_stalls",
            "Event loop turns longer than a quarter of CRDT_SERVER_LOOP_STALL_SECONDS (a"
            " turn that reaches it ends the process: the loop watchdog)",
            registry=r,
        )
        self.apply_interrupted = Counter(
            "crdt_apply_interrupted",
            "1 when this process found that the one before it ended during an apply (a"
            " stall exit or a crash) and quarantined that update's clients",
            registry=r,
        )
        self.denied_writes = Counter(
            "crdt_denied_writes", "Write attempts by read-only connections", registry=r
        )

    def _add_http_metrics(self, r: CollectorRegistry) -> None:
        """HTTP requests by route."""
        self.http_requests = Counter(
            "crdt_http_requests",
            "HTTP requests by route template, method and status",
            ["route", "method", "status"],
            registry=r,
        )
        self.http_seconds = Histogram(
            "crdt_http_request_seconds",
            "HTTP request duration by route template and method",
            ["route", "method"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )

    def _add_worker_metrics(self, r: CollectorRegistry) -> None:
        """Connections and requests between the workers of one host (``--workers``)."""
        self.sync_connections = Counter(
            "crdt_sync_connections",
            "Sync (WebSocket) connections admitted, by the index of the worker process"
            " that served them (0 for a single process)",
            ["worker"],
            registry=r,
        )
        self.sync_connections.labels(self.worker)
        self.handed_off = Counter(
            "crdt_connections_handed_off",
            "Sync connections this worker accepted and handed to the wedding's owner worker,"
            " by the owner's index",
            ["owner"],
            registry=r,
        )
        self.adopted = Counter(
            "crdt_connections_adopted",
            "Sync connections another worker accepted and handed to this one (the owner)",
            registry=r,
        )
        self.served_off_owner = Counter(
            "crdt_connections_served_off_owner",
            "Sync connections this worker served although another worker owns the wedding"
            " (the owner could not be reached; the bus keeps them in step)",
            registry=r,
        )
        self.handoffs_taken_back = Counter(
            "crdt_handoffs_taken_back",
            "Connections this worker handed to their owner worker and then served itself (or"
            " refused with 503 while stopping): the owner did not acknowledge them within"
            " CRDT_SERVER_HANDOFF_TIMEOUT_SECONDS, or its control connection ended",
            registry=r,
        )

        self.http_proxied = Counter(
            "crdt_http_proxied",
            "HTTP requests naming a wedding this worker accepted and its owner worker served"
            " (proxied over the owner's control socket), by the owner's index",
            ["owner"],
            registry=r,
        )
        self.http_adopted = Counter(
            "crdt_http_adopted",
            "HTTP requests another worker accepted and this one (the wedding's owner) served",
            registry=r,
        )
        self.http_served_off_owner = Counter(
            "crdt_http_served_off_owner",
            "HTTP requests this worker served although another worker owns their wedding"
            " (the owner could not be reached, or did not take the request within"
            " CRDT_SERVER_HANDOFF_TIMEOUT_SECONDS)",
            registry=r,
        )

    def set_worker(self, index: int) -> None:
        """Label this process's metrics with its worker index."""
        if str(index) != self.worker:
            self.sync_connections.remove(self.worker)
        self.worker = str(index)
        self.sync_connections.labels(self.worker)

    def derivation_failed(self, room: str, step: str, exc: BaseException) -> None:
        """Count a failure of ``step`` on an update of ``room`` that was kept anyway, and
        log it once an hour per kind: the room and the exception's type, never its message
        (it may quote document content)."""
        self.derivation_failures.labels(step).inc()
        kind = (step, _type_names(exc))
        now = time.monotonic()
        last = self._derivation_logged.get(kind)
        if last is not None and now - last < _DERIVATION_LOG_SECONDS:
            return
        self._derivation_logged[kind] = now
        log.warning(
            "room %s: %s failed on an update (%s); the update was kept"
            " (crdt_derivation_failures_total counts every one; this is logged once an hour)",
            room,
            step,
            kind[1],
        )

    def watch_links(self, store: StoreHealth, bus: BusLink) -> None:
        """Export whether the store and the bus are up, and how often each was lost (the
        last ones given, where one process's rooms are served more than once: tests)."""
        if self._links is not None:
            self.registry.unregister(self._links)
        self._links = _LinkCollector(store, bus)
        self.registry.register(self._links)

    def render(self) -> bytes:
        return generate_latest(self.registry)


def _type_names(exc: BaseException) -> str:
    """The exception's type; for a group, the types it holds."""
    if isinstance(exc, BaseExceptionGroup):
        inner = sorted({type(e).__name__ for e in exc.exceptions})
        return f"{type(exc).__name__}({', '.join(inner)})"
    return type(exc).__name__


class BusLink(Protocol):
    """What the metrics read of the bus (:class:`crdt_server.cluster.bus.Bus`)."""

    @property
    def status(self) -> str: ...

    @property
    def losses(self) -> int: ...


class _LinkCollector(Collector):
    def __init__(self, store: StoreHealth, bus: BusLink) -> None:
        self._store = store
        self._bus = bus

    def describe(self) -> Iterator[Metric]:
        return iter(())

    def collect(self) -> Iterator[Metric]:
        store, bus = self._store, self._bus
        yield GaugeMetricFamily(
            "crdt_store_up",
            "1 while the store's last commit succeeded and it answered the last readiness check",
            int(store.up),
        )
        yield CounterMetricFamily("crdt_store_lost", "Times the store was lost", store.losses)
        yield GaugeMetricFamily(
            "crdt_bus_up",
            "1 while the bus answers its health ping (always 1 for a single process)",
            int(bus.status in ("ok", "local")),
        )
        yield CounterMetricFamily("crdt_bus_lost", "Times the bus was lost", bus.losses)


class _HotCollector(Collector):
    def __init__(self, metrics: Metrics) -> None:
        self._m = metrics

    def describe(self) -> Iterator[Metric]:
        return iter(())

    def collect(self) -> Iterator[Metric]:
        m = self._m
        yield CounterMetricFamily("crdt_bytes_received", "Bytes received in frames", m.bytes_in)
        yield CounterMetricFamily("crdt_bytes_sent", "Bytes queued to clients", m.bytes_out)
        yield CounterMetricFamily(
            "crdt_updates_accepted", "Updates applied and queued for commit", m.updates_accepted
        )
        yield CounterMetricFamily(
            "crdt_awareness_messages", "Awareness messages received", m.awareness_messages
        )
        yield GaugeMetricFamily(
            "crdt_connections_open", "Open WebSocket connections", m.connections_open
        )
        yield GaugeMetricFamily("crdt_rooms_loaded", "Rooms loaded in this process", m.rooms_loaded)
        yield GaugeMetricFamily(
            "crdt_quarantined_clients",
            "Yjs clients whose updates are refused in a room because one of them was being"
            " applied when a server process stopped (crdt-server quarantine lift)",
            m.quarantined_clients,
        )
        yield GaugeMetricFamily(
            "crdt_updates_waiting_turn",
            "Connections whose next update waits for its turn (overload)",
            m.updates_waiting_turn,
        )
        yield GaugeMetricFamily(
            "crdt_backlog_updates",
            "Updates accepted and not yet committed, all rooms of the process",
            m.backlog_updates,
        )
        yield GaugeMetricFamily(
            "crdt_reads_paused",
            "Connections not read now because their room is over its backlog bound",
            m.reads_paused,
        )


class StoreHealth:
    """Whether the store's last commit succeeded (readiness), and whether the store is lost.

    The store is *lost* while its last commit failed or the last readiness check got no
    answer from it, and *back* once both succeed again; each change is logged once
    (``the store is lost: ...``, ``the store is back after N s``) and counted. A commit
    that failed because the store did not answer in time (:class:`StoreUnavailable`: a
    link lost, a lock another host held past the lock timeout) is cleared by the next
    check that gets an answer, so a server that a proxy stopped sending clients to (its
    ``/readyz`` answered 503) is ready again once its link is back; any other failure (a
    full disk, SQLite's file locked) only by a commit that succeeds."""

    def __init__(self) -> None:
        self.last_error: str | None = None
        self.failed_at: float | None = None
        self._probe_error: str | None = None
        self._unavailable = False
        self._lost_since: float | None = None
        self.losses = 0
        """Times the store was lost (``crdt_store_lost_total``)."""

    def failed(self, error: BaseException) -> None:
        self.last_error = f"{type(error).__name__}: {error}"
        self.failed_at = clock.now()
        self._unavailable = isinstance(error, StoreUnavailable)
        self._changed()

    def succeeded(self) -> None:
        self.last_error = None
        self.failed_at = None
        self._probe_error = None  # it answered
        self._changed()

    def probed(self, error: str | None) -> None:
        """The readiness check's answer: ``None`` if the store answered, else why not."""
        self._probe_error = error
        if error is None and self._unavailable:
            self.last_error = self.failed_at = None  # it answers again
            self._unavailable = False
        self._changed()

    @property
    def healthy(self) -> bool:
        return self.last_error is None

    @property
    def up(self) -> bool:
        """Not lost: the last commit succeeded and the last check got an answer."""
        return self._lost_since is None

    def _changed(self) -> None:
        why = self.last_error or self._probe_error
        if why is not None and self._lost_since is None:
            self._lost_since = time.monotonic()
            self.losses += 1
            log.error("the store is lost: %s; this server refuses writes until it is back", why)
        elif why is None and self._lost_since is not None:
            lost_for = time.monotonic() - self._lost_since
            self._lost_since = None
            log.warning("the store is back after %.1f s", lost_for)
