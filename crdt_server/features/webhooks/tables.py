"""The webhook tables (endpoints, deliveries, attempts) on SQLite and PostgreSQL.

One SQL text serves both backends through the store's SQL gateway
(:class:`crdt_server.storage.Gateway`): ``{t}`` before table names, ``?`` for parameters.
Writes are gateway transactions (in turn with the update commits); reads see committed
rows. Every table has a ``wedding`` column and is erased with the wedding.

A claim is one statement that takes due deliveries under a lease (``lease_until``,
``lease_owner``): on PostgreSQL with ``FOR UPDATE SKIP LOCKED``, so processes sharing the
database never wait on nor take each other's rows; on SQLite the database's single writer
serialises claims, and the lease column keeps a claimed row from every other process until
it is settled or its lease runs out (a process killed mid-attempt).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from crdt_server.storage import DocumentStore, Gateway, Table, schema_of
from crdt_server.storage.gateway import statements as in_one_transaction

__all__ = ["SCHEMA", "Statement", "WebhookTables"]

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
DELIVERIES = Table(
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
SCHEMA = schema_of("webhooks", ENDPOINTS, DELIVERIES, ATTEMPTS, IDEMPOTENCY)


_CLAIM = """
UPDATE {t}webhook_deliveries SET lease_until = ?, lease_owner = ?, attempts = attempts + 1
WHERE id IN (
  SELECT c.id FROM {t}webhook_deliveries c
  WHERE c.status = 'pending' AND c.lease_until <= ? AND c.id IN (
    SELECT ranked.id FROM (
      SELECT d.id, d.endpoint, ROW_NUMBER() OVER (PARTITION BY d.endpoint ORDER BY d.next_at)
        AS n
      FROM {t}webhook_deliveries d JOIN {t}webhook_endpoints e ON e.id = d.endpoint
      WHERE d.status = 'pending' AND d.next_at <= ? AND d.lease_until <= ? AND e.disabled = ''
    ) ranked
    LEFT JOIN (
      SELECT b.endpoint, COUNT(*) AS n FROM {t}webhook_deliveries b
      WHERE b.status = 'pending' AND b.lease_until > ? GROUP BY b.endpoint
    ) busy ON busy.endpoint = ranked.endpoint
    WHERE ranked.n + COALESCE(busy.n, 0) <= ?
  )
  ORDER BY c.next_at LIMIT ? {lock}
)
RETURNING id, wedding, endpoint, payload, attempts, event_at
"""
"""Due deliveries of enabled endpoints, oldest first, at most ``per_endpoint`` in flight
for each endpoint (counting those leased by any process), so that an endpoint that hangs
until the timeout holds a few attempts, never every slot. The lease condition is on ``c``,
the row locked, as well: on PostgreSQL a row another claim leased and committed while this
statement waited is re-checked on its new version only against the locked row's own
conditions (READ COMMITTED), so without it both claims would take the row. The leases in
flight are counted once per endpoint (the ``busy`` table), not once per due row: with a
backlog, a count per row made each claim take time in the square of the backlog."""


class WebhookTables:
    """SQL on the webhook tables of one store, through its gateway."""

    def __init__(self, store: DocumentStore) -> None:
        self._sql = Gateway.of(store)
        self.store = store

    async def install(self) -> None:
        await self.store.install(SCHEMA)

    def contains(self, column: str) -> str:
        """A condition true where ``column`` holds the next argument as is (exact, case
        and all; ``LIKE`` would fold ASCII case on SQLite)."""
        return self._sql.contains(column)

    async def read(self, text: str, *args: Any) -> list[tuple[Any, ...]]:
        """Rows of one query (committed data)."""
        return await self._sql.fetch(text, *args)

    async def transaction(self, statements: Sequence[Statement]) -> list[list[tuple[Any, ...]]]:
        """Run ``statements`` in one transaction; the rows each returned."""
        return await self._sql.run(in_one_transaction(statements))

    async def claim(
        self, owner: str, now: float, lease_until: float, limit: int, per_endpoint: int = 4
    ) -> list[tuple[Any, ...]]:
        """Take up to ``limit`` due deliveries of enabled endpoints under a lease (counting
        the attempt), at most ``per_endpoint`` in flight per endpoint: rows of (id,
        wedding, endpoint, payload, attempts, event_at)."""
        args = (lease_until, owner, now, now, now, now, per_endpoint, limit)
        if self._sql.dialect == "postgres":
            text = _CLAIM.replace("{lock}", "FOR UPDATE OF c SKIP LOCKED")
            # One statement, outside the store's write lock: claims never wait on commits.
            return await self._sql.fetch(text, *args)
        text = _CLAIM.replace("{lock}", "")
        rows = await self.transaction([(text, args)])
        return rows[0]
