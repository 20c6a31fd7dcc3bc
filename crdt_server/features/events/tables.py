"""The events feature's tables: the wedding events, their per-wedding counters and
idempotency keys, and the stream tickets. Only this module writes SQL against them (and
:mod:`~crdt_server.features.events.tables_keys` against the events' keys); other
features reach them through the feature's package: steps to compose with ``yield from``
into a transaction of the SQL gateway (:func:`store_events`, :func:`forget_events_of`,
:func:`erase_custom_events_of`), and calls of their own (:func:`add_events`,
:func:`read_events`...)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import msgspec

from crdt_server import clock
from crdt_server.features.events.tables_keys import first_of_their_keys
from crdt_server.names import CUSTOM_EVENT_NAMESPACES, RESERVED_EVENT_TYPES
from crdt_server.storage import (
    AddedEvents,
    EventFilter,
    NewEvent,
    Once,
    StoredEvent,
    StoreError,
    audience_needle,
)
from crdt_server.storage.gateway import (
    Dialect,
    Gateway,
    Sql,
    Table,
    Tx,
    created,
    row_as,
    rows_as,
    schema_of,
    statements,
)
from crdt_server.tools.export import EventTables

__all__ = [
    "ERASED_DATA",
    "EVENT_TABLES",
    "SCHEMA",
    "TICKETS",
    "add_events",
    "check_events",
    "erase_custom_events_of",
    "erase_entity_events",
    "forget_events_of",
    "last_event_seq",
    "posted_scope",
    "purge_events",
    "purge_tickets",
    "put_ticket",
    "read_events",
    "store_events",
    "take_ticket",
]

TICKETS = Table(
    "tickets",
    "(digest {text} PRIMARY KEY, payload {text} NOT NULL, expires_at {real} NOT NULL)",
    wedding=False,
    without_rowid=True,
)
"""One-use stream tickets: a ticket's hash, what it grants (JSON) and when it expires. The
store made this table before the events feature declared it (the same DDL): a store of
that time keeps its rows."""

EVENTS = Table(
    "events",
    "(wedding {ctext} NOT NULL, seq {int} NOT NULL, type {ctext} NOT NULL, doc {text},"
    " sub {text} NOT NULL, role {text} NOT NULL, priority {text} NOT NULL, at {real} NOT NULL,"
    " data {text} NOT NULL, audience {text}, PRIMARY KEY (wedding, seq))",
    indexes=("CREATE INDEX IF NOT EXISTS events_at ON {t}events (at)",),
    without_rowid=True,
)
"""The wedding events: ``seq`` numbers a wedding's events from 1 without gaps; ``data``
is compact JSON; ``audience`` who alone may see one (:func:`storage.audience_of`)."""

EVENT_COUNTERS = Table(
    "event_counters",
    "(wedding {text} PRIMARY KEY, last_seq {int} NOT NULL)",
    without_rowid=True,
)
"""The seq of each wedding's newest event (kept after the events are purged)."""

IDEMPOTENCY = Table(
    "idempotency",
    "(scope {text} NOT NULL, key {text} NOT NULL, wedding {text} NOT NULL,"
    " fingerprint {text} NOT NULL, seqs {ints} NOT NULL, expires_at {real} NOT NULL,"
    " PRIMARY KEY (scope, key))",
    without_rowid=True,
)
"""What a posted batch with an ``Idempotency-Key`` stored: its fingerprint and seqs."""

EVENT_KEYS = Table(
    "event_keys",
    "(wedding {text} NOT NULL, key {text} NOT NULL, at {real} NOT NULL,"
    " PRIMARY KEY (wedding, key))",
    without_rowid=True,
)
"""The Yjs items the wedding's stored events told of (:attr:`NewEvent.key`), kept as long
as events are (``at``): an event that tells of one of them is not stored, whichever
process derives it (two servers that each integrate the same content as new derive
events of the same items)."""

SCHEMA = schema_of(
    "events",
    TICKETS,
    migrations=[
        created(2, TICKETS, EVENTS, EVENT_COUNTERS, IDEMPOTENCY),
        created(3, EVENT_KEYS),
    ],
)
"""The events feature's tables. Version 2 took the events, their counters and idempotency
keys over from the document store, which made them (the same DDL) until then: a store of
that time keeps them and their rows, and a new one gets them here. ``tickets`` is created
again by version 2 for a store whose events record the document store wrote (see
``storage``'s second migration). Version 3 adds the events' keys."""


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


ERASED_DATA = '{"erased":true}'
"""The data of a custom event whose poster was erased."""


def erase_custom_events_of(wedding: str, sub: str) -> Tx[int]:
    """The step that erases what ``sub`` wrote in the wedding's custom events (the types
    clients post: ``custom.*``, and ``day.*`` but the server's own), as a person's erasure
    does: each one's data becomes :data:`ERASED_DATA`. Its seq, type, time, priority,
    document and actor stay, so the feed keeps its numbering and a reader its cursor. The
    whole data goes, not only its strings: a custom event's data is the poster's own
    (keys, numbers and nesting included: a key can name someone, a number be a phone
    number), and the server cannot tell what in it is personal. The idempotency keys of
    what they posted go too (each keeps a digest of its body). How many events."""
    namespaces = " OR ".join("type LIKE ?" for _ in CUSTOM_EVENT_NAMESPACES)
    reserved = sorted(RESERVED_EVENT_TYPES)
    erased: int = yield Sql(
        f"UPDATE {{t}}events SET data = ? WHERE wedding = ? AND sub = ? AND ({namespaces})"  # noqa: S608
        f" AND type NOT IN ({', '.join('?' for _ in reserved)}) AND data <> ?",
        (
            ERASED_DATA,
            wedding,
            sub,
            *(f"{namespace}%" for namespace in CUSTOM_EVENT_NAMESPACES),
            *reserved,
            ERASED_DATA,
        ),
        count=True,
    )
    yield Sql("DELETE FROM {t}idempotency WHERE scope = ?", (posted_scope(wedding, sub),))
    return erased


def posted_scope(wedding: str, sub: str) -> str:
    """The idempotency scope of the events ``sub`` posts to the wedding."""
    return f"{wedding}:{sub}:events"


# -- the events, their per-wedding counters and idempotency keys --------------------------
#
# The tables are the ones the store made before the events feature owned them (the same
# names and columns: a store of that time keeps its rows). Each wedding's events are
# numbered from its counter row, upserted in the writing transaction: the row stays locked
# (PostgreSQL) or the write lock held (SQLite) until commit, so seqs follow commit order
# without gaps; a tombstoned wedding's trigger drops the upsert, and its events are left
# out. The room's commit path hands its events here (:func:`store_events`) to run in the
# update's own transaction (:meth:`crdt_server.storage.DocumentStore.append`'s ``steps``).

_COLUMNS = "wedding, seq, type, doc, sub, role, priority, at, data, audience"
"""The columns of :class:`StoredEvent`, in its fields' order."""


class _Counter(msgspec.Struct, frozen=True):
    last_seq: int


class _Used(msgspec.Struct, frozen=True):
    """An idempotency key's row: its events' seqs are JSON text on SQLite, an array on
    PostgreSQL."""

    fingerprint: str
    wedding: str
    seqs: Any


_ROWS = 500
"""Events inserted per statement (10 parameters each: under both backends' limits)."""
_BUMP = (
    "INSERT INTO {t}event_counters (wedding, last_seq) VALUES (?, ?)"
    " ON CONFLICT (wedding) DO UPDATE SET last_seq = {t}event_counters.last_seq"
    " + excluded.last_seq RETURNING last_seq"
)


def _check(*texts: str) -> None:
    for text in texts:
        try:
            text.encode()
        except UnicodeEncodeError as exc:
            raise StoreError(f"{text!r} is not valid UTF-8 text") from exc


def check_events(events: Sequence[NewEvent]) -> None:
    """:class:`StoreError` for an event whose text cannot be stored (not UTF-8): refused
    before its transaction, which would fail whole."""
    for e in events:
        _check(e.wedding, e.type, e.data, e.sub, e.role, e.priority, e.doc or "")
        _check(e.audience or "", e.key or "")


def store_events(events: Sequence[NewEvent], now: float | None = None) -> Tx[list[StoredEvent]]:
    """The step that numbers ``events`` per wedding and inserts them, in the transaction
    it runs in (``stored = yield from store_events(...)``); the events as stored (those of
    an erased wedding are left out, and so is an event that tells of an item an event of
    the wedding told of before: :attr:`~NewEvent.key`). ``at`` 0 takes ``now`` (default:
    the clock at commit).

    The events are checked here, before the step is queued (:class:`StoreError`): text
    that cannot be stored would fail the whole shared transaction, other callers' too."""
    check_events(events)
    return _store_events(list(events), now)


def _store_events(events: list[NewEvent], now: float | None) -> Tx[list[StoredEvent]]:
    if not events:
        return []
    when = clock.now() if now is None else now
    if any(e.key is not None for e in events):
        events = yield from first_of_their_keys(events, when, _ROWS)
    counts: dict[str, int] = {}
    for event in events:
        counts[event.wedding] = counts.get(event.wedding, 0) + 1
    next_seq: dict[str, int] = {}
    for wedding, count in sorted(counts.items()):  # one lock order for every writer
        bumped = yield from row_as(_Counter, _BUMP, wedding, count)
        if bumped is not None:  # None: the wedding is tombstoned (its trigger dropped it)
            next_seq[wedding] = int(bumped.last_seq) - count + 1
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
                e.at or when,
                e.data,
                e.audience,
            )
        )
    for start in range(0, len(stored), _ROWS):
        chunk = stored[start : start + _ROWS]
        marks = ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"] * len(chunk))
        params = tuple(
            value
            for e in chunk
            for value in (
                e.wedding,
                e.seq,
                e.type,
                e.doc,
                e.sub,
                e.role,
                e.priority,
                e.at,
                e.data,
                e.audience,
            )
        )
        yield Sql(f"INSERT INTO {{t}}events ({_COLUMNS}) VALUES {marks}", params)  # noqa: S608
    return stored


def _add(
    dialect: Dialect,
    events: Sequence[NewEvent],
    once: Once | None,
    now: float,
    then: Callable[[list[StoredEvent]], Tx[None]] | None = None,
) -> Tx[AddedEvents]:
    if once is not None:
        used = yield from row_as(
            _Used,
            "SELECT fingerprint, wedding, seqs FROM {t}idempotency"
            " WHERE scope = ? AND key = ? AND expires_at > ?",
            once.scope,
            once.key,
            now,
        )
        if used is not None:
            kept = json.loads(used.seqs) if dialect == "sqlite" else used.seqs
            seqs = [int(seq) for seq in kept]
            found: list[StoredEvent] = []
            for start in range(0, len(seqs), _ROWS):
                chunk = seqs[start : start + _ROWS]
                marks = ", ".join("?" * len(chunk))
                found += yield from rows_as(
                    StoredEvent,
                    f"SELECT {_COLUMNS} FROM {{t}}events WHERE wedding = ?"  # noqa: S608
                    f" AND seq IN ({marks}) ORDER BY seq",
                    used.wedding,
                    *chunk,
                )
            return AddedEvents(found, False, str(used.fingerprint))
    stored = yield from _store_events(list(events), now)
    if once is not None:
        seqs_of = [e.seq for e in stored]
        yield Sql(
            "INSERT INTO {t}idempotency (scope, key, wedding, fingerprint, seqs, expires_at)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (scope, key) DO UPDATE"
            " SET wedding = excluded.wedding, fingerprint = excluded.fingerprint,"
            " seqs = excluded.seqs, expires_at = excluded.expires_at",
            (
                once.scope,
                once.key,
                events[0].wedding if events else "",
                once.fingerprint,
                json.dumps(seqs_of) if dialect == "sqlite" else seqs_of,
                once.expires_at,
            ),
        )
    if then is not None:
        yield from then(stored)
    return AddedEvents(stored, True)


async def add_events(
    gateway: Gateway,
    events: Sequence[NewEvent],
    *,
    once: Once | None = None,
    then: Callable[[list[StoredEvent]], Tx[None]] | None = None,
) -> AddedEvents:
    """Durably store events of their own (not caused by an update), in one transaction.
    With ``once``, the first call with its key in its scope stores its events; later ones
    (until it expires) store nothing and get the first call's events and fingerprint.
    ``then``: a step run in the same transaction with the events as stored, the first time
    only (what an emergency makes: its notifications and its re-send)."""
    check_events(events)
    if once is not None:
        _check(once.scope, once.key, once.fingerprint)
    return await gateway.run(_add(gateway.dialect, list(events), once, clock.now(), then))


async def read_events(
    gateway: Gateway,
    wedding: str,
    *,
    after: int = 0,
    limit: int = 50,
    where: EventFilter | None = None,
    upto: int | None = None,
) -> list[StoredEvent]:
    """The wedding's events with ``seq > after`` (and ``<= upto``) matching ``where``,
    oldest first."""
    if limit <= 0:
        return []
    where = where or EventFilter()
    sql = f"SELECT {_COLUMNS} FROM {{t}}events WHERE wedding = ? AND seq > ?"  # noqa: S608
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
        if docs:
            sql += f" AND (doc IS NULL OR doc IN ({', '.join('?' * len(docs))}))"
            params += docs
        else:
            sql += " AND doc IS NULL"
    if where.viewer is not None:
        sql += f" AND (audience IS NULL OR {gateway.contains('audience')})"
        params.append(audience_needle(where.viewer))
    if where.priorities:
        sql += f" AND priority IN ({', '.join('?' * len(where.priorities))})"
        params += list(where.priorities)
    if upto is not None:
        sql += " AND seq <= ?"
        params.append(upto)
    return await gateway.fetch_as(StoredEvent, f"{sql} ORDER BY seq LIMIT ?", *params, limit)


async def last_event_seq(gateway: Gateway, wedding: str) -> int:
    """The seq of the wedding's newest event (0 if none)."""
    counter = await gateway.fetch_one_as(
        _Counter, "SELECT last_seq FROM {t}event_counters WHERE wedding = ?", wedding
    )
    return int(counter.last_seq) if counter is not None else 0


def _entity_needles(entity_id: str, paths: Sequence[str]) -> tuple[str, ...]:
    """How an entry's id appears in stored event data (compact JSON), and its paths (a
    finding's ``"guests/guests/g1"``, or a path under it: ``"guests/guests/g1/contact"``)."""
    quoted = json.dumps(entity_id)
    named = tuple(n for p in paths for n in (json.dumps(p), json.dumps(p)[:-1] + "/"))
    return f'"id":{quoted}', f'"guest_id":{quoted}', *named


async def erase_entity_events(
    gateway: Gateway,
    wedding: str,
    entity_id: str,
    paths: Sequence[str] = (),
    *,
    sub: str | None = None,
) -> int:
    """Delete the wedding's events about one entry (``"id"`` or ``"guest_id"`` in their
    data), those naming one of ``paths`` or a path under one (a finding about
    ``guests/guests/g1``, which may quote its values), and, given ``sub``, those credited
    to it (a guest's RSVP answers: their household's note): per-person erasure. How many
    went."""
    needles = _entity_needles(entity_id, paths)
    found = " OR ".join(gateway.contains("data") for _ in needles)
    params: tuple[Any, ...] = (wedding, *needles)
    if sub is not None:
        found += " OR sub = ?"
        params = (*params, sub)
    sql = f"DELETE FROM {{t}}events WHERE wedding = ? AND ({found})"  # noqa: S608
    return await gateway.run(_count(sql, params))


def _count(sql: str, params: tuple[Any, ...]) -> Tx[int]:
    gone: int = yield Sql(sql, params, count=True)
    return gone


def _purge_events(before: float, now: float) -> Tx[int]:
    gone: int = yield Sql("DELETE FROM {t}events WHERE at < ?", (before,), count=True)
    yield Sql("DELETE FROM {t}event_keys WHERE at < ?", (before,))
    yield Sql("DELETE FROM {t}idempotency WHERE expires_at < ?", (now,))
    return gone


async def purge_events(gateway: Gateway, before: float) -> int:
    """Delete events older than ``before`` (Unix seconds) and expired idempotency keys;
    how many events went. Seqs are never reused."""
    return await gateway.run(_purge_events(before, clock.now()))


async def _page(gateway: Gateway, wedding: str, after: int, limit: int) -> list[StoredEvent]:
    return await read_events(gateway, wedding, after=after, limit=limit)


EVENT_TABLES = EventTables(SCHEMA, _page, store_events)
"""The events' part of a wedding's export and import (``crdt-server export`` / ``import``
and ``GET /api/weddings/{id}/export``): every event of the wedding, whatever its audience."""
