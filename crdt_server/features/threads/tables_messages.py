"""The statements on a thread's messages and read marks, with the rows they read (the
thread's own are in :mod:`crdt_server.features.threads.tables`)."""

from __future__ import annotations

import msgspec

from crdt_server.storage import Gateway
from crdt_server.storage.gateway import Sql, Tx, row_as, rows_as

__all__ = [
    "MESSAGE_COLUMNS",
    "MessageRow",
    "ThreadMessageRow",
    "author_of",
    "delete_message",
    "edit_message",
    "insert_message",
    "message",
    "message_in_tx",
    "messages_after",
    "messages_up_to",
    "next_seq",
    "raise_read_mark",
    "reactions_of",
    "seq_of",
    "set_reactions",
    "set_read_mark",
]

MESSAGE_COLUMNS = (
    "id, seq, author, author_role, body, reply_to, created_at, edited_at, deleted,"
    " reactions, mentions, priority, fingerprint"
)


class MessageRow(msgspec.Struct, frozen=True):
    """A message as :data:`MESSAGE_COLUMNS` holds it (``reactions``, ``mentions``: JSON
    text; ``deleted``: 0 or 1)."""

    id: str
    seq: int
    author: str
    author_role: str
    body: str
    reply_to: str | None
    created_at: float
    edited_at: float | None
    deleted: int
    reactions: str
    mentions: str
    priority: str
    fingerprint: str


class ThreadMessageRow(MessageRow, frozen=True):
    """A message and the thread it is in."""

    thread: str


class _Author(msgspec.Struct, frozen=True):
    author: str


class _Seq(msgspec.Struct, frozen=True):
    seq: int


class _Id(msgspec.Struct, frozen=True):
    id: str


class _Reactions(msgspec.Struct, frozen=True):
    reactions: str


_ONE = (
    f"SELECT {MESSAGE_COLUMNS} FROM {{t}}thread_messages WHERE wedding = ? AND thread = ?"
    " AND id = ?"
)


async def message(db: Gateway, wedding: str, tid: str, mid: str) -> MessageRow | None:
    return await db.fetch_one_as(MessageRow, _ONE, wedding, tid, mid)


def message_in_tx(wedding: str, tid: str, mid: str) -> Tx[MessageRow | None]:
    """:func:`message`, as a step of a transaction."""
    return (yield from row_as(MessageRow, _ONE, wedding, tid, mid))


async def messages_after(
    db: Gateway, wedding: str, tid: str, after: int, limit: int
) -> list[MessageRow]:
    return await db.fetch_as(
        MessageRow,
        f"SELECT {MESSAGE_COLUMNS} FROM {{t}}thread_messages WHERE wedding = ? AND thread = ?"
        " AND seq > ? ORDER BY seq LIMIT ?",
        wedding,
        tid,
        after,
        limit,
    )


async def seq_of(db: Gateway, wedding: str, tid: str, mid: str) -> int | None:
    found = await db.fetch_one_as(
        _Seq,
        "SELECT seq FROM {t}thread_messages WHERE wedding = ? AND thread = ? AND id = ?",
        wedding,
        tid,
        mid,
    )
    return None if found is None else int(found.seq)


def author_of(wedding: str, tid: str, mid: str) -> Tx[str | None]:
    found = yield from row_as(
        _Author,
        "SELECT author FROM {t}thread_messages WHERE wedding = ? AND thread = ? AND id = ?",
        wedding,
        tid,
        mid,
    )
    return None if found is None else found.author


def next_seq(wedding: str, tid: str, now: float) -> Tx[int | None]:
    """Number the thread's next message (its activity becomes ``now``); ``None``: no
    such thread."""
    found = yield from row_as(
        _Seq,
        "UPDATE {t}threads SET last_seq = last_seq + 1, activity = ? WHERE wedding = ?"
        " AND id = ? RETURNING last_seq",
        now,
        wedding,
        tid,
    )
    return None if found is None else int(found.seq)


def insert_message(wedding: str, tid: str, row: MessageRow) -> Tx[None]:
    """Store a new message (not edited, not deleted, without reactions)."""
    yield Sql(
        "INSERT INTO {t}thread_messages (wedding, thread, id, seq, author, author_role,"
        " body, reply_to, mentions, priority, created_at, fingerprint)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            wedding, tid, row.id, row.seq, row.author, row.author_role, row.body, row.reply_to,
            row.mentions, row.priority, row.created_at, row.fingerprint,
        ),
    )  # fmt: skip


def set_read_mark(wedding: str, tid: str, sub: str, seq: int) -> Tx[None]:
    """``sub`` has read the thread up to ``seq``."""
    yield Sql(
        "INSERT INTO {t}thread_reads (wedding, thread, sub, up_to) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (wedding, thread, sub) DO UPDATE SET up_to = excluded.up_to",
        (wedding, tid, sub, seq),
    )


def raise_read_mark(wedding: str, tid: str, sub: str, seq: int) -> Tx[None]:
    """``sub`` has read the thread up to ``seq``, unless they marked further already
    (two devices may report out of order)."""
    yield Sql(
        "INSERT INTO {t}thread_reads (wedding, thread, sub, up_to) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (wedding, thread, sub) DO UPDATE SET up_to ="
        " CASE WHEN excluded.up_to > {t}thread_reads.up_to THEN excluded.up_to"
        " ELSE {t}thread_reads.up_to END",
        (wedding, tid, sub, seq),
    )


def delete_message(wedding: str, tid: str, mid: str, now: float) -> Tx[None]:
    yield Sql(
        "UPDATE {t}thread_messages SET body = '', deleted = 1, edited_at = ?,"
        " reactions = '{}', mentions = '[]'"
        " WHERE wedding = ? AND thread = ? AND id = ?",
        (now, wedding, tid, mid),
    )


def edit_message(
    wedding: str, tid: str, mid: str, body: str, mentions: str, now: float
) -> Tx[None]:
    yield Sql(
        "UPDATE {t}thread_messages SET body = ?, edited_at = ?, mentions = ?"
        " WHERE wedding = ? AND thread = ? AND id = ?",
        (body, now, mentions, wedding, tid, mid),
    )


def reactions_of(wedding: str, tid: str, mid: str) -> Tx[str | None]:
    """The message's reactions (JSON text; ``None``: it is gone)."""
    found = yield from row_as(
        _Reactions,
        "SELECT reactions FROM {t}thread_messages WHERE wedding = ? AND thread = ? AND id = ?",
        wedding,
        tid,
        mid,
    )
    return None if found is None else found.reactions


def set_reactions(wedding: str, tid: str, mid: str, reactions: str) -> Tx[None]:
    yield Sql(
        "UPDATE {t}thread_messages SET reactions = ? WHERE wedding = ? AND thread = ? AND id = ?",
        (reactions, wedding, tid, mid),
    )


def messages_up_to(wedding: str, tid: str, seq: int, mids: set[str]) -> Tx[set[str]]:
    """Those of ``mids`` that are messages of the thread numbered ``seq`` or less."""
    found: set[str] = set()
    ordered = sorted(mids)
    for start in range(0, len(ordered), 500):
        chunk = ordered[start : start + 500]
        marks = ",".join("?" * len(chunk))
        rows = yield from rows_as(
            _Id,
            "SELECT id FROM {t}thread_messages WHERE wedding = ? AND thread = ? AND seq <= ?"
            f" AND id IN ({marks})",
            wedding,
            tid,
            seq,
            *chunk,
        )
        found.update(r.id for r in rows)
    return found
