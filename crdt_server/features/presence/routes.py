"""``GET /api/weddings/{id}/presence``: who is online in which document (over every process
of a cluster), limited to the documents the caller may read: each person's status
(``online``, ``away``, ``busy``, ``offline`` with ``last_seen``), section and typing."""

from __future__ import annotations

import msgspec
from starlette.responses import Response

from crdt_server.edge.guards import readable_documents
from crdt_server.edge.params import WeddingPath
from crdt_server.edge.routing import ApiCall, Routes, json_response
from crdt_server.features.presence.domain import PresenceEntry
from crdt_server.features.presence.extension import PresenceDirectory

__all__ = ["PresenceAnswer", "presence_routes"]

presence_routes = Routes()


class PresenceAnswer(msgspec.Struct, frozen=True):
    presence: list[PresenceEntry]


@presence_routes.get(
    "/api/weddings/{wedding_id}/presence",
    "readPresence",
    "Who is online in which document, since when, and their status, section and typing,"
    " over every process of a cluster",
    family="read",
    response_model=PresenceAnswer,
    errors=(401, 403, 404, 429),
)
async def presence(call: ApiCall, path: WeddingPath) -> Response:
    docs = readable_documents(call, path.wedding_id)
    directory = call.state.extension(PresenceDirectory)
    return json_response(PresenceAnswer(presence=directory.presence(path.wedding_id, docs)))
