"""The projections' one table: the Yjs client id the server writes each projection with.

One row per projection room (``w42/guests@vendor``), created the first time it is written and
kept, so its clocks continue across restarts instead of each start adding a client to its
state vector. Erased with its wedding (the ``wedding`` column). A new table (``CREATE TABLE
IF NOT EXISTS``): stores written by an earlier release gain it and change nothing else.
"""

from __future__ import annotations

import random

import msgspec

from crdt_server import clock
from crdt_server.storage import DocumentStore
from crdt_server.storage.gateway import Gateway, Sql, Table, Tx, row_as, schema_of

__all__ = ["PROJECTION_CLIENTS", "SCHEMA", "ProjectionClients"]

PROJECTION_CLIENTS = Table(
    "projection_clients",
    "(name {ctext} PRIMARY KEY, wedding {ctext} NOT NULL, client_id {int} NOT NULL,"
    " created {real} NOT NULL)",
)
SCHEMA = schema_of("projections", PROJECTION_CLIENTS)


class _Client(msgspec.Struct, frozen=True):
    client_id: int


class ProjectionClients:
    """Client ids of projections in a store's SQL tables (:class:`Gateway`)."""

    def __init__(self, store: DocumentStore) -> None:
        self._sql = Gateway.of(store)

    async def get(self, name: str) -> int | None:
        """The client id kept for projection ``name``, if any."""
        found = await self._sql.fetch_one_as(
            _Client, "SELECT client_id FROM {t}projection_clients WHERE name = ?", name
        )
        return None if found is None else int(found.client_id)

    async def claim(self, name: str, wedding: str) -> int:
        """The client id of projection ``name``: the kept one, else a new random one, kept
        (when two processes claim at once, both get the one stored first)."""

        def tx() -> Tx[int]:
            fresh = random.getrandbits(52)
            yield Sql(
                "INSERT INTO {t}projection_clients (name, wedding, client_id, created)"
                " VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (name, wedding, fresh, clock.now()),
            )
            kept = yield from row_as(
                _Client, "SELECT client_id FROM {t}projection_clients WHERE name = ?", name
            )
            return fresh if kept is None else int(kept.client_id)

        return await self._sql.run(tx())
