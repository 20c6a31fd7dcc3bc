"""The push feature's tables, and the only SQL that reads and writes them.

- ``push_keys``: the VAPID key pair (one row, ``name = 'vapid'``), inserted only if absent
  and then read back, so two hosts starting together sign with the same key.
- ``push_subscriptions``: each browser's subscription (its push service endpoint and
  keys), of a member of a wedding, tied to the device session that registered it.
- ``push_outbox``: one row per (notification, subscription) to deliver, claimed in order of
  priority (emergency, urgent, normal) then age; kept a while once done, so a notification
  read again is not queued twice.
- ``push_cursor``: the last notification (inbox row id) looked at.
- ``push_prefs``: what each person wants pushed, and their quiet hours (version 2: the
  reminders too).
"""

from __future__ import annotations

import msgspec

from crdt_server.storage import Migration, Table, schema_of
from crdt_server.storage.gateway import Sql, Tx, rows_as

__all__ = [
    "SCHEMA",
    "Claimed",
    "Count",
    "IdRow",
    "LastId",
    "SUBSCRIPTION_COLUMNS",
    "KeyRow",
    "Prefs",
    "SubscriptionRow",
    "erase_member",
    "remove_subscriptions",
]

KEYS = Table(
    "push_keys",
    "(name {ctext} PRIMARY KEY, private_key {text} NOT NULL, created_at {real} NOT NULL)",
    wedding=False,
)
SUBSCRIPTIONS = Table(
    "push_subscriptions",
    "(id {ctext} PRIMARY KEY, wedding {ctext} NOT NULL, sub {ctext} NOT NULL,"
    " sid {ctext} NOT NULL, endpoint {text} NOT NULL, p256dh {text} NOT NULL,"
    " auth {text} NOT NULL, created_at {real} NOT NULL)",
    indexes=(
        "CREATE INDEX IF NOT EXISTS push_subscriptions_member"
        " ON {t}push_subscriptions (wedding, sub)",
        "CREATE INDEX IF NOT EXISTS push_subscriptions_sid ON {t}push_subscriptions (sid)",
    ),
)
OUTBOX = Table(
    "push_outbox",
    "(id {id}, wedding {ctext} NOT NULL, subscription {ctext} NOT NULL,"
    " notice {int} NOT NULL, lane {int} NOT NULL, due_at {real} NOT NULL,"
    " attempts {int} NOT NULL DEFAULT 0, claimed_until {real} NOT NULL DEFAULT 0,"
    " done_at {real}, created_at {real} NOT NULL, UNIQUE (subscription, notice))",
    indexes=(
        "CREATE INDEX IF NOT EXISTS push_outbox_due ON {t}push_outbox (done_at, lane, due_at, id)",
    ),
)
CURSOR = Table(
    "push_cursor",
    "(name {ctext} PRIMARY KEY, last_id {int} NOT NULL)",
    wedding=False,
)
PREFS = Table(
    "push_prefs",
    "(wedding {ctext} NOT NULL, sub {ctext} NOT NULL, mentions {int} NOT NULL,"
    " urgent {int} NOT NULL, emergencies {int} NOT NULL, quiet_start {text} NOT NULL,"
    " quiet_end {text} NOT NULL, zone {text} NOT NULL, PRIMARY KEY (wedding, sub))",
)
_REMINDERS = Migration(
    2,
    ("ALTER TABLE push_prefs ADD COLUMN reminders INTEGER NOT NULL DEFAULT 1",),
    ("ALTER TABLE {s}.push_prefs ADD COLUMN reminders bigint NOT NULL DEFAULT 1",),
)
"""Version 2: whether a person wants reminders pushed (tasks and payments falling due);
on for everyone who had settings, as it is for who has none."""
SCHEMA = schema_of("push", KEYS, SUBSCRIPTIONS, OUTBOX, CURSOR, PREFS, migrations=[_REMINDERS])


class KeyRow(msgspec.Struct, frozen=True):
    private_key: str


class SubscriptionRow(msgspec.Struct, frozen=True):
    id: str
    wedding: str
    sub: str
    sid: str
    endpoint: str
    p256dh: str
    auth: str


SUBSCRIPTION_COLUMNS = "id, wedding, sub, sid, endpoint, p256dh, auth"


class Claimed(msgspec.Struct, frozen=True):
    """A message to send, as claimed."""

    id: int
    wedding: str
    subscription: str
    notice: int
    lane: int
    attempts: int


class Prefs(msgspec.Struct, frozen=True):
    """What a person wants pushed (1 or 0) and their quiet hours (``HH:MM`` in ``zone``;
    both empty: none)."""

    mentions: int = 1
    urgent: int = 1
    emergencies: int = 1
    quiet_start: str = ""
    quiet_end: str = ""
    zone: str = ""
    reminders: int = 1


class Count(msgspec.Struct, frozen=True):
    n: int


class LastId(msgspec.Struct, frozen=True):
    last_id: int


def remove_subscriptions(where: str, *params: object) -> Tx[list[str]]:
    """The step that removes the subscriptions ``where`` says (a condition on
    ``push_subscriptions``) and their queued messages; the ids removed."""
    gone = yield from rows_as(
        IdRow, f"DELETE FROM {{t}}push_subscriptions WHERE {where} RETURNING id", *params
    )
    ids = [g.id for g in gone]
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        marks = ",".join("?" * len(chunk))
        yield Sql(f"DELETE FROM {{t}}push_outbox WHERE subscription IN ({marks})", tuple(chunk))
    return ids


def erase_member(wedding: str, sub: str) -> Tx[bool]:
    """The step that erases a person from push: their subscriptions, queued messages and
    settings; whether there was any."""
    ids = yield from remove_subscriptions("wedding = ? AND sub = ?", wedding, sub)
    prefs: int = yield Sql(
        "DELETE FROM {t}push_prefs WHERE wedding = ? AND sub = ?", (wedding, sub), count=True
    )
    return bool(ids) or prefs > 0


class IdRow(msgspec.Struct, frozen=True):
    id: str
