"""How the HTTP API's routes are declared: once, next to their handlers.

A module keeps one :class:`Routes` value and declares each route on its handler::

    version_routes = Routes()

    class VersionsQuery(msgspec.Struct, forbid_unknown_fields=False):
        limit: Annotated[int, Meta(ge=1, le=500, description="at most this many")] = 50

    @version_routes.get("/api/weddings/{wedding_id}/docs/{doc}/versions", "listVersions",
                        "Restore points of a document", family="read", ...)
    async def list_versions(call: ApiCall, path: DocPath, query: VersionsQuery) -> Response:
        ...

The handler's parameters say what it reads, typed: ``path`` (a msgspec Struct of the path's
parameters; one that does not match is 404 naming it), ``query`` (a Struct of the query
parameters; 400 naming the one at fault; unknown ones are ignored) and ``body`` (the JSON
body's Struct; 400/422 naming the field). The same types generate the route's OpenAPI
(:mod:`crdt_server.edge.openapi`). Each declaration makes one :class:`ApiRoute` value:
method, path, handler, family (for the rate limiter), body, answers; from these the app gets
its Starlette routes (:func:`starlette_routes`). A feature's :class:`Routes` is its routes.

What every route does before its handler, in order: the caller's credential, resolved once
as one of the kinds the route accepts (401 otherwise; :mod:`crdt_server.edge.identity`),
the rate limit (429), then the body, read under the family's size limit while it streams
(413 before any parsing), then the path and query parameters and the JSON body, decoded into
the handler's types.
"""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypedDict, TypeVar, Unpack

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route as StarletteRoute

from crdt_server.auth.principals import AuthError, Principal
from crdt_server.edge.bodies import decode_json
from crdt_server.edge.directory import register_caller
from crdt_server.edge.identity import PUBLIC, Caller, CredentialKind, resolve
from crdt_server.edge.problems import ApiError, FieldProblem, auth_status
from crdt_server.edge.ratelimit import RateKey
from crdt_server.edge.state import Services, server_state
from crdt_server.names import PRIORITIES, Priority

__all__ = [
    "BINARY",
    "JSON",
    "ApiCall",
    "ApiRoute",
    "Family",
    "RouteOptions",
    "Routes",
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
Security = Literal["none", "token", "admin", "session"]


def json_response(value: Any, status_code: int = 200) -> Response:
    """A JSON answer encoded by msgspec (Structs, dataclasses, dicts)."""
    return Response(msgspec.json.encode(value), status_code=status_code, media_type=JSON)


def binary_response(data: bytes) -> Response:
    return Response(data, media_type=BINARY)


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
    return next((p for p in PRIORITIES if p == value), "normal")


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
            raise ApiError(auth_status(exc), exc.message) from exc

    def json(self, model: type[T]) -> T:
        """The body decoded into ``model`` (400/422 naming the field on any problem)."""
        if not self.body:
            raise ApiError.field(400, "body", "a JSON body is required")
        return decode_json(self.body, model)


Handler = Callable[..., Awaitable[Response]]
"""A route's handler: ``call`` first, then any of ``path``, ``query``, ``body`` by name."""


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
    path_model: Any = None
    """The path parameters' Struct (from the handler's ``path`` parameter)."""
    query_model: Any = None
    """The query parameters' Struct (from the handler's ``query`` parameter)."""
    body_param: bool = False
    """The handler takes the JSON body decoded into ``request_model`` as ``body``."""
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
    "session": frozenset({"session", "device"}),
    "none": None,
}


class RouteOptions(TypedDict, total=False):
    """What a route declaration may say beside its method, path, name, summary and family
    (the fields of :class:`ApiRoute` of the same names)."""

    security: Security
    accepts: frozenset[CredentialKind] | None
    body: BodyKind
    request_model: Any
    binary_request: bool
    response_model: Any
    status: int
    also: tuple[int, ...]
    binary_response: bool
    media_type: str | None
    errors: tuple[int, ...]
    error_models: dict[int, Any]
    description: str
    priority: Callable[[ApiCall], Priority] | None
    in_schema: bool


H = TypeVar("H", bound=Handler)


class _Declare(Protocol):
    def __call__(
        self,
        path: str,
        operation_id: str,
        summary: str,
        *,
        family: Family,
        **options: Unpack[RouteOptions],
    ) -> Callable[[H], H]: ...


class _Verb:
    """``routes.get(...)`` and its siblings: :meth:`Routes.route` with the method given."""

    def __init__(self, method: str) -> None:
        self.method = method

    def __get__(self, routes: Routes, owner: type[Routes] | None = None) -> _Declare:
        return functools.partial(routes.route, self.method)


class Routes:
    """One module's routes, each declared on its handler (see the module docstring).

    Calling it gives the routes in declaration order (what a :class:`Feature`'s ``routes``
    and the app's route table take)."""

    def __init__(self) -> None:
        self._routes: list[ApiRoute] = []

    def __call__(self) -> list[ApiRoute]:
        return list(self._routes)

    def __iter__(self) -> Iterator[ApiRoute]:
        return iter(self._routes)

    def route(
        self,
        method: str,
        path: str,
        operation_id: str,
        summary: str,
        *,
        family: Family,
        **options: Unpack[RouteOptions],
    ) -> Callable[[H], H]:
        def declare(handler: H) -> H:
            path_model, query_model, body_model = _parameter_types(handler, path)
            more: dict[str, Any] = dict(options)
            if body_model is not None:
                more.setdefault("body", "json")
                more["request_model"] = body_model
            self._routes.append(
                ApiRoute(
                    method,
                    path,
                    operation_id,
                    summary,
                    handler,
                    family,
                    path_model=path_model,
                    query_model=query_model,
                    body_param=body_model is not None,
                    **more,
                )
            )
            return handler

        return declare

    get = _Verb("GET")
    post = _Verb("POST")
    put = _Verb("PUT")
    patch = _Verb("PATCH")
    delete = _Verb("DELETE")


_READS = ("path", "query", "body")


def _parameter_types(handler: Handler, path: str) -> tuple[Any, Any, Any]:
    """The Structs a handler reads (``path``, ``query``, ``body`` parameters), from its
    annotations; checked against the route's path so a typo fails at import, not at request."""
    parameters = inspect.signature(handler).parameters
    unknown = [name for name in list(parameters)[1:] if name not in _READS]
    if unknown:
        raise TypeError(f"{handler.__qualname__}: unknown parameters {unknown} (takes {_READS})")
    found: list[Any] = []
    for name in _READS:
        if name not in parameters:
            found.append(None)
            continue
        annotation = parameters[name].annotation
        if isinstance(annotation, str):  # from __future__ import annotations
            annotation = eval(annotation, handler.__globals__)  # noqa: S307 (the module's own)
        if not (isinstance(annotation, type) and issubclass(annotation, msgspec.Struct)):
            raise TypeError(f"{handler.__qualname__}: {name} must be a msgspec Struct")
        found.append(annotation)
    path_model = found[0]
    in_path = set(re.findall(r"{(\w+)}", path))
    if in_path and path_model is None:
        raise TypeError(f"{handler.__qualname__}: its path has parameters: it takes a path Struct")
    if path_model is not None:
        fields = {f.encode_name for f in msgspec.structs.fields(path_model)}
        if fields != in_path:
            raise TypeError(
                f"{handler.__qualname__}: path parameters {sorted(in_path)} are not its "
                f"path Struct's fields {sorted(fields)}"
            )
    return path_model, found[1], found[2]


@functools.cache
def _query_fields(model: type[msgspec.Struct]) -> tuple[tuple[str, bool, bool], ...]:
    """Each query field's name, whether it takes several values (a list), and whether it
    is text."""
    info = msgspec.inspect.type_info(model)
    assert isinstance(info, msgspec.inspect.StructType)
    return tuple(
        (
            f.encode_name,
            isinstance(f.type, msgspec.inspect.ListType | msgspec.inspect.SetType),
            _is_text(f.type),
        )
        for f in info.fields
    )


def _is_text(kind: msgspec.inspect.Type) -> bool:
    if isinstance(kind, msgspec.inspect.UnionType):
        return any(_is_text(t) for t in kind.types)
    return isinstance(kind, msgspec.inspect.StrType)


def _field_at(error: msgspec.ValidationError, model: Any) -> tuple[str, str]:
    """The parameter a msgspec validation error names, and what it must be, in words."""
    text = str(error)
    found = re.search(r" - at `\$\.([^`\[]+)[^`]*`$", text)
    if found is None:
        return "", text
    name = found.group(1)
    return name, _plain(text[: found.start()], _allowed(model, name))


_KINDS = {"int": "a whole number", "float": "a number", "bool": "true or false", "str": "text"}
_BOUNDS = {">=": "at least", "<=": "at most", ">": "more than", "<": "less than"}


def _plain(message: str, allowed: tuple[object, ...] | None) -> str:
    """msgspec's message about a parameter that does not fit (``Expected `int` >= 1``) as
    the API says it (``must be a whole number at least 1``); as it is if unknown."""
    if message.startswith("Invalid enum value") and allowed:
        return "must be one of " + ", ".join(str(value) for value in allowed)
    kind = re.fullmatch(r"Expected `(\w+)`(?:, got `\w+`)?(?: (>=|<=|>|<) (\S+))?", message)
    if kind is not None:
        what, op, bound = kind.groups()
        said = f"must be {_KINDS.get(what, what)}"
        return f"{said} {_BOUNDS[op]} {bound}" if op else said
    length = re.fullmatch(r"Expected `str` of length (>=|<=) (\d+)", message)
    if length is not None:
        return f"must be {_BOUNDS[length.group(1)]} {length.group(2)} characters"
    pattern = re.fullmatch(r"Expected `str` matching regex '(.*)'", message)
    if pattern is not None:
        return f"must match {pattern.group(1)}"
    return message


@functools.cache
def _allowed(model: Any, name: str) -> tuple[object, ...] | None:
    """The values a parameter takes, if it is one of a few (a Literal or an enum)."""
    info = msgspec.inspect.type_info(model)
    if not isinstance(info, msgspec.inspect.StructType):
        return None
    for f in info.fields:
        if f.encode_name == name:
            kinds = f.type.types if isinstance(f.type, msgspec.inspect.UnionType) else (f.type,)
            for kind in kinds:
                if isinstance(kind, msgspec.inspect.LiteralType):
                    return tuple(kind.values)
                if isinstance(kind, msgspec.inspect.EnumType):
                    return tuple(member.value for member in kind.cls)
    return None


def _path_parameters(route: ApiRoute, request: Request) -> Any:
    for name, value in request.path_params.items():
        # A Meta pattern is searched with ``$``, which also matches before a final newline:
        # no identifier of this API holds a line break.
        if "\n" in value:
            raise ApiError(404, f"no such {name.replace('_', ' ')}")
    try:
        return msgspec.convert(request.path_params, route.path_model, strict=False)
    except msgspec.ValidationError as exc:
        name, message = _field_at(exc, route.path_model)
        raise ApiError(
            404, f"no such {name.replace('_', ' ')}", errors=[FieldProblem(name, message)]
        ) from None


def _query_parameters(route: ApiRoute, request: Request) -> Any:
    params = request.query_params
    raw: dict[str, Any] = {}
    for name, many, text in _query_fields(route.query_model):
        if many:
            values = params.getlist(name)
            if values:
                raw[name] = values
        elif (value := params.get(name)) is not None and (value or text):
            # ``limit=`` (a form's empty field) is no limit given: the default.
            raw[name] = value
    try:
        return msgspec.convert(raw, route.query_model, strict=False)
    except msgspec.ValidationError as exc:
        name, message = _field_at(exc, route.query_model)
        raise ApiError.field(400, name or "query", message) from None


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
    declared: set[str] = set()
    if route.query_model is not None:
        declared.update(name for name, _, _ in _query_fields(route.query_model))
    for name, value in request.query_params.multi_items():
        if name in declared and "\x00" in value:
            raise ApiError.field(400, name, "must not contain NUL characters")


def takes_parameters(route: ApiRoute) -> bool:
    """Whether the route reads path or query parameters (and so may answer 400)."""
    return "{" in route.path or route.query_model is not None


def _endpoint(route: ApiRoute) -> Callable[[Request], Awaitable[Response]]:
    kinds = route.kinds
    typed = route.path_model is not None or route.query_model is not None or route.body_param

    async def endpoint(request: Request) -> Response:
        state = server_state(request)
        call = ApiCall(request, state, route)
        refused: ApiError | None = None
        if kinds is not None:
            key = state.settings.admin_api_key
            try:
                if kinds == {"admin"} and not key:
                    raise ApiError(403, "the admin API is disabled: set CRDT_SERVER_ADMIN_API_KEY")
                call.caller = resolve(
                    request, kinds, state.authenticator, key, state.settings.public_url
                )
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
        wedding = request.path_params.get("wedding_id")
        if call.caller.kind == "jwt" and isinstance(wedding, str):
            await register_caller(state, call.caller, wedding)
        if not typed:
            return await route.handler(call)
        reads: dict[str, Any] = {}
        if route.path_model is not None:
            reads["path"] = _path_parameters(route, request)
        if route.query_model is not None:
            reads["query"] = _query_parameters(route, request)
        if route.body_param:
            reads["body"] = call.json(route.request_model)
        return await route.handler(call, **reads)

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
