"""The tables of the integrations (incoming webhooks, calendar feeds), on either backend.

- ``inbound_sources``: one row per (wedding, source): the signing secret (kept as is: the
  server must recompute signatures with it), the access given at creation, who made it.
- ``inbound_seen``: the ``webhook-id`` of every accepted delivery of a source with its
  answer, so a sender's retry applies nothing again and gets the first answer back (kept
  :data:`SEEN_SECONDS`). A row is first written ``pending`` (claimed) before the change is
  made, then ``done`` with the answer.
- ``calendar_tokens``: feed tokens, by id, stored as SHA-256 digests only.
- ``calendar_items``: per entry of the feed (a timeline item, ``payment:<id>``, ``task:<id>``),
  the fingerprint of what the feed last showed of it,
  its ``SEQUENCE`` and when it was created and last modified (RFC 5545 wants SEQUENCE to
  grow with each change, which a document that keeps no revision numbers cannot tell).

Every table is a wedding table: erasing the wedding empties it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from crdt_server.storage.base import DocumentStore
from crdt_server.storage.gateway import Gateway, Sql, Table, Tx, rows_as, schema_of

__all__ = [
    "INTEGRATIONS",
    "SEEN_SECONDS",
    "CalendarToken",
    "FeedItem",
    "InboundSource",
    "IntegrationStore",
    "Seen",
]

SEEN_SECONDS = 7 * 24 * 3600.0
"""How long a delivery's ``webhook-id`` is remembered: senders (Svix, Stripe) retry for
days, each retry signed anew with the same id."""

SOURCES = Table(
    "inbound_sources",
    "(wedding TEXT NOT NULL, source TEXT NOT NULL, secret TEXT NOT NULL, access TEXT NOT NULL,"
    " created_at DOUBLE PRECISION NOT NULL, created_by TEXT NOT NULL,"
    " PRIMARY KEY (wedding, source))",
)
SEEN = Table(
    "inbound_seen",
    "(wedding TEXT NOT NULL, source TEXT NOT NULL, webhook_id TEXT NOT NULL,"
    " state TEXT NOT NULL, answer TEXT NOT NULL, at DOUBLE PRECISION NOT NULL,"
    " PRIMARY KEY (wedding, source, webhook_id))",
    indexes=("CREATE INDEX IF NOT EXISTS inbound_seen_at ON {t}inbound_seen (at)",),
)
TOKENS = Table(
    "calendar_tokens",
    "(wedding TEXT NOT NULL, id TEXT NOT NULL, digest TEXT NOT NULL UNIQUE,"
    " created_at DOUBLE PRECISION NOT NULL, created_by TEXT NOT NULL, label TEXT NOT NULL,"
    " PRIMARY KEY (wedding, id))",
)
ITEMS = Table(
    "calendar_items",
    "(wedding TEXT NOT NULL, item TEXT NOT NULL, fingerprint TEXT NOT NULL,"
    " sequence INTEGER NOT NULL, created_at DOUBLE PRECISION NOT NULL,"
    " modified_at DOUBLE PRECISION NOT NULL, PRIMARY KEY (wedding, item))",
)
INTEGRATIONS = schema_of("integrations", SOURCES, SEEN, TOKENS, ITEMS)


@dataclass(frozen=True, slots=True)
class InboundSource:
    wedding: str
    source: str
    secret: str
    access: str
    """JSON: document kind -> ``read`` or ``write``, plus ``events``."""
    created_at: float
    created_by: str


@dataclass(frozen=True, slots=True)
class Seen:
    """A delivery already received: ``pending`` while it is being applied, then ``done``
    with the JSON ``answer`` it got."""

    state: str
    answer: str
    at: float


@dataclass(frozen=True, slots=True)
class CalendarToken:
    wedding: str
    id: str
    created_at: float
    created_by: str
    label: str


@dataclass(frozen=True, slots=True)
class FeedItem:
    """What the feed keeps of one timeline item between requests."""

    sequence: int
    created_at: float
    modified_at: float


@dataclass(frozen=True, slots=True)
class _Wedding:
    wedding: str


@dataclass(frozen=True, slots=True)
class _Owner:
    wedding: str
    created_by: str


_FEW = 100
"""At most this many items' rows are read by name (``IN``); more read the wedding's rows."""


@dataclass(frozen=True, slots=True)
class _ItemRow:
    """What the feed last showed of a timeline item."""

    item: str
    fingerprint: str
    sequence: int
    created_at: float
    modified_at: float


class IntegrationStore:
    """The integrations' rows in a store's SQL tables (:class:`Gateway`)."""

    def __init__(self, store: DocumentStore) -> None:
        self._sql = Gateway.of(store)

    async def _execute(self, sql: str, *args: Any) -> int:
        """Run one statement in its own transaction; how many rows it touched."""
        return (await self._transaction((sql, args)))[-1]

    async def _transaction(self, *statements: tuple[str, tuple[Any, ...]]) -> list[int]:
        """Run statements in one transaction; how many rows each touched."""

        def tx() -> Tx[list[int]]:
            touched: list[int] = []
            for sql, args in statements:
                touched.append((yield Sql(sql, args, count=True)))
            return touched

        return await self._sql.run(tx())

    # -- inbound sources ---------------------------------------------------------------

    async def add_source(self, source: InboundSource) -> bool:
        """Keep a new source; False if the wedding already has one of that name."""
        touched = await self._execute(
            "INSERT INTO {t}inbound_sources VALUES (?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (wedding, source) DO NOTHING",
            source.wedding,
            source.source,
            source.secret,
            source.access,
            source.created_at,
            source.created_by,
        )
        return touched == 1

    async def source(self, wedding: str, source: str) -> InboundSource | None:
        return await self._sql.fetch_one_as(
            InboundSource,
            "SELECT wedding, source, secret, access, created_at, created_by"
            " FROM {t}inbound_sources WHERE wedding = ? AND source = ?",
            wedding,
            source,
        )

    async def sources(self, wedding: str) -> list[InboundSource]:
        return await self._sql.fetch_as(
            InboundSource,
            "SELECT wedding, source, secret, access, created_at, created_by"
            " FROM {t}inbound_sources WHERE wedding = ? ORDER BY source",
            wedding,
        )

    async def delete_source(self, wedding: str, source: str) -> bool:
        """Forget a source and the deliveries seen from it; whether it existed."""
        where = " WHERE wedding = ? AND source = ?"
        _, touched = await self._transaction(
            ("DELETE FROM {t}inbound_seen" + where, (wedding, source)),
            ("DELETE FROM {t}inbound_sources" + where, (wedding, source)),
        )
        return touched == 1

    async def delete_created_by(self, sub: str, wedding: str | None) -> int:
        """Revocation or erasure of a person: forget the sources and feed tokens they
        created (in ``wedding``, or in every wedding with ``None``), with the deliveries
        seen from those sources; how many sources and tokens went."""
        where = " WHERE created_by = ?" + ("" if wedding is None else " AND wedding = ?")
        args = (sub,) if wedding is None else (sub, wedding)
        _, sources, tokens = await self._transaction(
            (
                "DELETE FROM {t}inbound_seen WHERE (wedding, source) IN"
                " (SELECT wedding, source FROM {t}inbound_sources" + where + ")",
                args,
            ),
            ("DELETE FROM {t}inbound_sources" + where, args),
            ("DELETE FROM {t}calendar_tokens" + where, args),
        )
        return sources + tokens

    # -- deliveries seen ---------------------------------------------------------------

    async def claim(self, wedding: str, source: str, webhook_id: str, now: float) -> Seen | None:
        """Claim a delivery: None if it is new (now ``pending`` for the caller), else what
        was seen of it. Forgets deliveries older than :data:`SEEN_SECONDS`."""
        _, touched = await self._transaction(
            ("DELETE FROM {t}inbound_seen WHERE at < ?", (now - SEEN_SECONDS,)),
            (
                "INSERT INTO {t}inbound_seen VALUES (?, ?, ?, 'pending', '', ?)"
                " ON CONFLICT (wedding, source, webhook_id) DO NOTHING",
                (wedding, source, webhook_id, now),
            ),
        )
        if touched == 1:
            return None
        seen = await self._sql.fetch_one_as(
            Seen,
            "SELECT state, answer, at FROM {t}inbound_seen"
            " WHERE wedding = ? AND source = ? AND webhook_id = ?",
            wedding,
            source,
            webhook_id,
        )
        if seen is None:  # forgotten in between: claim it again
            return await self.claim(wedding, source, webhook_id, now)
        return seen

    async def finish(self, wedding: str, source: str, webhook_id: str, answer: str) -> None:
        """Record the answer of a claimed delivery (replays get it back)."""
        await self._execute(
            "UPDATE {t}inbound_seen SET state = 'done', answer = ?"
            " WHERE wedding = ? AND source = ? AND webhook_id = ?",
            answer,
            wedding,
            source,
            webhook_id,
        )

    async def release(self, wedding: str, source: str, webhook_id: str) -> None:
        """Drop a claim whose delivery changed nothing (refused): a retry is new again."""
        await self._execute(
            "DELETE FROM {t}inbound_seen WHERE wedding = ? AND source = ? AND webhook_id = ?"
            " AND state = 'pending'",
            wedding,
            source,
            webhook_id,
        )

    # -- calendar tokens ---------------------------------------------------------------

    async def add_token(self, token: CalendarToken, digest: str) -> None:
        await self._execute(
            "INSERT INTO {t}calendar_tokens VALUES (?, ?, ?, ?, ?, ?)",
            token.wedding,
            token.id,
            digest,
            token.created_at,
            token.created_by,
            token.label,
        )

    async def tokens(self, wedding: str) -> list[CalendarToken]:
        return await self._sql.fetch_as(
            CalendarToken,
            "SELECT wedding, id, created_at, created_by, label FROM {t}calendar_tokens"
            " WHERE wedding = ? ORDER BY created_at, id",
            wedding,
        )

    async def delete_token(self, wedding: str, token_id: str) -> bool:
        touched = await self._execute(
            "DELETE FROM {t}calendar_tokens WHERE wedding = ? AND id = ?", wedding, token_id
        )
        return touched == 1

    async def token_wedding(self, digest: str) -> str | None:
        """The wedding whose feed the token of this digest opens, if any."""
        found = await self._sql.fetch_one_as(
            _Wedding, "SELECT wedding FROM {t}calendar_tokens WHERE digest = ?", digest
        )
        return None if found is None else found.wedding

    async def token_owner(self, digest: str) -> tuple[str, str] | None:
        """The wedding whose feed the token of this digest opens, and who created the
        token; ``None`` for no such token."""
        found = await self._sql.fetch_one_as(
            _Owner, "SELECT wedding, created_by FROM {t}calendar_tokens WHERE digest = ?", digest
        )
        return None if found is None else (found.wedding, found.created_by)

    # -- calendar items ----------------------------------------------------------------

    async def reconcile(
        self, wedding: str, fingerprints: Mapping[str, str], now: float, *, only: bool = False
    ) -> dict[str, FeedItem]:
        """Compare the items' fingerprints with the ones last recorded, in one transaction:
        a new item starts at SEQUENCE 0, a changed one gets SEQUENCE + 1 and ``now`` as its
        modification time. Returns what the feed shows of each item of ``fingerprints``.
        Items no longer in the timeline keep their row (re-added, they go on counting).
        ``only``: read the rows of these items alone (a few changed entries of a large
        wedding), not every row of the wedding."""
        query = (
            "SELECT item, fingerprint, sequence, created_at, modified_at"
            " FROM {t}calendar_items WHERE wedding = ?"
        )
        params: tuple[str, ...] = (wedding,)
        if only and len(fingerprints) <= _FEW:
            query += f" AND item IN ({', '.join('?' * len(fingerprints))})"
            params += tuple(fingerprints)
        insert = "INSERT INTO {t}calendar_items VALUES (?, ?, ?, 0, ?, ?)"
        update = (
            "UPDATE {t}calendar_items SET fingerprint = ?, sequence = ?, modified_at = ?"
            " WHERE wedding = ? AND item = ?"
        )

        def plan(
            rows: list[_ItemRow],
        ) -> tuple[dict[str, FeedItem], list[tuple[Any, ...]], list[Any]]:
            known = {r.item: r for r in rows}
            result: dict[str, FeedItem] = {}
            inserts: list[tuple[Any, ...]] = []
            updates: list[tuple[Any, ...]] = []
            for item, fingerprint in fingerprints.items():
                row = known.get(item)
                if row is None:
                    inserts.append((wedding, item, fingerprint, now, now))
                    result[item] = FeedItem(0, now, now)
                elif row.fingerprint != fingerprint:
                    sequence = int(row.sequence) + 1
                    updates.append((fingerprint, sequence, now, wedding, item))
                    result[item] = FeedItem(sequence, float(row.created_at), now)
                else:
                    result[item] = FeedItem(
                        int(row.sequence), float(row.created_at), float(row.modified_at)
                    )
            return result, inserts, updates

        # Most calls change nothing (a feed polled, a change to another field): answer those
        # from a read, and take the write lock only when there is something to write.
        result, inserts, updates = plan(await self._sql.fetch_as(_ItemRow, query, *params))
        if not inserts and not updates:
            return result

        def tx() -> Tx[dict[str, FeedItem]]:
            result, inserts, updates = plan((yield from rows_as(_ItemRow, query, *params)))
            for row in inserts:
                yield Sql(insert, row)
            for row in updates:
                yield Sql(update, row)
            return result

        return await self._sql.run(tx())
