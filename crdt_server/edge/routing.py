"""The declarative route table of the HTTP API.

Each route is one :class:`ApiRoute` value: method, path, the handler, its family (for the rate
limiter), its body (kind and model) and its answers. From the same values the app gets its
Starlette routes (:func:`starlette_routes`) and clients get the OpenAPI document
(:mod:`crdt_server.edge.openapi`). A feature adds its routes, with their models, in one list.

What every route does before its handler, in order: the caller's credential, resolved once
as one of the kinds the route accepts (401 otherwise; :mod:`crdt_server.edge.identity`),
the rate limit (429), then the body, read under the family's size limit while it streams
(413 before any parsing).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route as StarletteRoute

from crdt_server.auth.principals import AuthError, Principal
from crdt_server.edge.bodies import decode_json
from crdt_server.edge.identity import PUBLIC, Caller, CredentialKind, resolve
from crdt_server.edge.problems import ApiError, FieldProblem
from crdt_server.edge.ratelimit import Priority, RateKey
from crdt_server.edge.state import Services, server_state
from crdt_server.names import valid_wedding_id

__all__ = [
    "BINARY",
    "JSON",
    "ApiCall",
    "Family",
    "QueryParam",
    "ApiRoute",
    "binary_response",
    "body_priority",
    "is_admin",
    "json_response",
    "starlette_routes",
    "takes_parameters",
]

T = TypeVar("T")

JSON = "application/json"
BINARY = "application/octet-stream"

Family = Literal["public", "read", "write", "admin"] | str
"""The rate-limit family of a route; ``public`` routes (health, docs) are not limited."""
BodyKind = Literal["none", "json", "update"]
"""What a route reads: nothing, a JSON body (``CRDT_SERVER_MAX_JSON_BODY_BYTES``) or an
update body (binary or base64 JSON, ``CRDT_SERVER_MAX_UPDATE_BODY_BYTES``)."""
Security = Literal["none", "token", "admin"]


def json_response(value: Any, status_code: int = 200) -> Response:
    """A JSON answer encoded by msgspec (Structs, dataclasses, dicts)."""
    return Response(msgspec.json.encode(value), status_code=status_code, media_type=JSON)


def binary_response(data: bytes) -> Response:
    return Response(data, media_type=BINARY)


def wedding_path(call: ApiCall) -> str:
    """The ``wedding_id`` path parameter, 404 unless it is a valid wedding id."""
    wedding_id = call.path("wedding_id")
    if not valid_wedding_id(wedding_id):
        raise ApiError(404, "no such wedding id")
    return wedding_id


def is_admin(call: ApiCall) -> bool:
    """Whether the request carries the admin API key (never when the admin API is off).

    The key is only taken from the ``Authorization`` header, never from the URL (URLs end
    up in logs)."""
    return call.caller.kind == "admin"


def body_priority(call: ApiCall) -> Priority:
    """The ``priority`` of a JSON body already read (``normal`` when absent or unreadable),
    for :attr:`ApiRoute.priority`: the wedding-day bypass of the rate limiter.

    It reads the body before anything is checked, so it must never raise: any body (not
    UTF-8, nested past the decoder's depth, not an object) is ``normal``, the request is
    counted, and the handler's own decoding names what is wrong."""
    try:
        decoded = msgspec.json.decode(call.body)
    except (ValueError, RecursionError):  # msgspec.DecodeError and UnicodeDecodeError
        return "normal"
    value = decoded.get("priority") if isinstance(decoded, dict) else None
    return value if value in ("urgent", "emergency") else "normal"


@dataclass(slots=True)
class ApiCall:
    """One request to one route: the request, the server, and its body once read."""

    request: Request
    state: Services
    route: ApiRoute
    body: bytes = b""
    caller: Caller = PUBLIC
    """The request's credential, resolved once before the handler."""

    def principal(self, wedding_id: str, doc: str) -> Principal:
        """The caller as seen by one document, from the claims verified once for this
        request (:class:`ApiError` 401/403)."""
        if self.caller.kind != "jwt":
            raise ApiError(401, "a token is required (token query parameter or Bearer header)")
        try:
            return self.state.authenticator.authorize(self.caller.claims, wedding_id, doc)
        except AuthError as exc:
            raise ApiError(exc.status_code, exc.message) from exc

    def path(self, name: str) -> str:
        value: str = self.request.path_params[name]
        return value

    def json(self, model: type[T]) -> T:
        """The body decoded into ``model`` (400/422 naming the field on any problem)."""
        if not self.body:
            raise ApiError.field(400, "body", "a JSON body is required")
        return decode_json(self.body, model)


Handler = Callable[[ApiCall], Awaitable[Response]]


@dataclass(frozen=True, slots=True)
class QueryParam:
    name: str
    schema: dict[str, Any]
    description: str = ""


@dataclass(frozen=True)
class ApiRoute:
    """One operation of the HTTP API, declared once."""

    method: str
    path: str
    operation_id: str
    summary: str
    handler: Handler
    family: Family
    security: Security = "token"
    accepts: frozenset[CredentialKind] | None = None
    """The kinds of credential the route takes (:mod:`crdt_server.edge.identity`); by
    default what ``security`` says: ``token`` a JWT, ``admin`` the admin key, ``none``
    none (a public route reads no credential)."""
    body: BodyKind = "none"
    request_model: Any = None
    """The JSON body's type (a msgspec Struct), if the route reads JSON."""
    binary_request: bool = False
    response_model: Any = None
    """The success body's type; ``None`` for a non-JSON answer (see ``media_type``)."""
    status: int = 200
    also: tuple[int, ...] = ()
    """Other success statuses with the same body (``200`` beside ``201``: the thing already
    existed, an idempotent replay or a replacement)."""
    binary_response: bool = False
    """The route also answers ``application/octet-stream`` (content negotiation)."""
    media_type: str | None = None
    """The success answer's media type when it is not JSON (``text/plain``, ``text/html``)."""
    errors: tuple[int, ...] = ()
    error_models: dict[int, Any] = field(default_factory=dict)
    """Error answers whose problem has extension members, by status."""
    query: tuple[QueryParam, ...] = ()
    description: str = ""
    priority: Callable[[ApiCall], Priority] | None = None
    """Reads the request's priority (body already read) for the wedding-day bypass; without
    it every request is ``normal``."""
    in_schema: bool = True

    @property
    def kinds(self) -> frozenset[CredentialKind] | None:
        """The credential kinds the route takes; ``None`` for a public route."""
        if self.accepts is not None:
            return self.accepts
        return _BY_SECURITY[self.security]


_BY_SECURITY: dict[str, frozenset[CredentialKind] | None] = {
    "token": frozenset({"jwt"}),
    "admin": frozenset({"admin"}),
    "none": None,
}


def subject_of(request: Request, caller: Caller) -> RateKey:
    """Who the rate limiter counts: the verified token's subject, else the client address."""
    claims = caller.claims
    if claims is not None:
        return RateKey(f"sub:{claims.sub}", claims.role)
    client = request.client
    return RateKey(f"addr:{client.host if client else 'unknown'}")


def body_limit(route: ApiRoute, state: Services, request: Request) -> int:
    settings = state.settings
    if route.body == "json":
        return settings.max_json_body_bytes
    update = settings.update_body_limit
    if route.body == "update" and not request.headers.get("content-type", "").startswith(BINARY):
        # The JSON form carries the update in base64: 4 bytes of text for every 3.
        return max(settings.max_json_body_bytes, update * 4 // 3 + 1024)
    return update


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it is known to be over ``limit``: from
    ``Content-Length`` before reading anything, else while a chunked body streams in."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise ApiError.field(400, "Content-Length", "not a number")
        if int(declared) > limit:
            raise _too_large(limit)
    received = bytearray()
    async for chunk in request.stream():
        if len(received) + len(chunk) > limit:
            raise _too_large(limit)
        received += chunk
    return bytes(received)


def _too_large(limit: int) -> ApiError:
    message = f"the body is over this route's limit of {limit} bytes"
    # The rest of the body is not read (crdt_server.wire.http_head: at most a little of it).
    return ApiError(413, message, errors=[FieldProblem("body", message)])


def _refuse_nul_parameters(route: ApiRoute, request: Request) -> None:
    """400 naming the parameter when a path parameter or a declared query parameter holds
    a NUL character: no identifier of this API has one, and PostgreSQL's text cannot store
    it (see ``takes_parameters``: such routes document their 400)."""
    for name, value in request.path_params.items():
        if isinstance(value, str) and "\x00" in value:
            raise ApiError.field(400, name, "must not contain NUL characters")
    declared = {param.name for param in route.query}
    for name, value in request.query_params.multi_items():
        if name in declared and "\x00" in value:
            raise ApiError.field(400, name, "must not contain NUL characters")


def takes_parameters(route: ApiRoute) -> bool:
    """Whether the route reads path or query parameters (and so may answer 400)."""
    return "{" in route.path or bool(route.query)


def _endpoint(route: ApiRoute) -> Callable[[Request], Awaitable[Response]]:
    kinds = route.kinds

    async def endpoint(request: Request) -> Response:
        state = server_state(request)
        call = ApiCall(request, state, route)
        refused: ApiError | None = None
        if kinds is not None:
            key = state.settings.admin_api_key
            try:
                if kinds == {"admin"} and not key:
                    raise ApiError(403, "the admin API is disabled: set CRDT_SERVER_ADMIN_API_KEY")
                call.caller = resolve(request, kinds, state.authenticator, key)
            except ApiError as exc:
                # Counted all the same (by address): guessing credentials is rate limited.
                refused = exc
        if route.priority is None or refused is not None:
            if route.family != "public":
                state.limiter.check(route.family, subject_of(request, call.caller))
            if refused is not None:
                raise refused
            if route.body != "none":
                call.body = await read_body(request, body_limit(route, state, request))
        else:
            # The priority is in the body: read it (bounded) before counting the request.
            if route.body != "none":
                call.body = await read_body(request, body_limit(route, state, request))
            subject = subject_of(request, call.caller)
            state.limiter.check(route.family, subject, priority=route.priority(call))
        _refuse_nul_parameters(route, request)
        return await route.handler(call)

    return endpoint


def starlette_routes(routes: Sequence[ApiRoute]) -> list[StarletteRoute]:
    """The Starlette routes of a route table."""
    return [
        StarletteRoute(
            r.path,
            _endpoint(r),
            methods=[r.method],
            name=r.operation_id,
            include_in_schema=r.in_schema,
        )
        for r in routes
    ]
