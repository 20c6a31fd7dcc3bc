"""The thread feature's tables, on SQLite and PostgreSQL alike: threads, participants,
messages (with their search index), read marks and idempotency keys.

Its transactions run through the shared queued writer
(:class:`crdt_server.features.db.FeatureDb`, once this module's ``ThreadDb``), and compose
the steps of the features threads build on: the member directory's
(:mod:`crdt_server.features.people`) and the inbox's
(:mod:`crdt_server.features.notifications`), whose tables (``thread_members``,
``thread_notifications``, ``thread_outbox``) were this schema's before they had features
of their own.

Full-text search: SQLite keeps an FTS5 table fed by triggers on the subject and message
tables (so erasing rows erases their index entries in the same transaction); PostgreSQL a
generated ``tsvector`` column with a GIN index on each.
"""

from __future__ import annotations

from crdt_server.features.db import Events, Sql, Tx
from crdt_server.storage import Table, schema_of

__all__ = ["SCHEMA", "Events", "Sql", "Tx"]


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
