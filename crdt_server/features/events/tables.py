"""The wedding events' rows, as other features' transactions reach them: steps to compose
with ``yield from`` into a transaction of the SQL gateway, so that only this feature
writes SQL against the events (the store numbers and stores them with their updates,
:meth:`crdt_server.storage.DocumentStore.append`)."""

from __future__ import annotations

import msgspec

from crdt_server.storage.gateway import Gateway, Sql, Table, Tx, row_as, schema_of, statements

__all__ = ["SCHEMA", "TICKETS", "forget_events_of", "purge_tickets", "put_ticket", "take_ticket"]

TICKETS = Table(
    "tickets",
    "(digest {text} PRIMARY KEY, payload {text} NOT NULL, expires_at {real} NOT NULL)",
    wedding=False,
    without_rowid=True,
)
"""One-use stream tickets: a ticket's hash, what it grants (JSON) and when it expires. The
store made this table before the events feature declared it (the same DDL): a store of
that time keeps its rows."""

SCHEMA = schema_of("events", TICKETS)
"""The events feature's tables (the events themselves, their counters and idempotency keys
are still the document store's, numbered in the updates' own transaction)."""


async def put_ticket(gateway: Gateway, digest: str, payload: str, expires_at: float) -> None:
    """Keep a one-use ticket (its hash and what it grants) until it expires."""
    await gateway.run(
        statements(
            [
                (
                    "INSERT INTO {t}tickets (digest, payload, expires_at) VALUES (?, ?, ?)",
                    (digest, payload, expires_at),
                )
            ]
        )
    )


class _Ticket(msgspec.Struct, frozen=True):
    payload: str
    expires_at: float


def _take(digest: str) -> Tx[_Ticket | None]:
    return (
        yield from row_as(
            _Ticket, "DELETE FROM {t}tickets WHERE digest = ? RETURNING payload, expires_at", digest
        )
    )


def _purge(now: float) -> Tx[int]:
    gone: int = yield Sql("DELETE FROM {t}tickets WHERE expires_at < ?", (now,), count=True)
    return gone


async def take_ticket(gateway: Gateway, digest: str, now: float) -> str | None:
    """The payload of an unexpired ticket, deleting it (so it serves once); else None."""
    ticket = await gateway.run(_take(digest))
    return ticket.payload if ticket is not None and ticket.expires_at > now else None


async def purge_tickets(gateway: Gateway, now: float) -> int:
    """Forget the tickets expired by ``now``; how many."""
    return await gateway.run(_purge(now))


def forget_events_of(wedding: str, sub: str, kinds: str) -> Tx[int]:
    """The step that deletes the wedding's events credited to ``sub`` whose type starts
    with ``kinds`` (``"thread."``; a ``LIKE`` prefix: no ``%`` or ``_`` in it), as a
    person's erasure does; how many went."""
    gone: int = yield Sql(
        "DELETE FROM {t}events WHERE wedding = ? AND sub = ? AND type LIKE ?",
        (wedding, sub, f"{kinds}%"),
        count=True,
    )
    return gone
