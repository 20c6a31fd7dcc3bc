"""The webhook tables (endpoints, deliveries, attempts) on SQLite and PostgreSQL.

One SQL text serves both backends through the store's SQL gateway
(:class:`crdt_server.storage.Gateway`): ``{t}`` before table names, ``?`` for parameters.
Writes are gateway transactions (in turn with the update commits); reads see committed
rows. Every table has a ``wedding`` column and is erased with the wedding.

A claim takes due deliveries under a lease (``lease_until``, ``lease_owner``): on
PostgreSQL in one statement with ``FOR UPDATE SKIP LOCKED``, so processes sharing the
database never wait on nor take each other's rows; on SQLite in one transaction that reads
an endpoint at a time (:func:`_claim_per_endpoint`), which the database's single writer
serialises. The lease column keeps a claimed row from every other process until it is
settled or its lease runs out (a process killed mid-attempt).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import msgspec

from crdt_server.features.webhooks.domain import Delivery, Endpoint, scope_of
from crdt_server.names import Lane
from crdt_server.storage import DocumentStore, Gateway, Migration, Table, schema_of
from crdt_server.storage.gateway import Sql, Tx, rebuilt
from crdt_server.storage.gateway import statements as in_one_transaction

__all__ = [
    "DELIVERY_COLUMNS",
    "ENDPOINT_COLUMNS",
    "SCHEMA",
    "AttemptCounts",
    "Count",
    "IdempotentRequest",
    "StatusCount",
    "Due",
    "EndpointRow",
    "FanOutRow",
    "Inserted",
    "Leased",
    "ListedEndpoint",
    "Statement",
    "WebhookTables",
]

_R = TypeVar("_R")

Statement = tuple[str, tuple[Any, ...]]

ENDPOINTS = Table(
    "webhook_endpoints",
    "(id TEXT PRIMARY KEY, wedding TEXT NOT NULL, url TEXT NOT NULL, description TEXT NOT NULL,"
    " events TEXT NOT NULL, secret TEXT NOT NULL, old_secret TEXT NOT NULL DEFAULT '',"
    " old_until {real} NOT NULL DEFAULT 0, after_seq {int} NOT NULL,"
    " disabled TEXT NOT NULL DEFAULT '', last_error TEXT NOT NULL DEFAULT '',"
    " last_error_at {real} NOT NULL DEFAULT 0, created_at {real} NOT NULL,"
    " scope TEXT NOT NULL DEFAULT '')",
    indexes=(
        "CREATE INDEX IF NOT EXISTS webhook_endpoints_wedding"
        " ON {t}webhook_endpoints (wedding, id)",
    ),
)
_DELIVERIES_V1 = Table(
    "webhook_deliveries",
    "(id TEXT PRIMARY KEY, wedding TEXT NOT NULL, endpoint TEXT NOT NULL, event_seq {int},"
    " type TEXT NOT NULL, payload TEXT NOT NULL, status TEXT NOT NULL,"
    " attempts {int} NOT NULL DEFAULT 0, next_at {real} NOT NULL,"
    " lease_until {real} NOT NULL DEFAULT 0, lease_owner TEXT NOT NULL DEFAULT '',"
    " last_status {int} NOT NULL DEFAULT 0, last_error TEXT NOT NULL DEFAULT '',"
    " last_response TEXT NOT NULL DEFAULT '', created_at {real} NOT NULL,"
    " event_at {real} NOT NULL, done_at {real} NOT NULL DEFAULT 0,"
    " UNIQUE (endpoint, event_seq))",
    indexes=(
        "CREATE INDEX IF NOT EXISTS webhook_deliveries_due"
        " ON {t}webhook_deliveries (status, next_at)",
        "CREATE INDEX IF NOT EXISTS webhook_deliveries_endpoint ON {t}webhook_deliveries"
        " (endpoint, status, id)",
    ),
)
"""Version 1: one delivery per endpoint and event."""
_DELIVERY_KEPT = (
    "id, wedding, endpoint, event_seq, type, payload, status, attempts, next_at, lease_until,"
    " lease_owner, last_status, last_error, last_response, created_at, event_at, done_at"
)
DELIVERIES = Table(
    "webhook_deliveries",
    "(id TEXT PRIMARY KEY, wedding TEXT NOT NULL, endpoint TEXT NOT NULL, event_seq {int},"
    " type TEXT NOT NULL, payload TEXT NOT NULL, status TEXT NOT NULL,"
    " attempts {int} NOT NULL DEFAULT 0, next_at {real} NOT NULL,"
    " lease_until {real} NOT NULL DEFAULT 0, lease_owner TEXT NOT NULL DEFAULT '',"
    " last_status {int} NOT NULL DEFAULT 0, last_error TEXT NOT NULL DEFAULT '',"
    " last_response TEXT NOT NULL DEFAULT '', created_at {real} NOT NULL,"
    " event_at {real} NOT NULL, done_at {real} NOT NULL DEFAULT 0,"
    " lane TEXT NOT NULL DEFAULT 'normal', webhook_id TEXT NOT NULL DEFAULT '',"
    " UNIQUE (endpoint, event_seq, lane))",
    indexes=_DELIVERIES_V1.indexes,
)
"""Version 2: one delivery per endpoint, event and lane (``urgent``: the urgent and
emergency events ahead of the backlog, then again on ``normal``); ``webhook_id`` is the
``webhook-id`` every attempt of it carries (the same on both lanes, so a receiver drops
the repeat; a version 1 delivery's is its id)."""
ATTEMPTS = Table(
    "webhook_attempts",
    "(wedding TEXT NOT NULL, endpoint TEXT NOT NULL, delivery TEXT NOT NULL, at {real} NOT NULL,"
    " ok {int} NOT NULL, status {int} NOT NULL)",
    indexes=(
        "CREATE INDEX IF NOT EXISTS webhook_attempts_endpoint"
        " ON {t}webhook_attempts (endpoint, at)",
    ),
)
IDEMPOTENCY = Table(
    "webhook_idempotency",
    "(scope TEXT NOT NULL, key TEXT NOT NULL, wedding TEXT NOT NULL, fingerprint TEXT NOT NULL,"
    " endpoint TEXT NOT NULL, expires_at {real} NOT NULL, PRIMARY KEY (scope, key))",
)
LANES_MIGRATION = rebuilt(
    2,
    _DELIVERIES_V1,
    DELIVERIES,
    kept=_DELIVERY_KEPT,
    sqlite=(
        "UPDATE webhook_deliveries SET webhook_id = id",
        "ALTER TABLE webhook_endpoints ADD COLUMN urgent_after_seq INTEGER NOT NULL DEFAULT 0",
        "UPDATE webhook_endpoints SET urgent_after_seq = after_seq",
    ),
    postgres=(
        "ALTER TABLE {s}.webhook_deliveries"
        " ADD COLUMN IF NOT EXISTS lane text NOT NULL DEFAULT 'normal'",
        "ALTER TABLE {s}.webhook_deliveries"
        " ADD COLUMN IF NOT EXISTS webhook_id text NOT NULL DEFAULT ''",
        "ALTER TABLE {s}.webhook_deliveries"
        " DROP CONSTRAINT IF EXISTS webhook_deliveries_endpoint_event_seq_key",
        "ALTER TABLE {s}.webhook_deliveries ADD CONSTRAINT"
        " webhook_deliveries_endpoint_event_seq_lane_key UNIQUE (endpoint, event_seq, lane)",
        "UPDATE {s}.webhook_deliveries SET webhook_id = id",
        "ALTER TABLE {s}.webhook_endpoints"
        " ADD COLUMN IF NOT EXISTS urgent_after_seq bigint NOT NULL DEFAULT 0",
        "UPDATE {s}.webhook_endpoints SET urgent_after_seq = after_seq",
    ),
)
"""Version 2, the priority lanes: each endpoint gains the urgent lane's cursor
(``urgent_after_seq``, where its normal cursor stands), each delivery its lane
(``normal`` for those made before) and its ``webhook_id`` (its id, as sent before)."""
CLAIM_MIGRATION = Migration(
    3,
    (
        "CREATE INDEX IF NOT EXISTS webhook_deliveries_due_per_endpoint ON webhook_deliveries"
        " (endpoint, lane, status, next_at, id)",
        "CREATE INDEX IF NOT EXISTS webhook_deliveries_leased ON webhook_deliveries"
        " (endpoint, lane, status, lease_until)",
    ),
    (),
)
"""Version 3: what a claim on SQLite reads per endpoint (:meth:`WebhookTables.claim`): an
endpoint's due deliveries of a lane in order, and its leases in flight. Not on PostgreSQL,
whose claim is one statement that does not read them: there they would only cost every
write of a delivery (a lease changes an indexed column, so no update stays in place)."""
SCHEMA = schema_of(
    "webhooks",
    ENDPOINTS,
    _DELIVERIES_V1,
    ATTEMPTS,
    IDEMPOTENCY,
    migrations=[LANES_MIGRATION, CLAIM_MIGRATION],
)


_CLAIM = """
UPDATE {t}webhook_deliveries SET lease_until = ?, lease_owner = ?, attempts = attempts + 1
WHERE id IN (
  SELECT c.id FROM {t}webhook_deliveries c
  WHERE c.status = 'pending' AND c.lease_until <= ? AND c.lane = ? AND c.id IN (
    SELECT ranked.id FROM (
      SELECT d.id, d.endpoint,
        ROW_NUMBER() OVER (PARTITION BY d.endpoint ORDER BY d.next_at, d.id) AS n
      FROM {t}webhook_deliveries d JOIN {t}webhook_endpoints e ON e.id = d.endpoint
      WHERE d.status = 'pending' AND d.next_at <= ? AND d.lease_until <= ? AND d.lane = ?
        AND e.disabled = ''
    ) ranked
    LEFT JOIN (
      SELECT b.endpoint, COUNT(*) AS n FROM {t}webhook_deliveries b
      WHERE b.status = 'pending' AND b.lease_until > ? AND b.lane = ? GROUP BY b.endpoint
    ) busy ON busy.endpoint = ranked.endpoint
    WHERE ranked.n + COALESCE(busy.n, 0) <= ?
  )
  ORDER BY c.next_at, c.id LIMIT ? {lock}
)
RETURNING id, wedding, endpoint, payload, attempts, event_at, webhook_id, lane
"""
"""PostgreSQL's claim (SQLite's is :func:`_claim_per_endpoint`): due deliveries of one lane
of enabled endpoints, oldest first, at most ``per_endpoint`` of that lane in flight for
each endpoint (counting those leased by any process: each lane has slots of its own, so a
backlog never holds the urgent lane), so that an endpoint that hangs
until the timeout holds a few attempts, never every slot. The lease condition is on ``c``,
the row locked, as well: on PostgreSQL a row another claim leased and committed while this
statement waited is re-checked on its new version only against the locked row's own
conditions (READ COMMITTED), so without it both claims would take the row. The leases in
flight are counted once per endpoint (the ``busy`` table), not once per due row: with a
backlog, a count per row made each claim take time in the square of the backlog."""


_ENDPOINTS_DUE = """
SELECT e.id,
  (SELECT COUNT(*) FROM {t}webhook_deliveries b WHERE b.endpoint = e.id AND b.lane = ?
    AND b.status = 'pending' AND b.lease_until > ?),
  (SELECT y.next_at FROM {t}webhook_deliveries y WHERE y.endpoint = e.id AND y.lane = ?
    AND y.status = 'pending' AND y.next_at <= ? AND y.lease_until <= ?
    ORDER BY y.next_at LIMIT 1)
FROM {t}webhook_endpoints e WHERE e.disabled = ''
"""
"""Each enabled endpoint: its leases of the lane in flight, and its oldest due delivery's
time (``NULL``: none due). The oldest by ``ORDER BY ... LIMIT 1``, not ``MIN``: with the
lease condition beside it, SQLite's ``MIN`` read every due delivery of the endpoint; this
walks the index in order and stops at the first one not leased."""
_DUE_OF_ENDPOINT = """
SELECT id, next_at FROM {t}webhook_deliveries WHERE endpoint = ? AND lane = ?
  AND status = 'pending' AND next_at <= ? AND lease_until <= ?
ORDER BY next_at, id LIMIT ?
"""
_LEASE = """
UPDATE {t}webhook_deliveries SET lease_until = ?, lease_owner = ?, attempts = attempts + 1
WHERE id IN ({ids}) AND +status = 'pending' AND lease_until <= ?
RETURNING id, wedding, endpoint, payload, attempts, event_at, webhook_id, lane
"""
"""The lease of the deliveries chosen, by id. ``+status``: SQLite's way to keep a condition
off the indexes; given a dozen ids, its planner took the index on ``(status, next_at)``
and read every pending delivery."""


def _claim_per_endpoint(
    owner: str, now: float, lease_until: float, limit: int, per_endpoint: int, lane: Lane
) -> Tx[list[tuple[Any, ...]]]:
    """SQLite's claim, what :data:`_CLAIM` takes on PostgreSQL, read an endpoint at a time
    through :data:`CLAIM_MIGRATION`'s indexes: :data:`_CLAIM` ranks every due delivery of
    the lane, and under a backlog each claim took 3 to 20 ms of the event loop's thread
    (the overload benchmark; SQLite commits there). Here a claim reads each enabled
    endpoint's leases and oldest due delivery, then the due deliveries of the ``limit``
    endpoints with a free slot whose oldest is oldest (each of those gives at least one, so
    no other endpoint's can be among the ``limit`` oldest), as many as each has free
    slots; it leases the ``limit`` oldest of those."""
    endpoints = yield Sql(_ENDPOINTS_DUE, (lane, now, lane, now, now))
    free = sorted(
        (head, endpoint, per_endpoint - int(busy))
        for endpoint, busy, head in endpoints
        if head is not None and int(busy) < per_endpoint
    )[:limit]
    due: list[tuple[float, str]] = []
    for _, endpoint, slots in free:
        rows = yield Sql(_DUE_OF_ENDPOINT, (endpoint, lane, now, now, slots))
        due += [(float(next_at), str(id_)) for id_, next_at in rows]
    chosen = [id_ for _, id_ in sorted(due)[:limit]]
    if not chosen:
        return []
    ids = ", ".join("?" * len(chosen))
    leased: list[tuple[Any, ...]] = yield Sql(
        _LEASE.replace("{ids}", ids), (lease_until, owner, *chosen, now)
    )
    return leased


ENDPOINT_COLUMNS = (
    "id, wedding, url, description, events, secret, old_secret, old_until, disabled,"
    " last_error, last_error_at, created_at, scope"
)
"""The columns of an :class:`EndpointRow`, in its order."""
DELIVERY_COLUMNS = (
    "id, endpoint, event_seq, type, status, attempts, next_at, last_status, last_error,"
    " last_response, created_at, done_at"
)
"""The columns of a :class:`~crdt_server.features.webhooks.domain.Delivery`, in its order."""


class EndpointRow(msgspec.Struct, frozen=True):
    """An endpoint as :data:`ENDPOINT_COLUMNS` holds it (``events``, ``scope``: JSON)."""

    id: str
    wedding: str
    url: str
    description: str
    events: str
    secret: str
    old_secret: str
    old_until: float
    disabled: str
    last_error: str
    last_error_at: float
    created_at: float
    scope: str

    def endpoint(self) -> Endpoint:
        return Endpoint(
            self.id,
            self.wedding,
            self.url,
            self.description,
            list(json.loads(self.events)),
            self.secret,
            self.old_secret,
            float(self.old_until),
            self.disabled,
            self.last_error,
            float(self.last_error_at),
            float(self.created_at),
            *scope_of(self.scope),
        )


class FanOutRow(EndpointRow, frozen=True):
    """An enabled endpoint behind its wedding's events: its cursors (the normal lane's, the
    urgent lane's) and the newest seq."""

    after_seq: int
    last_seq: int
    urgent_after_seq: int


class Leased(msgspec.Struct, frozen=True):
    """A delivery this process took for an attempt (what a claim returns)."""

    id: str
    wedding: str
    endpoint: str
    payload: str
    attempts: int
    event_at: float
    webhook_id: str
    """What the attempt sends as ``webhook-id``."""
    lane: str


class Inserted(Leased, frozen=True):
    """A delivery just written, and who took it for its first attempt (``''``: nobody)."""

    lease_owner: str

    def leased(self) -> Leased:
        return Leased(
            self.id,
            self.wedding,
            self.endpoint,
            self.payload,
            self.attempts,
            self.event_at,
            self.webhook_id,
            self.lane,
        )


class Due(msgspec.Struct, frozen=True):
    """When the next pending delivery comes due (``None``: none is pending)."""

    at: float | None


class IdempotentRequest(msgspec.Struct, frozen=True):
    """What an ``Idempotency-Key`` made: its request's fingerprint and the endpoint."""

    fingerprint: str
    endpoint: str


class Count(msgspec.Struct, frozen=True):
    count: int


class AttemptCounts(msgspec.Struct, frozen=True):
    count: int
    failures: int


class StatusCount(msgspec.Struct, frozen=True):
    """How many deliveries have ``status``, and when the first of them is due."""

    status: str
    count: int
    first: float


class ListedEndpoint(msgspec.Struct, frozen=True):
    """An endpoint as ``crdt-server webhooks list`` reads it: its cursor, its wedding's
    newest seq, its pending and failed deliveries, whether its last attempt succeeded
    (``None``: no attempt yet)."""

    id: str
    wedding: str
    url: str
    disabled: str
    after_seq: int
    last_seq: int
    pending: int
    failed: int
    last_ok: int | None


_LIST = (
    "SELECT e.id, e.wedding, e.url, e.disabled, e.after_seq, COALESCE(c.last_seq, 0),"
    " (SELECT COUNT(*) FROM {t}webhook_deliveries d"
    "  WHERE d.endpoint = e.id AND d.status = 'pending'),"
    " (SELECT COUNT(*) FROM {t}webhook_deliveries d"
    "  WHERE d.endpoint = e.id AND d.status = 'failed'),"
    " (SELECT a.ok FROM {t}webhook_attempts a WHERE a.endpoint = e.id"
    "  ORDER BY a.at DESC LIMIT 1)"
    " FROM {t}webhook_endpoints e LEFT JOIN {t}event_counters c ON c.wedding = e.wedding"
)


class WebhookTables:
    """SQL on the webhook tables of one store, through its gateway."""

    def __init__(self, store: DocumentStore) -> None:
        self._sql = Gateway.of(store)
        self.store = store

    @property
    def gateway(self) -> Gateway:
        """The store's SQL gateway (for the events feature's reads)."""
        return self._sql

    def contains(self, column: str) -> str:
        """A condition true where ``column`` holds the next argument as is (exact, case
        and all; ``LIKE`` would fold ASCII case on SQLite)."""
        return self._sql.contains(column)

    async def read_as(self, kind: Callable[..., _R], text: str, *args: Any) -> list[_R]:
        """Rows of one query (committed data), each made into ``kind``."""
        return await self._sql.fetch_as(kind, text, *args)

    async def read_one_as(self, kind: Callable[..., _R], text: str, *args: Any) -> _R | None:
        """The first row of one query as ``kind``; ``None`` if there is none."""
        return await self._sql.fetch_one_as(kind, text, *args)

    async def listing(self, wedding: str | None = None) -> list[ListedEndpoint]:
        """Every endpoint (or every one of ``wedding``), by wedding then id."""
        where = " WHERE e.wedding = ?" if wedding is not None else ""
        args = (wedding,) if wedding is not None else ()
        return await self.read_as(
            ListedEndpoint, _LIST + where + " ORDER BY e.wedding, e.id", *args
        )

    async def endpoints(self, where: str, *args: Any) -> list[Endpoint]:
        """The endpoints ``where`` selects (a condition, and its order and limit)."""
        rows = await self.read_as(
            EndpointRow, f"SELECT {ENDPOINT_COLUMNS} FROM {{t}}webhook_endpoints {where}", *args
        )
        return [r.endpoint() for r in rows]

    async def deliveries(self, where: str, *args: Any) -> list[Delivery]:
        """The deliveries ``where`` selects (a condition, and its order and limit)."""
        return await self.read_as(
            Delivery, f"SELECT {DELIVERY_COLUMNS} FROM {{t}}webhook_deliveries {where}", *args
        )

    async def transaction(self, statements: Sequence[Statement]) -> list[list[tuple[Any, ...]]]:
        """Run ``statements`` in one transaction; the rows each returned."""
        return await self._sql.run(in_one_transaction(statements))

    async def claim(
        self,
        owner: str,
        now: float,
        lease_until: float,
        limit: int,
        per_endpoint: int = 4,
        lane: Lane = "normal",
    ) -> list[Leased]:
        """Take up to ``limit`` due deliveries of ``lane`` of enabled endpoints under a
        lease (counting the attempt), at most ``per_endpoint`` of the lane in flight per
        endpoint; in the order they were queued (their ids sort by creation: ``RETURNING``
        promises no order, and PostgreSQL's is the rows' order on disk)."""
        if self._sql.dialect == "postgres":
            args = (lease_until, owner, now, lane, now, now, lane, now, lane, per_endpoint, limit)
            text = _CLAIM.replace("{lock}", "FOR UPDATE OF c SKIP LOCKED")
            # One statement, outside the store's write lock: claims never wait on commits.
            leased = await self._sql.fetch_as(Leased, text, *args)
        else:
            claimed = await self._sql.run(
                _claim_per_endpoint(owner, now, lease_until, limit, per_endpoint, lane)
            )
            leased = [Leased(*row) for row in claimed]
        return sorted(leased, key=lambda row: row.id)
