"""The member directory's table: ``members``. Until schema version 2 it was named
``thread_members`` (the threads feature kept it then); its columns and meaning are
unchanged. Version 1 below is the table as those releases made it: a store they wrote
is renamed when the people feature is installed (``renamed``)."""

from __future__ import annotations

from crdt_server.storage import Table, schema_of
from crdt_server.storage.gateway import renamed

__all__ = ["MEMBERS", "SCHEMA"]

_COLUMNS = (
    "(wedding {text} NOT NULL, sub {text} NOT NULL, role {text} NOT NULL, name {text} NOT NULL,"
    " email {text}, participation {text} NOT NULL DEFAULT 'all',"
    " email_on INTEGER NOT NULL DEFAULT 1, unsubscribe {text} NOT NULL,"
    " emailed_at {real} NOT NULL DEFAULT 0, updated_at {real} NOT NULL,"
    " PRIMARY KEY (wedding, sub))"
)
_THREAD_MEMBERS = Table("thread_members", _COLUMNS)
"""Version 1."""
MEMBERS = Table("members", _COLUMNS)

SCHEMA = schema_of("people", _THREAD_MEMBERS, migrations=[renamed(2, (_THREAD_MEMBERS, MEMBERS))])
"""Each wedding's members: their role, name and address, what they are notified of, their
unsubscribe key and when they were last emailed; erased with their wedding. On a store
written before the directory was a feature of its own, the table is there already (the
threads schema created it): installing this schema adds its version row and renames it."""
