"""The guest list as CSV over HTTP (the format is
:mod:`crdt_server.features.integrations.domain_guests_csv`).

- ``GET /api/weddings/{id}/guests.csv`` (may read the guest list): RFC 4180, UTF-8,
  ``?bom=true`` for Excel, formula cells neutralised; never cached (personal data).
- ``POST /api/weddings/{id}/guests.csv`` (may write the guest list), a ``text/csv`` body of
  at most ``CRDT_SERVER_MAX_CSV_BODY_BYTES``: with ``?dry_run=true`` answers what would be
  added, changed and left unchanged and each row's errors with its line number, changing
  nothing; without, applies it all as one update credited to the caller (the usual guest
  events follow) or, if any row has an error, nothing (422 listing them).
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from pycrdt import Doc
from starlette.responses import Response

from crdt_server.auth.principals import Principal
from crdt_server.codec.problem_details import PROBLEM_JSON, FieldProblem, Problem
from crdt_server.core.hooks import Sender
from crdt_server.edge.params import WeddingPath
from crdt_server.edge.routing import ApiCall, Routes, json_response, read_body
from crdt_server.errors import Forbidden, Malformed, UnsupportedMedia
from crdt_server.features.integrations.domain_guests_csv import (
    CsvError,
    GuestImport,
    apply_import,
    export_guests,
    plan_import,
)
from crdt_server.features.integrations.settings import IntegrationSettings

__all__ = ["guest_csv_routes"]

CSV = "text/csv; charset=utf-8"
_PATH = "/api/weddings/{wedding_id}/guests.csv"

guest_csv_routes = Routes()


class ExportQuery(msgspec.Struct, frozen=True):
    bom: Annotated[bool, msgspec.Meta(description="start with a BOM (Excel)")] = False


class ImportQuery(msgspec.Struct, frozen=True):
    dry_run: Annotated[bool, msgspec.Meta(description="answer the diff only")] = False


class RowRef(msgspec.Struct, frozen=True):
    line: int
    id: str


class ChangedRow(msgspec.Struct, frozen=True):
    line: int
    id: str
    fields: list[str]


class RowProblem(msgspec.Struct, frozen=True):
    line: int
    field: str
    message: str


class ImportAnswer(msgspec.Struct, frozen=True):
    dry_run: bool
    committed: bool
    added: list[RowRef]
    changed: list[ChangedRow]
    unchanged: list[RowRef]
    errors: list[RowProblem]


class ImportProblem(Problem, frozen=True, omit_defaults=True, kw_only=True):
    """The 422 of a refused import: every row's problem, with its line."""

    rows: list[RowProblem]


class _Refused(Exception):
    def __init__(self, plan: GuestImport) -> None:
        super().__init__("the import has errors")
        self.plan = plan


def _principal(call: ApiCall, wedding_id: str, *, write: bool) -> Principal:
    principal = call.principal(wedding_id, "guests")
    if write and not principal.can_write:
        raise Forbidden("the guest list is read-only for you")
    return principal


@guest_csv_routes.get(
    _PATH,
    "exportGuestsCsv",
    "The guest list as CSV (RFC 4180, UTF-8; formula cells neutralised)",
    family="read",
    media_type="text/csv",
    errors=(400, 401, 403, 404, 429, 503),
)
async def export_csv(call: ApiCall, path: WeddingPath, query: ExportQuery) -> Response:
    wedding_id = path.wedding_id
    principal = _principal(call, wedding_id, write=False)
    bom = query.bom
    docs = await call.state.weddings.documents(wedding_id, kinds=("guests",))
    hidden = call.state.permissions.hidden_fields(principal.role, "guests", principal.guest_fields)
    text = export_guests(docs.get("guests"), bom=bom, hidden=hidden)
    headers = {
        "Content-Disposition": f'attachment; filename="{wedding_id}-guests.csv"',
        "Cache-Control": "no-store",
    }
    return Response(text.encode(), media_type=CSV, headers=headers)


def _answer(plan: GuestImport, *, dry_run: bool, committed: bool) -> ImportAnswer:
    return ImportAnswer(
        dry_run=dry_run,
        committed=committed,
        added=[RowRef(line, guest_id) for line, guest_id, _ in plan.added],
        changed=[ChangedRow(line, gid, sorted(fields)) for line, gid, fields in plan.changed],
        unchanged=[RowRef(line, guest_id) for line, guest_id in plan.unchanged],
        errors=[RowProblem(e.line, e.field, e.message) for e in plan.errors],
    )


def _refusal(plan: GuestImport) -> Response:
    rows = [RowProblem(e.line, e.field, e.message) for e in plan.errors]
    count = len(rows)
    detail = f"{count} row{'s' if count != 1 else ''} cannot be imported; nothing was changed"
    problem = ImportProblem(
        type="about:blank",
        title="Unprocessable Content",
        status=422,
        detail=detail,
        error=detail,
        errors=[FieldProblem(e.field, f"line {e.line}: {e.message}") for e in plan.errors],
        rows=rows,
    )
    return Response(msgspec.json.encode(problem), status_code=422, media_type=PROBLEM_JSON)


@guest_csv_routes.post(
    _PATH,
    "importGuestsCsv",
    "Import guests from CSV (text/csv): upsert by id, else by name and household; "
    "?dry_run=true answers the diff and per-row errors; otherwise all or nothing",
    family="write",
    response_model=ImportAnswer,
    description="The body is the CSV file itself (Content-Type: text/csv, UTF-8, at "
    "most CRDT_SERVER_MAX_CSV_BODY_BYTES), columns as the export's; other media "
    "types are refused with 415.",
    error_models={422: ImportProblem},
    errors=(400, 401, 403, 404, 413, 415, 422, 429, 503),
)
async def import_csv(call: ApiCall, path: WeddingPath, query: ImportQuery) -> Response:
    wedding_id = path.wedding_id
    principal = _principal(call, wedding_id, write=True)
    dry_run = query.dry_run
    kind = call.request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind not in ("text/csv", "text/plain"):
        raise UnsupportedMedia("send the file as text/csv", field="Content-Type")
    limit = call.state.settings.fragment(IntegrationSettings).max_csv_body_bytes
    body = await read_body(call.request, limit)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Malformed(f"not UTF-8 (byte {exc.start})", field="body") from None
    weddings = call.state.weddings
    name = f"{wedding_id}/guests"
    try:
        if dry_run:
            async with weddings.room(name) as room:
                plan = plan_import(room.doc, text)
            return json_response(_answer(plan, dry_run=True, committed=False))
        sender = Sender(principal.actor, f"http:{principal.user_id}")

        def change(doc: Doc[Any]) -> GuestImport:
            found = plan_import(doc, text)
            if found.errors:
                raise _Refused(found)
            apply_import(doc, found, origin=sender.origin)
            return found

        plan = await weddings.edit(name, change, sender)
    except CsvError as exc:
        raise Malformed(exc.message, field=exc.field) from None
    except _Refused as refused:
        return _refusal(refused.plan)
    return json_response(_answer(plan, dry_run=False, committed=True))
