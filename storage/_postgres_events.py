"""The PostgreSQL store's wedding events and idempotency keys: the statements,
run in the caller's transaction, and the reading query (see :mod:`storage.postgres`). ``s``
is the quoted schema."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from crdt_server import clock

from ._postgres_schema import BUMP, EVENT_COLUMNS, INSERT_EVENTS
from .base import AddedEvents, EventFilter, NewEvent, Once, StoredEvent, audience_needle

if TYPE_CHECKING:
    from ._postgres_schema import Conn

__all__ = ["add_events", "events_query", "insert_events"]


async def insert_events(conn: Conn, s: str, events: Sequence[NewEvent]) -> list[StoredEvent]:
    """Number ``events`` per wedding from its counter row and insert them, in the
    caller's transaction."""
    if not events:
        return []
    counts: dict[str, int] = {}
    for event in events:
        counts[event.wedding] = counts.get(event.wedding, 0) + 1
    next_seq: dict[str, int] = {}
    for wedding, count in sorted(counts.items()):  # one lock order for every writer
        last = await conn.fetchval(BUMP.format(s=s), wedding, count)
        if last is not None:  # None: the wedding is tombstoned (its trigger said so)
            next_seq[wedding] = int(last) - count + 1
    now = clock.now()
    stored: list[StoredEvent] = []
    for e in events:
        if e.wedding not in next_seq:
            continue
        seq = next_seq[e.wedding]
        next_seq[e.wedding] += 1
        stored.append(
            StoredEvent(
                e.wedding,
                seq,
                e.type,
                e.doc,
                e.sub,
                e.role,
                e.priority,
                e.at or now,
                e.data,
                e.audience,
            )
        )
    if not stored:
        return []
    columns = [
        list(column)
        for column in zip(
            *(
                (
                    s.wedding,
                    s.seq,
                    s.type,
                    s.doc,
                    s.sub,
                    s.role,
                    s.priority,
                    s.at,
                    s.data,
                    s.audience,
                )
                for s in stored
            ),
            strict=True,
        )
    ]
    await conn.execute(INSERT_EVENTS.format(s=s), *columns)
    return stored


async def add_events(
    conn: Conn, s: str, batch: Sequence[NewEvent], once: Once | None
) -> AddedEvents:
    """Store ``batch`` (see :meth:`storage.base.DocumentStore.add_events`)."""
    if once is not None:
        row = await conn.fetchrow(
            f"SELECT fingerprint, wedding, seqs FROM {s}.idempotency"
            " WHERE scope = $1 AND key = $2 AND expires_at > $3",
            once.scope,
            once.key,
            clock.now(),
        )
        if row is not None:
            found = await conn.fetch(
                f"SELECT {EVENT_COLUMNS} FROM {s}.events"
                " WHERE wedding = $1 AND seq = ANY($2::bigint[]) ORDER BY seq",
                row[1],
                list(row[2]),
            )
            return AddedEvents([StoredEvent(*r) for r in found], False, str(row[0]))
    stored = await insert_events(conn, s, batch)
    if once is not None:
        await conn.execute(
            f"INSERT INTO {s}.idempotency"
            " (scope, key, wedding, fingerprint, seqs, expires_at)"
            " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (scope, key) DO UPDATE"
            " SET wedding = $3, fingerprint = $4, seqs = $5, expires_at = $6",
            once.scope,
            once.key,
            batch[0].wedding if batch else "",
            once.fingerprint,
            [e.seq for e in stored],
            once.expires_at,
        )
    return AddedEvents(stored, True)


def events_query(
    s: str, wedding: str, after: int, limit: int, where: EventFilter
) -> tuple[str, list[Any]]:
    """The query of :meth:`storage.base.DocumentStore.events` and its arguments."""
    args: list[Any] = [wedding, after, limit]
    sql = f"SELECT {EVENT_COLUMNS} FROM {s}.events WHERE wedding = $1 AND seq > $2"
    if where.types:
        exact = [t for t in where.types if not t.endswith(".*")]
        prefixes = [t[:-1] for t in where.types if t.endswith(".*")]
        args += [exact, prefixes]
        sql += (
            f" AND (type = ANY(${len(args) - 1}::text[]) OR EXISTS"
            f" (SELECT 1 FROM unnest(${len(args)}::text[]) p WHERE starts_with(type, p)))"
        )
    if where.docs is not None:
        args.append(sorted(where.docs))
        sql += f" AND (doc IS NULL OR doc = ANY(${len(args)}::text[]))"
    if where.viewer is not None:
        args.append(audience_needle(where.viewer))
        sql += f" AND (audience IS NULL OR strpos(audience, ${len(args)}) > 0)"
    return sql + " ORDER BY seq LIMIT $3", args


async def erase_entity_events(
    conn: Conn, s: str, wedding: str, entity_id: str, paths: Sequence[str]
) -> int:
    quoted = json.dumps(entity_id)
    # How the entry appears in event data: its id, and its paths (a finding's
    # "guests/guests/g1", or a path under it).
    named = [n for p in paths for n in (json.dumps(p), json.dumps(p)[:-1] + "/")]
    needles = [f'"id":{quoted}', f'"guest_id":{quoted}', *named]
    found = " OR ".join(f"strpos(data, ${i + 2}) > 0" for i in range(len(needles)))
    gone = await conn.fetchval(
        f"WITH g AS (DELETE FROM {s}.events WHERE wedding = $1"
        f" AND ({found}) RETURNING 1) SELECT count(*) FROM g",
        wedding,
        *needles,
    )
    return int(gone)


async def purge_events(conn: Conn, s: str, before: float) -> int:
    gone = await conn.fetchval(
        f"WITH g AS (DELETE FROM {s}.events WHERE at < $1 RETURNING 1) SELECT count(*) FROM g",
        before,
    )
    now = clock.now()
    await conn.execute(f"DELETE FROM {s}.idempotency WHERE expires_at < $1", now)
    return int(gone)
