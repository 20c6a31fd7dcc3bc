"""The outermost HTTP middleware: request ids, one access log line and the metrics of every
request, and the last net under the routes (an exception no handler translated is a 500
problem, logged without its message).

The log line names the route TEMPLATE (``/api/weddings/{wedding_id}/docs/{doc}``), never the
raw path or query: ids stay out of the log, and so do tokens. Exception messages stay out
too, since a library's message can quote document content (a guest's name in a pycrdt
panic); the type and the traceback's frames are enough to find the fault.
"""

from __future__ import annotations

import logging
import re
import time
import traceback
import uuid
from typing import Any

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from crdt_server.edge.problems import ApiError, problem_response, translate
from crdt_server.edge.state import SERVER_STATE_KEY, Services

__all__ = ["AccessMiddleware", "REQUEST_ID_HEADER"]

log = logging.getLogger("crdt_server.access")
errors = logging.getLogger("crdt_server.edge")

REQUEST_ID_HEADER = "x-request-id"
_SANE_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "<unmatched>"
"""The route label of a request no route matched (one label, so scanners cannot blow up
the metrics' cardinality)."""


def _request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            text: str = value.decode("latin-1")
            if _SANE_ID.fullmatch(text):
                return text
            break
    return uuid.uuid4().hex


SECRET_PARAMETER = "{code}"
"""A path parameter that is a credential (an RSVP link's code): logged as ``<redacted>``,
as the shipped HAProxy configuration logs it (``/api/rsvp/<redacted>``)."""


def _template(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    if not isinstance(path, str):
        return UNMATCHED
    return path.replace(SECRET_PARAMETER, "<redacted>")


class AccessMiddleware:
    """Pure ASGI middleware; every HTTP request passes it exactly once."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        request_id = _request_id(scope)
        status = 500
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                status = message["status"]
                started = True
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            error = translate(exc)
            if error is None:
                _log_fault(exc, scope)
                error = ApiError(500, "internal error; it was logged with the request id")
            if not started:
                await problem_response(error)(scope, receive, send_with_id)
        finally:
            self._record(scope, request_id, status, time.perf_counter() - start)

    def _record(self, scope: Scope, request_id: str, status: int, seconds: float) -> None:
        method = scope["method"] if scope["method"] in _METHODS else "OTHER"
        route = _template(scope)
        state: Any = scope.get("state", {}).get(SERVER_STATE_KEY)
        if isinstance(state, Services):
            metrics = state.registry.metrics
            metrics.http_requests.labels(route, method, str(status)).inc()
            metrics.http_seconds.labels(route, method).observe(seconds)
        millis = round(seconds * 1000, 1)
        log.info(
            "%s %s %d %.1fms id=%s",
            method,
            route,
            status,
            millis,
            request_id,
            extra={
                "http": {
                    "method": method,
                    "route": route,
                    "status": status,
                    "duration_ms": millis,
                    "request_id": request_id,
                }
            },
        )


def _log_fault(exc: BaseException, scope: Scope) -> None:
    frames = "".join(traceback.format_tb(exc.__traceback__))
    errors.error(
        "unhandled %s in %s %s (message withheld: it may quote document content)\n%s",
        type(exc).__name__,
        scope.get("method"),
        _template(scope),
        frames,
    )
