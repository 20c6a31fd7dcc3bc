"""The emergencies feature's table: who acknowledged which emergency (an event's seq)."""

from __future__ import annotations

import msgspec

from crdt_server.storage import Table, schema_of
from crdt_server.storage.gateway import Sql, Tx, rows_as

__all__ = ["ACKS", "SCHEMA", "Ack", "acknowledged", "acks_of", "forget_acks_of"]

ACKS = Table(
    "emergency_acks",
    "(wedding {text} NOT NULL, seq {int} NOT NULL, sub {text} NOT NULL,"
    " role {text} NOT NULL, at {real} NOT NULL, PRIMARY KEY (wedding, seq, sub))",
    without_rowid=True,
)
"""One row per person who acknowledged an emergency (the first time they did)."""

SCHEMA = schema_of("emergencies", ACKS)


class Ack(msgspec.Struct, frozen=True):
    sub: str
    role: str
    at: float


def acknowledged(wedding: str, seq: int, sub: str, role: str, now: float) -> Tx[bool]:
    """The step that records ``sub``'s acknowledgement (a repeat changes nothing); whether
    it is the first of this person."""
    added: int = yield Sql(
        "INSERT INTO {t}emergency_acks (wedding, seq, sub, role, at) VALUES (?, ?, ?, ?, ?)"
        " ON CONFLICT (wedding, seq, sub) DO NOTHING",
        (wedding, seq, sub, role, now),
        count=True,
    )
    return added > 0


def acks_of(wedding: str, seq: int) -> Tx[list[Ack]]:
    """The step that reads an emergency's acknowledgements, first first."""
    return (
        yield from rows_as(
            Ack,
            "SELECT sub, role, at FROM {t}emergency_acks WHERE wedding = ? AND seq = ?"
            " ORDER BY at, sub",
            wedding,
            seq,
        )
    )


def forget_acks_of(wedding: str, sub: str) -> Tx[int]:
    """The step that deletes a person's acknowledgements (their erasure)."""
    gone: int = yield Sql(
        "DELETE FROM {t}emergency_acks WHERE wedding = ? AND sub = ?", (wedding, sub), count=True
    )
    return gone
