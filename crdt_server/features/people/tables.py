"""The member directory's table: ``thread_members`` (the name it had when the threads
feature kept it; its name, columns and meaning are unchanged)."""

from __future__ import annotations

from crdt_server.storage import Table, schema_of

__all__ = ["MEMBERS", "SCHEMA"]

MEMBERS = Table(
    "thread_members",
    "(wedding {text} NOT NULL, sub {text} NOT NULL, role {text} NOT NULL, name {text} NOT NULL,"
    " email {text}, participation {text} NOT NULL DEFAULT 'all',"
    " email_on INTEGER NOT NULL DEFAULT 1, unsubscribe {text} NOT NULL,"
    " emailed_at {real} NOT NULL DEFAULT 0, updated_at {real} NOT NULL,"
    " PRIMARY KEY (wedding, sub))",
)

SCHEMA = schema_of("people", MEMBERS)
"""Each wedding's members: their role, name and address, what they are notified of, their
unsubscribe key and when they were last emailed; erased with their wedding. On a store
written before the directory was a feature of its own, the table is there already (the
threads schema created it): installing this schema adds only its version row."""
