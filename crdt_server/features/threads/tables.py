"""The thread feature's tables, on SQLite and PostgreSQL alike: threads, participants,
messages (with their search index), read marks and idempotency keys.

Its transactions run through the shared queued writer
(:meth:`crdt_server.storage.Gateway.run`, once this module's ``ThreadDb``), and compose
the steps of the features threads build on: the member directory's
(:mod:`crdt_server.features.people`) and the inbox's
(:mod:`crdt_server.features.notifications`), whose tables (``members``, ``notifications``,
``notification_outbox``, named ``thread_members``, ``thread_notifications`` and
``thread_outbox`` until they were renamed) were this schema's before they had features of
their own.

Every statement of the feature is here (and in
:mod:`crdt_server.features.threads.tables_messages`, the messages'), with the rows they
read as Structs; the rules (:mod:`crdt_server.features.threads.extension`) call them and
compose the transaction steps (:data:`Tx`) into their transactions.

Full-text search: SQLite keeps an FTS5 table fed by triggers on the subject and message
tables (so erasing rows erases their index entries in the same transaction); PostgreSQL a
generated ``tsvector`` column with a GIN index on each.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Sequence
from typing import Any

import msgspec

from crdt_server.features.events import forget_events_of
from crdt_server.features.threads.tables_messages import MESSAGE_COLUMNS, ThreadMessageRow
from crdt_server.storage import Gateway, Table, schema_of
from crdt_server.storage.gateway import Sql, Tx, escape_like, row_as, rows_as

__all__ = [
    "SCHEMA",
    "THREAD_COLUMNS",
    "IdempotentRequest",
    "ExportedThreads",
    "MessageReactions",
    "Participant",
    "Quote",
    "ReadMark",
    "StoredThread",
    "ThreadRow",
    "Tx",
    "contains_pattern",
    "erase_member",
    "exported_threads",
    "forget_requests",
    "insert_participants",
    "insert_thread",
    "merge_search",
    "participants_of",
    "quote",
    "remember_request",
    "request",
    "search_needs_merging",
    "subjects",
    "thread_page",
    "thread_row",
    "unread_counts",
    "update_thread",
]


# Full-text search. SQLite: one FTS5 table fed by triggers on the subjects and messages
# (messages index as rowid*2, subjects as rowid*2+1). PostgreSQL: a generated tsvector
# column with a GIN index on each table.
_SEARCH = (
    "CREATE VIRTUAL TABLE IF NOT EXISTS thread_search USING fts5(text, wedding UNINDEXED,"
    " thread UNINDEXED)"
)
THREADS = Table(
    "threads",
    "(wedding {text} NOT NULL, id {text} NOT NULL, subject {text} NOT NULL,"
    " kind {text} NOT NULL, status {text} NOT NULL, priority {text} NOT NULL,"
    " anchors {text} NOT NULL, docs {text} NOT NULL, creator {text} NOT NULL,"
    " creator_role {text} NOT NULL, created_at {real} NOT NULL, activity {real} NOT NULL,"
    " last_seq {int} NOT NULL DEFAULT 0, PRIMARY KEY (wedding, id))",
    postgres_columns="search tsvector GENERATED ALWAYS AS (to_tsvector('simple', subject)) STORED",
    postgres=("CREATE INDEX IF NOT EXISTS threads_search ON {t}threads USING gin (search)",),
)
PARTICIPANTS = Table(
    "thread_participants",
    "(wedding {text} NOT NULL, thread {text} NOT NULL, sub {text} NOT NULL,"
    " PRIMARY KEY (wedding, thread, sub))",
)
MESSAGES = Table(
    "thread_messages",
    "(wedding {text} NOT NULL, thread {text} NOT NULL, id {text} NOT NULL, seq {int} NOT NULL,"
    " author {text} NOT NULL, author_role {text} NOT NULL, body {text} NOT NULL,"
    " reply_to {text}, mentions {text} NOT NULL, priority {text} NOT NULL,"
    " created_at {real} NOT NULL, edited_at {real}, deleted INTEGER NOT NULL DEFAULT 0,"
    " fingerprint {text} NOT NULL, reactions {text} NOT NULL DEFAULT '{}',"
    " PRIMARY KEY (wedding, thread, id))",
    postgres_columns="search tsvector GENERATED ALWAYS AS (to_tsvector('simple', body)) STORED",
    indexes=(
        "CREATE UNIQUE INDEX IF NOT EXISTS thread_messages_seq"
        " ON {t}thread_messages (wedding, thread, seq)",
    ),
    sqlite=(
        _SEARCH,
        "CREATE TRIGGER IF NOT EXISTS thread_messages_fts_i AFTER INSERT ON thread_messages"
        " BEGIN INSERT INTO thread_search (rowid, text, wedding, thread)"
        " VALUES (NEW.rowid * 2, NEW.body, NEW.wedding, NEW.thread); END",
        "CREATE TRIGGER IF NOT EXISTS thread_messages_fts_u AFTER UPDATE OF body"
        " ON thread_messages"
        " BEGIN DELETE FROM thread_search WHERE rowid = OLD.rowid * 2;"
        " INSERT INTO thread_search (rowid, text, wedding, thread)"
        " VALUES (NEW.rowid * 2, NEW.body, NEW.wedding, NEW.thread); END",
        "CREATE TRIGGER IF NOT EXISTS thread_messages_fts_d AFTER DELETE ON thread_messages"
        " BEGIN DELETE FROM thread_search WHERE rowid = OLD.rowid * 2; END",
        "CREATE TRIGGER IF NOT EXISTS threads_fts_i AFTER INSERT ON threads"
        " BEGIN INSERT INTO thread_search (rowid, text, wedding, thread)"
        " VALUES (NEW.rowid * 2 + 1, NEW.subject, NEW.wedding, NEW.id); END",
        "CREATE TRIGGER IF NOT EXISTS threads_fts_u AFTER UPDATE OF subject ON threads"
        " BEGIN DELETE FROM thread_search WHERE rowid = OLD.rowid * 2 + 1;"
        " INSERT INTO thread_search (rowid, text, wedding, thread)"
        " VALUES (NEW.rowid * 2 + 1, NEW.subject, NEW.wedding, NEW.id); END",
        "CREATE TRIGGER IF NOT EXISTS threads_fts_d AFTER DELETE ON threads"
        " BEGIN DELETE FROM thread_search WHERE rowid = OLD.rowid * 2 + 1; END",
    ),
    postgres=(
        "CREATE INDEX IF NOT EXISTS thread_messages_search"
        " ON {t}thread_messages USING gin (search)",
    ),
)
READS = Table(
    "thread_reads",
    "(wedding {text} NOT NULL, thread {text} NOT NULL, sub {text} NOT NULL,"
    " up_to {int} NOT NULL, PRIMARY KEY (wedding, thread, sub))",
)
REQUESTS = Table(
    "thread_requests",
    "(wedding {text} NOT NULL, sub {text} NOT NULL, key {text} NOT NULL,"
    " fingerprint {text} NOT NULL, thread {text} NOT NULL, expires_at {real} NOT NULL,"
    " PRIMARY KEY (wedding, sub, key))",
)


SCHEMA = schema_of("threads", THREADS, PARTICIPANTS, MESSAGES, READS, REQUESTS)
"""Threads, participants, messages (with their search index), read marks and idempotency
keys: all erased with their wedding. On a store written when this schema also held the
member directory, the inbox and the outbox, those tables stay as they are (their own
features' schemas record them now); nothing is dropped."""


# -- rows --------------------------------------------------------------------------------

THREAD_COLUMNS = (
    "id, subject, kind, status, priority, anchors, creator, creator_role, created_at,"
    " activity, last_seq"
)


class ThreadRow(msgspec.Struct, frozen=True):
    """A thread as :data:`THREAD_COLUMNS` holds it (``anchors``: JSON text)."""

    id: str
    subject: str
    kind: str
    status: str
    priority: str
    anchors: str
    creator: str
    creator_role: str
    created_at: float
    activity: float
    last_seq: int


class StoredThread(ThreadRow, frozen=True):
    """A thread's row and the documents it is anchored to (``,budget,guests,``)."""

    docs: str

    def doc_list(self) -> list[str]:
        return [d for d in self.docs.split(",") if d]


class IdempotentRequest(msgspec.Struct, frozen=True):
    fingerprint: str
    thread: str


class Participant(msgspec.Struct, frozen=True):
    thread: str
    sub: str


class _Unread(msgspec.Struct, frozen=True):
    thread: str
    count: int


class _Subject(msgspec.Struct, frozen=True):
    id: str
    subject: str


class MessageReactions(msgspec.Struct, frozen=True):
    thread: str
    id: str
    reactions: str


class Quote(msgspec.Struct, frozen=True):
    subject: str
    author: str
    body: str
    deleted: int


class _One(msgspec.Struct, frozen=True):
    one: int


class ReadMark(msgspec.Struct, frozen=True):
    thread: str
    sub: str
    up_to: int


class ExportedThreads(msgspec.Struct, frozen=True):
    """All of a wedding's thread rows, as its export reads them."""

    threads: list[ThreadRow]
    participants: list[Participant]
    messages: list[ThreadMessageRow]
    reads: list[ReadMark]


def contains_pattern(text: str) -> str:
    """A ``LIKE ... ESCAPE '!'`` pattern matching values that contain ``text`` as is."""
    return f"%{escape_like(text)}%"


# -- reads -------------------------------------------------------------------------------


async def thread_row(db: Gateway, wedding: str, tid: str) -> StoredThread | None:
    return await db.fetch_one_as(
        StoredThread,
        f"SELECT {THREAD_COLUMNS}, docs FROM {{t}}threads WHERE wedding = ? AND id = ?",
        wedding,
        tid,
    )


async def participants_of(db: Gateway, wedding: str, tids: Sequence[str]) -> dict[str, list[str]]:
    """The participants of each of ``tids`` (sorted), in one query."""
    members: dict[str, list[str]] = {tid: [] for tid in tids}
    if not tids:
        return members
    for found in await db.fetch_as(
        Participant,
        "SELECT thread, sub FROM {t}thread_participants WHERE wedding = ?"
        f" AND thread IN ({','.join('?' * len(tids))}) ORDER BY thread, sub",
        wedding,
        *tids,
    ):
        members[found.thread].append(found.sub)
    return members


async def thread_page(
    db: Gateway,
    wedding: str,
    *,
    hidden: Sequence[str],
    participant_of: str | None,
    equal: dict[str, str],
    anchor: str | None,
    participant: str | None,
    q: str | None,
    after: tuple[float, str] | None,
    limit: int,
) -> list[ThreadRow]:
    """A page of the wedding's threads, newest activity first: none anchored to a
    ``hidden`` document; only those ``participant_of`` takes part in (``None``: all);
    whose columns hold ``equal``'s values; anchored to ``anchor`` (its JSON); with
    ``participant``; matching the words of ``q``; after the cursor ``after``."""
    sql = f"SELECT {THREAD_COLUMNS} FROM {{t}}threads t WHERE t.wedding = ?"
    params: list[Any] = [wedding]
    for doc in hidden:
        sql += " AND t.docs NOT LIKE ?"
        params.append(f"%,{doc},%")
    for sub in (participant_of, participant):
        if sub is not None:
            sql += (
                " AND EXISTS (SELECT 1 FROM {t}thread_participants p WHERE p.wedding = t.wedding"
                " AND p.thread = t.id AND p.sub = ?)"
            )
            params.append(sub)
    for column, value in equal.items():
        if column not in ("status", "kind", "priority"):
            raise ValueError(f"not a thread filter: {column}")
        sql += f" AND t.{column} = ?"
        params.append(value)
    if anchor is not None:
        sql += " AND t.anchors LIKE ? ESCAPE '!'"
        params.append(contains_pattern(anchor))
    if q is not None:
        words = re.findall(r"\w+", q)
        if not words:
            return []
        search, terms = db.by_dialect(
            sqlite=(
                " AND t.id IN (SELECT thread FROM {t}thread_search WHERE thread_search"
                " MATCH ? AND wedding = ?)",
                [" ".join(f'"{w}"' for w in words), wedding],
            ),
            postgres=(
                " AND (t.search @@ plainto_tsquery('simple', ?) OR EXISTS (SELECT 1 FROM"
                " {t}thread_messages m WHERE m.wedding = t.wedding AND m.thread = t.id"
                " AND m.search @@ plainto_tsquery('simple', ?)))",
                [" ".join(words), " ".join(words)],
            ),
        )
        sql += search
        params += terms
    if after is not None:
        activity, tid = after
        sql += " AND (t.activity < ? OR (t.activity = ? AND t.id < ?))"
        params += [activity, activity, tid]
    sql += " ORDER BY t.activity DESC, t.id DESC LIMIT ?"
    params.append(limit)
    return await db.fetch_as(ThreadRow, sql, *params)


async def unread_counts(db: Gateway, wedding: str, tids: Sequence[str], sub: str) -> dict[str, int]:
    """How many messages of each of ``tids`` ``sub`` has not read (by others, not deleted)."""
    if not tids:
        return {}
    marks = ",".join("?" * len(tids))
    rows = await db.fetch_as(
        _Unread,
        "SELECT m.thread, COUNT(*) FROM {t}thread_messages m LEFT JOIN {t}thread_reads r"
        " ON r.wedding = m.wedding AND r.thread = m.thread AND r.sub = ?"
        f" WHERE m.wedding = ? AND m.thread IN ({marks}) AND m.author <> ? AND m.deleted = 0"
        " AND m.seq > COALESCE(r.up_to, 0) GROUP BY m.thread",
        sub,
        wedding,
        *tids,
        sub,
    )
    return {u.thread: int(u.count) for u in rows}


async def subjects(db: Gateway, wedding: str, threads: Collection[str]) -> dict[str, str]:
    """The subjects of those of ``threads`` that exist, by id."""
    ordered = sorted(threads)
    found: dict[str, str] = {}
    for start in range(0, len(ordered), 500):
        chunk = ordered[start : start + 500]
        marks = ",".join("?" * len(chunk))
        for item in await db.fetch_as(
            _Subject,
            f"SELECT id, subject FROM {{t}}threads WHERE wedding = ? AND id IN ({marks})",
            wedding,
            *chunk,
        ):
            found[item.id] = item.subject
    return found


async def quote(db: Gateway, wedding: str, thread: str, message: str) -> Quote | None:
    return await db.fetch_one_as(
        Quote,
        "SELECT t.subject, m.author, m.body, m.deleted FROM {t}threads t JOIN"
        " {t}thread_messages m ON m.wedding = t.wedding AND m.thread = t.id"
        " WHERE t.wedding = ? AND t.id = ? AND m.id = ?",
        wedding,
        thread,
        message,
    )


async def exported_threads(db: Gateway, wedding: str) -> ExportedThreads:
    """The wedding's threads (by creation), participants, messages (by thread and seq) and
    read marks."""
    return ExportedThreads(
        threads=await db.fetch_as(
            ThreadRow,
            f"SELECT {THREAD_COLUMNS} FROM {{t}}threads WHERE wedding = ? ORDER BY created_at, id",
            wedding,
        ),
        participants=await db.fetch_as(
            Participant,
            "SELECT thread, sub FROM {t}thread_participants WHERE wedding = ? ORDER BY thread, sub",
            wedding,
        ),
        messages=await db.fetch_as(
            ThreadMessageRow,
            f"SELECT {MESSAGE_COLUMNS}, thread FROM {{t}}thread_messages WHERE wedding = ?"
            " ORDER BY thread, seq",
            wedding,
        ),
        reads=await db.fetch_as(
            ReadMark,
            "SELECT thread, sub, up_to FROM {t}thread_reads WHERE wedding = ? ORDER BY thread, sub",
            wedding,
        ),
    )


def search_needs_merging(db: Gateway) -> bool:
    """Whether the search index keeps erased words until it merges (SQLite's FTS5)."""
    return db.by_dialect(sqlite=True, postgres=False)


async def merge_search(db: Gateway) -> None:
    """Merge the search index's segments, where it has any (see
    :func:`search_needs_merging`)."""
    if search_needs_merging(db):
        await db.run(_optimize_search())


def _optimize_search() -> Tx[None]:
    yield Sql("INSERT INTO thread_search (thread_search) VALUES ('optimize')")


# -- steps of the threads' transactions --------------------------------------------------


def forget_requests(wedding: str, now: float) -> Tx[None]:
    """Drop the wedding's expired idempotency keys."""
    yield Sql(
        "DELETE FROM {t}thread_requests WHERE wedding = ? AND expires_at <= ?", (wedding, now)
    )


def request(wedding: str, sub: str, key: str, now: float) -> Tx[IdempotentRequest | None]:
    """What ``sub``'s live idempotency ``key`` made, if it made anything."""
    return (
        yield from row_as(
            IdempotentRequest,
            "SELECT fingerprint, thread FROM {t}thread_requests WHERE wedding = ?"
            " AND sub = ? AND key = ? AND expires_at > ?",
            wedding,
            sub,
            key,
            now,
        )
    )


def remember_request(
    wedding: str, sub: str, key: str, fingerprint: str, tid: str, expires_at: float
) -> Tx[None]:
    yield Sql(
        "INSERT INTO {t}thread_requests (wedding, sub, key, fingerprint, thread,"
        " expires_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (wedding, sub, key)"
        " DO UPDATE SET fingerprint = excluded.fingerprint,"
        " thread = excluded.thread, expires_at = excluded.expires_at",
        (wedding, sub, key, fingerprint, tid, expires_at),
    )


def insert_thread(wedding: str, row: StoredThread) -> Tx[None]:
    """Store a new thread (its ``status`` is open, its ``last_seq`` 0)."""
    yield Sql(
        "INSERT INTO {t}threads (wedding, id, subject, kind, status, priority, anchors,"
        " docs, creator, creator_role, created_at, activity)"
        " VALUES (?, ?, ?, ?, 'open', ?, ?, ?, ?, ?, ?, ?)",
        (
            wedding,
            row.id,
            row.subject,
            row.kind,
            row.priority,
            row.anchors,
            row.docs,
            row.creator,
            row.creator_role,
            row.created_at,
            row.activity,
        ),
    )


def insert_participants(wedding: str, tid: str, subs: Sequence[str], *, replace: bool) -> Tx[None]:
    """Add ``subs`` to the thread's participants (``replace``: they become all of them)."""
    if replace:
        yield Sql(
            "DELETE FROM {t}thread_participants WHERE wedding = ? AND thread = ?", (wedding, tid)
        )
    for sub in subs:
        yield Sql(
            "INSERT INTO {t}thread_participants (wedding, thread, sub) VALUES (?, ?, ?)",
            (wedding, tid, sub),
        )


def update_thread(wedding: str, tid: str, changes: dict[str, Any], now: float) -> Tx[None]:
    """Set the thread's ``subject``, ``status`` and ``priority`` found in ``changes`` (other
    keys are not columns), and its activity to ``now``."""
    for column in ("subject", "status", "priority"):
        if column in changes:
            yield Sql(
                f"UPDATE {{t}}threads SET {column} = ?, activity = ? WHERE wedding = ? AND id = ?",
                (changes[column], now, wedding, tid),
            )


def erase_member(wedding: str, sub: str) -> Tx[bool]:
    """The threads' part of erasing a member: their messages become placeholders without
    author or body, their reactions, participations and read marks go, and so do the
    thread events they caused; whether they wrote a message."""
    wrote = yield from row_as(
        _One,
        "SELECT 1 FROM {t}thread_messages WHERE wedding = ? AND author = ? LIMIT 1",
        wedding,
        sub,
    )
    yield Sql(
        "UPDATE {t}thread_messages SET author = '', body = '', deleted = 1,"
        " mentions = '[]', fingerprint = '' WHERE wedding = ? AND author = ?",
        (wedding, sub),
    )
    reacted = yield from rows_as(
        MessageReactions,
        "SELECT thread, id, reactions FROM {t}thread_messages WHERE wedding = ?"
        " AND reactions LIKE ? ESCAPE '!'",
        wedding,
        contains_pattern(json.dumps(sub)),
    )
    for message in reacted:
        reactions = {
            e: [s for s in subs if s != sub] for e, subs in json.loads(message.reactions).items()
        }
        reactions = {e: subs for e, subs in reactions.items() if subs}
        yield Sql(
            "UPDATE {t}thread_messages SET reactions = ? WHERE wedding = ? AND thread = ?"
            " AND id = ?",
            (json.dumps(reactions, ensure_ascii=False), wedding, message.thread, message.id),
        )
    for table in ("thread_participants", "thread_reads"):
        yield Sql(f"DELETE FROM {{t}}{table} WHERE wedding = ? AND sub = ?", (wedding, sub))
    yield from forget_events_of(wedding, sub, "thread.")
    return wrote is not None
