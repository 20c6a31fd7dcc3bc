"""The CalDAV calendars' tables, and the only SQL that reads and writes them.

- ``calendars``: each calendar a wedding writes its timeline to: its URL, the username,
  the password sealed with the credentials key (``secret``, base64 of nonce and
  ciphertext) beside the id of that key (``kid``), its scope, who added it, its state
  (``pending`` until the first synchronisation, then ``ok`` or ``error`` with a message
  safe to show), and ``claimed_until``: the lease of the process synchronising it now
  (every process and host may run the worker; one synchronises a calendar at a time).
- ``calendar_events``: one row per timeline item written to a calendar: where it is
  (``href``), the ETag the calendar gave (``etag``: the one our own PUT got back, so that
  version is never read as a vendor's change; or the vendor's, once reported), the
  fingerprint of what was written (a changed item is written again) and the times it had.
"""

from __future__ import annotations

import msgspec

from crdt_server.storage import Table, schema_of
from crdt_server.storage.gateway import Sql, Tx, rows_as

__all__ = [
    "CALENDAR_COLUMNS",
    "SCHEMA",
    "CalendarRow",
    "EventRow",
    "add_calendar",
    "claim",
    "forget_event",
    "keep_event",
    "release",
    "remove_calendar",
    "remove_created_by",
    "reseal",
]

CALENDARS = Table(
    "calendars",
    "(id {ctext} PRIMARY KEY, wedding {ctext} NOT NULL, scope {text} NOT NULL,"
    " url {text} NOT NULL, username {text} NOT NULL, kid {text} NOT NULL,"
    " secret {text} NOT NULL, created_by {text} NOT NULL, created_at {real} NOT NULL,"
    " status {text} NOT NULL DEFAULT 'pending', error {text} NOT NULL DEFAULT '',"
    " synced_at {real} NOT NULL DEFAULT 0, claimed_until {real} NOT NULL DEFAULT 0)",
    indexes=("CREATE INDEX IF NOT EXISTS calendars_wedding ON {t}calendars (wedding)",),
)
EVENTS = Table(
    "calendar_events",
    "(wedding {ctext} NOT NULL, calendar {ctext} NOT NULL, item {ctext} NOT NULL,"
    " href {text} NOT NULL, etag {text} NOT NULL, fingerprint {text} NOT NULL,"
    " start_at {text} NOT NULL, end_at {text} NOT NULL, PRIMARY KEY (calendar, item))",
)
SCHEMA = schema_of("calendars", CALENDARS, EVENTS)

CALENDAR_COLUMNS = (
    "id, wedding, scope, url, username, kid, secret, created_by, created_at, status, error,"
    " synced_at"
)


class CalendarRow(msgspec.Struct, frozen=True):
    id: str
    wedding: str
    scope: str
    url: str
    username: str
    kid: str
    secret: str
    created_by: str
    created_at: float
    status: str
    error: str
    synced_at: float


class EventRow(msgspec.Struct, frozen=True):
    item: str
    href: str
    etag: str
    fingerprint: str
    start_at: str
    end_at: str


def claim(calendar: str, now: float, lease: float) -> Tx[bool]:
    """Take the calendar's lease (whether it was free: no other process is on it)."""
    taken: int = yield Sql(
        "UPDATE {t}calendars SET claimed_until = ? WHERE id = ? AND claimed_until < ?",
        (now + lease, calendar, now),
        count=True,
    )
    return taken > 0


def release(calendar: str, status: str, error: str, now: float) -> Tx[None]:
    """The synchronisation's outcome, and the lease given back."""
    yield Sql(
        "UPDATE {t}calendars SET status = ?, error = ?, synced_at = ?, claimed_until = 0"
        " WHERE id = ?",
        (status, error, now, calendar),
    )


def keep_event(wedding: str, calendar: str, row: EventRow) -> Tx[None]:
    """Keep what an item's event is now (nothing if the calendar was removed meanwhile)."""
    yield Sql(
        "INSERT INTO {t}calendar_events (wedding, calendar, item, href, etag, fingerprint,"
        " start_at, end_at) SELECT ?, ?, ?, ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM"
        " {t}calendars WHERE id = ?) ON CONFLICT (calendar, item)"
        " DO UPDATE SET href = excluded.href, etag = excluded.etag,"
        " fingerprint = excluded.fingerprint, start_at = excluded.start_at,"
        " end_at = excluded.end_at",
        (wedding, calendar, row.item, row.href, row.etag, row.fingerprint, row.start_at,
         row.end_at, calendar),
    )  # fmt: skip


def reseal(calendar: str, was: str, kid: str, secret: str) -> Tx[int]:
    """The password sealed again under key ``kid`` (if still sealed under ``was``)."""
    moved: int = yield Sql(
        "UPDATE {t}calendars SET kid = ?, secret = ? WHERE id = ? AND kid = ?",
        (kid, secret, calendar, was),
        count=True,
    )
    return moved


def add_calendar(row: CalendarRow) -> Tx[None]:
    yield Sql(
        f"INSERT INTO {{t}}calendars ({CALENDAR_COLUMNS}) VALUES"
        " (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (row.id, row.wedding, row.scope, row.url, row.username, row.kid, row.secret,
         row.created_by, row.created_at, row.status, row.error, row.synced_at),
    )  # fmt: skip


def forget_event(calendar: str, item: str) -> Tx[None]:
    yield Sql("DELETE FROM {t}calendar_events WHERE calendar = ? AND item = ?", (calendar, item))


def remove_calendar(wedding: str, calendar: str) -> Tx[bool]:
    """Remove a calendar and what it kept (whether there was one)."""
    gone = yield from rows_as(
        _Id, "DELETE FROM {t}calendars WHERE id = ? AND wedding = ? RETURNING id", calendar,
        wedding,
    )  # fmt: skip
    yield Sql("DELETE FROM {t}calendar_events WHERE calendar = ?", (calendar,))
    return bool(gone)


def remove_created_by(sub: str, wedding: str | None) -> Tx[int]:
    """Remove the calendars ``sub`` added (in ``wedding``, or in every wedding) and what
    they kept; how many."""
    where = "created_by = ?" + ("" if wedding is None else " AND wedding = ?")
    params = (sub,) if wedding is None else (sub, wedding)
    gone = yield from rows_as(
        _Id, f"DELETE FROM {{t}}calendars WHERE {where} RETURNING id", *params
    )
    for row in gone:
        yield Sql("DELETE FROM {t}calendar_events WHERE calendar = ?", (row.id,))
    return len(gone)


class _Id(msgspec.Struct, frozen=True):
    id: str
