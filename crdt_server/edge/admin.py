"""Admin HTTP routes (admin API key): sessions (mint a token for an app's user) and
revocation. Deleting a wedding and erasing a guest live in :mod:`crdt_server.edge.erasure`."""

from __future__ import annotations

from starlette.responses import Response

from crdt_server import clock
from crdt_server.auth.permissions import PermissionsError, parse_overrides
from crdt_server.auth.tokens import valid_email
from crdt_server.documents import DOCUMENT_KINDS
from crdt_server.edge.bodies import (
    RevokeAnswer,
    RevokeRequest,
    SessionAnswer,
    SessionRequest,
)
from crdt_server.edge.links import missing_public_url, public_url
from crdt_server.edge.params import WeddingPath
from crdt_server.edge.problems import ApiError
from crdt_server.edge.routing import ApiCall, Routes, json_response
from crdt_server.errors import Unavailable
from crdt_server.storage import StoreError

__all__ = ["ApiError", "admin_routes"]
# ``ApiError`` stays importable from here (its home was this module) for one release.

admin_routes = Routes()
_ADMIN = (401, 403, 404, 429)


@admin_routes.post(
    "/api/weddings/{wedding_id}/sessions",
    "createSession",
    "Mint a short-lived token for an app's user (admin API key)",
    family="admin",
    security="admin",
    response_model=SessionAnswer,
    status=201,
    errors=(400, *_ADMIN, 413, 422),
)
async def create_session(call: ApiCall, path: WeddingPath, body: SessionRequest) -> Response:
    """Mint a short-lived token for one of the app's users, for one wedding."""
    wedding_id = path.wedding_id
    settings = call.state.settings
    ttl = settings.token_ttl_seconds if body.ttl is None else body.ttl
    if ttl > settings.token_ttl_seconds:
        raise ApiError.field(422, "ttl", f"must be 1 to {settings.token_ttl_seconds} seconds")
    try:
        docs = {d: a.value for d, a in parse_overrides(body.docs).items()}
    except PermissionsError as exc:
        raise ApiError.field(422, "docs", str(exc)) from exc
    if body.email is not None and not valid_email(body.email):
        raise ApiError.field(422, "email", "must be an email address")
    token = call.state.token_codec.mint(
        sub=body.sub,
        name=body.name,
        role=body.role,
        wedding=wedding_id,
        ttl=ttl,
        docs=docs,
        email=body.email,
    )
    answer = SessionAnswer(
        token=token,
        expires_at=int(clock.now()) + ttl,
        url=public_url(call.request, settings, "/sync", websocket=True),
        rooms={doc: f"{wedding_id}/{doc}" for doc in DOCUMENT_KINDS},
        public_url_missing=missing_public_url(settings),
    )
    return json_response(answer, status_code=201)


@admin_routes.post(
    "/api/admin/revoke",
    "revokeSessions",
    "Close a user's sessions with 4401 and refuse their older tokens",
    family="admin",
    security="admin",
    response_model=RevokeAnswer,
    errors=(400, 401, 403, 413, 422, 429, 503),
)
async def revoke(call: ApiCall, body: RevokeRequest) -> Response:
    """Close a user's open connections with 4401 and refuse their older tokens (stored
    first: a restart or another process cannot forget it)."""
    try:
        at, closed = await call.state.erasures.revoke(body.sub, body.wedding)
    except StoreError as exc:
        raise Unavailable("the store could not record the revocation, retry") from exc
    return json_response(RevokeAnswer(sub=body.sub, wedding=body.wedding, closed=closed, at=at))
