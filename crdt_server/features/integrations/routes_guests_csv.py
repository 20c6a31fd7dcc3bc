"""The guest list as CSV over HTTP (the format is
:mod:`crdt_server.features.integrations.domain_guests_csv`).

- ``GET /api/weddings/{id}/guests.csv`` (may read the guest list): RFC 4180, UTF-8,
  ``?bom=true`` for Excel, formula cells neutralised; never cached (personal data).
- ``POST /api/weddings/{id}/guests.csv`` (may write the guest list), a ``text/csv`` body of
  at most ``CRDT_SERVER_MAX_CSV_BODY_BYTES``: with ``?dry_run=true`` answers what would be
  added, changed and left unchanged and each row's errors with its line number, changing
  nothing; without, applies it all, credited to the caller (the usual guest events follow,
  then one ``integration.guests_imported``), or, if any row has an error, nothing (422
  listing them). The file is planned and written on a copy of the guest list on a worker
  thread, and what it wrote is taken in like a client's large update: in parts of at most
  ``CRDT_SERVER_UPDATE_SLICE_STRUCTS`` structs, each committed before the next, so another
  wedding is served meanwhile (a crash between two parts leaves the rows of those before
  it; importing the file again adds the rest).
"""

from __future__ import annotations

import asyncio
import json
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
from crdt_server.features.events import EventLog
from crdt_server.features.integrations.domain_guests_csv import (
    CsvError,
    GuestImport,
    apply_import,
    export_guests,
    plan_import,
)
from crdt_server.features.integrations.settings import IntegrationSettings
from crdt_server.storage import NewEvent

__all__ = ["guest_csv_routes"]

CSV = "text/csv; charset=utf-8"
_PATH = "/api/weddings/{wedding_id}/guests.csv"
IMPORTED_EVENT = "integration.guests_imported"
"""Recorded once an import that changed something is committed, after its guest events:
``{"doc": "guests", "rows", "added", "changed", "unchanged"}`` (counts of rows)."""

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
    "most CRDT_SERVER_MAX_CSV_BODY_BYTES and 20,000 rows), columns as the export's; other "
    "media types are refused with 415. Every row is checked before anything is written: "
    "one row in error and nothing is. A large file is then written in parts of at most "
    "CRDT_SERVER_UPDATE_SLICE_STRUCTS structs (about 120 rows each), each committed "
    "before the next (each a history entry with its guest events), then one "
    "integration.guests_imported event; the answer comes once all are committed. A "
    "server that ends between two parts leaves the rows of the parts before: importing "
    "the same file again adds the rest and changes nothing already there.",
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
                snapshot = room.doc.get_update()
            plan = await asyncio.to_thread(_plan_on_a_copy, snapshot, text)
            return json_response(_answer(plan, dry_run=True, committed=False))
        sender = Sender(principal.actor, f"http:{principal.user_id}")

        def change(doc: Doc[Any]) -> GuestImport:
            found = plan_import(doc, text)
            if found.errors:
                raise _Refused(found)
            apply_import(doc, found, origin=sender.origin)
            return found

        # Planned and written on a copy off the loop, taken in by slices (a 20,000-row
        # file is 100,000 structs): every other wedding is served meanwhile.
        plan = await weddings.edit_off_loop(name, change, sender)
    except CsvError as exc:
        raise Malformed(exc.message, field=exc.field) from None
    except _Refused as refused:
        return _refusal(refused.plan)
    events = call.state.find(EventLog)
    if events is not None and (plan.added or plan.changed):
        await events.record([_imported(wedding_id, plan, sender)])
    return json_response(_answer(plan, dry_run=False, committed=True))


def _imported(wedding_id: str, plan: GuestImport, sender: Sender) -> NewEvent:
    """The one event that says an import happened (its rows' guest events came with each
    part), so a feed reads one import, not one per part."""
    counts = {
        "doc": "guests",
        "rows": len(plan.added) + len(plan.changed) + len(plan.unchanged),
        "added": len(plan.added),
        "changed": len(plan.changed),
        "unchanged": len(plan.unchanged),
    }
    return NewEvent(
        wedding_id,
        IMPORTED_EVENT,
        json.dumps(counts, separators=(",", ":")),
        "guests",
        sub=sender.actor.sub,
        role=sender.actor.role,
    )


def _plan_on_a_copy(snapshot: bytes, text: str) -> GuestImport:
    """:func:`plan_import` against a document made of ``snapshot`` (on a worker thread)."""
    doc: Doc[Any] = Doc()
    doc.apply_update(snapshot)
    return plan_import(doc, text)
