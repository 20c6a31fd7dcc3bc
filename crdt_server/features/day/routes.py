"""The wedding day over HTTP.

- ``GET /api/weddings/{id}/day``: the day's state (``?day=YYYY-MM-DD``; default: today in
  the wedding's zone when it has items, else the wedding's date): whether day-of mode is
  on, its window, each item's live state and each vendor's latest check-in, derived at
  read time; for whoever reads the timeline.
- ``POST /api/weddings/{id}/day/check-ins``: a vendor arrived or is running late; 201
  (200 for a repeated ``Idempotency-Key``) and a ``day.vendor_checked_in`` event. ``at``,
  the time it was tapped, is kept unless later than its receipt.
- ``GET``/``PUT /api/weddings/{id}/day/vendors/{vendor_id}/contact``: a directory
  vendor's contact, kept out of the timeline, for the couple, the planner and the vendor's
  own members.
- ``PUT /api/weddings/{id}/day/mode``: the planner switches day-of mode ``on``, ``off``
  or back to ``auto`` (the window).
"""

from __future__ import annotations

import hashlib
from datetime import date, datetime
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta
from starlette.responses import Response

from crdt_server import clock
from crdt_server.actor import Actor
from crdt_server.auth.permissions import LEADS
from crdt_server.auth.principals import Principal
from crdt_server.documents.model import DocumentError, instant, parse_instant, zone_of
from crdt_server.documents.schema import read_guests
from crdt_server.documents.totals import totals
from crdt_server.documents.vendors import (
    Vendor,
    read_directory,
    spellings,
    vendor_key,
    vendor_name,
)
from crdt_server.edge.guards import readable_documents, wedding_principal
from crdt_server.edge.params import WeddingId, WeddingPath
from crdt_server.edge.routing import ApiCall, Routes, json_response
from crdt_server.errors import Conflict, Forbidden, Impossible, Malformed, NotFound
from crdt_server.features.day import tables
from crdt_server.features.day.domain import (
    day_items,
    day_window,
    days_with_items,
    live_state,
    resolve_vendor,
)
from crdt_server.features.day.extension import DayWatch
from crdt_server.times import rfc3339

__all__ = ["day_routes"]

_BASE = "/api/weddings/{wedding_id}/day"
_TEXT = Annotated[str, Meta(min_length=1, max_length=200)]
_ID = Annotated[str, Meta(pattern=r"^[A-Za-z0-9_-]{1,64}$")]

day_routes = Routes()


class DayQuery(msgspec.Struct, frozen=True):
    day: Annotated[str, Meta(pattern=r"^\d{4}-\d{2}-\d{2}$", description="YYYY-MM-DD")] = ""


class CheckInBody(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    vendor: _TEXT
    """A directory id, or a free-text vendor name some item carries."""
    status: Literal["arrived", "running_late"]
    eta: Annotated[str, Meta(max_length=64)] | None = None
    """When a late vendor expects to arrive (ISO 8601 with an offset)."""
    at: Annotated[str, Meta(max_length=64)] | None = None
    """When it was tapped (ISO 8601 with an offset); kept unless later than receipt."""


class CheckInJson(msgspec.Struct, frozen=True):
    vendor: str
    name: str
    status: str
    eta: str | None
    at: str
    """When it was reported (tapped): the couple's view shows "reported at"."""
    received: str
    sub: str
    role: str


class ContactBody(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    name: Annotated[str, Meta(max_length=200)] | None = None
    email: Annotated[str, Meta(max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")] | None = None
    phone: Annotated[str, Meta(max_length=40)] | None = None


class ContactJson(msgspec.Struct, frozen=True):
    vendor_id: str
    name: str | None
    email: str | None
    phone: str | None


class VendorPath(msgspec.Struct, frozen=True):
    wedding_id: WeddingId
    vendor_id: _ID


class ModeBody(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    mode: Literal["auto", "on", "off"]


class ModeJson(msgspec.Struct, frozen=True):
    mode: str


class DutyBody(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    sub: _TEXT
    """The member on duty."""
    start: Annotated[str, Meta(max_length=64)]
    end: Annotated[str, Meta(max_length=64)]


class DutyJson(msgspec.Struct, frozen=True):
    sub: str
    start: str
    end: str


class ItemJson(msgspec.Struct, frozen=True):
    id: str
    title: str
    start: str
    end: str
    vendor: str | None
    status: str
    state: str
    """upcoming, in_progress, late or done: derived now, never stored."""


class CateringJson(msgspec.Struct, frozen=True):
    """What a caterer cooks for: the guest list's headcount, meals and dietary needs, with
    no one's name (the guest list's totals)."""

    people: int
    meals: dict[str, int]
    no_meal: int
    dietary: dict[str, int]


class VendorDayJson(msgspec.Struct, frozen=True):
    vendor: str
    name: str
    check_in: CheckInJson | None
    may_check_in: bool = False
    """Whether the caller may tap this vendor's check-in (``POST .../day/check-ins``)."""
    yours: bool = False
    """Whether the caller is one of the vendor's members (their own vendor: first on a
    vendor's phone)."""
    catering: CateringJson | None = None
    """For a caterer (a directory vendor whose category names catering), to the couple,
    the planner and its own members: the counts it cooks for, whatever it reads of the
    guest list."""


class DayJson(msgspec.Struct, frozen=True):
    day: str | None
    time_zone: str | None
    mode: str
    active: bool
    """Whether day-of mode is on now (the planner's switch, else the window)."""
    window: dict[str, str] | None
    items: list[ItemJson]
    vendors: list[VendorDayJson]
    on_duty: list[DutyJson]
    """The members on duty, by the start of their window."""


def _check_in_json(
    row: tables.CheckIn, directory: dict[str, Vendor], spelled: dict[str, str]
) -> CheckInJson:
    return CheckInJson(
        row.vendor,
        vendor_name(row.vendor, directory, spelled),
        row.status,
        row.eta,
        rfc3339(row.at),
        rfc3339(row.received),
        row.sub,
        row.role,
    )


def _reader(call: ApiCall, wedding_id: str) -> Principal:
    docs = readable_documents(call, wedding_id)
    if "timeline" not in docs:
        raise Forbidden("the timeline is not open to you")
    return wedding_principal(call, wedding_id, docs)


def _moment(value: str, field: str) -> datetime:
    try:
        return parse_instant(instant(value))
    except DocumentError as exc:
        raise Impossible(exc.message, field=field) from None


@day_routes.get(
    _BASE,
    "getWeddingDay",
    "The wedding day's state: day-of mode, items' live states, vendors' check-ins",
    family="read",
    response_model=DayJson,
    errors=(400, 401, 403, 404, 422, 429),
)
async def get_day(call: ApiCall, path: WeddingPath, query: DayQuery) -> Response:
    """The day's state, derived now from the clock, the timeline and the check-ins."""
    wedding_id = path.wedding_id
    principal = _reader(call, wedding_id)
    watch = call.state.extension(DayWatch)
    view = await watch.timeline(wedding_id)
    zone = (view.get("profile") or {}).get("time_zone")
    now = datetime.fromtimestamp(clock.now(), zone_of(zone))
    day = _which_day(query.day, view, zone, now)
    mode = await watch.db.run(tables.mode_of(wedding_id)) or "auto"
    directory = read_directory(view)
    spelled = spellings(view)
    items: list[ItemJson] = []
    vendors: dict[str, VendorDayJson] = {}
    window = None
    if day is not None:
        window = day_window(view, day, zone)
        latest = {row.vendor: row for row in await watch.check_ins(wedding_id, day, zone)}
        items = _items_of(view, day, zone, now, directory, latest)
        for key in [item.vendor for item in items if item.vendor is not None] + list(latest):
            if key not in vendors:
                last = latest.get(key)
                shown = _check_in_json(last, directory, spelled) if last is not None else None
                vendors[key] = _vendor_json(key, directory, spelled, shown, principal)
    caterers = [
        key
        for key, shown in vendors.items()
        if is_caterer(directory.get(key)) and (principal.role in LEADS or shown.yours)
    ]
    if caterers:
        counts = await _catering(call, wedding_id)
        for key in caterers:
            vendors[key] = msgspec.structs.replace(vendors[key], catering=counts)
    duties = await watch.db.run(tables.duties_of(wedding_id))
    on_duty = [DutyJson(d.sub, rfc3339(d.start), rfc3339(d.until)) for d in duties]
    active = mode == "on" or (mode == "auto" and window is not None and window.holds(now))
    return json_response(
        DayJson(
            day.isoformat() if day is not None else None,
            zone,
            mode,
            active,
            {"start": window.start.isoformat(), "end": window.end.isoformat()}
            if window is not None
            else None,
            items,
            sorted(vendors.values(), key=lambda v: v.vendor),
            on_duty,
        )
    )


def _which_day(
    asked: str | None, view: dict[str, Any], zone: str | None, now: datetime
) -> date | None:
    """The day asked for; else today if the timeline has items today, else the wedding's
    date, else the first day with items (``None`` for a timeline with none)."""
    if asked:
        try:
            return date.fromisoformat(asked)
        except ValueError:
            raise Impossible("not a date", field="day") from None
    profile = view.get("profile") or {}
    days = days_with_items(view, zone)
    wedding_day = date.fromisoformat(profile["date"]) if profile.get("date") else None
    return now.date() if now.date() in days else wedding_day or (days[0] if days else None)


def _items_of(
    view: dict[str, Any],
    day: date,
    zone: str | None,
    now: datetime,
    directory: dict[str, Vendor],
    latest: dict[str, tables.CheckIn],
) -> list[ItemJson]:
    """The day's items, each with its vendor and its live state (``latest``: each
    vendor's last check-in of the day)."""
    arrived = {key for key, row in latest.items() if row.status == "arrived"}
    items: list[ItemJson] = []
    for item_id, item in day_items(view, day, zone).items():
        key = vendor_key(item, directory)
        state = live_state(item, key, now, arrived)
        items.append(
            ItemJson(item_id, item["title"], item["start"], item["end"], key, item["status"], state)
        )
    return items


def is_caterer(vendor: Vendor | None) -> bool:
    """A directory vendor whose category names catering ("caterer", "Catering")."""
    return vendor is not None and "cater" in (vendor.category or "").casefold()


async def _catering(call: ApiCall, wedding_id: str) -> CateringJson:
    """The guest list's headcount, meals and dietary needs (its totals: no names)."""
    docs = await call.state.weddings.documents(wedding_id, kinds=("guests",))
    summary = totals(read_guests(docs.get("guests")))
    return CateringJson(
        int(summary["people"]),
        dict(summary["meals"]),
        int(summary["no_meal"]),
        dict(summary["dietary"]),
    )


def _vendor_json(
    key: str,
    directory: dict[str, Vendor],
    spelled: dict[str, str],
    shown: CheckInJson | None,
    principal: Principal,
) -> VendorDayJson:
    vendor = directory.get(key)
    yours = vendor is not None and principal.user_id in vendor.members
    may = _may_check_in(principal, vendor)
    return VendorDayJson(key, vendor_name(key, directory, spelled), shown, may, yours)


def _may_check_in(principal: Principal, vendor: Vendor | None) -> bool:
    """The couple, the planner, a member listed in the vendor's ``members``, or any
    vendor-role member for a vendor that lists none (free-text vendors included)."""
    if principal.role in LEADS:
        return True
    if vendor is not None and vendor.members:
        return principal.user_id in vendor.members
    return principal.role == "vendor"


@day_routes.post(
    f"{_BASE}/check-ins",
    "checkInVendor",
    "A vendor arrived or runs late (one tap); Idempotency-Key honoured",
    family="write",
    response_model=CheckInJson,
    status=201,
    also=(200,),
    errors=(400, 401, 403, 404, 409, 413, 422, 429),
)
async def post_check_in(call: ApiCall, path: WeddingPath, body: CheckInBody) -> Response:
    """Record a check-in; 201 with it (200: the one an earlier request with this
    Idempotency-Key recorded)."""
    wedding_id = path.wedding_id
    principal = _reader(call, wedding_id)
    watch = call.state.extension(DayWatch)
    view = await watch.timeline(wedding_id)
    found = resolve_vendor(body.vendor, view)
    if found is None:
        raise Impossible("not a vendor of this wedding's timeline", field="vendor")
    key, vendor = found
    if not _may_check_in(principal, vendor):
        raise Forbidden("you may not check this vendor in", field="vendor")
    eta = _moment(body.eta, "eta").isoformat() if body.eta is not None else None
    at = _moment(body.at, "at").timestamp() if body.at is not None else clock.now()
    idempotency = call.request.headers.get("idempotency-key")
    if idempotency is not None and not 1 <= len(idempotency) <= 255:
        raise Malformed("1 to 255 characters", field="Idempotency-Key")
    fingerprint = hashlib.sha256(call.body).hexdigest()
    directory = read_directory(view)
    spelled = spellings(view)
    row, new = await watch.check_in(
        wedding_id,
        key,
        vendor_name(key, directory, spelled),
        body.status,
        eta,
        at,
        Actor(principal.user_id, principal.role),
        idempotency,
        fingerprint,
    )
    if not new and row.fingerprint != fingerprint:
        raise Conflict("this Idempotency-Key was used with another body")
    return json_response(_check_in_json(row, directory, spelled), status_code=201 if new else 200)


async def _contact_vendor(call: ApiCall, path: VendorPath) -> Vendor:
    """The directory vendor, if the caller may see its contact (403), else 404."""
    principal = _reader(call, path.wedding_id)
    view = await call.state.extension(DayWatch).timeline(path.wedding_id)
    vendor = read_directory(view).get(path.vendor_id)
    if vendor is None:
        raise NotFound("no such vendor in the directory", field="vendor_id")
    if principal.role not in LEADS and principal.user_id not in vendor.members:
        raise Forbidden("a vendor's contact is for the couple, the planner and its members")
    return vendor


def _contact_json(vendor_id: str, contact: tables.Contact | None) -> ContactJson:
    if contact is None:
        return ContactJson(vendor_id, None, None, None)
    return ContactJson(vendor_id, contact.name, contact.email, contact.phone)


@day_routes.get(
    f"{_BASE}/vendors/{{vendor_id}}/contact",
    "getVendorContact",
    "A directory vendor's contact (couple, planner, its members)",
    family="read",
    response_model=ContactJson,
    errors=(400, 401, 403, 404, 429),
)
async def get_contact(call: ApiCall, path: VendorPath) -> Response:
    """The vendor's contact (every field ``null`` where none was given)."""
    await _contact_vendor(call, path)
    watch = call.state.extension(DayWatch)
    found = await watch.db.run(tables.contact_of(path.wedding_id, path.vendor_id))
    return json_response(_contact_json(path.vendor_id, found))


@day_routes.put(
    f"{_BASE}/vendors/{{vendor_id}}/contact",
    "putVendorContact",
    "Set a directory vendor's contact (couple, planner, its members)",
    family="write",
    response_model=ContactJson,
    errors=(400, 401, 403, 404, 413, 422, 429),
)
async def put_contact(call: ApiCall, path: VendorPath, body: ContactBody) -> Response:
    """Replace the vendor's contact; 200 with it."""
    await _contact_vendor(call, path)
    contact = tables.Contact(body.name, body.email, body.phone)
    watch = call.state.extension(DayWatch)
    await watch.db.run(tables.put_contact(path.wedding_id, path.vendor_id, contact, clock.now()))
    return json_response(_contact_json(path.vendor_id, contact))


@day_routes.put(
    f"{_BASE}/mode",
    "setDayMode",
    "The planner switches day-of mode on, off, or back to its window",
    family="write",
    response_model=ModeJson,
    errors=(400, 401, 403, 404, 422, 429),
)
async def put_mode(call: ApiCall, path: WeddingPath, body: ModeBody) -> Response:
    """Set the switch; 200 with it."""
    principal = _reader(call, path.wedding_id)
    if principal.role != "planner":
        raise Forbidden("only the planner switches day-of mode")
    await call.state.extension(DayWatch).set_mode(
        path.wedding_id, body.mode, Actor(principal.user_id, principal.role)
    )
    return json_response(ModeJson(body.mode))


@day_routes.put(
    f"{_BASE}/duty",
    "putDuty",
    "Put a member on duty for a window (couple, planner)",
    family="write",
    response_model=DutyJson,
    errors=(400, 401, 403, 404, 413, 422, 429),
)
async def put_duty(call: ApiCall, path: WeddingPath, body: DutyBody) -> Response:
    """A member is on duty from ``start`` to ``end``: one with no connection inside it
    for ``CRDT_SERVER_DAY_OFFLINE_GRACE_SECONDS`` raises ``day.member_offline`` (once per
    window). 200 with the window."""
    principal = _reader(call, path.wedding_id)
    if principal.role not in LEADS:
        raise Forbidden("only the couple and the planner put members on duty")
    start = _moment(body.start, "start").timestamp()
    end = _moment(body.end, "end").timestamp()
    if end <= start:
        raise Impossible("must be after start", field="end")
    if end - start > 2 * 86400:
        raise Impossible("a window is at most two days long", field="end")
    watch = call.state.extension(DayWatch)
    if watch.people is not None and await watch.people.member(path.wedding_id, body.sub) is None:
        raise Impossible("not a member of this wedding", field="sub")
    await watch.put_duty(path.wedding_id, tables.Duty(body.sub, start, end))
    return json_response(DutyJson(body.sub, rfc3339(start), rfc3339(end)))
