"""Every HTTP error as an RFC 9457 problem (``application/problem+json``), from one place.

Features raise domain errors (:class:`crdt_server.errors.DomainError`: ``NotFound``,
``Forbidden``, ``Impossible``...) and never name a status; the edge's own modules may raise
:class:`ApiError`. The app's exception handlers (:func:`exception_handlers`) and the access
middleware both turn either into the same answer with :func:`problem_response`. Domain errors
are translated here, and only here, so no route has a ``try``: each
:class:`~crdt_server.errors.DomainError` kind has its status in :data:`DOMAIN_STATUS`,
:class:`documents.OperationError` gets its reason's status (:data:`OPERATION_STATUS`) and
names its field, a refused credential 401 or 403 (:data:`AUTH_STATUS`), a
:class:`crdt_server.errors.PeerError` is 400 (413 when too big, 503 when overloaded, 422
when quarantined), and :class:`crdt_server.core.room.RoomFailed` and :class:`storage.StoreError`
(the store could not do it, whichever route asked) are :class:`crdt_server.errors.Unavailable`:
503 with ``Retry-After``, as every 503 is.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from crdt_server.auth.principals import AuthError, NotAllowed, NotAuthenticated
from crdt_server.codec.problem_details import PROBLEM_JSON, FieldProblem, Problem, problem_json
from crdt_server.core.room import RoomFailed
from crdt_server.documents import OperationError
from crdt_server.documents.model import Refusal
from crdt_server.errors import (
    ClientIdTaken,
    CloseCode,
    Conflict,
    DomainError,
    Forbidden,
    Gone,
    Impossible,
    Malformed,
    NotFound,
    PeerError,
    Quarantined,
    TooLarge,
    TooMany,
    Unauthenticated,
    Unavailable,
    UnsupportedMedia,
)
from crdt_server.storage import StoreError

__all__ = [
    "CHALLENGE",
    "CLIENT_CLOSED",
    "AUTH_STATUS",
    "DOMAIN_STATUS",
    "OPERATION_STATUS",
    "PROBLEM_JSON",
    "ApiError",
    "FieldProblem",
    "Problem",
    "exception_handlers",
    "problem_json",
    "problem_response",
    "translate",
    "auth_status",
]

_errors = logging.getLogger("crdt_server.edge")

RETRY_SECONDS = 1
"""``Retry-After`` on a 503: the store or the room is back within about this long."""
STORE_UNAVAILABLE = "the store could not commit; nothing was changed, retry"
"""The detail of a 503 for a store that could not do what a route asked."""
CLIENT_CLOSED = 499
"""The status logged for a request whose client left before its body arrived (nginx's
"client closed request"; nobody receives the answer)."""


class ApiError(Exception):
    """An HTTP error answer: ``status_code``, a sentence for people (``message``), the
    fields at fault (``errors``) and extra headers (``Retry-After``, ``Allow``)."""

    def __init__(
        self,
        status_code: int,
        message: str,
        *,
        errors: Sequence[FieldProblem] = (),
        headers: Mapping[str, str] | None = None,
        problem_type: str = "about:blank",
        title: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message
        self.errors = list(errors)
        self.headers = dict(headers or {})
        self.problem_type = problem_type
        self.title = title

    @classmethod
    def field(cls, status_code: int, field: str, message: str) -> ApiError:
        """An error about one input field; the detail names it."""
        return cls(status_code, f"{field}: {message}", errors=[FieldProblem(field, message)])


DOMAIN_STATUS: dict[type[DomainError], int] = {
    Malformed: 400,
    Unauthenticated: 401,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    Gone: 410,
    TooLarge: 413,
    UnsupportedMedia: 415,
    Impossible: 422,
    TooMany: 429,
    Unavailable: 503,
}
"""The HTTP status of each kind of domain error (a feature's own subclass gets its base's)."""


OPERATION_STATUS: dict[Refusal, int] = {"malformed": 400, "impossible": 422, "stale": 409}
"""The HTTP status of each reason the domain refuses an operation
(:class:`documents.OperationError`)."""

AUTH_STATUS: dict[type[AuthError], int] = {NotAuthenticated: 401, NotAllowed: 403}
"""The HTTP status of each refusal of a credential (:mod:`crdt_server.auth.principals`), at
a route as at the WebSocket upgrade."""


def auth_status(exc: AuthError) -> int:
    """The status answering ``exc``: 401 for a credential that is not good, 403 for one
    that may not do this."""
    for kind, status in AUTH_STATUS.items():
        if isinstance(exc, kind):
            return status
    return 401


def domain_status(exc: DomainError) -> int:
    for kind, status in DOMAIN_STATUS.items():
        if isinstance(exc, kind):
            return status
    return 400  # a DomainError raised as itself: the caller asked for something refused


CHALLENGE = {"WWW-Authenticate": 'Bearer realm="crdt-server"'}
"""What every 401 carries (RFC 9110 15.5.2), whoever refused: the credential resolver, a
handler asking for a principal, a feature's ``Unauthenticated``."""


def problem_response(error: ApiError) -> Response:
    """The problem+json answer for ``error``."""
    headers = error.headers
    if error.status_code == 401 and "WWW-Authenticate" not in headers:
        headers = {**CHALLENGE, **headers}
    return Response(
        problem_json(
            error.status_code,
            error.message,
            error.errors,
            type=error.problem_type,
            title=error.title,
        ),
        status_code=error.status_code,
        headers=headers,
        media_type=PROBLEM_JSON,
    )


def translate(exc: BaseException) -> ApiError | None:
    """The HTTP answer for an exception a client can cause, or ``None`` for a server fault."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, StoreError | RoomFailed):
        # The store could not do it (a full disk, a lock held too long, a lost connection)
        # and committed nothing: whichever route asked, features' routes as the
        # documents', the client may retry (issue 47: the features' routes answered 500).
        return translate(Unavailable(STORE_UNAVAILABLE))
    if isinstance(exc, DomainError):
        status = domain_status(exc)
        retry_after = exc.retry_after
        if retry_after is None and status == 503:
            retry_after = RETRY_SECONDS  # a 503 always says when to come back
        headers = {} if retry_after is None else {"Retry-After": str(retry_after)}
        fields = [FieldProblem(name, message) for name, message in exc.fields]
        return ApiError(
            status,
            exc.message,
            errors=fields,
            headers=headers,
            problem_type=exc.problem_type,
            title=exc.problem_title,
        )
    if isinstance(exc, OperationError):
        errors = [FieldProblem(exc.path, exc.message)] if exc.path else []
        return ApiError(OPERATION_STATUS[exc.reason], str(exc), errors=errors)
    if isinstance(exc, Quarantined):
        return ApiError(422, exc.message, errors=[FieldProblem("body", exc.message)])
    if isinstance(exc, ClientIdTaken):
        return ApiError(422, exc.message, errors=[FieldProblem("client_id", str(exc.client_id))])
    if isinstance(exc, PeerError):
        if exc.close_code == CloseCode.MESSAGE_TOO_BIG:
            return ApiError(413, exc.message, errors=[FieldProblem("body", exc.message)])
        if exc.close_code == CloseCode.TRY_AGAIN_LATER:
            return ApiError(503, exc.message, headers={"Retry-After": str(RETRY_SECONDS)})
        return ApiError(400, exc.message, errors=[FieldProblem("body", exc.message)])
    if isinstance(exc, ClientDisconnect):
        # The client left mid-body (or its body was too slow and the connection was
        # dropped): one access line, no traceback.
        return ApiError(CLIENT_CLOSED, "the client closed the connection before its body came")
    if isinstance(exc, HTTPException):
        headers = dict(exc.headers or {})
        return ApiError(exc.status_code, _starlette_detail(exc), headers=headers)
    return None


def _starlette_detail(exc: HTTPException) -> str:
    if exc.status_code == 404:
        return "no such route"
    if exc.status_code == 405:
        allowed = (exc.headers or {}).get("Allow", "")
        return f"method not allowed here; allowed: {allowed}" if allowed else exc.detail
    return exc.detail


async def _handle(request: Request, exc: Exception) -> Response:
    if isinstance(exc, StoreError):
        # The client gets a 503 without the cause; the operator needs it (a full disk).
        # A store's message names tables and SQLite's reason, never document content.
        _errors.warning("the store could not serve %s %s: %s", request.method, _route(request), exc)
    error = translate(exc)
    if error is None:  # registered only for types translate() knows
        raise exc
    return problem_response(error)


def exception_handlers() -> dict[type[Exception], object]:
    """The app's exception handlers: one function for every error a client can cause."""
    kinds: tuple[type[Exception], ...] = (
        ApiError,
        DomainError,
        OperationError,
        PeerError,
        RoomFailed,
        StoreError,
        HTTPException,
        ClientDisconnect,
    )
    return dict.fromkeys(kinds, _handle)


def _route(request: Request) -> str:
    """The route's template (never the raw path, which may hold ids or tokens)."""
    route = request.scope.get("route")
    return str(getattr(route, "path", "")) or "?"
