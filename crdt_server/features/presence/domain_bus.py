"""The presence messages on the bus, as typed Structs (:mod:`crdt_server.cluster.messages`).

A process publishes its whole view of a wedding as a ``presence`` message: ``seen``, who
is in which document (each a list of exactly seven values, as every release since the
first reads them), and, new in this release, ``states``, what their presence says there.
``states`` comes after the fields the earlier releases read and only when not empty, so
those releases read this one's messages during a roll (they ignore a field they do not
know), and a message without it is byte for byte what they sent.
"""

from __future__ import annotations

from typing import Any

import msgspec

from crdt_server.cluster.messages import BusMessage, item_from_bus
from crdt_server.documents import DOCUMENT_KINDS
from crdt_server.features.presence.domain import MAX_SECTION

__all__ = ["PRESENCE", "QUERY", "PresenceMessage", "PresenceQuery", "Seen", "State"]

PRESENCE = "presence"
QUERY = "presence_query"


class Seen(msgspec.Struct, array_like=True):
    """A person in a document as one process sees them. On the bus: a list of exactly
    these seven values (the previous release drops any other length; a newer one's extra
    trailing items are ignored here)."""

    doc: str
    user_id: str
    name: str
    role: str
    connections: int
    last_activity: float
    since: float

    @classmethod
    def from_bus(cls, raw: Any) -> Seen | None:
        seen = item_from_bus(raw, cls)
        return seen if seen is not None and seen.doc in DOCUMENT_KINDS else None


class State(msgspec.Struct, array_like=True):
    """What a person's presence in a document says, as one process sees it (the
    ``states`` of a ``presence`` message: a list of these values, beside ``seen``)."""

    doc: str
    user_id: str
    active: float
    """Unix time of their last activity there (see the module docstring)."""
    busy: bool
    section: str | None
    typing: bool

    @classmethod
    def from_bus(cls, raw: Any) -> State | None:
        state = item_from_bus(raw, cls)
        if state is None or state.doc not in DOCUMENT_KINDS:
            return None
        if state.section is not None and len(state.section) > MAX_SECTION:
            state.section = None
        return state


class PresenceMessage(BusMessage, frozen=True, tag=PRESENCE, omit_defaults=True):
    """A process's whole view of a wedding (empty: it serves nobody there any more).

    ``states`` is new in this release and sent only when not empty, after the fields the
    previous release reads (it ignores a field it does not know), so a message without
    any is byte for byte what that release sent."""

    wedding: str
    seen: list[Any]
    """:class:`Seen` values, each read on its own (a bad one is dropped, not the rest)."""
    states: list[Any] = []
    """:class:`State` values (a process of the previous release sends none)."""


class PresenceQuery(BusMessage, frozen=True, tag=QUERY):
    """A process that starts asks the others for their views."""
