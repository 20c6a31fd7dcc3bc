"""A sample wedding for demos: about 120 guests in households (entries, a few with a
mailing address or a note to the couple from their RSVP page), plus-ones (two of them
named), a menu, 12 tables, the day's timeline with its vendors and a run of show, a budget
with payments, and the default task checklist (some of it done, owned by the couple and the
planner); a few entries have notes.

Everything is built from the ordinary domain operations (:func:`documents.apply_operation`),
so the demo is exactly what a client could have written, and it is deterministic: the same
ids and values on every run (a fixed list and a fixed pseudo-random seed, never the clock).
Seeding is idempotent per document: a document whose ``meta`` is already seeded is left
alone, so running the demo twice (or after people edited it) writes nothing; a document that
is not is seeded and filled in one transaction, so a half-seeded demo cannot exist.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from datetime import date, timedelta
from typing import Any

from pycrdt import Doc, Map, XmlElement, XmlFragment, XmlText

from .model import DOCUMENT_KINDS, DocumentError, parse_instant, zone_of
from .operations import apply_operation
from .schema import RUN_OF_SHOW, read_timeline
from .seed import meta_changes, seed
from .tasks import CHECKLIST
from .vendors import VENDORS_ROOT

__all__ = [
    "DAY_DEMO_WEDDING_ID",
    "DEMO_WEDDING_ID",
    "day_demo_operations",
    "demo_operations",
    "seed_day_demo_document",
    "seed_demo",
    "seed_demo_document",
]

DEMO_WEDDING_ID = "demo"
"""The wedding id ``crdt-server serve --demo`` seeds."""

_FIRST = (
    "Ada Alan Amara Anna Ben Carla Chen Dara Elena Emil Farah Felix Grace Hana Ines Ivan Jonas "
    "Julia Kai Kenji Lara Leo Lina Luca Maya Mateo Nadia Noah Olga Omar Priya Rafael Rosa Sami "
    "Sofia Tariq Uma Victor Wen Yara Zoe"
).split()
_LAST = (
    "Abara Becker Costa Dubois Eriksen Fischer Garcia Haddad Ito Jensen Kowalski Laurent Moreau "
    "Nakamura Okafor Petrov Quinn Rossi Schmidt Tanaka Usman Vargas Weber Xu Yilmaz Zimmermann "
    "Andersen Bianchi Clarke Delgado"
).split()
_DIETARY = ("vegetarian", "vegan", "gluten-free", "nut allergy", "lactose-free", "halal")
_MEALS = ("beef", "fish", "vegetarian")
_TABLE_NAMES = (
    "Rose",
    "Peony",
    "Lily",
    "Tulip",
    "Orchid",
    "Dahlia",
    "Iris",
    "Jasmine",
    "Magnolia",
    "Camellia",
    "Lavender",
)
_DAY = "2027-06-12"
_TZ = "+02:00"
_ZONE = "Europe/Berlin"
"""The demo's time zone (its offset on the day is :data:`_TZ`)."""


def _at(hhmm: str) -> str:
    return f"{_DAY}T{hhmm}:00{_TZ}"


_MENU = ("Beef", "Fish", "Vegetarian")
"""The demo's menu; its guests' meals are written in lower case (totals count them by the
menu's spelling)."""
_RSVP_NOTES = (
    "We arrive Saturday only, see you at the ceremony!",
    "Our youngest is allergic to nuts, thank you for checking.",
    "Could we sit near the door? Grandma uses a wheelchair.",
)
"""Notes to the couple that households who answered wrote on their RSVP page."""
_NAMED_PLUS_ONES = 2
"""Singles whose plus-one has a name (a guest of their own, ``plus_one_of``)."""

_Seat = tuple[str, str, int, int]
"""A guest to seat: (guest id, rsvp, household number, people: 2 with an unnamed plus-one)."""


def _guest_ops(rng: random.Random) -> tuple[list[dict[str, Any]], list[_Seat]]:
    """The set_menu, add_household and add_guest operations, and the guests to seat in
    household order."""
    ops: list[dict[str, Any]] = [{"op": "set_menu", "choices": list(_MENU)}]
    order: list[_Seat] = []
    number = 0
    household_number = 0
    named = 0
    sides = ("partner_a", "partner_b")
    while number < 120:
        household_number += 1
        last = _LAST[(household_number - 1) % len(_LAST)]
        size = min(rng.choice((1, 2, 2, 2, 3, 4)), 120 - number)
        household = f"{last} household" if size > 1 else None
        household_id = f"h{household_number:03d}"
        if household is not None:
            entry: dict[str, Any] = {"op": "add_household", "household_id": household_id}
            entry["name"] = household
            if household_number % 4 == 1:
                entry["mailing_address"] = f"{household_number} {last}straße, Berlin"
            ops.append(entry)
        side = "both" if household_number % 9 == 0 else sides[household_number % 2]
        # Whole households answer together, as they usually do.
        roll = rng.random()
        rsvp = "accepted" if roll < 0.8 else ("pending" if roll < 0.93 else "declined")
        if household is not None and rsvp == "accepted" and household_number % 6 == 2:
            # A few households who answered left the couple a note (not drawn: the
            # pseudo-random sequence stays as it was).
            entry["rsvp_note"] = _RSVP_NOTES[household_number // 6 % len(_RSVP_NOTES)]
            entry["rsvp_note_at"] = f"2026-10-{1 + household_number % 28:02d}T19:30:00+02:00"
        for member in range(size):
            number += 1
            first = _FIRST[(number * 7 + member) % len(_FIRST)]
            guest_id = f"g{number:03d}"
            op: dict[str, Any] = {
                "op": "add_guest",
                "guest_id": guest_id,
                "name": f"{first} {last}",
                "side": side,
                "rsvp": rsvp,
            }
            if household is not None:
                op["household"] = household
                op["household_id"] = household_id
            if rsvp == "accepted":
                op["meal"] = rng.choice(_MEALS)
            if rng.random() < 0.18:
                op["dietary"] = [rng.choice(_DIETARY)]
            people = 1
            if size == 1 and rng.random() < 0.3:
                op["plus_one"] = True
                people = 2
            if member == 0:
                op["contact"] = f"{first.lower()}.{last.lower()}@example.com"
            if number % 25 == 0:
                op["notes"] = "Arrives late from the airport; keep a plate warm."
            ops.append(op)
            if people == 2 and rsvp == "accepted" and named < _NAMED_PLUS_ONES:
                # A plus-one with a name: a person of their own, with a meal and a seat.
                named += 1
                partner = _FIRST[(number * 11 + 5) % len(_FIRST)]
                ops.append(
                    {"op": "add_guest", "guest_id": f"{guest_id}p", "name": f"{partner} Guest"}
                    | {"plus_one_of": guest_id, "rsvp": rsvp, "side": side}
                    # Not drawn: the pseudo-random sequence, so every other guest, stays as it was.
                    | {"meal": _MEALS[number % len(_MEALS)]}
                )
                order.append((guest_id, rsvp, household_number, 1))
                order.append((f"{guest_id}p", rsvp, household_number, 1))
                continue
            order.append((guest_id, rsvp, household_number, people))
    return ops, order


def _seating_ops(order: list[_Seat]) -> list[dict[str, Any]]:
    ops: list[dict[str, Any]] = [
        {"op": "add_table", "table_id": "t01", "name": "Head table", "capacity": 8}
        | {"shape": "rectangular", "notes": "Facing the dance floor; microphone at seat 4."}
    ]
    for index, name in enumerate(_TABLE_NAMES, start=2):
        ops.append({"op": "add_table", "table_id": f"t{index:02d}", "name": name, "capacity": 10})
    # The head table and the first round table full, the others filled to eight of ten; a
    # household (a guest and their plus-one) sits together, at the next table if it must.
    capacities = [8, 10] + [8] * (len(_TABLE_NAMES) - 1)
    accepted = [seat for seat in order if seat[1] == "accepted"]
    # Leave the last few who accepted without a seat, so the demo has people to place.
    to_seat = accepted[: max(0, len(accepted) - 6)]
    groups: dict[int, list[_Seat]] = {}
    for seat in to_seat:
        groups.setdefault(seat[2], []).append(seat)
    table, used = 0, 0
    for group in groups.values():
        people = sum(seat[3] for seat in group)
        if used + people > capacities[table]:
            table, used = table + 1, 0
            if table == len(capacities):
                break
        for guest_id, _, _, count in group:
            ops.append(
                {"op": "assign_seat", "guest_id": guest_id, "table_id": f"t{table + 1:02d}"}
                | {"seat": used + 1}
            )
            used += count  # an unnamed plus-one takes the seat beside their host
    return ops


_TIMELINE: tuple[tuple[str, str, str, str, str, str | None, str], ...] = (
    # id, title, start, end, location, vendor, status
    ("i01", "Hair and make-up", "09:00", "11:30", "Bridal suite", "Glow Studio", "confirmed"),
    ("i02", "Photographer arrives", "11:30", "12:00", "Bridal suite", "Lens & Light", "confirmed"),
    ("i03", "Florist sets up the ceremony", "11:30", "13:00", "Garden", "Petal Co.", "confirmed"),
    ("i04", "Guests arrive", "13:30", "14:00", "Garden", None, "planned"),
    ("i05", "Ceremony", "14:00", "14:45", "Garden", "Lens & Light", "confirmed"),
    ("i06", "Drinks reception", "15:00", "16:30", "Terrace", "Harbour Catering", "confirmed"),
    ("i07", "Group photos", "15:15", "16:00", "Lawn", None, "planned"),
    ("i08", "Dinner", "17:00", "19:00", "Orangery", "Harbour Catering", "planned"),
    ("i09", "Speeches", "19:00", "19:45", "Orangery", None, "planned"),
    ("i10", "Cake cutting", "19:45", "20:00", "Orangery", "Sugar Bloom", "planned"),
    ("i11", "First dance", "20:00", "20:15", "Ballroom", "The Night Owls", "planned"),
    ("i12", "Band plays", "20:15", "23:30", "Ballroom", "The Night Owls", "planned"),
    ("i13", "Late-night food", "22:00", "22:30", "Terrace", "Harbour Catering", "planned"),
    ("i14", "Carriages", "23:30", "23:59", "Front gate", "Swift Cabs", "planned"),
)
_OWNERS = ("Planner", "Couple", "Best man", "Maid of honour")
_ITEM_NOTES = {
    "i05": "Rings with the best man. Readings: Ada, then Jonas.",
    "i08": "Two high chairs at table Peony. Vegan plates are marked with a leaf.",
    "i14": "Last carriage waits until everyone from the head table is out.",
}
_RUN_OF_SHOW: tuple[tuple[str, str], ...] = (
    # (node type, text): a heading, then one paragraph per moment of the day
    ("heading", "Run of show"),
    ("paragraph", "13:30 Guests arrive; ushers hand out programmes at the garden gate."),
    ("paragraph", "14:00 Ceremony: music cue when the doors open, rings with the best man."),
    ("paragraph", "17:00 Dinner in the Orangery; speeches start with dessert at 19:00."),
    ("paragraph", "20:00 First dance, then the band. Carriages from 23:30."),
)

_CATEGORIES: tuple[tuple[str, str, int], ...] = (
    ("venue", "Venue", 900_000),
    ("catering", "Catering", 1_100_000),
    ("photo", "Photography", 280_000),
    ("flowers", "Flowers", 180_000),
    ("music", "Music", 220_000),
    ("attire", "Attire", 250_000),
    ("stationery", "Stationery", 60_000),
    ("transport", "Transport", 50_000),
)
_PAYMENTS: tuple[tuple[str, int, str, str, str, str], ...] = (
    # id, amount, category, date, payer, vendor
    ("p01", 300_000, "venue", "2026-09-01", "Couple", "Villa Aurora"),
    ("p02", 300_000, "venue", "2027-01-15", "Couple", "Villa Aurora"),
    ("p03", 330_000, "catering", "2026-11-20", "Parents", "Harbour Catering"),
    ("p04", 90_000, "photo", "2026-10-05", "Couple", "Lens & Light"),
    ("p05", 45_000, "flowers", "2027-02-01", "Couple", "Petal Co."),
    ("p06", 66_000, "music", "2026-12-12", "Couple", "The Night Owls"),
    ("p07", 120_000, "attire", "2027-03-03", "Parents", "Atelier Nord"),
    ("p08", 38_000, "stationery", "2026-10-20", "Couple", "Paper & Ink"),
    ("p09", 54_000, "attire", "2027-04-10", "Couple", "Tailor Row"),
    ("p10", 15_000, "transport", "2027-05-02", "Couple", "Swift Cabs"),
)


_SCHEDULED = frozenset({"p07", "p09", "p10"})
"""Payments still to make: their date is the day they are due (the Upcoming list, the
calendar feed, the reminders)."""


def demo_operations() -> dict[str, list[dict[str, Any]]]:
    """The operations that build the demo wedding, per kind of document, in order."""
    rng = random.Random(2027)
    guests, order = _guest_ops(rng)
    profile: dict[str, Any] = {
        "op": "set_profile",
        "names": ["Maya Okafor", "Jonas Becker"],
        "date": _DAY,
        "time_zone": _ZONE,
        "venue": "Villa Aurora",
        "rsvp_deadline": "2027-05-01",
    }
    timeline: list[dict[str, Any]] = [profile] + [
        {
            "op": "add_timeline_item",
            "item_id": item_id,
            "title": title,
            "start": _at(start),
            "end": _at(end),
            "location": location,
            "owner": _OWNERS[index % len(_OWNERS)],
            "status": status,
        }
        | ({"vendor": vendor} if vendor else {})
        | ({"notes": _ITEM_NOTES[item_id]} if item_id in _ITEM_NOTES else {})
        for index, (item_id, title, start, end, location, vendor, status) in enumerate(_TIMELINE)
    ]
    budget: list[dict[str, Any]] = [
        {"op": "set_budget_total", "total": 3_200_000, "currency": "EUR"}
    ]
    budget += [
        {"op": "set_category", "category_id": cid, "name": name, "planned": planned}
        for cid, name, planned in _CATEGORIES
    ]
    budget[2]["notes"] = "Menu tasting on 2027-03-14; final numbers due four weeks before."
    budget += [
        {"op": "record_payment", "payment_id": pid, "amount": amount, "category_id": cid}
        | (
            {"status": "scheduled", "due": day}
            if pid in _SCHEDULED
            else {"date": day, "status": "paid"}
        )
        | {"payer": payer, "vendor": vendor}
        for pid, amount, cid, day, payer, vendor in _PAYMENTS
    ]
    budget[-8]["notes"] = "Deposit; the rest is due after the final head count."
    return {
        "guests": guests,
        "seating": _seating_ops(order),
        "timeline": timeline,
        "budget": budget,
        "tasks": _task_ops(),
    }


_TASK_OWNERS = ("demo-couple", "demo-planner")
"""The demo's members who do its tasks (``crdt_server.edge.demo.DEMO_PEOPLE``'s ids)."""
_DONE_TASKS = ("t-budget", "t-guest-list", "t-venue", "t-photographer", "t-caterer")


def _task_ops() -> list[dict[str, Any]]:
    """The default checklist, owned in turn by the couple and the planner, its first tasks
    done, and two tasks of the demo's own (one with a day, one with notes)."""
    ops: list[dict[str, Any]] = [{"op": "seed_checklist"}]
    ops += [
        {"op": "update_task", "task_id": task_id, "owner": _TASK_OWNERS[i % len(_TASK_OWNERS)]}
        for i, (task_id, _, _) in enumerate(CHECKLIST)
    ]
    ops += [{"op": "complete_task", "task_id": task_id} for task_id in _DONE_TASKS]
    ops += [
        {
            "op": "add_task",
            "task_id": "t-tasting",
            "title": "Menu tasting with the caterer",
            "owner": "demo-couple",
            "due": "2027-03-14",
        },
        {
            "op": "add_task",
            "task_id": "t-welcome-bags",
            "title": "Pack the welcome bags",
            "owner": "demo-planner",
            "due_offset": "-3D",
            "notes": "One per household staying at the hotel; maps and the weekend's plan.",
        },
    ]
    return ops


def seed_demo_document(doc: Doc[Any], kind: str, wedding_id: str, *, origin: Any = None) -> bool:
    """Seed ``doc`` as document ``kind`` of the demo and fill it, in one transaction.

    Returns ``False`` and writes nothing when the document is already seeded (whatever
    people did with it since). Raises :class:`DocumentError` for a document of another
    wedding or kind.
    """
    if not meta_changes(doc, kind, wedding_id):
        return False
    operations = demo_operations()[kind]
    # One outer transaction: the operations' own transactions nest inside it, so the whole
    # document is one update (one commit on a server) and is all there or not at all.
    with doc.transaction(origin=origin):
        seed(doc, kind, wedding_id, origin=origin)
        for op in operations:
            apply_operation(doc, kind, op, origin=origin)
        if kind == "timeline":
            _write_run_of_show(doc)
    return True


def _write_run_of_show(doc: Doc[Any]) -> None:
    """The run of show as y-prosemirror writes a ProseMirror document: one element per
    block, named by its node type, holding its text (a heading's level as an attribute)."""
    fragment = doc.get(RUN_OF_SHOW, type=XmlFragment)
    for node, line in _RUN_OF_SHOW:
        attributes = {"level": "2"} if node == "heading" else None
        fragment.children.append(XmlElement(node, attributes, [XmlText(line)]))


def seed_demo(
    docs: Mapping[str, Doc[Any]], wedding_id: str = DEMO_WEDDING_ID, *, origin: Any = None
) -> dict[str, bool]:
    """Seed and fill each of the documents (see :func:`seed_demo_document`); returns
    which ones were written."""
    missing = [kind for kind in DOCUMENT_KINDS if kind not in docs]
    if missing:
        raise DocumentError(f"the demo needs every document, {missing[0]} is missing")
    return {
        kind: seed_demo_document(docs[kind], kind, wedding_id, origin=origin)
        for kind in DOCUMENT_KINDS
    }


# -- the wedding of today ---------------------------------------------------------------------

DAY_DEMO_WEDDING_ID = "demo-today"
"""The second wedding ``crdt-server serve --demo`` seeds: its date is the day the server
starts (re-dated at each start), so the wedding-day features have a day to show."""

_DAY_VENDORS: dict[str, dict[str, Any]] = {
    "glam": {"name": "Glam Studio", "category": "hair and makeup", "members": []},
    "petal": {"name": "Petal Co.", "category": "florist", "members": []},
    "lens": {"name": "Lens & Light", "category": "photographer", "members": ["demo-vendor"]},
    "owls": {"name": "The Night Owls", "category": "music", "members": []},
}
_DAY_ITEMS: tuple[tuple[str, str, str, str, str | None, dict[str, Any]], ...] = (
    # id, title, start, end (local wall clock), vendor id, more
    ("d-hair", "Hair and makeup", "07:30", "09:30", "glam", {}),
    ("d-flowers", "Flowers delivered", "09:00", "10:00", "petal", {}),
    ("d-prep-photos", "Getting-ready photos", "10:00", "11:00", "lens", {"follows": "d-flowers"}),
    ("d-bouquets", "Bouquets to the bridal suite", "10:00", "10:30", "petal", {}),
    ("d-ceremony", "Ceremony", "14:00", "15:00", None, {"fixed": True}),
    ("d-portraits", "Portraits", "15:00", "16:00", "lens", {"follows": "d-ceremony"}),
    ("d-dinner", "Dinner", "17:00", "19:30", None, {}),
    ("d-dance", "First dance and the band", "20:00", "23:30", "owls", {}),
)


def day_demo_operations(day: str, zone: str) -> list[dict[str, Any]]:
    """The timeline operations of the wedding of today, on ``day`` in ``zone``."""
    ops: list[dict[str, Any]] = [
        {
            "op": "set_profile",
            "names": ["Alex Rossi", "Sam Tanaka"],
            "date": day,
            "time_zone": zone,
            "venue": "The Old Mill",
        }
    ]
    for item_id, title, start, end, vendor_id, more in _DAY_ITEMS:
        op: dict[str, Any] = {
            "op": "add_timeline_item",
            "item_id": item_id,
            "title": title,
            "start": f"{day}T{start}",
            "end": f"{day}T{end}",
        }
        if vendor_id is not None:
            op |= {"vendor": _DAY_VENDORS[vendor_id]["name"], "vendor_id": vendor_id}
        ops.append(op | more)
    return ops


def seed_day_demo_document(
    doc: Doc[Any], kind: str, day: str, zone: str, *, origin: Any = None
) -> bool:
    """Seed ``doc`` as document ``kind`` of the wedding of today (the timeline filled, the
    other documents empty), in one transaction; or, when it is seeded already, move its
    date and every item by whole days to ``day`` (a restart on another day). Whether it
    wrote anything."""
    wedding = DAY_DEMO_WEDDING_ID
    if not meta_changes(doc, kind, wedding):
        return kind == "timeline" and _redate(doc, day, origin)
    with doc.transaction(origin=origin):
        seed(doc, kind, wedding, origin=origin)
        if kind == "timeline":
            vendors = doc.get(VENDORS_ROOT, type=Map)
            for vendor_id, entry in _DAY_VENDORS.items():
                vendors[vendor_id] = Map(dict(entry))
            for op in day_demo_operations(day, zone):
                apply_operation(doc, kind, op, origin=origin)
    return True


def _redate(doc: Doc[Any], day: str, origin: Any) -> bool:
    timeline = read_timeline(doc)
    was = timeline.profile.date
    if was is None or was == day:
        return False
    shift = timedelta(days=(date.fromisoformat(day) - date.fromisoformat(was)).days)
    with doc.transaction(origin=origin):
        apply_operation(doc, "timeline", {"op": "set_profile", "date": day}, origin=origin)
        zone = zone_of(timeline.profile.time_zone)
        for item in timeline.items.values():
            # The same wall clock on the new day (a change of summer time moves the offset).
            start, end = (
                (parse_instant(at).astimezone(zone).replace(tzinfo=None) + shift).isoformat()
                for at in (item.start, item.end)
            )
            op = {"op": "move_timeline_item", "item_id": item.id, "start": start, "end": end}
            apply_operation(doc, "timeline", op, origin=origin)
    return True
