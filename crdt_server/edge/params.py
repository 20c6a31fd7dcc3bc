"""The path parameters the HTTP API shares, typed once.

A handler reads its path as one of these Structs (or its own, built from these types), and
the route's OpenAPI parameters come from the same types (:mod:`crdt_server.edge.routing`).
A value that does not match its type is a 404 naming the parameter, before the handler runs.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from crdt_server.documents import DocumentKind
from crdt_server.names import WEDDING_ID_PATTERN

__all__ = [
    "DocPath",
    "DocumentKind",
    "GuestId",
    "PageLimit",
    "RoomKind",
    "WeddingId",
    "WeddingPath",
]

WeddingId = Annotated[
    str, Meta(pattern=f"^{WEDDING_ID_PATTERN.pattern}$", description="a wedding id")
]
RoomKind = Literal[DocumentKind, "conflicts"]
"""A wedding document or the conflicts room (``crdt_server.names.ROOM_KINDS``)."""
GuestId = Annotated[str, Meta(pattern="^[A-Za-z0-9_-]{1,64}$", description="a guest id")]
PageLimit = Annotated[
    int, Meta(ge=1, le=500, description="at most this many (1 to 500; default 50)")
]
"""How many items a page of a list holds (its field's default is 50)."""


class WeddingPath(msgspec.Struct, frozen=True):
    wedding_id: WeddingId


class DocPath(msgspec.Struct, frozen=True):
    wedding_id: WeddingId
    doc: RoomKind
