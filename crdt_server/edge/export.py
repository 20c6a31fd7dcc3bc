"""``GET /api/weddings/{id}/export``: the whole wedding in the one export format
(``crdt_server.tools.export``), the same file ``crdt-server export`` writes.

Allowed with the admin API key or a token of the wedding's couple (GDPR art. 15/20: the
couple may take their wedding elsewhere); anyone else gets 403, an unknown or malformed
credential 401. The answer is never cached (``Cache-Control: no-store``): it holds the
wedding's personal data.
"""

from __future__ import annotations

import hmac

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from crdt_server.auth.principals import Authenticator, AuthError
from crdt_server.edge.admin import ApiError, json_error
from crdt_server.names import valid_wedding_id
from crdt_server.settings import Settings
from crdt_server.tools.export import ExportError, export_wedding
from documents import DOCUMENT_KINDS
from storage import DocumentStore, StoreError

__all__ = ["export_routes"]

EXPORT_ROLE = "couple"
"""The one role whose tokens may export their wedding."""


def _header_bearer(request: Request) -> str | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


def _authorize(request: Request, wedding_id: str) -> None:
    settings: Settings = request.app.state.settings
    header = _header_bearer(request)
    # The admin key only counts from the header, never from a URL (URLs end up in logs).
    if (
        header is not None
        and settings.admin_api_key
        and hmac.compare_digest(header.encode(), settings.admin_api_key.encode())
    ):
        return
    # A couple's token: the header wins over the query parameter, as on every route.
    credential = header or request.query_params.get("token") or None
    authenticator: Authenticator = request.app.state.authenticator
    refusal = ApiError(403, "no document of this wedding is open to you")
    for doc in DOCUMENT_KINDS:
        try:
            principal = authenticator.authenticate(wedding_id, doc, credential, request.headers)
        except AuthError as exc:
            if exc.status_code != 403:
                raise ApiError(exc.status_code, exc.message) from exc
            refusal = ApiError(403, exc.message)
            continue
        if principal.role != EXPORT_ROLE or not principal.authenticated:
            raise ApiError(403, "only the couple (or the admin API key) may export a wedding")
        return
    raise refusal


async def export(request: Request) -> Response:
    """The wedding's four documents, their history and its events, as one JSON document."""
    wedding_id = request.path_params["wedding_id"]
    try:
        if not valid_wedding_id(wedding_id):
            raise ApiError(404, "no such wedding")
        _authorize(request, wedding_id)
        store: DocumentStore = request.app.state.store
        try:
            found = await export_wedding(store, wedding_id)
        except (StoreError, ExportError) as exc:
            raise ApiError(503, f"the wedding cannot be exported now: {exc}") from exc
        if found is None:
            raise ApiError(404, "no such wedding")
    except ApiError as exc:
        return json_error(exc)
    return JSONResponse(
        found.to_json(),
        headers={
            "cache-control": "no-store",
            "content-disposition": f'attachment; filename="wedding-{wedding_id}.json"',
        },
    )


def export_routes() -> list[Route]:
    """The export route, for the app factory."""
    return [Route("/api/weddings/{wedding_id}/export", export, methods=["GET"])]
