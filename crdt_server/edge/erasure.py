"""Erasure routes (admin key) and the 410 guard for erased weddings.

- ``DELETE /api/weddings/{id}``: erase the wedding. 200 once its bytes are gone from the
  store's files; 202 with ``status_url`` when another process's reader keeps them there
  for now (the status turns ``done`` within seconds).
- ``GET /api/weddings/{id}/erasure``: ``{"wedding", "status": "done" | "pending"}``; 404
  if the wedding is not erased.
- ``DELETE /api/weddings/{id}/tombstone``: let an erased wedding's id be used again.
- ``POST /api/weddings/{id}/guests/{guest_id}/erase``: erase one guest (GDPR art. 17).

Every other request under ``/api/weddings/{id}`` for an erased wedding is answered 410 by
:class:`TombstoneGuard` (upgrades are refused with 410 by the gate).
"""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from crdt_server.core.erasure import ErasureService
from crdt_server.edge.admin import ApiError, require_admin
from crdt_server.names import valid_wedding_id
from storage import StoreError

__all__ = ["TombstoneGuard", "erasure_routes", "problem"]

_WEDDING_PATH = re.compile(r"^/api/weddings/([^/]+)(/.*)?$")
_ALWAYS_OPEN = re.compile(r"^/(erasure|tombstone)$")
_GUEST_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def problem(status: int, title: str, detail: str, field: str | None = None) -> JSONResponse:
    """An RFC 9457 problem (with the ``error`` alias of ``detail``)."""
    body: dict[str, object] = {
        "type": "about:blank",
        "title": title,
        "status": status,
        "detail": detail,
        "error": detail,
    }
    if field is not None:
        body["errors"] = [{"field": field, "message": detail}]
    return JSONResponse(body, status_code=status, media_type="application/problem+json")


def _error(exc: ApiError) -> JSONResponse:
    return problem(exc.status_code, "Request refused", exc.message)


def _service(request: Request) -> ErasureService:
    service: ErasureService = request.app.state.erasures
    return service


def _wedding(request: Request) -> str:
    wedding_id = str(request.path_params["wedding_id"])
    if not valid_wedding_id(wedding_id):
        raise ApiError(404, "no such wedding id")
    return wedding_id


async def erase_wedding(request: Request) -> JSONResponse:
    """Erase every document, history row and stored byte of a wedding; tombstone it."""
    try:
        require_admin(request)
        wedding_id = _wedding(request)
        documents, scrubbed = await _service(request).erase_wedding(wedding_id)
    except ApiError as exc:
        return _error(exc)
    except StoreError:
        return problem(503, "Store unavailable", "the store could not erase it, retry")
    body = {"wedding": wedding_id, "documents_deleted": documents}
    if scrubbed:
        return JSONResponse({**body, "status": "done"})
    status_url = f"/api/weddings/{wedding_id}/erasure"
    return JSONResponse(
        {**body, "status": "pending", "status_url": status_url},
        status_code=202,
        headers={"Location": status_url},
    )


async def erasure_status(request: Request) -> JSONResponse:
    """Whether an erased wedding's bytes are gone from the store's files yet."""
    try:
        require_admin(request)
        wedding_id = _wedding(request)
    except ApiError as exc:
        return _error(exc)
    status = _service(request).status(wedding_id)
    if status is None:
        return problem(404, "Not erased", "this wedding was not erased")
    return JSONResponse({"wedding": wedding_id, "status": status})


async def lift_tombstone(request: Request) -> JSONResponse:
    """Let an erased wedding's id be used again (the only way it can be)."""
    try:
        require_admin(request)
        wedding_id = _wedding(request)
        lifted = await _service(request).lift(wedding_id)
    except ApiError as exc:
        return _error(exc)
    except StoreError:
        return problem(503, "Store unavailable", "the store could not lift it, retry")
    if not lifted:
        return problem(404, "Not erased", "this wedding was not erased")
    return JSONResponse({"wedding": wedding_id, "tombstone": "lifted"})


async def erase_guest(request: Request) -> JSONResponse:
    """Remove one guest from the wedding and rewrite its stored logs without them."""
    try:
        require_admin(request)
        wedding_id = _wedding(request)
        guest_id = str(request.path_params["guest_id"])
        if not _GUEST_ID.match(guest_id):
            return problem(400, "Bad guest id", "1 to 64 of A-Z a-z 0-9 _ -", "guest_id")
        found = await _service(request).erase_guest(wedding_id, guest_id)
    except ApiError as exc:
        return _error(exc)
    except StoreError:
        return problem(503, "Store unavailable", "the store could not rewrite, retry")
    return JSONResponse({"wedding": wedding_id, "guest_id": guest_id, "found": found})


def erasure_routes() -> list[Route]:
    wedding = "/api/weddings/{wedding_id}"
    return [
        Route(wedding, erase_wedding, methods=["DELETE"]),
        Route(f"{wedding}/erasure", erasure_status, methods=["GET"]),
        Route(f"{wedding}/tombstone", lift_tombstone, methods=["DELETE"]),
        Route(f"{wedding}/guests/{{guest_id}}/erase", erase_guest, methods=["POST"]),
    ]


class TombstoneGuard:
    """ASGI middleware: every HTTP request under an erased wedding gets 410 (except the
    erasure status and the tombstone itself), before any route can load a room."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            match = _WEDDING_PATH.match(scope["path"])
            if match and not _ALWAYS_OPEN.match(match.group(2) or ""):
                service: ErasureService | None = getattr(scope["app"].state, "erasures", None)
                if service is not None and service.gone(match.group(1)):
                    response = problem(410, "Gone", "this wedding was deleted")
                    await response(scope, receive, send)
                    return
        await self.app(scope, receive, send)
