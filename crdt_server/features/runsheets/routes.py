"""A vendor's run sheet, shared by a read-only link.

- ``POST /api/weddings/{id}/day/run-sheets {"vendor", "label"?}`` (capability
  ``day.run_sheets``: the couple and the planner) answers 201 ``{"id", "token", "url",
  "vendor", "expires_at"}``: an opaque random token (``rs_...``), stored as its SHA-256
  only, good for that vendor's run sheet of that wedding and nothing else (every other
  route, and the WebSocket gate, refuse it with 401), until two days after the wedding
  (the profile's date in its zone; 422 naming ``vendor`` when the wedding has no date or
  the vendor no item). ``vendor`` is a directory id or a free-text name.
- ``GET .../day/run-sheets`` lists the links (never the tokens); ``DELETE
  .../day/run-sheets/{link_id}`` revokes one.
- ``GET .../day/run-sheet?token=rs_...``: the vendor's items of the timeline, in order, as
  a printable page (title, start, end, location, status: never notes, the budget, guests or
  other vendors' items). An unknown, revoked or expired link, or one of another wedding,
  is 401.
"""

from __future__ import annotations

import html
import secrets
from datetime import date, time, timedelta
from typing import Annotated

import msgspec
from msgspec import Meta
from starlette.responses import Response

from crdt_server import clock
from crdt_server.auth.digests import secret_digest
from crdt_server.documents.model import local_moment, zone_of
from crdt_server.documents.vendors import name_key
from crdt_server.edge.bodies import Deleted, Page
from crdt_server.edge.guards import capable_principal
from crdt_server.edge.identity import RUN_SHEET_TOKEN_PREFIX
from crdt_server.edge.links import PublicUrlMissing, missing_public_url, public_url
from crdt_server.edge.params import WeddingId, WeddingPath
from crdt_server.edge.routing import ApiCall, Routes, json_response
from crdt_server.errors import Impossible, NotFound, Unauthenticated
from crdt_server.features.delays import DayDelays, TimelineNow
from crdt_server.features.runsheets.extension import RunSheets
from crdt_server.features.runsheets.tables import RunSheetLink, RunSheetLinks
from crdt_server.times import rfc3339

__all__ = ["EXPIRES_DAYS_AFTER", "RUN_SHEETS", "render_run_sheet", "runsheet_routes"]

RUN_SHEETS = "day.run_sheets"
"""The capability to make, list and revoke run sheet links."""
EXPIRES_DAYS_AFTER = 2
"""A link works until the end of this many days after the wedding's date (its zone)."""
LinkId = Annotated[str, Meta(pattern="^rsl_[0-9a-f]{16}$", description="a run sheet link's id")]
_BASE = "/api/weddings/{wedding_id}/day"
_AUTH = (401, 403, 404, 429)

runsheet_routes = Routes()


class LinkRequest(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    vendor: Annotated[str, Meta(min_length=1, max_length=200)]
    """A directory id, or a free-text vendor name as items carry it."""
    label: Annotated[str, Meta(max_length=100)] = ""


class LinkCreated(msgspec.Struct, frozen=True):
    id: str
    token: str
    """Shown only here."""
    url: str
    vendor: str
    label: str
    expires_at: str
    public_url_missing: PublicUrlMissing = msgspec.UNSET
    """``url`` came from this request's host: the server has no public URL."""


class LinkItem(msgspec.Struct, frozen=True):
    id: str
    vendor: str
    label: str
    created_at: str
    created_by: str
    expires_at: str


class LinksAnswer(Page[LinkItem, None], frozen=True):
    items: list[LinkItem] = msgspec.field(name="links")
    next: None = None


class LinkPath(msgspec.Struct, frozen=True):
    wedding_id: WeddingId
    link_id: LinkId


class SheetQuery(msgspec.Struct, frozen=True):
    token: Annotated[str, Meta(description="a run sheet link's token (rs_...)")] = ""
    """Read by the credential middleware, not here."""


def _links(call: ApiCall) -> RunSheetLinks:
    return call.state.extension(RunSheets).links


def expiry(day: date, zone: object) -> float:
    """When a link of a wedding on ``day`` stops working: the end of the second day after
    it, in the wedding's zone."""
    return local_moment(day + timedelta(days=EXPIRES_DAYS_AFTER + 1), time(0), zone).timestamp()


def _vendor_of(now: TimelineNow, given: str) -> str | None:
    """The vendor key ``given`` names (a directory id, a directory entry's name, or a
    free-text name), if any item of the timeline has that vendor."""
    key = given if given in now.directory else name_key(given)
    named = [v.id for v in now.directory.values() if name_key(v.name) == key]
    if named and not any(i.vendor == key for i in now.items.values()):
        key = named[0]
    if key is None or not any(i.vendor == key for i in now.items.values()):
        return None
    return key


def render_run_sheet(wedding_id: str, vendor: str, now: TimelineNow) -> bytes:
    """The printable page of ``vendor``'s items, in start order (times in the wedding's
    zone). Everything shown is escaped."""
    zone = zone_of(now.zone)
    rows = []
    for item in sorted(now.items.values(), key=lambda i: (i.start, i.id)):
        if item.vendor != vendor:
            continue
        start, end = item.start.astimezone(zone), item.end.astimezone(zone)
        rows.append(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>".format(
                html.escape(start.strftime("%a %d %b %H:%M")),
                html.escape(end.strftime("%H:%M")),
                html.escape(now.titles.get(item.id, "")),
                "fixed" if item.fixed else "",
            )
        )
    name = html.escape(now.vendor_name(vendor))
    body = "".join(rows) or '<tr><td colspan="4">Nothing on the timeline yet.</td></tr>'
    page = (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width">'
        f"<title>Run sheet: {name}</title>"
        "<style>body{font:14px system-ui,sans-serif;margin:1.5rem}table{border-collapse:"
        "collapse;width:100%}td,th{border-bottom:1px solid #ccc;padding:.4rem;text-align:left}"
        "</style></head><body>"
        f"<h1>Run sheet: {name}</h1>"
        f"<p>Wedding {html.escape(wedding_id)}. Times in {html.escape(str(zone))}.</p>"
        '<table class="run-sheet"><thead><tr><th scope=col>Start</th><th scope=col>End</th>'
        f"<th scope=col>What</th><th scope=col></th></tr></thead><tbody>{body}</tbody></table>"
        "</body></html>"
    )
    return page.encode()


@runsheet_routes.post(
    f"{_BASE}/run-sheets",
    "createRunSheetLink",
    "A read-only link to one vendor's run sheet (stored hashed, shown only here; expires "
    "two days after the wedding)",
    family="write",
    response_model=LinkCreated,
    status=201,
    errors=(400, *_AUTH, 413, 422),
)
async def create_link(call: ApiCall, path: WeddingPath, body: LinkRequest) -> Response:
    wedding_id = path.wedding_id
    principal = capable_principal(call, wedding_id, RUN_SHEETS)
    now = await call.state.extension(DayDelays).timeline(wedding_id)
    vendor = _vendor_of(now, body.vendor)
    if vendor is None:
        raise Impossible("no timeline item has this vendor", field="vendor")
    day = await call.state.extension(DayDelays).wedding_date(wedding_id)
    if day is None:
        raise Impossible("the wedding has no date in its profile yet", field="vendor")
    token = RUN_SHEET_TOKEN_PREFIX + secrets.token_urlsafe(32)
    link = RunSheetLink(
        wedding_id,
        "rsl_" + secrets.token_hex(8),
        vendor,
        body.label,
        clock.now(),
        principal.user_id,
        expiry(day, now.zone),
    )
    await _links(call).add(link, secret_digest(token))
    sheet = f"/api/weddings/{wedding_id}/day/run-sheet?token={token}"
    answer = LinkCreated(
        link.id,
        token,
        public_url(call.request, call.state.settings, sheet),
        now.vendor_name(vendor),
        link.label,
        rfc3339(int(link.expires_at), "seconds"),
        public_url_missing=missing_public_url(call.state.settings),
    )
    return json_response(answer, status_code=201)


@runsheet_routes.get(
    f"{_BASE}/run-sheets",
    "listRunSheetLinks",
    "The wedding's run sheet links (without their tokens)",
    family="read",
    response_model=LinksAnswer,
    errors=_AUTH,
)
async def list_links(call: ApiCall, path: WeddingPath) -> Response:
    capable_principal(call, path.wedding_id, RUN_SHEETS)
    now = await call.state.extension(DayDelays).timeline(path.wedding_id)
    items = [
        LinkItem(
            link.id,
            now.vendor_name(link.vendor),
            link.label,
            rfc3339(int(link.created_at), "seconds"),
            link.created_by,
            rfc3339(int(link.expires_at), "seconds"),
        )
        for link in await _links(call).of(path.wedding_id)
    ]
    return json_response(LinksAnswer(items, None))


@runsheet_routes.delete(
    f"{_BASE}/run-sheets/{{link_id}}",
    "deleteRunSheetLink",
    "Revoke a run sheet link",
    family="write",
    response_model=Deleted,
    errors=_AUTH,
)
async def delete_link(call: ApiCall, path: LinkPath) -> Response:
    capable_principal(call, path.wedding_id, RUN_SHEETS)
    if not await _links(call).revoke(path.wedding_id, path.link_id):
        raise NotFound("no such run sheet link", field="link_id")
    return json_response(Deleted(path.link_id, True))


@runsheet_routes.get(
    f"{_BASE}/run-sheet",
    "runSheet",
    "One vendor's run sheet as a printable page; ?token= takes its run sheet link",
    family="read",
    accepts=frozenset({"runsheet"}),
    media_type="text/html",
    errors=_AUTH,
)
async def run_sheet(call: ApiCall, path: WeddingPath, query: SheetQuery) -> Response:
    wedding_id = path.wedding_id
    link = await _links(call).by_digest(secret_digest(call.caller.secret or ""))
    if link is None or link.wedding != wedding_id or clock.now() >= link.expires_at:
        raise Unauthenticated("unknown, revoked or expired run sheet link", field="token")
    now = await call.state.extension(DayDelays).timeline(wedding_id)
    headers = {
        "Cache-Control": "private, no-store",
        "Referrer-Policy": "no-referrer",
        "X-Robots-Tag": "noindex",
        "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
    }
    return Response(
        render_run_sheet(wedding_id, link.vendor, now),
        media_type="text/html; charset=utf-8",
        headers=headers,
    )
