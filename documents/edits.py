"""The handlers behind the domain operations: check against the document, then write.

Each handler receives arguments already checked for shape by :mod:`documents.operations`,
refuses (``impossible``) what the document rules out, and only then opens its one transaction,
so a refused operation changes nothing. Hard constraints a replica can see are refused
(unknown ids, a seat outside the table or already taken, a full table, an end before the
start); soft ones (overlapping timeline items, spending over plan) are accepted and reported
by the invariant checks, which also report hard ones that concurrent edits produced.

Edits write only the fields whose value actually changes, so a no-op edit never overwrites
a concurrent real one (last writer wins per key).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pycrdt import Doc, Map

from .households import household_guests, named_plus_ones, unnamed_plus_ones
from .model import (
    BUDGET_SETTINGS,
    CATEGORY,
    MENU,
    PAYMENT,
    PROFILE,
    TIMELINE_ITEM,
    DocumentError,
    Entity,
    Field,
    OperationError,
    in_zone,
    new_id,
    parse_instant,
    payment_status,
)
from .schema import (
    GuestList,
    SeatingPlan,
    changes,
    new_entry,
    plain,
    read_budget,
    read_budget_settings,
    read_guests,
    read_profile,
    read_seating,
    root,
    write,
)
from .seats import guest_entry, seated_at, table_entry, unnamed_among

Result = dict[str, Any]


@dataclass(frozen=True)
class Invocation:
    """One validated operation: its name, the document, and the checked arguments."""

    name: str
    doc: Doc[Any]
    args: dict[str, Any]
    origin: Any
    related: Mapping[str, Doc[Any]]

    def result(self, entry_id: str | None, changed: bool, **extra: Any) -> Result:
        return {"op": self.name, "id": entry_id, "changed": changed, **extra}


def refuse(message: str, path: str = "") -> OperationError:
    return OperationError(message, reason="impossible", path=path)


def _entry(doc: Doc[Any], entity: Entity, entry_id: str) -> Map[Any]:
    entry = root(doc, entity.collection).get(entry_id)
    if not isinstance(entry, Map):
        raise refuse(f"there is no {entity.label} '{entry_id}'", entity.id_field)
    return entry


def _fresh_id(collection: Map[Any]) -> str:
    while (entry_id := new_id()) in collection:
        pass
    return entry_id


def _stored(entry: Map[Any], f: Field) -> Any:
    """The canonical stored value of a field, or ``None`` if absent or invalid."""
    try:
        value = plain(entry.get(f.name))
        return None if value is None else f.rule(value)
    except DocumentError:
        return None


def _check_slot(start: Any, end: Any) -> None:
    if start is not None and end is not None and parse_instant(end) < parse_instant(start):
        raise refuse(f"the item would end ({end}) before it starts ({start})", "end")


# -- generic add, update, remove ---------------------------------------------------------


def add(
    entity: Entity, check: Callable[[Invocation], None] | None = None
) -> Callable[[Invocation], Result]:
    def run(call: Invocation) -> Result:
        collection = root(call.doc, entity.collection)
        entry_id = call.args.pop(entity.id_field, None)
        if entry_id is not None and entry_id in collection:
            raise refuse(f"{entity.label} '{entry_id}' already exists", entity.id_field)
        if check is not None:
            check(call)
        entry_id = entry_id or _fresh_id(collection)
        with call.doc.transaction(origin=call.origin):
            collection[entry_id] = new_entry(entity, call.args)
        return call.result(entry_id, True)

    return run


def update(
    entity: Entity, check: Callable[[Invocation, str, Map[Any]], None] | None = None
) -> Callable[[Invocation], Result]:
    def run(call: Invocation) -> Result:
        entry_id = call.args.pop(entity.id_field)
        entry = _entry(call.doc, entity, entry_id)
        if check is not None:
            check(call, entry_id, entry)
        changed = changes(entry, entity.fields, call.args)
        if changed:
            with call.doc.transaction(origin=call.origin):
                write(entry, changed)
        return call.result(entry_id, bool(changed))

    return run


def remove(
    entity: Entity, missing: str = "there is no {label} '{id}'"
) -> Callable[[Invocation], Result]:
    def run(call: Invocation) -> Result:
        entry_id = call.args[entity.id_field]
        collection = root(call.doc, entity.collection)
        if entry_id not in collection:
            raise refuse(missing.format(label=entity.label, id=entry_id), entity.id_field)
        with call.doc.transaction(origin=call.origin):
            del collection[entry_id]
        return call.result(entry_id, True)

    return run


# -- guests ------------------------------------------------------------------------------


def check_guest_links(call: Invocation, guest_id: str | None = None) -> None:
    """A guest's ``household_id`` must name a household entry, and ``plus_one_of`` another
    guest on the list (this replica's view: a concurrent removal is the findings' to
    report)."""
    household_id = call.args.get("household_id")
    if household_id is not None and household_id not in root(call.doc, "households"):
        raise refuse(f"there is no household '{household_id}'", "household_id")
    host = call.args.get("plus_one_of")
    if host is None:
        return
    if host == guest_id:
        raise refuse("a guest cannot be their own plus-one", "plus_one_of")
    if not isinstance(root(call.doc, "guests").get(host), Map):
        raise refuse(f"there is no guest '{host}'", "plus_one_of")


def check_new_guest(call: Invocation) -> None:
    # The new guest's id is not on the list (add refused it otherwise): naming it as the
    # host is refused as naming no guest.
    check_guest_links(call)


def check_guest_update(call: Invocation, guest_id: str, entry: Map[Any]) -> None:
    check_guest_links(call, guest_id)


# -- timeline ------------------------------------------------------------------------------


def _zoned_times(call: Invocation) -> None:
    """The item's given ``start`` and ``end`` as the wedding's zone writes them (the
    profile's ``time_zone``): any day, the zone's offset on that date (:func:`in_zone`)."""
    zone = read_profile(call.doc).time_zone
    for name in ("start", "end"):
        if call.args.get(name) is not None:
            try:
                call.args[name] = in_zone(call.args[name], zone)
            except DocumentError as exc:  # it depends on the profile: impossible here
                raise refuse(exc.message, name) from None


def check_new_item(call: Invocation) -> None:
    _zoned_times(call)
    _check_slot(call.args["start"], call.args["end"])


def check_move(call: Invocation, item_id: str, entry: Map[Any]) -> None:
    _zoned_times(call)
    start = call.args.get("start", _stored(entry, TIMELINE_ITEM.field("start")))
    end = call.args.get("end", _stored(entry, TIMELINE_ITEM.field("end")))
    _check_slot(start, end)


# -- seating ------------------------------------------------------------------------------


def check_capacity(call: Invocation, table_id: str, entry: Map[Any]) -> None:
    capacity = call.args.get("capacity")
    if capacity is None:
        return
    plan = read_seating(call.doc)
    seated = [a for a in plan.assignments.values() if a.table_id == table_id]
    people = _people_seated(plan, table_id, _guest_list(call))
    if people > capacity:
        what = f"{len(seated)} guests" if people == len(seated) else f"{people} people"
        raise refuse(f"{what} are assigned to this table; unassign some first", "capacity")
    highest = max((a.seat for a in seated if a.seat is not None), default=0)
    if highest > capacity:
        raise refuse(f"seat {highest} of this table is assigned; move that guest first", "capacity")


def remove_table(call: Invocation) -> Result:
    table_id = call.args["table_id"]
    tables = root(call.doc, "tables")
    if table_id not in tables:
        raise refuse(f"there is no table '{table_id}'", "table_id")
    plan = read_seating(call.doc)
    seated = sorted(a.id for a in plan.assignments.values() if a.table_id == table_id)
    assignments = root(call.doc, "assignments")
    with call.doc.transaction(origin=call.origin):
        del tables[table_id]
        for guest_id in seated:
            del assignments[guest_id]
    return call.result(table_id, True, unassigned=seated)


def _people_seated(
    plan: SeatingPlan, table_id: str, guest_list: GuestList | None, excluding: Iterable[str] = ()
) -> int:
    """The people seated at a table (its assignments, and the unnamed plus-ones of its
    seated guests where the guest list is known), leaving out the guests ``excluding``."""
    left_out = set(excluding)
    seated = [a.id for a in plan.assignments.values() if a.table_id == table_id]
    seated = [g for g in seated if g not in left_out]
    if guest_list is None:
        return len(seated)
    unnamed = set(unnamed_plus_ones(guest_list))
    return len(seated) + sum(1 for g in seated if g in unnamed)


def _guest_list(call: Invocation) -> GuestList | None:
    doc = call.related.get("guests")
    return read_guests(doc) if doc is not None else None


def assign_seat(call: Invocation) -> Result:
    """Seat one guest: reads that table, that guest and who sits at the table
    (:mod:`documents.seats`), not the whole plan and guest list."""
    guest_id, table_id = call.args["guest_id"], call.args["table_id"]
    seat: int | None = call.args.get("seat")
    table = table_entry(call.doc, table_id)
    if table is None:
        raise refuse(f"there is no table '{table_id}'", "table_id")
    guests_doc = call.related.get("guests")
    if guests_doc is not None:
        guest = guest_entry(guests_doc, guest_id)
        if guest is None:
            raise refuse(f"there is no guest '{guest_id}' on the guest list", "guest_id")
        if guest.rsvp == "declined":
            raise refuse(f"{guest.name} declined and cannot be seated", "guest_id")
    at_table = seated_at(call.doc, table_id)
    others = [a for a in at_table if a.id != guest_id]
    if seat is not None:
        if seat > table.capacity:
            raise refuse(f"table '{table.name}' has seats 1 to {table.capacity}", "seat")
        for other in others:
            if other.seat == seat:
                raise refuse(
                    f"seat {seat} at table '{table.name}' is taken by guest '{other.id}'", "seat"
                )
    moving_in = all(a.id != guest_id for a in at_table)  # unseated, or at another table
    unnamed = unnamed_among(guests_doc, [guest_id, *(a.id for a in others)])
    taken = len(others) + sum(1 for a in others if a.id in unnamed)
    coming = 1 + (guest_id in unnamed)
    if moving_in and taken + coming > table.capacity:
        bringing = " (they bring a plus-one)" if coming > 1 else ""
        raise refuse(
            f"table '{table.name}' is full ({taken} of {table.capacity} seats taken)" + bringing,
            "table_id",
        )
    wanted: dict[str, Any] = {"table_id": table_id}
    if seat is not None:
        wanted["seat"] = seat
    assignments = root(call.doc, "assignments")
    if plain(assignments.get(guest_id)) == wanted:
        return call.result(guest_id, False)
    with call.doc.transaction(origin=call.origin):
        assignments[guest_id] = wanted  # one value: a guest is in exactly one seat
    return call.result(guest_id, True)


def seat_household(call: Invocation) -> Result:
    """Seat a household (``household_id``), or a guest with their plus-ones (``guest_id``),
    together at one table, in one transaction: who is already there keeps their seat, the
    others are seated without a seat number; who declined is left out. Refused when the
    table has not room for all of them (unnamed plus-ones count, they sit with their
    host)."""
    table_id = call.args["table_id"]
    household_id, guest_id = call.args.get("household_id"), call.args.get("guest_id")
    if (household_id is None) == (guest_id is None):
        raise OperationError("seat_household needs household_id or guest_id (one of them)")
    guest_list = _guest_list(call)
    if guest_list is None:
        raise refuse("seating a household needs the guest list", "household_id")
    plan = read_seating(call.doc)
    table = plan.tables.get(table_id)
    if table is None:
        raise refuse(f"there is no table '{table_id}'", "table_id")
    if household_id is not None:
        found = household_guests(guest_list, household_id)
        if found is None:
            raise refuse(f"there is no household '{household_id}'", "household_id")
        group = [g.id for g in found.guests]
        entry_id = household_id
    else:
        host = guest_list.guests.get(guest_id) if guest_id is not None else None
        if host is None:
            raise refuse(f"there is no guest '{guest_id}' on the guest list", "guest_id")
        group = [host.id, *named_plus_ones(guest_list).get(host.id, ())]
        entry_id = host.id
    group = [g for g in group if guest_list.guests[g].rsvp != "declined"]
    if not group:
        raise refuse(
            "nobody to seat: everyone in it declined",
            "household_id" if household_id else "guest_id",
        )
    unnamed = set(unnamed_plus_ones(guest_list))
    moving = [g for g in group if (a := plan.assignments.get(g)) is None or a.table_id != table_id]
    taken = _people_seated(plan, table_id, guest_list)
    needed = len(moving) + sum(1 for g in moving if g in unnamed)
    if taken + needed > table.capacity:
        raise refuse(
            f"table '{table.name}' has {table.capacity - taken} free seats of "
            f"{table.capacity}; they need {needed}",
            "table_id",
        )
    if moving:
        assignments = root(call.doc, "assignments")
        with call.doc.transaction(origin=call.origin):
            for g in moving:
                assignments[g] = {"table_id": table_id}
    return call.result(entry_id, bool(moving), seated=sorted(moving))


# -- budget -------------------------------------------------------------------------------


def _currency_change(call: Invocation) -> dict[str, Any]:
    """Settings to write for the operation's ``currency``: the budget adopts it if it has
    none yet; a different one is refused (amounts are in the budget's currency)."""
    given = call.args.pop("currency", None)
    if given is None:
        return {}
    # The settings alone (not every category and payment): recording a payment costs the
    # same in a budget of ten payments as in one of a thousand.
    current = read_budget_settings(call.doc)[0]["currency"]
    if given is None or given == current:
        return {}
    if current is None:
        return {"currency": given}
    raise refuse(f"the budget is in {current}, not {given}", "currency")


def set_budget_total(call: Invocation) -> Result:
    budget = read_budget(call.doc)
    wanted: dict[str, Any] = {"total": call.args["total"]}
    given = call.args.get("currency")
    if given is not None and given != budget.currency:
        has_amounts = budget.payments or any(c.planned for c in budget.categories.values())
        if budget.currency is not None and has_amounts:
            raise refuse(
                f"the budget already has amounts in {budget.currency}; "
                f"they cannot be re-read as {given}",
                "currency",
            )
        wanted["currency"] = given
    settings = root(call.doc, "settings")
    changed = changes(settings, BUDGET_SETTINGS, wanted)
    if changed:
        with call.doc.transaction(origin=call.origin):
            write(settings, changed)
    return call.result(None, bool(changed))


def set_currency(call: Invocation) -> Result:
    """The budget's currency, as ``set_budget_total`` would set it (refused once amounts
    are in another currency), leaving the total alone."""
    budget = read_budget(call.doc)
    given = call.args["currency"]
    if given != budget.currency and budget.currency is not None:
        if budget.payments or any(c.planned for c in budget.categories.values()):
            raise refuse(
                f"the budget already has amounts in {budget.currency}; "
                f"they cannot be re-read as {given}",
                "currency",
            )
    settings = root(call.doc, "settings")
    changed = changes(settings, BUDGET_SETTINGS, {"currency": given})
    if changed:
        with call.doc.transaction(origin=call.origin):
            write(settings, changed)
    return call.result(None, bool(changed))


def set_profile(call: Invocation) -> Result:
    """The fields given of the wedding's profile (the timeline's ``profile`` map); the
    others are left as they are (a merge), ``None`` removes one."""
    profile = root(call.doc, "profile")
    changed = changes(profile, PROFILE, call.args)
    if changed:
        with call.doc.transaction(origin=call.origin):
            write(profile, changed)
    return call.result(None, bool(changed))


def set_menu(call: Invocation) -> Result:
    """The meals on offer (the guests document's ``menu`` map); ``None`` removes the menu
    (any meal is taken again)."""
    menu = root(call.doc, "menu")
    changed = changes(menu, MENU, call.args)
    if changed:
        with call.doc.transaction(origin=call.origin):
            write(menu, changed)
    return call.result(None, bool(changed))


def set_category(call: Invocation) -> Result:
    settings_change = _currency_change(call)
    category_id = call.args.pop("category_id", None)
    categories = root(call.doc, "categories")
    entry = categories.get(category_id) if category_id is not None else None
    if isinstance(entry, Map):
        changed = changes(entry, CATEGORY.fields, call.args)
    elif "name" not in call.args:
        if category_id is None:
            raise OperationError("a new category needs a name", path="name")
        raise refuse(f"there is no category '{category_id}'; give a name to create it", "name")
    else:  # a given id is kept, even over an unreadable entry
        category_id = category_id or _fresh_id(categories)
        changed = dict(call.args)
    if not changed and not settings_change:
        return call.result(category_id, False)
    with call.doc.transaction(origin=call.origin):
        write(root(call.doc, "settings"), settings_change)
        if isinstance(entry, Map):
            write(entry, changed)
        else:
            categories[category_id] = new_entry(CATEGORY, call.args)
    return call.result(category_id, True)


def check_payment_dates(status: str | None, paid_on: str | None, due: str | None) -> None:
    """A paid payment (``status`` ``paid`` or none) needs the date it was paid; a scheduled
    one needs the date it is due (it may have no ``date`` yet). Malformed otherwise."""
    if payment_status(status) == "paid" and paid_on is None:
        raise OperationError(
            "a paid payment needs the date it was paid; for one still to pay, give "
            "status 'scheduled' and its due date",
            path="date",
        )
    if payment_status(status) == "scheduled" and due is None:
        raise OperationError("a scheduled payment needs the date it is due", path="due")


def record_payment(call: Invocation) -> Result:
    check_payment_dates(call.args.get("status"), call.args.get("date"), call.args.get("due"))
    settings_change = _currency_change(call)
    category_id = call.args["category_id"]
    if not isinstance(root(call.doc, "categories").get(category_id), Map):
        raise refuse(f"there is no category '{category_id}'", "category_id")
    payments = root(call.doc, "payments")
    payment_id = call.args.pop("payment_id", None)
    if payment_id is not None and payment_id in payments:
        raise refuse(f"payment '{payment_id}' already exists", "payment_id")
    payment_id = payment_id or _fresh_id(payments)
    with call.doc.transaction(origin=call.origin):
        write(root(call.doc, "settings"), settings_change)
        payments[payment_id] = new_entry(PAYMENT, call.args)
    return call.result(payment_id, True)


def update_payment(call: Invocation) -> Result:
    """The fields given of a payment; the others are left as they are, ``None`` clears one
    (a cleared ``status`` reads as paid). Marking one paid: ``status: "paid"`` with the
    ``date`` it was paid (unless it has one). What the payment would be afterwards must
    still hold its dates (:func:`check_payment_dates`): refused as ``impossible`` when the
    stored fields are what is missing, as ``malformed`` when the arguments alone are."""
    payment_id = call.args.pop("payment_id")
    entry = _entry(call.doc, PAYMENT, payment_id)
    given = call.args
    if "status" in given or "date" in given or "due" in given:
        after = {
            name: given[name] if name in given else _stored(entry, PAYMENT.field(name))
            for name in ("status", "date", "due")
        }
        try:
            check_payment_dates(after["status"], after["date"], after["due"])
        except OperationError as exc:
            if check_payment_args(given):
                raise
            raise refuse(f"payment '{payment_id}': {exc.message}", exc.path) from None
    category_id = given.get("category_id")
    if category_id is not None and not isinstance(
        root(call.doc, "categories").get(category_id), Map
    ):
        raise refuse(f"there is no category '{category_id}'", "category_id")
    settings_change = _currency_change(call)
    changed = changes(entry, PAYMENT.fields, call.args)
    if not changed and not settings_change:
        return call.result(payment_id, False)
    with call.doc.transaction(origin=call.origin):
        write(root(call.doc, "settings"), settings_change)
        write(entry, changed)
    return call.result(payment_id, True)


def check_payment_args(given: Mapping[str, Any]) -> bool:
    """Whether ``given`` alone, whatever is stored, breaks the dates' rule: it sets the
    three fields, or sets a status and clears the date (or due) that status needs."""
    if "status" not in given:
        return False
    status = payment_status(given["status"])
    needed = "date" if status == "paid" else "due"
    return needed in given and given[needed] is None
