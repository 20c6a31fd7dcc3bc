"""Erasure routes (admin key) and the 410 guard for erased weddings.

- ``DELETE /api/weddings/{id}``: erase the wedding. 200 once its bytes are gone from the
  store's files; 202 with ``status_url`` when another process's reader keeps them there
  for now (the status turns ``done`` within seconds). Saturday mode: on the wedding's day
  (its profile's date in its zone) it is refused with 409 unless ``?on_wedding_day=true``.
- ``GET /api/weddings/{id}/erasure``: ``{"wedding", "status": "done" | "pending"}``; 404
  if the wedding is not erased.
- ``DELETE /api/weddings/{id}/tombstone``: let an erased wedding's id be used again.
- ``POST /api/weddings/{id}/guests/{guest_id}/erase``: erase one guest (GDPR art. 17).

Every other request under ``/api/weddings/{id}`` for an erased wedding is answered 410 by
:class:`TombstoneGuard` (upgrades are refused with 410 by the gate).
"""

from __future__ import annotations

import re
from typing import Annotated

import msgspec
from msgspec import Meta
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from crdt_server import clock
from crdt_server.documents.model import zone_of
from crdt_server.documents.schema import read_profile
from crdt_server.edge.bodies import (
    ErasureAnswer,
    ErasureStatus,
    GuestErasureAnswer,
    TombstoneAnswer,
)
from crdt_server.edge.params import WeddingId, WeddingPath
from crdt_server.edge.problems import ApiError, problem_response
from crdt_server.edge.routing import ApiCall, Routes, json_response
from crdt_server.edge.state import state_of_scope
from crdt_server.errors import Unavailable
from crdt_server.storage import StoreError

__all__ = ["TombstoneGuard", "erasure_routes"]

_WEDDING_PATH = re.compile(r"^/api/weddings/([^/]+)(/.*)?$")
_ALWAYS_OPEN = re.compile(r"^/(erasure|tombstone)$")
_GUEST_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_ADMIN = (401, 403, 404, 429)
_WEDDING = "/api/weddings/{wedding_id}"

erasure_routes = Routes()


class ErasureQuery(msgspec.Struct, frozen=True):
    on_wedding_day: Annotated[
        bool, Meta(description="erase it even on the wedding's day (Saturday mode)")
    ] = False


async def _their_day(call: ApiCall, wedding_id: str) -> bool:
    """Whether today, in the wedding's zone, is the date of its timeline's profile."""
    found = await call.state.weddings.documents(wedding_id, kinds=("timeline",))
    profile = read_profile(found.get("timeline"))
    if profile.date is None:
        return False
    today = clock.utcnow().astimezone(zone_of(profile.time_zone)).date()
    return today.isoformat() == profile.date


class GuestErasurePath(msgspec.Struct, frozen=True):
    wedding_id: WeddingId
    guest_id: Annotated[
        str,
        # Documented, and checked by the handler: a malformed guest id is a 400 naming it
        # (clients rely on it), where a typed path parameter would be a 404.
        Meta(description="a guest id", extra_json_schema={"pattern": _GUEST_ID.pattern}),
    ]


@erasure_routes.delete(
    _WEDDING,
    "deleteWedding",
    "Erase a wedding (documents, history, events, bytes on disk) and tombstone its id",
    family="admin",
    security="admin",
    response_model=ErasureAnswer,
    errors=(*_ADMIN, 409, 503),
)
async def erase_wedding(call: ApiCall, path: WeddingPath, query: ErasureQuery) -> Response:
    """Erase every document, history row, event and stored byte of a wedding; tombstone it."""
    wedding_id = path.wedding_id
    if not query.on_wedding_day and await _their_day(call, wedding_id):
        raise ApiError.field(
            409,
            "on_wedding_day",
            "Saturday mode: today is this wedding's day; add ?on_wedding_day=true to erase it",
        )
    try:
        documents, scrubbed = await call.state.erasures.erase_wedding(wedding_id)
    except StoreError as exc:
        raise Unavailable("the store could not erase it, retry") from exc
    if scrubbed:
        return json_response(ErasureAnswer(wedding_id, documents, "done"))
    status_url = f"/api/weddings/{wedding_id}/erasure"
    response = json_response(
        ErasureAnswer(wedding_id, documents, "pending", status_url), status_code=202
    )
    response.headers["Location"] = status_url
    return response


@erasure_routes.get(
    f"{_WEDDING}/erasure",
    "erasureStatus",
    "Whether an erased wedding's bytes are gone from the store's files",
    family="admin",
    security="admin",
    response_model=ErasureStatus,
    errors=_ADMIN,
)
async def erasure_status(call: ApiCall, path: WeddingPath) -> Response:
    """Whether an erased wedding's bytes are gone from the store's files yet."""
    status = call.state.erasures.status(path.wedding_id)
    if status is None:
        raise ApiError(404, "this wedding was not erased")
    return json_response(ErasureStatus(path.wedding_id, status))


@erasure_routes.delete(
    f"{_WEDDING}/tombstone",
    "liftTombstone",
    "Let an erased wedding's id be used again",
    family="admin",
    security="admin",
    response_model=TombstoneAnswer,
    errors=(*_ADMIN, 503),
)
async def lift_tombstone(call: ApiCall, path: WeddingPath) -> Response:
    """Let an erased wedding's id be used again (the only way it can be)."""
    try:
        lifted = await call.state.erasures.lift(path.wedding_id)
    except StoreError as exc:
        raise Unavailable("the store could not lift it, retry") from exc
    if not lifted:
        raise ApiError(404, "this wedding was not erased")
    return json_response(TombstoneAnswer(path.wedding_id, "lifted"))


@erasure_routes.post(
    f"{_WEDDING}/guests/{{guest_id}}/erase",
    "eraseGuest",
    "Erase one guest (GDPR art. 17): entry, seat and every stored byte of them",
    family="admin",
    security="admin",
    response_model=GuestErasureAnswer,
    errors=(400, *_ADMIN, 503),
)
async def erase_guest(call: ApiCall, path: GuestErasurePath) -> Response:
    """Remove one guest from the wedding and rewrite its stored logs without them."""
    wedding_id, guest_id = path.wedding_id, path.guest_id
    if not _GUEST_ID.match(guest_id):
        raise ApiError.field(400, "guest_id", "1 to 64 of A-Z a-z 0-9 _ -")
    try:
        found = await call.state.erasures.erase_guest(wedding_id, guest_id)
    except StoreError as exc:
        raise Unavailable("the store could not rewrite, retry") from exc
    return json_response(GuestErasureAnswer(wedding_id, guest_id, found))


class TombstoneGuard:
    """ASGI middleware: every HTTP request under an erased wedding gets 410 (except the
    erasure status and the tombstone itself), before any route can load a room."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            match = _WEDDING_PATH.match(scope["path"])
            if match and not _ALWAYS_OPEN.match(match.group(2) or ""):
                try:
                    gone = state_of_scope(scope).erasures.gone(match.group(1))
                except RuntimeError:
                    gone = False  # no lifespan (yet): nothing is erased
                if gone:
                    response = problem_response(ApiError(410, "this wedding was deleted"))
                    await response(scope, receive, send)
                    return
        await self.app(scope, receive, send)
