"""Idempotency keys of the HTTP operations (``Idempotency-Key`` on ``POST .../docs/{doc}/ops``).

A client that sends an operation again because it never got the answer (the family app's
queue of operations does, after a timeout or a dropped connection) must not run it twice:
the same key with the same body gets the first answer and changes nothing; with another
body it is a conflict (API.md, Idempotency). A key is scoped to (wedding, subject, route)
and kept 24 hours.

The key, the body's fingerprint and the answer are one row of ``operation_keys`` written
in the commit transaction of the update the operation made (:meth:`OperationKeys.row`,
given to :meth:`crdt_server.core.weddings.WeddingService.edit`): an acknowledged
operation's key is durable exactly when its change is, so a crash between the commit and
the answer leaves both, and the retry gets the answer. An operation that changed nothing
(the value was already there) makes no update: its row is written on its own. A refusal is
not kept (nothing changed; the same key may carry the operation once it can run).

Requests with one key wait on each other in this process (a retry sent while the first is
still committing gets its answer); a wedding's writes are served by one process at a time
(affinity), so that covers every request of the wedding. Expired rows are deleted at most
once an hour per process, and a key whose row expired is used afresh.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from crdt_server import clock
from crdt_server.storage import DocumentStore, FeatureRow, StoreError
from crdt_server.storage.gateway import Gateway, Table, schema_of, statements

__all__ = [
    "IDEMPOTENCY_SECONDS",
    "OPERATION_KEYS_SCHEMA",
    "FirstAnswer",
    "OperationKey",
    "OperationKeys",
]

IDEMPOTENCY_SECONDS = 24 * 3600.0
"""How long an ``Idempotency-Key`` is kept (API.md), by every route that takes one: the
operations here, and the features' posted events, new threads and new webhook endpoints."""
PURGE_SECONDS = 3600.0
"""How often a process deletes the expired keys (at most)."""

OPERATION_KEYS = Table(
    "operation_keys",
    "(scope {text} NOT NULL, key {text} NOT NULL, wedding {text} NOT NULL,"
    " fingerprint {text} NOT NULL, answer {text} NOT NULL, expires_at {real} NOT NULL,"
    " PRIMARY KEY (scope, key))",
    indexes=("CREATE INDEX IF NOT EXISTS operation_keys_expiry ON {t}operation_keys (expires_at)",),
)
OPERATION_KEYS_SCHEMA = schema_of("operation_keys", OPERATION_KEYS)
"""The core's table of operation keys (installed at start; erased with the wedding)."""


@dataclass(frozen=True, slots=True)
class OperationKey:
    """One request's key: ``scope`` names the wedding, the subject and the route."""

    wedding: str
    scope: str
    key: str
    fingerprint: str
    """A digest of the request's body."""


@dataclass(frozen=True, slots=True)
class FirstAnswer:
    """What a key was first used with: the body's fingerprint and the answer (JSON)."""

    fingerprint: str
    answer: str


class OperationKeys:
    """The keys of one store (see the module docstring)."""

    def __init__(self, store: DocumentStore) -> None:
        self._store = store
        self._gateway: Gateway | None = None
        self._held: dict[tuple[str, str], tuple[asyncio.Lock, int]] = {}
        self._purged_at = 0.0

    @property
    def installed(self) -> bool:
        """Whether keys are kept (the store keeps SQL tables and the table is installed)."""
        return self._gateway is not None

    async def install(self) -> None:
        """Create the table if missing (a store without SQL tables keeps no keys)."""
        try:
            gateway = Gateway.of(self._store)
        except StoreError:
            return
        await self._store.install(OPERATION_KEYS_SCHEMA)
        self._gateway = gateway

    @asynccontextmanager
    async def held(self, once: OperationKey) -> AsyncIterator[None]:
        """Hold ``once``'s key in this process while its request is answered."""
        name = (once.scope, once.key)
        lock, users = self._held.get(name, (asyncio.Lock(), 0))
        self._held[name] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._held[name]
            if users == 1:
                del self._held[name]
            else:
                self._held[name] = (lock, users - 1)

    async def first(self, once: OperationKey) -> FirstAnswer | None:
        """What ``once``'s key was first used with, if it is kept and not expired."""
        gateway = self._gateway
        if gateway is None:
            return None
        now = clock.now()
        if now - self._purged_at >= PURGE_SECONDS:
            self._purged_at = now
            purge = "DELETE FROM {t}operation_keys WHERE expires_at < ?"
            await gateway.run(statements([(purge, (now,))]))
        rows = await gateway.fetch(
            "SELECT fingerprint, answer, expires_at FROM {t}operation_keys"
            " WHERE scope = ? AND key = ?",
            once.scope,
            once.key,
        )
        if not rows:
            return None
        fingerprint, answer, expires_at = rows[0]
        if float(expires_at) >= now:
            return FirstAnswer(str(fingerprint), str(answer))
        # Expired but not purged yet: the key is used afresh (its new row must fit).
        expired = "DELETE FROM {t}operation_keys WHERE scope = ? AND key = ? AND expires_at < ?"
        await gateway.run(statements([(expired, (once.scope, once.key, now))]))
        return None

    def row(self, once: OperationKey, answer: str) -> FeatureRow:
        """The row that keeps ``once`` with ``answer``, to commit with the operation's
        update; a row already there (a request of another process that got in first) is
        kept."""
        return FeatureRow(
            OPERATION_KEYS.name,
            (
                ("scope", once.scope),
                ("key", once.key),
                ("wedding", once.wedding),
                ("fingerprint", once.fingerprint),
                ("answer", answer),
                ("expires_at", clock.now() + IDEMPOTENCY_SECONDS),
            ),
            if_absent=True,
        )
