"""The text messages' tables, and the only SQL that reads and writes them.

- ``sms_keys``: the key of delivery report tokens and code hashes (one row, inserted only
  if absent and read back, so every process and host uses the same one).
- ``sms_phones``: each member's number: the verified one (``phone``, ``''``: none), the one
  waiting for its code (``pending``, the code's hash, expiry and wrong tries), whether the
  number said STOP, and what the member wants texted and their quiet hours.
- ``sms_outbox``: every text, claimed in lane order (emergency 2, urgent and codes 1, the
  rest 0) then age, with a lease; kept a week once sent (delivery reports land on it; the
  hourly code limit counts it), then deleted.
- ``sms_days``: texts queued per UTC day, per wedding (``scope``: ``w:<id>``) and for the
  server (``scope``: ``server``): the daily caps.
- ``sms_cursor``: the last inbox row (notification id) looked at.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

import msgspec

from crdt_server.errors import Conflict
from crdt_server.features.sms.domain import code_hash
from crdt_server.storage import Table, schema_of
from crdt_server.storage.gateway import Sql, Tx, rows_as

__all__ = [
    "verify_code",
    "LANES",
    "fresh_notice",
    "mark_failed",
    "mark_sent",
    "prune",
    "queued",
    "release",
    "start_cursor",
    "PHONE_COLUMNS",
    "SCHEMA",
    "Claimed",
    "Count",
    "LastId",
    "Phone",
    "Sent",
    "claim",
    "count_day",
    "erase_member",
    "keep_key",
]

KEYS = Table(
    "sms_keys",
    "(name {ctext} PRIMARY KEY, secret {text} NOT NULL, created_at {real} NOT NULL)",
    wedding=False,
)
PHONES = Table(
    "sms_phones",
    "(wedding {ctext} NOT NULL, sub {ctext} NOT NULL, phone {ctext} NOT NULL,"
    " verified_at {real}, pending {ctext} NOT NULL, code_hash {text} NOT NULL,"
    " code_expires {real} NOT NULL, tries {int} NOT NULL, stopped {int} NOT NULL,"
    " mentions {int} NOT NULL, urgent {int} NOT NULL, day {int} NOT NULL,"
    " quiet_start {text} NOT NULL, quiet_end {text} NOT NULL, zone {text} NOT NULL,"
    " PRIMARY KEY (wedding, sub))",
    indexes=("CREATE INDEX IF NOT EXISTS sms_phones_phone ON {t}sms_phones (phone)",),
)
OUTBOX = Table(
    "sms_outbox",
    "(id {id}, wedding {ctext} NOT NULL, sub {ctext} NOT NULL, phone {ctext} NOT NULL,"
    " body {text} NOT NULL, kind {ctext} NOT NULL, notice {int} NOT NULL,"
    " lane {int} NOT NULL, due_at {real} NOT NULL, attempts {int} NOT NULL DEFAULT 0,"
    " claimed_until {real} NOT NULL DEFAULT 0, status {ctext} NOT NULL,"
    " dlr {int} NOT NULL DEFAULT 0, sent_at {real}, reported_at {real},"
    " created_at {real} NOT NULL, UNIQUE (wedding, sub, notice))",
    indexes=(
        "CREATE INDEX IF NOT EXISTS sms_outbox_due ON {t}sms_outbox (status, lane, due_at, id)",
        "CREATE INDEX IF NOT EXISTS sms_outbox_member ON {t}sms_outbox (wedding, sub, kind)",
    ),
)
DAYS = Table(
    "sms_days",
    "(day {ctext} NOT NULL, scope {ctext} NOT NULL, n {int} NOT NULL, PRIMARY KEY (day, scope))",
    wedding=False,
)
CURSOR = Table("sms_cursor", "(name {ctext} PRIMARY KEY, last_id {int} NOT NULL)", wedding=False)
SCHEMA = schema_of("sms", KEYS, PHONES, OUTBOX, DAYS, CURSOR)
"""Numbers and texts are erased with their wedding; a member's with the member."""


class Count(msgspec.Struct, frozen=True):
    n: int


class LastId(msgspec.Struct, frozen=True):
    last_id: int


class Secret(msgspec.Struct, frozen=True):
    secret: str


PHONE_COLUMNS = (
    "wedding, sub, phone, verified_at, pending, code_hash, code_expires, tries, stopped,"
    " mentions, urgent, day, quiet_start, quiet_end, zone"
)


class Phone(msgspec.Struct, frozen=True):
    """A member's row of ``sms_phones`` (:data:`PHONE_COLUMNS`)."""

    wedding: str
    sub: str
    phone: str
    verified_at: float | None
    pending: str
    code_hash: str
    code_expires: float
    tries: int
    stopped: int
    mentions: int
    urgent: int
    day: int
    quiet_start: str
    quiet_end: str
    zone: str


class Claimed(msgspec.Struct, frozen=True):
    id: int
    wedding: str
    sub: str
    phone: str
    body: str
    lane: int
    attempts: int
    kind: str


class Sent(msgspec.Struct, frozen=True):
    """A text as its sender sees it (``GET /api/session/phone/texts``)."""

    id: int
    kind: str
    status: str
    dlr: int
    created_at: float
    sent_at: float | None
    reported_at: float | None


def keep_key(fresh: str, now: float) -> Tx[str]:
    yield Sql(
        "INSERT INTO {t}sms_keys (name, secret, created_at) VALUES ('sms', ?, ?)"
        " ON CONFLICT DO NOTHING",
        (fresh, now),
    )
    [row] = yield from rows_as(Secret, "SELECT secret FROM {t}sms_keys WHERE name = 'sms'")
    return row.secret


def count_day(day: str, scopes: tuple[str, ...], most: tuple[int, ...]) -> Tx[int | None]:
    """Count one more text of ``day`` against each scope; the index of the first scope at
    its limit (``most``, in the same order), nothing counted then; ``None``: counted."""
    for index, (scope, limit) in enumerate(zip(scopes, most, strict=True)):
        rows = yield from rows_as(
            Count, "SELECT n FROM {t}sms_days WHERE day = ? AND scope = ?", day, scope
        )
        if rows and rows[0].n >= limit:
            return index
    for scope in scopes:
        yield Sql(
            "INSERT INTO {t}sms_days (day, scope, n) VALUES (?, ?, 1)"
            " ON CONFLICT (day, scope) DO UPDATE SET n = {t}sms_days.n + 1",
            (day, scope),
        )
    return None


def claim(now: float, until: float, limit: int) -> Tx[list[Claimed]]:
    """Claim up to ``limit`` due texts, emergencies first, then urgent (and codes), then
    the rest; oldest first within a lane. A claim lapses at ``until`` (at least once)."""
    claimed = yield from rows_as(
        Claimed,
        "UPDATE {t}sms_outbox SET claimed_until = ?, attempts = attempts + 1 WHERE id IN"
        " (SELECT id FROM {t}sms_outbox WHERE status = 'queued' AND due_at <= ?"
        " AND claimed_until < ? ORDER BY lane DESC, id LIMIT ?)"
        " RETURNING id, wedding, sub, phone, body, lane, attempts, kind",
        until,
        now,
        now,
        limit,
    )
    return sorted(claimed, key=lambda c: (-c.lane, c.id))


def erase_member(wedding: str, sub: str) -> Tx[bool]:
    """Forget a member's number and texts (erasure)."""
    gone = yield Sql(
        "DELETE FROM {t}sms_phones WHERE wedding = ? AND sub = ?", (wedding, sub), count=True
    )
    texts = yield Sql(
        "DELETE FROM {t}sms_outbox WHERE wedding = ? AND sub = ?", (wedding, sub), count=True
    )
    return bool(gone) or bool(texts)


LANES = {"emergency": 2, "urgent": 1, "code": 1, "day": 1, "mention": 0}
"""The outbox lane of each kind of text (claimed highest first)."""


def fresh_notice() -> int:
    return secrets.randbelow(2**53) + 1


def queued(
    wedding: str, sub: str, phone: str, body: str, kind: str, notice: int, due: float,
    now: float, status: str = "queued",
) -> Tx[None]:  # fmt: skip
    """A text to send (``status`` ``queued``), or a notice decided not to be texted
    (``skipped``: STOP, the member's choice, nothing left to say; ``capped``: a daily cap),
    kept so that it is decided once."""
    yield Sql(
        "INSERT INTO {t}sms_outbox (wedding, sub, phone, body, kind, notice, lane, due_at,"
        " status, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT DO NOTHING",
        (wedding, sub, phone, body, kind, notice, LANES.get(kind, 0), due, status, now),
    )


def start_cursor(last: int) -> Tx[None]:
    yield Sql(
        "INSERT INTO {t}sms_cursor (name, last_id) VALUES ('notices', ?) ON CONFLICT DO NOTHING",
        (last,),
    )


def mark_sent(id_: int, at: float) -> Tx[None]:
    yield Sql(
        "UPDATE {t}sms_outbox SET status = CASE WHEN status = 'queued' THEN 'sent'"
        " ELSE status END, sent_at = ? WHERE id = ?",
        (at, id_),
    )


def mark_failed(id_: int) -> Tx[None]:
    yield Sql("UPDATE {t}sms_outbox SET status = 'failed' WHERE id = ?", (id_,))


def release(id_: int, at: float, *, undo: bool = False) -> Tx[None]:
    less = ", attempts = attempts - 1" if undo else ""
    yield Sql(
        f"UPDATE {{t}}sms_outbox SET claimed_until = 0,"
        f" due_at = CASE WHEN due_at > ? THEN due_at ELSE ? END{less} WHERE id = ?",
        (at, at, id_),
    )


def prune(before: float) -> Tx[None]:
    """Forget texts decided before ``before`` (sent, failed, skipped...), and the counts of
    the days before it."""
    yield Sql("DELETE FROM {t}sms_outbox WHERE status <> 'queued' AND created_at < ?", (before,))
    day = datetime.fromtimestamp(before, UTC).date().isoformat()
    yield Sql("DELETE FROM {t}sms_days WHERE day < ?", (day,))


def verify_code(
    key: bytes, wedding: str, sub: str, code: str, now: float, most_tries: int
) -> Tx[str | None]:
    """Make the member's pending number theirs if ``code`` is its code (within its time
    and tries); the number, or ``None`` (a wrong code counts a try).
    :class:`~crdt_server.errors.Conflict` if another person verified it meanwhile."""
    found = yield from rows_as(
        Phone,
        f"SELECT {PHONE_COLUMNS} FROM {{t}}sms_phones WHERE wedding = ? AND sub = ?",
        wedding,
        sub,
    )
    if not found or not found[0].pending:
        return None
    row = found[0]
    if row.code_expires < now or row.tries >= most_tries:
        return None
    if not secrets.compare_digest(code_hash(key, wedding, sub, row.pending, code), row.code_hash):
        yield Sql(
            "UPDATE {t}sms_phones SET tries = tries + 1 WHERE wedding = ? AND sub = ?",
            (wedding, sub),
        )
        return None
    taken = yield from rows_as(
        Count, "SELECT COUNT(*) FROM {t}sms_phones WHERE phone = ? AND sub <> ?", row.pending, sub
    )
    if taken[0].n:
        raise Conflict("another person verified this number", field="code")
    yield Sql(
        "UPDATE {t}sms_phones SET phone = pending, verified_at = ?, pending = '',"
        " code_hash = '', code_expires = 0, tries = 0 WHERE wedding = ? AND sub = ?",
        (now, wedding, sub),
    )
    return row.pending
