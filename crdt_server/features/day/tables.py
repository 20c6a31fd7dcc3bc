"""The wedding day's tables, and the only SQL that reads and writes them: vendors'
contacts (kept out of the timeline document), check-ins, the planner's day-of switch and
the members on duty."""

from __future__ import annotations

import msgspec

from crdt_server.storage import Table, schema_of
from crdt_server.storage.gateway import Sql, Tx, rows_as

__all__ = [
    "SCHEMA",
    "CheckIn",
    "Contact",
    "Duty",
    "check_in",
    "check_in_by_id",
    "check_ins_of",
    "contact_of",
    "duties_of",
    "duty_alerted",
    "duty_of",
    "duty_seen",
    "forget_member",
    "mode_of",
    "put_contact",
    "put_duty",
    "set_mode",
]

CONTACTS = Table(
    "day_vendor_contacts",
    "(wedding {ctext} NOT NULL, vendor {ctext} NOT NULL, name {text}, email {text},"
    " phone {text}, updated {real} NOT NULL, PRIMARY KEY (wedding, vendor))",
    without_rowid=True,
)
"""A directory vendor's contact (one row per vendor id)."""
CHECK_INS = Table(
    "day_check_ins",
    "(wedding {ctext} NOT NULL, id {ctext} NOT NULL, vendor {ctext} NOT NULL,"
    " status {text} NOT NULL, eta {text}, at {real} NOT NULL, received {real} NOT NULL,"
    " sub {text} NOT NULL, role {text} NOT NULL, fingerprint {text} NOT NULL,"
    " PRIMARY KEY (wedding, id))",
    without_rowid=True,
)
"""Every check-in (``vendor``: a directory id or ``name:`` and a folded name); ``id`` is
derived from the Idempotency-Key where one was sent, so a repeat is found, not doubled."""
MODES = Table(
    "day_modes",
    "(wedding {ctext} NOT NULL PRIMARY KEY, mode {text} NOT NULL)",
    without_rowid=True,
)
"""The planner's switch (``on`` or ``off``); no row: the window decides."""
DUTY = Table(
    "day_duty",
    "(wedding {ctext} NOT NULL, sub {ctext} NOT NULL, start {real} NOT NULL,"
    " until {real} NOT NULL, seen {real}, alerted {int} NOT NULL,"
    " PRIMARY KEY (wedding, sub, start))",
    without_rowid=True,
)
"""Members on duty, one row per window: ``seen``, the last time one of their connections
opened or closed inside it; ``alerted``, 1 once ``day.member_offline`` was raised."""

SCHEMA = schema_of("day", CONTACTS, CHECK_INS, MODES, DUTY)


class Contact(msgspec.Struct, frozen=True):
    name: str | None
    email: str | None
    phone: str | None


class CheckIn(msgspec.Struct, frozen=True):
    id: str
    vendor: str
    status: str
    eta: str | None
    at: float
    received: float
    sub: str
    role: str
    fingerprint: str


class Duty(msgspec.Struct, frozen=True):
    sub: str
    start: float
    until: float
    seen: float | None = None
    alerted: int = 0


class _Mode(msgspec.Struct, frozen=True):
    mode: str


def put_contact(wedding: str, vendor: str, contact: Contact, now: float) -> Tx[None]:
    yield Sql(
        "INSERT INTO {t}day_vendor_contacts (wedding, vendor, name, email, phone, updated)"
        " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (wedding, vendor) DO UPDATE SET"
        " name = excluded.name, email = excluded.email, phone = excluded.phone,"
        " updated = excluded.updated",
        (wedding, vendor, contact.name, contact.email, contact.phone, now),
    )


def contact_of(wedding: str, vendor: str) -> Tx[Contact | None]:
    found = yield from rows_as(
        Contact,
        "SELECT name, email, phone FROM {t}day_vendor_contacts WHERE wedding = ? AND vendor = ?",
        wedding,
        vendor,
    )
    return found[0] if found else None


_CHECK_IN_COLUMNS = "id, vendor, status, eta, at, received, sub, role, fingerprint"


def check_in(wedding: str, row: CheckIn) -> Tx[bool]:
    """The step that keeps a check-in; false when one with its id is kept already."""
    added: int = yield Sql(
        f"INSERT INTO {{t}}day_check_ins (wedding, {_CHECK_IN_COLUMNS})"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (wedding, id) DO NOTHING",
        (
            wedding,
            row.id,
            row.vendor,
            row.status,
            row.eta,
            row.at,
            row.received,
            row.sub,
            row.role,
            row.fingerprint,
        ),
        count=True,
    )
    return added > 0


def check_in_by_id(wedding: str, check_in_id: str) -> Tx[CheckIn | None]:
    found = yield from rows_as(
        CheckIn,
        f"SELECT {_CHECK_IN_COLUMNS} FROM {{t}}day_check_ins WHERE wedding = ? AND id = ?",
        wedding,
        check_in_id,
    )
    return found[0] if found else None


def check_ins_of(wedding: str, since: float, until: float) -> Tx[list[CheckIn]]:
    """The wedding's check-ins reported (``at``) in [since, until), first first."""
    return (
        yield from rows_as(
            CheckIn,
            f"SELECT {_CHECK_IN_COLUMNS} FROM {{t}}day_check_ins"
            " WHERE wedding = ? AND at >= ? AND at < ? ORDER BY at, id",
            wedding,
            since,
            until,
        )
    )


def set_mode(wedding: str, mode: str | None) -> Tx[None]:
    """``on``, ``off``, or ``None``: back to the window."""
    yield Sql("DELETE FROM {t}day_modes WHERE wedding = ?", (wedding,))
    if mode is not None:
        yield Sql("INSERT INTO {t}day_modes (wedding, mode) VALUES (?, ?)", (wedding, mode))


def mode_of(wedding: str) -> Tx[str | None]:
    found = yield from rows_as(_Mode, "SELECT mode FROM {t}day_modes WHERE wedding = ?", wedding)
    return found[0].mode if found else None


def put_duty(wedding: str, duty: Duty) -> Tx[None]:
    yield Sql(
        "INSERT INTO {t}day_duty (wedding, sub, start, until, seen, alerted)"
        " VALUES (?, ?, ?, ?, NULL, 0)"
        " ON CONFLICT (wedding, sub, start) DO UPDATE SET until = excluded.until",
        (wedding, duty.sub, duty.start, duty.until),
    )


_DUTY_COLUMNS = "sub, start, until, seen, alerted"


def duties_of(wedding: str) -> Tx[list[Duty]]:
    return (
        yield from rows_as(
            Duty,
            f"SELECT {_DUTY_COLUMNS} FROM {{t}}day_duty WHERE wedding = ? ORDER BY start, sub",
            wedding,
        )
    )


def duty_of(wedding: str, sub: str, start: float) -> Tx[Duty | None]:
    found = yield from rows_as(
        Duty,
        f"SELECT {_DUTY_COLUMNS} FROM {{t}}day_duty WHERE wedding = ? AND sub = ? AND start = ?",
        wedding,
        sub,
        start,
    )
    return found[0] if found else None


def duty_seen(wedding: str, sub: str, now: float) -> Tx[int]:
    """The step that notes a connection of ``sub`` opening or closing now, in each of
    their windows that holds ``now``."""
    count: int = yield Sql(
        "UPDATE {t}day_duty SET seen = ? WHERE wedding = ? AND sub = ? AND start <= ?"
        " AND until > ?",
        (now, wedding, sub, now, now),
        count=True,
    )
    return count


def duty_alerted(wedding: str, sub: str, start: float) -> Tx[bool]:
    """The step that marks the window alerted; false when it was already."""
    count: int = yield Sql(
        "UPDATE {t}day_duty SET alerted = 1 WHERE wedding = ? AND sub = ? AND start = ?"
        " AND alerted = 0",
        (wedding, sub, start),
        count=True,
    )
    return count > 0


def forget_member(wedding: str, sub: str) -> Tx[int]:
    """The step that deletes a member's check-ins and duty windows (their erasure); how
    many rows went. The wedding's own rows go with the wedding (its ``wedding`` column)."""
    gone = 0
    for table in ("day_check_ins", "day_duty"):
        count: int = yield Sql(
            f"DELETE FROM {{t}}{table} WHERE wedding = ? AND sub = ?", (wedding, sub), count=True
        )
        gone += count
    return gone
