"""The planner web app: its static files at ``/app/``, and the two small routes it needs.

The bundle is built from ``web/`` by esbuild into ``crdt_server/edge/webapp_bundle/`` and
ships as package data, so serving the app needs no Node. Only the files of that directory
are served (read once, by name, so no path can escape it), each with its own content type:
the hashed script and style sheet are cached for a year (their names change with their
content), everything else (the page, the service worker, the manifest) is revalidated on
every load through its ETag, so a new release reaches people on their next load.

Routes besides the files:

- ``POST /api/token/refresh``: exchange a valid token for a fresh one with the same claims,
  before it expires, up to ``session_max_lifetime_seconds`` after the person signed in.
- ``GET /api/weddings/{id}/access``: who the token's holder is and what they may open, so
  the app shows only the views of documents the role may read, read-only where it may not
  write.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from crdt_server.auth.principals import AuthError
from crdt_server.auth.tokens import TokenError
from crdt_server.edge.state import server_state
from crdt_server.names import ROOM_KINDS, valid_wedding_id

__all__ = ["BUNDLE_PACKAGE", "OPENAPI_PATHS", "StaticFile", "load_bundle", "webapp_routes"]

BUNDLE_PACKAGE = "webapp_bundle"
"""The directory of the built app, inside ``crdt_server/edge/``."""

_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".webmanifest": "application/manifest+json",
    ".json": "application/json",
}
_IMMUTABLE = "public, max-age=31536000, immutable"
_REVALIDATE = "no-cache"
# The app loads nothing from elsewhere (no CDN) and connects only to its own server.
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; worker-src 'self'; manifest-src 'self'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'; object-src 'none'"
)


@dataclass(frozen=True, slots=True)
class StaticFile:
    """One file of the bundle, ready to serve."""

    body: bytes
    content_type: str
    cache_control: str
    etag: str


def _hashed(name: str) -> bool:
    """``app-3F2K1XQ7.js``: esbuild put the content hash in the name."""
    stem = name.rsplit(".", 1)[0]
    return "-" in stem and len(stem.rsplit("-", 1)[1]) >= 8


def load_bundle() -> dict[str, StaticFile]:
    """The files of the built app by name (empty if the app was never built)."""
    root = resources.files("crdt_server.edge").joinpath(BUNDLE_PACKAGE)
    files: dict[str, StaticFile] = {}
    if not root.is_dir():
        return files
    for entry in root.iterdir():
        suffix = "." + entry.name.rsplit(".", 1)[-1] if "." in entry.name else ""
        if not entry.is_file() or suffix not in _TYPES:
            continue
        body = entry.read_bytes()
        files[entry.name] = StaticFile(
            body=body,
            content_type=_TYPES[suffix],
            cache_control=_IMMUTABLE if _hashed(entry.name) else _REVALIDATE,
            etag='"' + hashlib.sha256(body).hexdigest()[:32] + '"',
        )
    return files


_PROBLEM = {
    "description": "problem (RFC 9457)",
    "content": {"application/problem+json": {"schema": {"type": "object"}}},
}
_FILE = {
    "get": {
        "summary": "The planner web app's files (HTML, script, styles, service worker)",
        "responses": {"200": {"description": "the file"}, "304": {"description": "unchanged"}},
    }
}
OPENAPI_PATHS: dict[str, Any] = {
    "/": {
        "get": {"summary": "Redirect to /app/", "responses": {"307": {"description": "to /app/"}}}
    },
    "/app": {
        "get": {"summary": "Redirect to /app/", "responses": {"307": {"description": "to /app/"}}}
    },
    "/app/": _FILE,
    "/app/{name}": {
        "get": {
            **_FILE["get"],
            "parameters": [
                {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
            ],
        }
    },
    "/api/token/refresh": {
        "post": {
            "summary": "Exchange a valid token (Bearer) for a fresh one with the same claims",
            "responses": {
                "200": {
                    "description": "{token, expires_at (RFC 3339), expires_in (seconds)}",
                    "content": {"application/json": {"schema": {"type": "object"}}},
                },
                "401": _PROBLEM,
                "403": _PROBLEM,
            },
        }
    },
    "/api/weddings/{wedding_id}/access": {
        "get": {
            "summary": "Who the token's holder is and which rooms they may read or write",
            "parameters": [
                {"name": "wedding_id", "in": "path", "required": True, "schema": {"type": "string"}}
            ],
            "responses": {
                "200": {
                    "description": "{wedding, sub, name, role, expires_at, docs: {room: access}}",
                    "content": {"application/json": {"schema": {"type": "object"}}},
                },
                "401": _PROBLEM,
                "403": _PROBLEM,
                "404": _PROBLEM,
            },
        }
    },
}
"""The OpenAPI paths of these routes (merged into ``GET /openapi.json``)."""


def _problem(status: int, title: str, detail: str, field: str | None = None) -> JSONResponse:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": title,
        "status": status,
        "detail": detail,
        "error": detail,
    }
    if field is not None:
        body["errors"] = [{"field": field, "message": detail}]
    headers = {"WWW-Authenticate": 'Bearer realm="crdt-server"'} if status == 401 else None
    return JSONResponse(
        body, status_code=status, media_type="application/problem+json", headers=headers
    )


def _bearer(request: Request) -> str | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def _rfc3339(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def webapp_routes(bundle: Mapping[str, StaticFile] | None = None) -> list[Route]:
    """The app's files under ``/app/``, ``/`` redirecting there, and its API routes."""
    files = load_bundle() if bundle is None else dict(bundle)

    async def serve_file(request: Request) -> Response:
        name = request.path_params.get("name") or "index.html"
        found = files.get(name)
        if found is None:
            if not files:
                return _problem(
                    404,
                    "Not Found",
                    "the web app is not built into this installation: run scripts/serve "
                    "from a checkout with Node.js, or install a released package",
                )
            return _problem(404, "Not Found", f"no file {name!r} in the web app")
        headers = {
            "Cache-Control": found.cache_control,
            "ETag": found.etag,
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
        }
        if name.endswith(".html"):
            headers["Content-Security-Policy"] = _CSP
        if name == "sw.js":
            # Served from /app/, its scope is /app/ by default; say so for proxies that
            # rewrite paths, and never let an old worker be served from a cache.
            headers["Service-Worker-Allowed"] = "/app/"
        if found.etag in request.headers.get("if-none-match", ""):
            return Response(status_code=304, headers=headers)
        return Response(found.body, media_type=found.content_type, headers=headers)

    async def to_app(request: Request) -> Response:
        return RedirectResponse("/app/", status_code=307)

    return [
        Route("/", to_app, methods=["GET", "HEAD"], include_in_schema=False),
        Route("/app", to_app, methods=["GET", "HEAD"], include_in_schema=False),
        Route("/app/", serve_file, methods=["GET", "HEAD"], include_in_schema=False),
        Route("/app/{name}", serve_file, methods=["GET", "HEAD"], include_in_schema=False),
        Route("/api/token/refresh", refresh_token, methods=["POST"], include_in_schema=False),
        Route(
            "/api/weddings/{wedding_id}/access",
            wedding_access,
            methods=["GET"],
            include_in_schema=False,
        ),
    ]


async def refresh_token(request: Request) -> JSONResponse:
    """Exchange a valid token (``Authorization: Bearer``) for a fresh one with the same
    claims. 401 for a missing, bad, expired or revoked token, or a session past
    ``session_max_lifetime_seconds``; 403 when this server cannot sign tokens."""
    token = _bearer(request)
    if token is None:
        return _problem(401, "Unauthorized", "send the token as Authorization: Bearer", "token")
    state = server_state(request)
    settings, codec, revocations = state.settings, state.token_codec, state.revocations
    try:
        claims = codec.decode(token)
    except TokenError as exc:
        return _problem(401, "Unauthorized", str(exc), "token")
    if claims.iat is None:
        return _problem(401, "Unauthorized", "a token without 'iat' cannot be refreshed", "token")
    if any(revocations.revoked(claims, wedding) for wedding in claims.weddings):
        return _problem(401, "Unauthorized", "token revoked", "token")
    now = time.time()
    signed_in = claims.auth_time if claims.auth_time is not None else claims.iat
    lifetime = min(claims.exp - claims.iat, settings.token_ttl_seconds)
    expires = min(now + lifetime, signed_in + settings.session_max_lifetime_seconds)
    if expires - now < 1:
        return _problem(
            401,
            "Unauthorized",
            "this session reached its maximum lifetime; sign in again",
            "token",
        )
    try:
        fresh = codec.mint(
            sub=claims.sub,
            name=claims.name,
            role=claims.role,
            wedding=claims.weddings[0] if len(claims.weddings) == 1 else claims.weddings,
            ttl=int(expires - int(now)),
            docs={doc: access.value for doc, access in claims.docs.items()},
            auth_time=int(signed_in),
        )
    except ValueError:
        return _problem(403, "Forbidden", "this server does not sign tokens (no HS256 secret)")
    decoded = codec.decode(fresh)
    return JSONResponse(
        {
            "token": fresh,
            "expires_at": _rfc3339(decoded.exp),
            "expires_in": int(decoded.exp - now),
        }
    )


async def wedding_access(request: Request) -> JSONResponse:
    """Who holds the token and what they may open in this wedding: ``{"sub", "name",
    "role", "docs": {room kind: "write" | "read" | "none"}, "expires_at"}``."""
    wedding_id = request.path_params["wedding_id"]
    if not valid_wedding_id(wedding_id):
        return _problem(404, "Not Found", "no such wedding id", "wedding_id")
    authenticator = server_state(request).authenticator
    token = _bearer(request)
    docs: dict[str, str] = {}
    who: dict[str, Any] = {}
    for kind in ROOM_KINDS:
        try:
            principal = authenticator.authenticate(wedding_id, kind, token, request.headers)
        except AuthError as exc:
            if exc.status_code != 403:
                return _problem(exc.status_code, "Unauthorized", exc.message, "token")
            docs[kind] = "none"
            continue
        docs[kind] = "write" if principal.can_write else "read"
        who = {
            "sub": principal.user_id,
            "name": principal.name,
            "role": principal.role,
            "expires_at": (
                _rfc3339(principal.expires_at) if principal.expires_at is not None else None
            ),
        }
    if not who:
        return _problem(403, "Forbidden", "no document of this wedding is open to you")
    return JSONResponse({"wedding": wedding_id, **who, "docs": docs})
