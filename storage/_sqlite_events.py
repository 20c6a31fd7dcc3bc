"""The SQLite store's wedding events and idempotency keys: the statements, run on
the writer thread in the caller's transaction, and the reading query (see
:mod:`storage.sqlite`)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import Any

from crdt_server import clock

from ._sqlite_schema import EVENT_COLUMNS
from .base import AddedEvents, EventFilter, NewEvent, Once, StoredEvent, audience_needle

__all__ = ["add_events", "events_query", "insert_events"]


def insert_events(
    db: sqlite3.Connection, events: Sequence[NewEvent], now: float
) -> list[StoredEvent]:
    """Number ``events`` per wedding from its counter row and insert them (in the caller's
    transaction, which holds the write lock: seqs follow commit order, without gaps). Events
    of a tombstoned wedding are left out of the answer (and the triggers drop their rows)."""
    counters: dict[str, int] = {}
    stored: list[StoredEvent] = []
    for event in events:
        if (
            event.wedding not in counters
            and db.execute(
                "SELECT 1 FROM tombstones WHERE wedding = ?", (event.wedding,)
            ).fetchone()
        ):
            continue  # erased: the triggers would drop its rows anyway
        if event.wedding not in counters:
            row = db.execute(
                "SELECT last_seq FROM event_counters WHERE wedding = ?", (event.wedding,)
            ).fetchone()
            counters[event.wedding] = int(row[0]) if row else 0
        counters[event.wedding] += 1
        stored.append(
            StoredEvent(
                event.wedding,
                counters[event.wedding],
                event.type,
                event.doc,
                event.sub,
                event.role,
                event.priority,
                event.at or now,
                event.data,
                event.audience,
            )
        )
    db.executemany(
        f"INSERT INTO events ({EVENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (e.wedding, e.seq, e.type, e.doc, e.sub, e.role, e.priority, e.at, e.data, e.audience)
            for e in stored
        ],
    )
    db.executemany(
        "INSERT INTO event_counters (wedding, last_seq) VALUES (?, ?)"
        " ON CONFLICT (wedding) DO UPDATE SET last_seq = excluded.last_seq",
        list(counters.items()),
    )
    return stored


def entity_needles(entity_id: str, paths: Sequence[str] = ()) -> tuple[str, ...]:
    """How an entry's id appears in stored event data (compact JSON), and its paths (a
    finding's ``"guests/guests/g1"``, or a path under it: ``"guests/guests/g1/contact"``)."""
    quoted = json.dumps(entity_id)
    named = tuple(n for p in paths for n in (json.dumps(p), json.dumps(p)[:-1] + "/"))
    return f'"id":{quoted}', f'"guest_id":{quoted}', *named


def add_events(db: sqlite3.Connection, batch: Sequence[NewEvent], once: Once | None) -> AddedEvents:
    """Store ``batch`` (see :meth:`storage.base.DocumentStore.add_events`), in the caller's
    transaction."""
    if once is not None:
        row = db.execute(
            "SELECT fingerprint, wedding, seqs FROM idempotency"
            " WHERE scope = ? AND key = ? AND expires_at > ?",
            (once.scope, once.key, clock.now()),
        ).fetchone()
        if row is not None:
            seqs = json.loads(row[2])
            marks = ",".join("?" * len(seqs))
            found = db.execute(
                f"SELECT {EVENT_COLUMNS} FROM events WHERE wedding = ?"
                f" AND seq IN ({marks}) ORDER BY seq",
                (row[1], *seqs),
            ).fetchall()
            return AddedEvents([StoredEvent(*r) for r in found], False, row[0])
    stored = insert_events(db, batch, clock.now())
    if once is not None:
        wedding = batch[0].wedding if batch else ""
        db.execute(
            "INSERT OR REPLACE INTO idempotency"
            " (scope, key, wedding, fingerprint, seqs, expires_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (
                once.scope,
                once.key,
                wedding,
                once.fingerprint,
                json.dumps([e.seq for e in stored]),
                once.expires_at,
            ),
        )
    return AddedEvents(stored, True)


def events_query(wedding: str, after: int, limit: int, where: EventFilter) -> tuple[str, list[Any]]:
    """The query of :meth:`storage.base.DocumentStore.events` and its parameters."""
    sql = f"SELECT {EVENT_COLUMNS} FROM events WHERE wedding = ? AND seq > ?"
    params: list[Any] = [wedding, after]
    if where.types:
        terms = []
        for pattern in where.types:
            if pattern.endswith(".*"):
                prefix = pattern[:-1]
                terms.append("substr(type, 1, ?) = ?")
                params += [len(prefix), prefix]
            else:
                terms.append("type = ?")
                params.append(pattern)
        sql += f" AND ({' OR '.join(terms)})"
    if where.docs is not None:
        docs = sorted(where.docs)
        sql += f" AND (doc IS NULL OR doc IN ({','.join('?' * len(docs))}))"
        params += docs
    if where.viewer is not None:
        sql += " AND (audience IS NULL OR instr(audience, ?) > 0)"
        params.append(audience_needle(where.viewer))
    return f"{sql} ORDER BY seq LIMIT ?", [*params, limit]


def erase_entity_events(
    db: sqlite3.Connection, wedding: str, entity_id: str, paths: Sequence[str]
) -> int:
    needles = entity_needles(entity_id, paths)
    found = " OR ".join("instr(data, ?) > 0" for _ in needles)
    sql = f"DELETE FROM events WHERE wedding = ? AND ({found})"
    return int(db.execute(sql, (wedding, *needles)).rowcount)


def purge_events(db: sqlite3.Connection, before: float) -> int:
    gone = db.execute("DELETE FROM events WHERE at < ?", (before,)).rowcount
    db.execute("DELETE FROM idempotency WHERE expires_at < ?", (clock.now(),))
    return int(gone)
