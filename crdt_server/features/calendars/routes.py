"""The wedding's CalDAV calendars: ``POST``, ``GET`` and ``DELETE``
``/api/weddings/{id}/calendars``.

A calendar is added with its URL (the calendar collection's), a username and a password
(iCloud: an app-specific password), and a ``scope``: ``wedding`` (every timeline item;
the couple and the planner, capability ``calendars.manage``) or ``vendor:{vendor_id}``
(that vendor's items; also the member accounts the vendor directory lists for it). The
password is sealed with ``CRDT_SERVER_CREDENTIALS_KEY`` (AES-256-GCM, the key's id beside
it) and never shown again; without that setting every route here answers 503 naming it.
The URL goes through the webhooks' SSRF guard (with ``CRDT_SERVER_CALDAV_ALLOW_HOSTS``).
The listing shows each calendar's state: ``pending`` until its first synchronisation,
then ``ok``, or ``error`` with the reason (a refused password, an unreachable server).
Removing a calendar stops its synchronisation; the events already written stay in it.
"""

from __future__ import annotations

import secrets
from typing import Annotated

import msgspec
from msgspec import Meta
from starlette.responses import Response

from crdt_server import clock
from crdt_server.auth.principals import Principal
from crdt_server.edge.bodies import Deleted, Page
from crdt_server.edge.guards import document_principal
from crdt_server.edge.params import WeddingId, WeddingPath
from crdt_server.edge.routing import ApiCall, Routes, json_response
from crdt_server.errors import Forbidden, Impossible, Malformed, NotFound, Unavailable
from crdt_server.features.calendars.domain import KeyRing, Scope, parse_scope
from crdt_server.features.calendars.extension import CalendarSync
from crdt_server.features.calendars.tables import CalendarRow, add_calendar, remove_calendar
from crdt_server.features.webhooks import UnsafeTarget, check_url, resolve_target
from crdt_server.times import rfc3339

__all__ = ["CAPABILITY", "MAX_CALENDARS", "calendar_routes"]

CAPABILITY = "calendars.manage"
MAX_CALENDARS = 50
"""Calendars one wedding may have."""
CalendarId = Annotated[str, Meta(pattern="^cd_[0-9a-f]{16}$", description="a calendar's id")]

calendar_routes = Routes()
_BASE = "/api/weddings/{wedding_id}/calendars"
_ERRORS = (401, 403, 404, 429, 503)


class CalendarRequest(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    url: Annotated[str, Meta(min_length=1, max_length=2048)]
    """The calendar collection's URL (``https://caldav.fastmail.com/dav/calendars/user/
    ann@example.com/Default/``), without credentials."""
    username: Annotated[str, Meta(min_length=1, max_length=256)]
    password: Annotated[str, Meta(min_length=1, max_length=1024)]
    """Kept encrypted, never shown again (iCloud: an app-specific password)."""
    scope: Annotated[str, Meta(max_length=80)] = "wedding"
    """``wedding`` (every timeline item) or ``vendor:{vendor_id}`` (that vendor's)."""


class CalendarItem(msgspec.Struct, frozen=True):
    id: str
    url: str
    username: str
    scope: str
    status: str
    """``pending`` (not synchronised yet), ``ok`` or ``error``."""
    error: str | None
    """Why the last synchronisation failed (with ``status: error``)."""
    synced_at: str | None
    """When it was last synchronised (or tried)."""
    created_at: str
    created_by: str


class CalendarsAnswer(Page[CalendarItem, None], frozen=True):
    items: list[CalendarItem] = msgspec.field(name="calendars")
    next: None = None


class CalendarPath(msgspec.Struct, frozen=True):
    wedding_id: WeddingId
    calendar_id: CalendarId


def _item(row: CalendarRow) -> CalendarItem:
    return CalendarItem(
        row.id,
        row.url,
        row.username,
        row.scope,
        row.status,
        row.error or None,
        rfc3339(int(row.synced_at), "seconds") if row.synced_at else None,
        rfc3339(int(row.created_at), "seconds"),
        row.created_by,
    )


def _ring(sync: CalendarSync) -> KeyRing:
    ring = sync.settings.key_ring
    if ring is None:
        raise Unavailable(
            "this server keeps no calendar passwords: CRDT_SERVER_CREDENTIALS_KEY is unset",
            field="CRDT_SERVER_CREDENTIALS_KEY",
        )
    return ring


async def _allowed(
    call: ApiCall, sync: CalendarSync, wedding_id: str, principal: Principal, scope: Scope
) -> None:
    """403 unless the caller may manage a calendar of ``scope``: with ``calendars.manage``
    any scope, else a vendor scope whose directory entry lists them."""
    if call.state.permissions.can(principal.role, CAPABILITY):
        return
    if scope.vendor is not None:
        vendor = (await sync.vendors(wedding_id)).get(scope.vendor)
        if vendor is not None and principal.user_id in vendor.members:
            return
    raise Forbidden("only the couple, the planner or the vendor's own members")


@calendar_routes.post(
    _BASE,
    "addCalendar",
    "Add a CalDAV calendar the timeline (or a vendor's part of it) is written to and read"
    " back from; the password is stored encrypted and never shown again",
    family="write",
    response_model=CalendarItem,
    status=201,
    errors=(400, *_ERRORS, 413, 422),
    description="Scope wedding: the couple and the planner (calendars.manage). Scope "
    "vendor:{vendor_id}: also the vendor's members (the timeline's vendor directory). The "
    "first synchronisation starts at once; the listing shows its outcome.",
)
async def add(call: ApiCall, path: WeddingPath, body: CalendarRequest) -> Response:
    wedding_id = path.wedding_id
    principal = document_principal(call, wedding_id, "timeline", write=False)
    sync = call.state.extension(CalendarSync)
    ring = _ring(sync)
    scope = parse_scope(body.scope)
    if scope is None:
        raise Malformed("wedding, or vendor: and a vendor id", field="scope")
    await _allowed(call, sync, wedding_id, principal, scope)
    if scope.vendor is not None and scope.vendor not in await sync.vendors(wedding_id):
        raise Impossible("no such vendor in the timeline's vendor directory", field="scope")
    try:
        check_url(body.url)
    except UnsafeTarget as exc:
        raise Malformed(str(exc), field="url") from None
    try:
        await resolve_target(body.url, allow_private=sync.allows(body.url))
    except UnsafeTarget as exc:
        raise Impossible(str(exc), field="url") from None
    if len(await sync.calendars(wedding_id)) >= MAX_CALENDARS:
        raise Impossible(f"a wedding has at most {MAX_CALENDARS} calendars")
    calendar_id = "cd_" + secrets.token_hex(8)
    kid, sealed = ring.seal(body.password, calendar_id)
    row = CalendarRow(
        calendar_id, wedding_id, str(scope), body.url, body.username, kid, sealed,
        principal.user_id, clock.now(), "pending", "", 0.0,
    )  # fmt: skip
    await sync.db.run(add_calendar(row))
    sync.changed(wedding_id)
    return json_response(_item(row), status_code=201)


@calendar_routes.get(
    _BASE,
    "listCalendars",
    "The wedding's CalDAV calendars and the state of their synchronisation (never a password)",
    family="read",
    response_model=CalendarsAnswer,
    errors=_ERRORS,
    description="The couple and the planner see every calendar; a vendor's member sees "
    "the calendars of their vendors.",
)
async def list_calendars(call: ApiCall, path: WeddingPath) -> Response:
    wedding_id = path.wedding_id
    principal = document_principal(call, wedding_id, "timeline", write=False)
    sync = call.state.extension(CalendarSync)
    _ring(sync)
    rows = await sync.calendars(wedding_id)
    if not call.state.permissions.can(principal.role, CAPABILITY):
        theirs = {
            f"vendor:{v.id}"
            for v in (await sync.vendors(wedding_id)).values()
            if principal.user_id in v.members
        }
        if not theirs:
            raise Forbidden("only the couple, the planner or a vendor's own members")
        rows = [r for r in rows if r.scope in theirs]
    return json_response(CalendarsAnswer([_item(r) for r in rows], None))


@calendar_routes.delete(
    f"{_BASE}/{{calendar_id}}",
    "removeCalendar",
    "Remove a CalDAV calendar: its synchronisation stops (its events stay in it)",
    family="write",
    response_model=Deleted,
    errors=_ERRORS,
)
async def remove(call: ApiCall, path: CalendarPath) -> Response:
    wedding_id = path.wedding_id
    principal = document_principal(call, wedding_id, "timeline", write=False)
    sync = call.state.extension(CalendarSync)
    _ring(sync)
    found = {r.id: r for r in await sync.calendars(wedding_id)}.get(path.calendar_id)
    if found is None:
        raise NotFound("no such calendar")
    scope = parse_scope(found.scope) or Scope()
    await _allowed(call, sync, wedding_id, principal, scope)
    if not await sync.db.run(remove_calendar(wedding_id, path.calendar_id)):
        raise NotFound("no such calendar")
    return json_response(Deleted(path.calendar_id, True))
