"""``GET /api/weddings/{id}/export``: the whole wedding in the one export format
(``crdt_server.tools.export``), the same file ``crdt-server export`` writes.

Allowed with the admin API key or a token of a role with the ``weddings.export`` capability
(declared by the weddings feature; by default the couple alone, GDPR art. 15/20: the couple
may take their wedding elsewhere; an operator's ``CRDT_SERVER_PERMISSIONS`` may give it to
others or take it away); anyone else gets 403, an unknown or malformed credential 401. The
answer is never cached (``Cache-Control: no-store``): it holds the wedding's personal data.
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

__all__ = ["EXPORT", "export_routes"]

EXPORT = "weddings.export"
"""The capability of the roles whose tokens may export their wedding."""

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
        if not principal.authenticated or not call.state.permissions.can(principal.role, EXPORT):
            raise ApiError(
                403, f"your role ({principal.role}) may not export this wedding ({EXPORT})"
            )
        return
    raise refusal


@export_routes.get(
    "/api/weddings/{wedding_id}/export",
    "exportWedding",
    "The whole wedding in the versioned export format (admin key, or a role with the"
    " weddings.export capability: by default the couple)",
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
