"""Acknowledging emergencies over HTTP.

- ``POST /api/weddings/{id}/events/{seq}/ack``: the caller has seen the emergency of
  ``seq``; 200 with its acknowledgements. Idempotent (a repeat changes nothing: the first
  time counts). The first acknowledgement cancels the emergency's re-send.
- ``GET /api/weddings/{id}/events/{seq}/acks``: who acknowledged it, and when.

Acknowledging counts as a write (``CRDT_SERVER_RATE_WRITE_PER_MINUTE``), not against the
custom events' budget: posting events never keeps anyone from acknowledging one. Both are
open to every member who may read the event, and answer 404 for a seq that is
no emergency of the wedding (unknown, not an emergency, or not one the caller may read).
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta
from starlette.responses import Response

from crdt_server.actor import Actor
from crdt_server.edge.guards import readable_documents, wedding_principal
from crdt_server.edge.params import WeddingId
from crdt_server.edge.routing import ApiCall, Routes, json_response
from crdt_server.errors import NotFound
from crdt_server.features.emergencies.extension import Emergencies
from crdt_server.features.emergencies.tables import Ack
from crdt_server.features.events import viewer_of
from crdt_server.storage import EventFilter
from crdt_server.times import rfc3339

__all__ = ["emergency_routes"]

MAX_SEQ = 2**62
_BASE = "/api/weddings/{wedding_id}/events/{seq}"

emergency_routes = Routes()


class EmergencyPath(msgspec.Struct, frozen=True):
    wedding_id: WeddingId
    seq: Annotated[int, Meta(ge=1, le=MAX_SEQ, description="the emergency's seq")]


class AckJson(msgspec.Struct, frozen=True):
    sub: str
    role: str
    at: str
    """When they first acknowledged it (RFC 3339)."""


class Acks(msgspec.Struct, frozen=True):
    seq: int
    acks: list[AckJson]
    """Who acknowledged it, first first (empty: nobody yet)."""


def _answer(seq: int, acks: list[Ack]) -> Response:
    return json_response(Acks(seq, [AckJson(a.sub, a.role, rfc3339(a.at)) for a in acks]))


async def _emergency_of(call: ApiCall, path: EmergencyPath) -> Actor:
    """The caller, if it may read the wedding's emergency of ``seq`` (else 404)."""
    wedding_id = path.wedding_id
    docs = readable_documents(call, wedding_id)
    principal = wedding_principal(call, wedding_id, docs)
    where = EventFilter(docs=frozenset(docs), viewer=viewer_of(principal))
    found = await call.state.extension(Emergencies).emergency(wedding_id, path.seq, where)
    if found is None:
        raise NotFound("no such emergency", field="seq")
    return Actor(principal.user_id, principal.role)


@emergency_routes.post(
    f"{_BASE}/ack",
    "acknowledgeEmergency",
    "Say you have seen an emergency (idempotent); its acknowledgements",
    family="write",
    response_model=Acks,
    errors=(400, 401, 403, 404, 429),
)
async def acknowledge(call: ApiCall, path: EmergencyPath) -> Response:
    """Acknowledge the emergency of ``seq``; 200 with who acknowledged it."""
    actor = await _emergency_of(call, path)
    acks = await call.state.extension(Emergencies).acknowledge(path.wedding_id, path.seq, actor)
    return _answer(path.seq, acks)


@emergency_routes.get(
    f"{_BASE}/acks",
    "listEmergencyAcks",
    "Who acknowledged an emergency, and when",
    family="read",
    response_model=Acks,
    errors=(400, 401, 403, 404, 429),
)
async def list_acks(call: ApiCall, path: EmergencyPath) -> Response:
    """The acknowledgements of the emergency of ``seq``, first first."""
    await _emergency_of(call, path)
    return _answer(
        path.seq, await call.state.extension(Emergencies).acks(path.wedding_id, path.seq)
    )
