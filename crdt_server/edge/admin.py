"""Admin HTTP routes (admin API key): sessions (mint a token for an app's user) and
revocation; and the small JSON helpers every HTTP route shares. Deleting a wedding and
erasing a guest live in :mod:`crdt_server.edge.erasure`."""

from __future__ import annotations

import hmac
import json
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from crdt_server.auth.permissions import ROLES, PermissionsError, parse_overrides
from crdt_server.auth.tokens import TokenCodec
from crdt_server.core.erasure import ErasureService
from crdt_server.names import valid_wedding_id
from crdt_server.settings import Settings
from storage import StoreError

__all__ = ["ApiError", "api_routes", "json_error", "json_object", "require_admin"]


class ApiError(Exception):
    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message


def json_error(exc: ApiError) -> JSONResponse:
    return JSONResponse({"error": exc.message}, status_code=exc.status_code)


def require_admin(request: Request) -> None:
    """Raise :class:`ApiError` (403 disabled, 401 wrong key) unless the admin key is given."""
    settings: Settings = request.app.state.settings
    if not settings.admin_api_key:
        raise ApiError(403, "the admin API is disabled: set CRDT_SERVER_ADMIN_API_KEY")
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        key.strip().encode(), settings.admin_api_key.encode()
    ):
        raise ApiError(401, "admin API key required (Authorization: Bearer <key>)")


async def json_object(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body())
    except ValueError as exc:
        raise ApiError(400, "the body must be a JSON object") from exc
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object")
    return body


def _string(body: dict[str, Any], key: str, *, required: bool = True) -> str | None:
    value = body.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value or len(value) > 256:
        raise ApiError(422, f"'{key}' must be a non-empty string")
    return value


async def create_session(request: Request) -> JSONResponse:
    """Mint a short-lived token for one of the app's users, for one wedding."""
    try:
        require_admin(request)
        wedding_id = request.path_params["wedding_id"]
        if not valid_wedding_id(wedding_id):
            raise ApiError(404, "no such wedding id")
        body = await json_object(request)
        unknown = set(body) - {"sub", "name", "role", "ttl", "docs"}
        if unknown:
            raise ApiError(422, f"unknown fields: {', '.join(sorted(unknown))}")
        sub = _string(body, "sub")
        role = body.get("role")
        if role not in ROLES:
            raise ApiError(422, f"'role' must be one of {', '.join(ROLES)}")
        settings: Settings = request.app.state.settings
        ttl = body.get("ttl", settings.token_ttl_seconds)
        if not isinstance(ttl, int) or not 1 <= ttl <= settings.token_ttl_seconds:
            raise ApiError(422, f"'ttl' must be 1 to {settings.token_ttl_seconds} seconds")
        try:
            docs = {d: a.value for d, a in parse_overrides(body.get("docs", {})).items()}
        except PermissionsError as exc:
            raise ApiError(422, str(exc)) from exc
        codec: TokenCodec = request.app.state.token_codec
        assert sub is not None
        token = codec.mint(
            sub=sub,
            name=_string(body, "name", required=False),
            role=str(role),
            wedding=wedding_id,
            ttl=ttl,
            docs=docs,
        )
    except ApiError as exc:
        return json_error(exc)
    scheme = "wss" if request.url.scheme == "https" else "ws"
    return JSONResponse(
        {
            "token": token,
            "expires_at": int(time.time()) + ttl,
            "url": f"{scheme}://{request.url.netloc}/sync",
            "rooms": {
                doc: f"{wedding_id}/{doc}" for doc in ("timeline", "budget", "guests", "seating")
            },
        },
        status_code=201,
    )


async def revoke(request: Request) -> JSONResponse:
    """Close a user's open connections with 4401 and refuse their older tokens."""
    try:
        require_admin(request)
        body = await json_object(request)
        sub = _string(body, "sub")
        wedding = _string(body, "wedding", required=False)
        if wedding is not None and not valid_wedding_id(wedding):
            raise ApiError(422, "'wedding' is not a valid wedding id")
    except ApiError as exc:
        return json_error(exc)
    assert sub is not None
    erasures: ErasureService = request.app.state.erasures
    try:
        # Stored before it takes effect: a restart or another process cannot forget it.
        at, closed = await erasures.revoke(sub, wedding)
    except StoreError:
        return json_error(ApiError(503, "the store could not record the revocation, retry"))
    return JSONResponse({"sub": sub, "wedding": wedding, "closed": closed, "at": at})


def api_routes() -> list[Route]:
    return [
        Route("/api/weddings/{wedding_id}/sessions", create_session, methods=["POST"]),
        Route("/api/admin/revoke", revoke, methods=["POST"]),
    ]
