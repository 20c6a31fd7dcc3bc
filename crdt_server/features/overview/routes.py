"""The wedding at a glance, in one read.

- ``GET /api/weddings/{id}/overview``: the figures the app's Overview draws, each section
  from one document and only for a caller who may read that document (as the JSON views are
  cut: a vendor, who reads the guest list but not the budget or the tasks, gets ``guests``
  and ``vendors`` and no ``budget`` or ``tasks``):

  - ``wedding`` (the timeline): the couple's names, the date, the time zone;
  - ``guests`` (the guest list): people by answer, by side and by household, the meals and
    dietary needs of who may come, and ``answers_by_day`` (every answer recorded in the
    wedding's events, by day in the wedding's zone, and how many guests had answered by
    each day's end; left out where the server keeps no event log);
  - ``budget`` (the budget): planned, paid and scheduled in all, by category and by month
    (paid by the payment's date, scheduled by its due day), in minor units of ``currency``;
  - ``tasks`` (the tasks): done, open, overdue, due today, due within seven days, and by
    the month each is due, how many fall due and how many of those are done;
  - ``vendors`` (the timeline): the vendors due on the wedding day, each with its arrival
    (its call time, else its first item's start), whether a contact, an account acting for
    it or a live run sheet link exists, and ``ready`` when it has a contact, an arrival and
    one of those two; the contact itself only for the couple, the planner and the vendor's
    own members (as ``GET .../day/vendors/{vendor_id}/contact``).

  ``today`` is the day in the wedding's zone the figures were read on.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec
from msgspec import UNSET, UnsetType
from starlette.responses import Response

from crdt_server import clock
from crdt_server.auth.permissions import LEADS
from crdt_server.auth.principals import Principal
from crdt_server.documents import to_json
from crdt_server.documents.model import zone_of
from crdt_server.documents.schema import read_budget, read_guests, read_profile, read_tasks
from crdt_server.documents.vendors import read_directory, spellings, vendor_key, vendor_name
from crdt_server.edge.guards import readable_documents, wedding_principal
from crdt_server.edge.params import WeddingPath
from crdt_server.edge.routing import ApiCall, Routes, json_response
from crdt_server.features.day import DayWatch, call_times, contact_of, day_items
from crdt_server.features.events import EventLog
from crdt_server.features.overview.domain import (
    ANSWER_EVENTS,
    Answer,
    answers_of,
    budget_section,
    guests_section,
    tasks_section,
    vendor_entry,
)
from crdt_server.features.runsheets import RunSheets
from crdt_server.storage import EventFilter, Gateway
from crdt_server.times import rfc3339

__all__ = ["OverviewAnswer", "overview_routes"]

overview_routes = Routes()

EVENT_PAGE = 1000
MAX_ANSWER_EVENTS = 50_000
"""The most answer events read for the answers by day (a wedding has far fewer)."""


class Wedding(msgspec.Struct, frozen=True):
    names: list[str] | None
    date: str | None
    time_zone: str | None


class RsvpCounts(msgspec.Struct, frozen=True):
    pending: int
    accepted: int
    declined: int


class SideCounts(msgspec.Struct, frozen=True):
    side: str | None
    """``null``: guests with no side."""
    pending: int
    accepted: int
    declined: int


class HouseholdCounts(msgspec.Struct, frozen=True):
    id: str
    name: str
    people: int
    pending: int
    accepted: int
    declined: int


class AnswersOnDay(msgspec.Struct, frozen=True):
    day: str
    pending: int
    accepted: int
    declined: int
    answered: int
    """Guests of the list who had answered (accepted or declined) by the day's end."""


class GuestsOverview(msgspec.Struct, frozen=True):
    people: int
    guests: int
    rsvp: RsvpCounts
    by_side: list[SideCounts]
    by_household: list[HouseholdCounts]
    without_household: int
    meals: dict[str, int]
    no_meal: int
    dietary: dict[str, int]
    menu: list[str]
    answers_by_day: list[AnswersOnDay] | UnsetType = UNSET


class CategoryFigures(msgspec.Struct, frozen=True):
    id: str | None
    """``null``: payments whose category does not exist."""
    name: str | None
    planned: int
    paid: int
    scheduled: int


class MonthFigures(msgspec.Struct, frozen=True):
    month: str
    """``YYYY-MM``, or ``undated``."""
    paid: int
    scheduled: int


class BudgetOverview(msgspec.Struct, frozen=True):
    currency: str | None
    total: int | None
    planned: int
    paid: int
    scheduled: int
    by_category: list[CategoryFigures]
    by_month: list[MonthFigures]


class TasksInMonth(msgspec.Struct, frozen=True):
    month: str
    due: int
    done: int


class TasksOverview(msgspec.Struct, frozen=True):
    total: int
    done: int
    open: int
    overdue: int
    due_today: int
    due_soon: int
    by_month: list[TasksInMonth]


class VendorContact(msgspec.Struct, frozen=True):
    name: str | None
    email: str | None
    phone: str | None


class DayVendor(msgspec.Struct, frozen=True):
    id: str
    """A directory id, or ``name:`` and the folded free-text name."""
    name: str
    category: str | None
    arrival: str | None
    items: int
    has_contact: bool
    run_sheet: bool
    members: int
    ready: bool
    contact: VendorContact | UnsetType = UNSET


class VendorsOverview(msgspec.Struct, frozen=True):
    day: str | None
    """The wedding's date (``null``: none yet, and no vendors)."""
    vendors: list[DayVendor]


class OverviewAnswer(msgspec.Struct, frozen=True, omit_defaults=True):
    today: str
    wedding: Wedding | UnsetType = UNSET
    guests: GuestsOverview | UnsetType = UNSET
    budget: BudgetOverview | UnsetType = UNSET
    tasks: TasksOverview | UnsetType = UNSET
    vendors: VendorsOverview | UnsetType = UNSET


@overview_routes.get(
    "/api/weddings/{wedding_id}/overview",
    "readOverview",
    "The wedding at a glance: answers, meals, budget, tasks and the day's vendors, each "
    "section only for who may read its document",
    family="read",
    response_model=OverviewAnswer,
    errors=(401, 403, 404, 429, 503),
    description=(
        "One read of the figures the app's Overview draws. `guests` (for who may read the "
        "guest list): people by answer, by side and by household, meals and dietary needs of "
        "who may come, and `answers_by_day` (every answer in the event log, by day in the "
        "wedding's zone, with how many guests had answered by each day's end). `budget` (who "
        "may read the budget): planned, paid and scheduled, by category and by month, in "
        "minor units of `currency`. `tasks` (who may read the tasks): done, open, overdue, "
        "due today, due within seven days, and due and done by month. `wedding` and "
        "`vendors` (who may read the timeline): the vendors due on the wedding's date, each "
        "`ready` when it has a contact, an arrival and an account or a live run sheet link; "
        "the contact itself only for the couple, the planner and the vendor's own members. "
        "A section the caller may not read is absent."
    ),
)
async def read_overview(call: ApiCall, path: WeddingPath) -> Response:
    wedding_id = path.wedding_id
    readable = readable_documents(call, wedding_id)
    principal = wedding_principal(call, wedding_id, readable)
    wanted = readable & {"guests", "budget", "tasks"}
    # The timeline is read for the zone and the date the other sections count days by,
    # even where it is not shown.
    docs = await call.state.weddings.documents(wedding_id, kinds=(*sorted(wanted), "timeline"))
    profile = read_profile(docs.get("timeline"))
    zone = profile.time_zone
    today = datetime.fromtimestamp(clock.now(), zone_of(zone)).date()
    sections: dict[str, Any] = {"today": today.isoformat()}
    if "timeline" in readable:
        names = list(profile.names) if profile.names is not None else None
        sections["wedding"] = Wedding(names, profile.date, zone)
        timeline = to_json(docs["timeline"], "timeline") if "timeline" in docs else {}
        sections["vendors"] = await _vendors(
            call, wedding_id, principal, timeline, profile.date, zone
        )
    if "guests" in readable:
        answers = await _answers(call, wedding_id)
        found = guests_section(read_guests(docs.get("guests")), answers, zone)
        sections["guests"] = msgspec.convert(found, GuestsOverview)
    if "budget" in readable:
        sections["budget"] = msgspec.convert(
            budget_section(read_budget(docs.get("budget"))), BudgetOverview
        )
    if "tasks" in readable:
        found = tasks_section(read_tasks(docs.get("tasks")), profile.date, today)
        sections["tasks"] = msgspec.convert(found, TasksOverview)
    return json_response(OverviewAnswer(**sections))


async def _answers(call: ApiCall, wedding_id: str) -> list[Answer] | None:
    """Every answer the wedding's event log holds (``None`` without an event log)."""
    log = call.state.find(EventLog)
    if log is None:
        return None
    where = EventFilter(types=ANSWER_EVENTS, docs=frozenset({"guests"}))
    found: list[Answer] = []
    after = read = 0
    while read < MAX_ANSWER_EVENTS:
        events = await log.read(wedding_id, after=after, limit=EVENT_PAGE, where=where)
        for event in events:
            found += answers_of(event.seq, event.type, event.at, event.data)
        read += len(events)
        if len(events) < EVENT_PAGE:
            break
        after = events[-1].seq
    return found


async def _vendors(
    call: ApiCall,
    wedding_id: str,
    principal: Principal,
    timeline: dict[str, Any],
    wedding_date: str | None,
    zone: str | None,
) -> VendorsOverview:
    """The vendors due on the wedding's date and how ready each is."""
    if wedding_date is None:
        return VendorsOverview(None, [])
    day = datetime.fromisoformat(wedding_date).date()
    arrivals = call_times(timeline, day, zone)
    directory = read_directory(timeline)
    spelled = spellings(timeline)
    counts: dict[str, int] = {}
    for item in day_items(timeline, day, zone).values():
        key = vendor_key(item, directory)
        if key is not None:
            counts[key] = counts.get(key, 0) + 1
    now = clock.now()
    sheets = call.state.find(RunSheets)
    shared = (
        {link.vendor for link in await sheets.links.of(wedding_id) if link.expires_at > now}
        if sheets is not None
        else set()
    )
    keeps_contacts = call.state.find(DayWatch) is not None
    gateway = Gateway.of(call.state.store) if keeps_contacts else None
    vendors = []
    for key in sorted(
        {*arrivals, *counts}, key=lambda k: (arrivals.get(k) is None, arrivals.get(k), k)
    ):
        entry = directory.get(key)
        contact = None
        if entry is not None and gateway is not None:
            found = await gateway.run(contact_of(wedding_id, key))
            if found is not None and (found.name or found.email or found.phone):
                contact = found
        open_to = principal.role in LEADS or (
            entry is not None and principal.user_id in entry.members
        )
        arrival = arrivals.get(key)
        vendors.append(
            vendor_entry(
                key,
                vendor_name(key, directory, spelled),
                entry.category if entry is not None else None,
                rfc3339(arrival.timestamp(), "seconds") if arrival is not None else None,
                counts.get(key, 0),
                has_contact=contact is not None,
                contact=(
                    {"name": contact.name, "email": contact.email, "phone": contact.phone}
                    if contact is not None and open_to
                    else None
                ),
                run_sheet=key in shared,
                members=len(entry.members) if entry is not None else 0,
            )
        )
    return msgspec.convert({"day": wedding_date, "vendors": vendors}, VendorsOverview)
