"""The path parameters the HTTP API shares, typed once.

A handler reads its path as one of these Structs (or its own, built from these types), and
the route's OpenAPI parameters come from the same types (:mod:`crdt_server.edge.routing`).
A value that does not match its type is a 404 naming the parameter, before the handler runs.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from crdt_server.names import WEDDING_ID_PATTERN

__all__ = [
    "CalendarTokenId",
    "ConflictId",
    "DeliveryId",
    "DocPath",
    "DocumentKind",
    "GuestId",
    "HookId",
    "MemberPath",
    "MemberSub",
    "PageLimit",
    "RoomKind",
    "SourceName",
    "ThreadId",
    "WeddingId",
    "WeddingPath",
]

WeddingId = Annotated[
    str, Meta(pattern=f"^{WEDDING_ID_PATTERN.pattern}$", description="a wedding id")
]
DocumentKind = Literal["timeline", "budget", "guests", "seating"]
"""A wedding document (``crdt_server.documents.DOCUMENT_KINDS``; a test keeps them equal)."""
RoomKind = Literal["timeline", "budget", "guests", "seating", "conflicts"]
"""A wedding document or the conflicts room (``crdt_server.names.ROOM_KINDS``)."""
GuestId = Annotated[str, Meta(pattern="^[A-Za-z0-9_-]{1,64}$", description="a guest id")]
ConflictId = Annotated[
    str,
    Meta(
        pattern="^([a-z_]+\\.[a-z_]+:[0-9a-f]{12}|cw:[0-9a-f]{20})$",
        description="a conflict id",
    ),
]
"""A finding's code and digest (``seating.table_over_capacity:0123456789ab``), or a
concurrent edit's (``cw:`` and 20 hex digits: ``crdt_server.core.overwrites.finding_id``)."""
PageLimit = Annotated[
    int, Meta(ge=1, le=500, description="at most this many (1 to 500; default 50)")
]
"""How many items a page of a list holds (its field's default is 50)."""
MemberSub = Annotated[
    str, Meta(pattern="^[^\\x00-\\x1f\\x7f]{1,256}$", description="a member's user id")
]

SourceName = Annotated[
    str, Meta(pattern="^[a-z0-9][a-z0-9_-]{0,39}$", description="an inbound webhook source's name")
]
CalendarTokenId = Annotated[
    str, Meta(pattern="^ct_[0-9a-f]{16}$", description="a calendar feed token's id")
]
HookId = Annotated[
    str, Meta(pattern="^wh_[0-9a-f]{24}$", description="an outgoing webhook endpoint's id")
]
DeliveryId = Annotated[
    str, Meta(pattern="^msg_[0-9a-f]{24}$", description="a webhook delivery's id")
]
ThreadId = Annotated[str, Meta(min_length=1, max_length=64, description="a thread id")]


class WeddingPath(msgspec.Struct, frozen=True):
    wedding_id: WeddingId


class DocPath(msgspec.Struct, frozen=True):
    wedding_id: WeddingId
    doc: RoomKind


class MemberPath(msgspec.Struct, frozen=True):
    wedding_id: WeddingId
    sub: MemberSub
