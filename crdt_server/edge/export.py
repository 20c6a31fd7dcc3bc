"""``GET /api/weddings/{id}/export``: the whole wedding in the one export format
(``crdt_server.tools.export``), the same file ``crdt-server export`` writes.

Allowed with the admin API key or a token of the wedding's couple (GDPR art. 15/20: the
couple may take their wedding elsewhere); anyone else gets 403, an unknown or malformed
credential 401. The answer is never cached (``Cache-Control: no-store``): it holds the
wedding's personal data.
"""

from __future__ import annotations

from starlette.responses import JSONResponse, Response

from crdt_server.documents import DOCUMENT_KINDS
from crdt_server.edge.params import WeddingPath
from crdt_server.edge.problems import ApiError
from crdt_server.edge.routing import ApiCall, Routes, is_admin
from crdt_server.errors import Unavailable
from crdt_server.storage import StoreError
from crdt_server.tools.export import ExportError, export_wedding

__all__ = ["export_routes"]

EXPORT_ROLE = "couple"
"""The one role whose tokens may export their wedding."""

export_routes = Routes()


def _authorize(call: ApiCall, wedding_id: str) -> None:
    if is_admin(call):
        return
    refusal = ApiError(403, "no document of this wedding is open to you")
    for doc in DOCUMENT_KINDS:
        try:
            principal = call.principal(wedding_id, doc)
        except ApiError as exc:
            if exc.status_code != 403:
                raise
            refusal = exc
            continue
        if principal.role != EXPORT_ROLE or not principal.authenticated:
            raise ApiError(403, "only the couple (or the admin API key) may export a wedding")
        return
    raise refusal


@export_routes.get(
    "/api/weddings/{wedding_id}/export",
    "exportWedding",
    "The whole wedding in the versioned export format (admin key or the couple)",
    family="admin",
    accepts=frozenset({"jwt", "admin"}),
    security="token",
    media_type="application/json",
    errors=(401, 403, 404, 429, 503),
)
async def export(call: ApiCall, path: WeddingPath) -> Response:
    """The wedding's four documents, their history and its events, and its conversations
    (each running feature's section, such as ``threads``: members, threads with their
    messages and read marks; the same sections ``crdt-server export`` writes), as one JSON
    document."""
    wedding_id = path.wedding_id
    _authorize(call, wedding_id)
    try:
        found = await export_wedding(
            call.state.store, wedding_id, call.state.sections, events=call.state.event_tables
        )
    except (StoreError, ExportError) as exc:
        raise Unavailable(f"the wedding cannot be exported now: {exc}") from exc
    if found is None:
        raise ApiError(404, "no such wedding")
    return JSONResponse(
        found.to_json(),
        headers={
            "cache-control": "no-store",
            "content-disposition": f'attachment; filename="wedding-{wedding_id}.json"',
        },
    )
