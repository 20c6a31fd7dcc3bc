"""Outgoing webhooks (Standard Webhooks): a durable outbox over the wedding event log.

The events table is the outbox. Each endpoint keeps its own cursor (``after_seq``) over its
wedding's events: the dispatcher reads the events past it that the endpoint subscribed to
and, in one transaction, writes a delivery row for each (unique per endpoint and event, so
two processes doing it at once write each row once) and moves the cursor. An event is
durable with its update (the event log writes it in the update's own transaction), so a
crash between the commit and the delivery loses nothing: the next process to run finds the
cursor behind and the deliveries pending. With ``--workers N`` the fan-out of a wedding's
events is its owner's (:mod:`crdt_server.placement`): each worker fans out the weddings it
owns, and is woken only by theirs; every worker claims and attempts what is due. Done by
every worker, each fan-out read what the others had just written to find nothing left to
do: the dispatcher took 3 % of each of two workers' profile samples, against under 0.3 %
in one process at the same load per process (the two workers' CPU per update did not
measurably change with this, `docs/performance/2026-11-27.md`).

Deliveries are attempted by whichever process claims them (a lease, see
:mod:`crdt_server.features.webhooks.tables`), on the retry schedule
(``CRDT_SERVER_WEBHOOK_RETRY_SCHEDULE``: the delay before each attempt). Every attempt of
a delivery carries the same ``webhook-id`` and is signed anew (``webhook-timestamp`` is the
attempt's); any 2xx answer delivers it; 410 disables the endpoint; after the last attempt
it is failed (a dead letter), listed and replayable. An endpoint disabled by a 410 (or
paused through the API) is enabled again with :meth:`WebhookEndpoints.update
<crdt_server.features.webhooks.service.WebhookEndpoints.update>`, and resumes where it
stopped (its cursor did not move while it was disabled). A dead endpoint never holds back
another, and a dead letter never holds back later deliveries: each delivery is claimed on
its own. Order holds within a lane as far as queueing goes (each lane queues, and makes
first attempts, in seq order), not on arrival (several attempts in flight per endpoint,
retries): the payload carries the event's ``seq``.

Two lanes (:data:`crdt_server.names.LANES`): each endpoint has a second cursor
(``urgent_after_seq``) over the urgent and emergency events only, fanned out first, whose
deliveries are claimed first and in slots of their own (:data:`URGENT_IN_FLIGHT`, and
:data:`PER_ENDPOINT` per endpoint per lane), so an emergency behind any backlog goes out at
once. The normal lane delivers every event in its turn, that one too, with the same
``webhook-id`` as its urgent delivery: the receiver drops the repeat (at least once
already requires it). The urgent cursor never goes back behind the normal one.

Wire format (https://www.standardwebhooks.com/): headers ``webhook-id``,
``webhook-timestamp``, ``webhook-signature: v1,<base64 HMAC-SHA256 of id.timestamp.body>``
(two signatures for 24 h after a rotation, the new secret's and the old one's); body
``{"type", "timestamp", "data": <the event as GET .../events shows it>}``.

A payload is cut, at each attempt, to what the endpoint's creator may read *now*: their role
is read from the member directory once per batch of claimed deliveries (a role changed
through the members API or a newer token applies to the next delivery, retries included),
and the event is shown as that role reads it in ``GET .../events``
(:func:`~crdt_server.features.events.domain.readable_event`: no guest's contact or notes for a
vendor). An event of a document the creator's role may no longer read is not sent: its
delivery fails at once (a dead letter, ``withheld``). Endpoints created by the admin (no
creator) carry whole events; an operator's token (no member) is cut to the role it had when
it created the endpoint; a creator the directory does not know gets every field with a read
rule cut. One attempt, the cut and how it settles are
:mod:`~crdt_server.features.webhooks.service_delivery`'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry

from crdt_server import clock
from crdt_server.auth.permissions import PermissionMatrix
from crdt_server.core.hooks import Core, Extension
from crdt_server.documents.domain import WEDDINGS
from crdt_server.features.events import EventLog, read_events
from crdt_server.features.webhooks.domain import Endpoint, new_id, payload_of
from crdt_server.features.webhooks.service import (
    WebhookEndpoints,
    insert_delivery,
    sent_ahead_ids,
)
from crdt_server.features.webhooks.service_delivery import DeliveryMetrics, attempt, settled
from crdt_server.features.webhooks.service_sender import Senders
from crdt_server.features.webhooks.settings import WebhookSettings
from crdt_server.features.webhooks.tables import (
    ENDPOINT_COLUMNS,
    Due,
    FanOutRow,
    Inserted,
    Leased,
    Statement,
    WebhookTables,
)
from crdt_server.names import LANE_PRIORITIES, LANES, Lane
from crdt_server.placement import ALONE, Placement
from crdt_server.settings import Settings
from crdt_server.storage import DocumentStore, EventFilter, StoreError
from crdt_server.times import rfc3339

if TYPE_CHECKING:
    from crdt_server.features.people import Member, People

__all__ = ["Webhooks"]

log = logging.getLogger("crdt_server.webhooks")

MAX_IN_FLIGHT = 32
"""Attempts one process makes at once on the normal lane."""
URGENT_IN_FLIGHT = 8
"""Attempts one process makes at once on the urgent lane (slots of its own: a backlog on
the normal lane never holds an emergency)."""
PER_ENDPOINT = 4
"""Attempts in flight to one endpoint (all processes): an endpoint that hangs until the
timeout holds this many, never every slot."""
POLL_SECONDS = 1.0
"""How often the dispatcher looks for work it was not woken for (events committed by
another process without a bus, custom events, retries that came due)."""
GATHER_SECONDS = 0.02
"""How long the dispatcher, woken by a commit, waits for the commits that follow before it
fans out: each fan-out reads every endpoint's cursor and the next due delivery whatever it
finds, and woken once per commit that was about 0.2 ms of CPU per update at 500 updates/s
(benchmarks.scale's durable target: 1,287 against 1,067 ms per 1,000 updates with the
window). A commit-to-receiver p50 of 5 ms becomes about 18."""
PAGE = 200
SWEEP_SECONDS = 3600.0
ATTEMPTS_KEPT_SECONDS = 2 * 24 * 3600.0


def lane_named(lane: str) -> Lane:
    """A stored delivery's lane (anything but ``urgent`` is the normal lane)."""
    return "urgent" if lane == "urgent" else "normal"


@dataclass
class _Queued:
    """One fan-out's transaction as it is written: its statements (and which of them insert
    a delivery), the first attempts it may still take per lane, whether some endpoint has
    more, and the ``webhook-id`` of each event (endpoint, seq) queued on the urgent lane:
    its repeat on the normal lane carries the same."""

    leases: dict[Lane, int]
    statements: list[Statement] = field(default_factory=list)
    inserts: list[int] = field(default_factory=list)
    more: bool = False
    sent_ahead: dict[tuple[str, int], str] = field(default_factory=dict)


class Webhooks(Extension):
    """Outgoing webhooks of every wedding (see the module docstring)."""

    name = "webhooks"

    def __init__(
        self,
        store: DocumentStore,
        settings: Settings,
        registry: CollectorRegistry,
        *,
        placement: Placement = ALONE,
        people: People | None = None,
        events: EventLog | None = None,
    ) -> None:
        """``registry``: where its delivery metrics go; ``placement``: this process's among
        its host's workers (it fans out the events of the weddings it owns); ``people``: the
        member directory, where each endpoint's creator's current role is read (without it,
        a creator's endpoint gets every field with a read rule cut); ``events``: the event
        log, whose personal namespaces' rule deliveries follow. Its tables are installed
        with the feature's before it is built (tests and tools that drive :meth:`fan_out`
        themselves: :func:`crdt_server.features.install_tables`)."""
        self._people = people
        self._events = events
        self._settings = settings
        self._placement = placement
        """The weddings whose events this process fans out (all, unless one of workers)."""
        text = settings.permissions
        self._permissions = PermissionMatrix.from_json(text) if text else PermissionMatrix()
        self._config = config = settings.fragment(WebhookSettings)
        self._wake = asyncio.Event()
        self.tables = WebhookTables(store)
        self.manage = WebhookEndpoints(self.tables, self._wake.set)
        """Endpoints and their deliveries, as the API manages them."""
        # One keep-alive pool per receiver, to its checked address (service_sender).
        self.senders = Senders(
            timeout=config.webhook_timeout_seconds,
            allow_private=config.webhook_allow_private,
            max_connections=MAX_IN_FLIGHT + URGENT_IN_FLIGHT,
        )
        """The pooled, address-checked HTTP clients deliveries go out on."""
        self._metrics = DeliveryMetrics(registry)
        self._owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self.gather = GATHER_SECONDS
        """Seconds a wake-up waits for the commits after it (:data:`GATHER_SECONDS`)."""
        self._closed = False
        self._runner: asyncio.Task[None] | None = None
        self._sending: dict[asyncio.Task[None], tuple[str, Lane]] = {}
        """Attempts in flight, with their endpoint and lane."""
        self._in_flight: dict[tuple[str, Lane], int] = {}
        """Attempts in flight per endpoint and lane."""
        self._swept_at = 0.0
        self._fanned: dict[str, Endpoint] = {}
        """The endpoints of the last fan-out (their first attempts need not read them)."""
        self._settled: list[Statement] = []
        """Statements of finished attempts, committed with the dispatcher's next
        transaction (one fsync for a burst of answers and the next events, not one each);
        lost in a crash, which only means the attempt is made again (at least once)."""

    # -- hooks --------------------------------------------------------------------------

    async def start(self, core: Core) -> None:
        self._runner = asyncio.create_task(self._run(), name="webhook-dispatcher")

    def wake(self, wedding: str = "") -> None:
        """Events were stored (by this process): look for deliveries to make now."""
        self._wake.set()

    def on_bus_event(self, event: dict[str, Any]) -> None:
        if event.get("type") == "events" and self._placement.owns(str(event.get("wedding"))):
            self._wake.set()

    async def close(self) -> None:
        self._closed = True
        self._wake.set()
        tasks = [t for t in (self._runner, *self._sending) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            # An attempt cut short keeps its lease: another process (or this one after a
            # restart) retries it once the lease runs out.
            with contextlib.suppress(asyncio.CancelledError):
                await task
        try:
            await self.flush()
        except Exception:
            log.exception("could not record finished webhook attempts; they will be retried")
        await self.senders.aclose()

    # -- managing endpoints (see crdt_server.features.webhooks.service) --------------

    @property
    def allow_private(self) -> bool:
        return self._config.webhook_allow_private

    # -- erasure -----------------------------------------------------------------------

    async def on_guest_erased(self, wedding: str, guest_id: str) -> None:
        """A guest is erased: their stored delivery payloads go (see
        :meth:`WebhookEndpoints.forget_entity`)."""
        await self.manage.forget_entity(wedding, guest_id, WEDDINGS.person_paths(guest_id))

    async def on_member_erased(self, wedding: str, sub: str) -> bool:
        """A member is erased: the deliveries quoting their thread events go, and the
        endpoints they created are disabled."""
        await self.manage.forget_member(wedding, sub)
        reason = f"its creator was erased at {rfc3339(clock.now())}"
        await self.manage.disable_created_by(sub, wedding, reason)
        return False

    async def on_revoke(self, sub: str, wedding: str | None) -> None:
        """``sub``'s access was revoked (in ``wedding``, or everywhere with ``None``): the
        endpoints they created are disabled for good (a revocation is forgotten once no
        token could outlive it; a disabled endpoint stays disabled). A manager takes one
        over by re-enabling it."""
        reason = f"its creator's access was revoked at {rfc3339(clock.now())}"
        gone = await self.manage.disable_created_by(sub, wedding, reason)
        if gone:
            log.info("revocation disabled %d webhook endpoints", gone)

    # -- the dispatcher ----------------------------------------------------------------

    async def _run(self) -> None:
        while not self._closed:
            self._wake.clear()
            try:
                while True:
                    more, leased = await self.fan_out(
                        lease=self._free("normal"), urgent_lease=self._free("urgent")
                    )
                    self._start(leased, self._fanned)
                    if not more:
                        break
                delay = await self._dispatch()
                await self._sweep()
            except StoreError as exc:  # a full disk, a lost database: one line, not a trace
                log.warning("the webhook dispatcher paused, the store failed: %s", exc)
                delay = POLL_SECONDS
            except Exception:
                log.exception("the webhook dispatcher failed; trying again shortly")
                delay = POLL_SECONDS
            if delay > 0 and await clock.wait(self._wake, delay):
                # Woken by a commit: the ones that follow within the window go in the
                # same fan-out (real time: the events' arrival, not the schedule's clock).
                await asyncio.sleep(self.gather)

    async def fan_out(self, *, lease: int = 0, urgent_lease: int = 0) -> tuple[bool, list[Leased]]:
        """Write deliveries for the events past each enabled endpoint's cursors (a page per
        endpoint and lane: the urgent lane's first), in one transaction with the settled
        attempts waiting to be committed. Up to ``lease`` deliveries of the normal lane
        (``urgent_lease`` of the urgent lane) due at once are taken by this process for
        their first attempt. Answers whether some endpoint has more (call again), and the deliveries
        taken (as :meth:`WebhookTables.claim` gives them)."""
        behind = await self.tables.read_as(
            FanOutRow,
            f"SELECT {', '.join('e.' + c.strip() for c in ENDPOINT_COLUMNS.split(','))},"
            " e.after_seq, c.last_seq, e.urgent_after_seq FROM {t}webhook_endpoints e"
            " JOIN {t}event_counters c ON c.wedding = e.wedding"
            " WHERE e.disabled = '' AND c.last_seq > e.after_seq",
        )
        queued = _Queued(leases={"normal": lease, "urgent": urgent_lease})
        self._fanned = {}
        for row in behind:
            if not self._placement.owns(row.wedding):
                continue  # its owner fans it out
            endpoint = row.endpoint()
            self._fanned[endpoint.id] = endpoint
            after, last = int(row.after_seq), int(row.last_seq)
            where = EventFilter(
                types=() if "*" in endpoint.events else tuple(endpoint.events),
                docs=endpoint.docs,
                viewer=endpoint.viewer,
            )
            # The urgent lane first: its cursor never goes back behind the normal one (an
            # event the normal lane queued already is not queued again).
            ahead = max(int(row.urgent_after_seq), after)
            for lane in LANES:
                start = ahead if lane == "urgent" else after
                if start < last:
                    await self._queue_page(queued, endpoint, lane, where, start, last)
        return await self._commit_fan_out(queued)

    async def _queue_page(
        self,
        queued: _Queued,
        endpoint: Endpoint,
        lane: Lane,
        where: EventFilter,
        start: int,
        last: int,
    ) -> None:
        """Queue a delivery for each of the next page of ``endpoint``'s events on ``lane``
        (after ``start``, up to the counter ``last``), and move the lane's cursor."""
        if lane != "normal":
            where = replace(where, priorities=LANE_PRIORITIES[lane])
        page = await read_events(
            self.tables.gateway, endpoint.wedding, after=start, limit=PAGE, where=where, upto=last
        )
        full = len(page) == PAGE
        queued.more = queued.more or full
        # A page short of PAGE saw every event up to the counter read before it
        # (seqs follow commit order), so the cursor may pass those that did not match.
        cursor = page[-1].seq if full else last
        now = clock.now()
        first_delay = self._config.webhook_retries[0]
        busy = self._in_flight.get((endpoint.id, lane), 0)
        sent_ahead = queued.sent_ahead
        if lane == "normal":
            sent_ahead.update(await sent_ahead_ids(self.tables, endpoint.id, page, sent_ahead))
        for e in page:
            delivery = new_id("msg")
            if lane == "urgent":
                sent_ahead[(endpoint.id, e.seq)] = delivery
            take = first_delay == 0 and queued.leases[lane] > 0 and busy < PER_ENDPOINT
            queued.leases[lane] -= int(take)
            busy += int(take)
            queued.inserts.append(len(queued.statements))
            queued.statements.append(
                insert_delivery(
                    endpoint,
                    delivery,
                    e.seq,
                    e.type,
                    payload_of(e),
                    e.at,
                    now + first_delay,
                    owner=self._owner if take else "",
                    lease_until=now + self._lease_seconds() if take else 0.0,
                    lane=lane,
                    webhook_id=sent_ahead.get((endpoint.id, e.seq), delivery),
                )
            )
        column = "urgent_after_seq" if lane == "urgent" else "after_seq"
        queued.statements.append(
            (
                f"UPDATE {{t}}webhook_endpoints SET {column} = ?"  # noqa: S608
                f" WHERE id = ? AND {column} < ?",
                (cursor, endpoint.id, cursor),
            )
        )

    async def _commit_fan_out(self, queued: _Queued) -> tuple[bool, list[Leased]]:
        """Commit the queued deliveries and cursors with the settled attempts waiting (kept
        for the next transaction if this one fails); the deliveries this process took."""
        settled, self._settled = self._settled, []
        if not queued.statements and not settled:
            return False, []
        try:
            results = await self.tables.transaction([*settled, *queued.statements])
        except BaseException:
            self._settled[:0] = settled  # committed with the next transaction instead
            raise
        written = [Inserted(*row) for i in queued.inserts for row in results[len(settled) + i]]
        return queued.more, [w.leased() for w in written if w.lease_owner == self._owner]

    async def flush(self) -> None:
        """Commit the settled attempts not yet committed (the dispatcher does it with its
        next transaction; this is for a stop, and for tests driving it by hand)."""
        settled, self._settled = self._settled, []
        if settled:
            try:
                await self.tables.transaction(settled)
            except BaseException:
                self._settled[:0] = settled
                raise

    def _start(
        self, leased: Sequence[Leased], endpoints: dict[str, Endpoint] | None = None
    ) -> None:
        # The creators' roles are read once for the batch (shared by its attempts), and
        # again for the next: a role change applies to the next delivery.
        creators: dict[tuple[str, str], asyncio.Future[Member | None]] = {}
        for delivery in leased:
            hook = delivery.endpoint
            task = asyncio.create_task(
                self._attempt(delivery, (endpoints or {}).get(hook), creators),
                name=f"webhook {delivery.id}",
            )
            key = (hook, lane_named(delivery.lane))
            self._sending[task] = key
            self._in_flight[key] = self._in_flight.get(key, 0) + 1
            task.add_done_callback(self._finished)

    async def _dispatch(self) -> float:
        """Claim and start what is due; how long to wait before looking again."""
        next_due = await self.tables.read_one_as(
            Due,
            "SELECT MIN(CASE WHEN d.lease_until > d.next_at THEN d.lease_until"
            " ELSE d.next_at END) FROM {t}webhook_deliveries d"
            " JOIN {t}webhook_endpoints e ON e.id = d.endpoint"
            " WHERE d.status = 'pending' AND e.disabled = ''",
        )
        due = None if next_due is None else next_due.at
        now = clock.now()
        if due is None:
            return POLL_SECONDS
        if float(due) > now:
            return min(POLL_SECONDS, float(due) - now)
        if self._free("normal") <= 0 and self._free("urgent") <= 0:
            return POLL_SECONDS  # a finished attempt wakes the dispatcher
        await self.flush()  # so a settled retry is not claimed again before it is due
        claimed: list[Leased] = []
        for lane in LANES:  # the urgent lane first, in slots of its own
            free = self._free(lane)
            if free > 0:
                claimed += await self.tables.claim(
                    self._owner, now, now + self._lease_seconds(), free, PER_ENDPOINT, lane
                )
        self._start(claimed)
        return 0.0 if claimed else POLL_SECONDS

    def _free(self, lane: Lane) -> int:
        """Attempts this process may still start on ``lane``."""
        bound = URGENT_IN_FLIGHT if lane == "urgent" else MAX_IN_FLIGHT
        return bound - sum(1 for _, on in self._sending.values() if on == lane)

    def _finished(self, task: asyncio.Task[None]) -> None:
        key = self._sending.pop(task, ("", "normal"))
        left = self._in_flight.get(key, 1) - 1
        if left > 0:
            self._in_flight[key] = left
        else:
            self._in_flight.pop(key, None)
        # Its settlement waits for the dispatcher's next transaction (the next events, or
        # the poll); wake it now only when every attempt is done or slots were all taken,
        # so a burst of answers costs one pass, not one each.
        if not self._sending or self._free("normal") == 1 or key[1] == "urgent":
            self._wake.set()

    def _lease_seconds(self) -> float:
        # Long enough for one attempt (resolve, connect, send, read) with room to spare.
        return 2 * self._config.webhook_timeout_seconds + 5

    async def _sweep(self) -> None:
        now = clock.now()
        if now - self._swept_at < SWEEP_SECONDS:
            return
        self._swept_at = now
        keep = self._settings.event_retention_days * 86400
        await self.tables.transaction(
            [
                ("DELETE FROM {t}webhook_attempts WHERE at < ?", (now - ATTEMPTS_KEPT_SECONDS,)),
                ("DELETE FROM {t}webhook_idempotency WHERE expires_at < ?", (now,)),
                (
                    "DELETE FROM {t}webhook_deliveries WHERE status <> 'pending'"
                    " AND done_at > 0 AND done_at < ?",
                    (now - keep,),
                ),
            ]
        )

    # -- one attempt (crdt_server.features.webhooks.service_delivery) ---------------

    async def _attempt(
        self,
        leased: Leased,
        known: Endpoint | None = None,
        creators: dict[tuple[str, str], asyncio.Future[Member | None]] | None = None,
    ) -> None:
        await attempt(
            leased,
            known,
            creators,
            manage=self.manage,
            people=self._people,
            events=self._events,
            permissions=self._permissions,
            senders=self.senders,
            timeout_seconds=self._config.webhook_timeout_seconds,
            settle=self._settle,
        )

    def _settle(
        self,
        endpoint: Endpoint,
        delivery: str,
        attempts: int,
        event_at: float,
        outcome: str,
        status: int,
        error: str,
        answer: str,
    ) -> None:
        metrics = self._metrics
        self._settled.extend(
            settled(
                metrics,
                self._config.webhook_retries,
                self._owner,
                endpoint,
                delivery,
                attempts,
                event_at,
                outcome,
                status,
                error,
                answer,
            )
        )
