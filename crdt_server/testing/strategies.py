"""Hypothesis strategies: wedding operations, client interleavings, hostile updates.

* :func:`operations` draws valid domain operations for one document kind (``guests``,
  ``seating``, ``timeline``, ``budget``, ``tasks``) or for all, over small pools of ids so that
  concurrent edits collide (two clients seating guests at the same small table);
  :data:`malformed_operations` draws ones :func:`documents.apply_operation` must refuse;
  :data:`BASE_PLAN` is a small common plan most drawn operations refer to.
* :func:`edits` / :func:`transactions` draw generic Yjs edits (map, array, text).
* :func:`interleavings` draws scripts of several clients editing, sending, going offline and
  coming back (:mod:`crdt_server.testing.scenario` plays them).
* :func:`valid_updates`, :func:`update_sequences`, :func:`hostile_updates` and
  :func:`out_of_order` draw real Yjs updates and damaged or reordered ones, for robustness.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st
from pycrdt import Doc, TransactionEvent

from crdt_server.documents import (
    PAYMENT_STATUSES,
    RSVP_STATES,
    SIDES,
    TABLE_SHAPES,
    TIMELINE_STATUSES,
)

from .edits import Edit, Json, apply_edit
from .scenario import Flush, GoOffline, Operate, Reconnect, Step

__all__ = [
    "BASE_PLAN",
    "edits",
    "hostile_updates",
    "interleavings",
    "malformed_operations",
    "operations",
    "out_of_order",
    "transactions",
    "update_sequences",
    "valid_updates",
]

# -- wedding operations ---------------------------------------------------------------------

guest_ids = st.sampled_from(["g1", "g2", "g3", "g4"])
table_ids = st.sampled_from(["t1", "t2"])
household_ids = st.sampled_from(["h1", "h2"])
rsvp_notes = st.sampled_from(["We arrive Saturday only", "Sam: no nuts 🥜", "<b>text</b>"])
"""A household's note to the couple (free text from its RSVP page)."""
rsvp_note_times = st.sampled_from(["2026-04-01T10:00:00Z", "2026-04-02T08:30:00+02:00"])
household_texts = st.none() | st.sampled_from(["Lee family", " lee  FAMILY", "Ray"])
"""Free-text households: two spellings of one, read as one household (normalised name)."""
menus = st.none() | st.lists(st.sampled_from(["Fish", "fish ", "Veg", "Beef"]), max_size=3)
item_ids = st.sampled_from(["i1", "i2", "i3"])
category_ids = st.sampled_from(["c1", "c2"])
payment_ids = st.sampled_from(["p1", "p2", "p3"])
task_ids = st.sampled_from(["k1", "k2", "t-venue"])
"""Tasks: two of a client's own and one of the default checklist (``seed_checklist``)."""
owners = st.none() | st.sampled_from(["ann", "bob"])
due_offsets = st.sampled_from(["-6M", "-2W", "+1M", "-0D"])
names = st.sampled_from(["Ann Lee", "Bob Ray", "Cy Dow", "Di Fox"])
instants = st.builds(
    "2026-06-13T{:02d}:{:02d}:00{}".format,
    st.integers(10, 14),
    st.sampled_from([0, 30]),
    st.sampled_from(["+02:00", "Z"]),
)
vendors = st.none() | st.sampled_from(["DJ Max", "dj max", "Studio Lux"])
locations = st.none() | st.sampled_from(["Barn", "Garden"])
currencies = st.sampled_from(["EUR", "USD"])
meals = st.none() | st.sampled_from(["fish", "veg"])
# Collaborative text (a Y.Text per entry): emoji and accents included, so positions in
# UTF-16 units (Yjs), code points (Python) and UTF-8 bytes (pycrdt) all differ.
time_zones = st.sampled_from(["Europe/Lisbon", "America/New_York", "Asia/Kolkata", "UTC"])
days = st.sampled_from(["2026-06-13", "2026-09-05", "2027-05-01"])
partners = st.lists(names, min_size=1, max_size=2, unique=True)
notes = st.none() | st.sampled_from(["", "Call first", "Vegan 🌱 plate", "Café at 9", "🎉🎉"])


def _op(
    name: str, required: dict[str, Any], optional: dict[str, Any] | None = None
) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({"op": st.just(name), **required}, optional=optional or {})


_GUESTS = st.one_of(
    _op(
        "add_guest",
        {"guest_id": guest_ids, "name": names},
        {
            "rsvp": st.sampled_from(RSVP_STATES),
            "side": st.sampled_from(SIDES),
            "meal": meals,
            "dietary": st.lists(st.sampled_from(["vegan", "nuts"]), max_size=2),
            "plus_one": st.booleans(),
            "notes": notes,
            "household": household_texts,
            "household_id": household_ids,
            "plus_one_of": guest_ids,
        },
    ),
    _op(
        "update_guest",
        {"guest_id": guest_ids},
        {
            "name": names,
            "meal": meals,
            "contact": names,
            "notes": notes,
            "household": household_texts,
            "household_id": st.none() | household_ids,
            "plus_one": st.booleans(),
            "plus_one_of": st.none() | guest_ids,
        },
    ),
    _op("remove_guest", {"guest_id": guest_ids}),
    _op("set_rsvp", {"guest_id": guest_ids, "rsvp": st.sampled_from(RSVP_STATES)}),
    # Households are entries guests name; two people may create or rename one at once.
    _op(
        "add_household",
        {"household_id": household_ids, "name": st.sampled_from(["Lee family", "Ray", "Fox"])},
        {"mailing_address": st.none() | st.sampled_from(["1 Main St", "2 Elm Rd\nLeeds"])}
        | {"rsvp_note": rsvp_notes, "rsvp_note_at": rsvp_note_times},
    ),
    _op("update_household", {"household_id": household_ids, "name": st.sampled_from(["Ray"])}),
    # The household's note to the couple, as its RSVP page writes it (or clears it).
    _op(
        "update_household",
        {"household_id": household_ids, "rsvp_note": st.none() | rsvp_notes},
        {"rsvp_note_at": st.none() | rsvp_note_times},
    ),
    _op("remove_household", {"household_id": household_ids}),
    _op("set_menu", {"choices": menus}),
)
table_positions = st.fixed_dictionaries(
    {"x": st.integers(0, 2000), "y": st.integers(0, 2000), "rotation": st.sampled_from([0, 45, 90])}
)
"""A table's place on the seating chart (one value, ``{x, y, rotation}``)."""
_SEATING = st.one_of(
    _op(
        "add_table",
        {"table_id": table_ids, "name": st.sampled_from(["Rose", "Lily"])},
        {"capacity": st.integers(1, 3), "shape": st.sampled_from(TABLE_SHAPES), "notes": notes},
    ).map(lambda op: {"capacity": 2, **op}),
    _op(
        "update_table",
        {"table_id": table_ids},
        {"capacity": st.integers(1, 3), "notes": notes, "position": table_positions},
    ),
    _op("remove_table", {"table_id": table_ids}),
    _op(
        "assign_seat",
        {"guest_id": guest_ids, "table_id": table_ids},
        {"seat": st.none() | st.integers(1, 3)},
    ),
    _op("unassign_seat", {"guest_id": guest_ids}),
    _op("seat_household", {"household_id": household_ids, "table_id": table_ids}),
    _op("seat_household", {"guest_id": guest_ids, "table_id": table_ids}),
    # Seat assignments are where concurrent edits collide most (capacity, seat numbers).
    st.sampled_from(["g2", "g3", "g4"]).flatmap(
        lambda guest_id: _op(
            "assign_seat",
            {"guest_id": st.just(guest_id), "table_id": table_ids},
            {"seat": st.integers(1, 3)},
        )
    ),
)
_TIMELINE = st.one_of(
    _op(
        "add_timeline_item",
        {"item_id": item_ids, "title": names, "start": instants, "end": instants},
        {"vendor": vendors, "location": locations, "notes": notes},
    ),
    _op(
        "update_timeline_item",
        {"item_id": item_ids},
        {
            "vendor": vendors,
            "location": locations,
            "status": st.sampled_from(TIMELINE_STATUSES),
            "notes": notes,
        },
    ),
    _op("move_timeline_item", {"item_id": item_ids}, {"start": instants, "end": instants}),
    _op("remove_timeline_item", {"item_id": item_ids}),
    # The profile's fields are last-writer-wins keys two people may set at once.
    _op(
        "set_profile",
        {"date": days},
        {
            "names": partners,
            "time_zone": time_zones,
            "venue": st.none() | locations,
            "rsvp_deadline": st.none() | days,
        },
    ),
)
_BUDGET = st.one_of(
    _op("set_budget_total", {"total": st.integers(0, 3000)}, {"currency": currencies}),
    _op("set_currency", {"currency": currencies}),
    _op(
        "set_category",
        {"category_id": category_ids},
        {"name": names, "planned": st.integers(0, 2000), "currency": currencies, "notes": notes},
    ),
    _op(
        "record_payment",
        {
            "payment_id": payment_ids,
            "category_id": category_ids,
            "amount": st.integers(0, 1500),
            "date": st.just("2026-01-15"),
        },
        {"notes": notes, "due": st.just("2026-01-10")},
    ),
    # A payment still to make: no date yet, a due date (the calendar and the reminders').
    _op(
        "record_payment",
        {
            "payment_id": payment_ids,
            "category_id": category_ids,
            "amount": st.integers(0, 1500),
            "status": st.just("scheduled"),
            "due": days,
        },
        {"notes": notes},
    ),
    _op(
        "update_payment",
        {"payment_id": payment_ids},
        {
            "amount": st.integers(0, 1500),
            "status": st.sampled_from(PAYMENT_STATUSES),
            "date": days,
            "due": days,
        },
    ),
    _op("remove_payment", {"payment_id": payment_ids}),
)
_TASKS = st.one_of(
    _op("seed_checklist", {}),
    _op(
        "add_task",
        {"task_id": task_ids, "title": names},
        {"owner": owners, "due_offset": due_offsets, "notes": notes},
    ),
    _op("add_task", {"task_id": task_ids, "title": names, "due": days}),
    _op(
        "update_task",
        {"task_id": task_ids},
        {"title": names, "owner": owners, "notes": notes, "done": st.booleans()},
    ),
    # A due day and an offset replace each other: two people rescheduling one task at once.
    _op("update_task", {"task_id": task_ids, "due": days}),
    _op("update_task", {"task_id": task_ids, "due_offset": due_offsets}),
    _op("complete_task", {"task_id": task_ids}),
    _op("reopen_task", {"task_id": task_ids}),
    _op("remove_task", {"task_id": task_ids}),
)
_BY_KIND: dict[str, st.SearchStrategy[dict[str, Any]]] = {
    "guests": _GUESTS,
    "seating": _SEATING,
    "timeline": _TIMELINE,
    "budget": _BUDGET,
    "tasks": _TASKS,
}


def operations(kind: str | None = None) -> st.SearchStrategy[dict[str, Any]]:
    """Well-formed operations on document ``kind`` (all kinds if None), as JSON objects for
    :func:`documents.apply_operation`. Ids come from small pools (``g1``-``g4``, ``t1``,
    ``t2``, ...) so that clients edit the same entries; some operations are still refused
    by the document (422: an unknown guest, a full table), as they would be in an app."""
    if kind is None:
        return st.one_of(*_BY_KIND.values())
    if kind not in _BY_KIND:
        raise ValueError(f"unknown document kind {kind!r}; one of {', '.join(_BY_KIND)}")
    return _BY_KIND[kind]


malformed_operations: st.SearchStrategy[dict[str, Any]] = st.sampled_from(
    [
        {"op": "set_rsvp", "guest_id": "g1", "rsvp": "maybe"},
        {"op": "add_table", "table_id": "t1", "name": "Rose", "capacity": -1},
        {"op": "record_payment", "category_id": "c1", "amount": 1.5, "date": "2026-01-15"},
        {"op": "add_guest", "name": "Ann Lee", "colour": "blue"},
        {"op": "add_household", "household_id": "h 1", "name": "Lee"},
        {"op": "set_menu", "choices": "fish"},
        {"op": "seat_household", "table_id": "t1"},
        {"op": "set_profile", "time_zone": "Mars/Olympus"},
        {"op": "set_profile", "date": "2026-02-30"},
        {"op": "record_payment", "category_id": "c1", "amount": 100, "status": "later"},
        {"op": "record_payment", "category_id": "c1", "amount": 100, "status": "paid"},
        {"op": "update_payment", "payment_id": "p1", "due": "2026-13-01"},
    ]
)
"""Operations that :func:`documents.apply_operation` refuses with 400 (nothing changes)."""

BASE_PLAN: tuple[dict[str, Any], ...] = (
    {"op": "add_household", "household_id": "h1", "name": "Lee family"},
    {"op": "add_guest", "guest_id": "g1", "name": "Ann Lee", "rsvp": "accepted"}
    | {"household_id": "h1", "plus_one": True},
    {"op": "add_guest", "guest_id": "g2", "name": "Bob Ray", "household": "Ray"},
    {"op": "add_guest", "guest_id": "g3", "name": "Cy Dow", "rsvp": "accepted"},
    {"op": "add_guest", "guest_id": "g4", "name": "Di Fox", "rsvp": "accepted"},
    {"op": "add_table", "table_id": "t1", "name": "Rose", "capacity": 2},
    {"op": "add_table", "table_id": "t2", "name": "Lily", "capacity": 3},
    {"op": "assign_seat", "guest_id": "g1", "table_id": "t1", "seat": 1},
    {
        "op": "add_timeline_item",
        "item_id": "i1",
        "title": "Ceremony",
        "start": "2026-06-13T12:00:00+02:00",
        "end": "2026-06-13T13:00:00+02:00",
        "vendor": "DJ Max",
        "location": "Barn",
    },
    {
        "op": "set_profile",
        "names": ["Ann Lee", "Bob Ray"],
        "date": "2026-06-13",
        "time_zone": "Europe/Berlin",
        "venue": "Barn",
    },
    {"op": "set_budget_total", "total": 2000, "currency": "EUR"},
    {"op": "set_category", "category_id": "c1", "name": "Venue", "planned": 1000},
    {"op": "set_category", "category_id": "c2", "name": "Music", "planned": 500},
    {"op": "add_task", "task_id": "k1", "title": "Book the band", "due_offset": "-6M"},
)
"""A small plan over the ids the strategies draw from (apply each with ``related=docs``)."""

# -- generic edits --------------------------------------------------------------------------

keys = st.sampled_from(["a", "b", "c", "d"])
scalars: st.SearchStrategy[Json] = (
    st.integers(-1000, 1000) | st.text(max_size=4) | st.booleans() | st.none()
)
values: st.SearchStrategy[Json] = (
    scalars
    | st.lists(scalars, max_size=3)
    | st.dictionaries(keys, scalars | st.dictionaries(keys, scalars, max_size=2), max_size=3)
)
texts = st.text(alphabet="abxyzé😀\n", min_size=1, max_size=4)
positions = st.integers(0, 50)
counts = st.integers(1, 4)


def edits() -> st.SearchStrategy[Edit]:
    """One generic edit of the roots ``m`` (Map), ``a`` (Array), ``t`` (Text)."""
    return (
        st.builds(Edit, kind=st.just("map_set"), key=keys, value=values)
        | st.builds(Edit, kind=st.just("map_delete"), key=keys)
        | st.builds(Edit, kind=st.just("array_insert"), pos=positions, value=values)
        | st.builds(Edit, kind=st.just("array_delete"), pos=positions, count=counts)
        | st.builds(Edit, kind=st.just("text_insert"), pos=positions, text=texts)
        | st.builds(Edit, kind=st.just("text_delete"), pos=positions, count=counts)
    )


def transactions(max_edits: int = 3) -> st.SearchStrategy[tuple[Edit, ...]]:
    """A few generic edits made in one transaction (so sent as one update)."""
    return st.lists(edits(), min_size=1, max_size=max_edits).map(tuple)


# -- interleavings of clients ---------------------------------------------------------------


def interleavings(
    clients: int = 3,
    operations: st.SearchStrategy[Any] | None = None,
    *,
    min_steps: int = 1,
    max_steps: int = 30,
) -> st.SearchStrategy[list[Step]]:
    """Scripts for ``clients`` clients: edits (``operations``, generic transactions by
    default), sends, offline periods and reconnects, in any order. Play one with
    :func:`crdt_server.testing.play`."""
    ops = transactions() if operations is None else operations
    who = st.integers(0, clients - 1)
    step: st.SearchStrategy[Step] = st.one_of(
        st.builds(Operate, who, ops),
        st.builds(Operate, who, ops),
        st.builds(Flush, who),
        st.builds(GoOffline, who),
        st.builds(Reconnect, who),
    )
    return st.lists(step, min_size=min_steps, max_size=max_steps)


# -- real and hostile updates ---------------------------------------------------------------


def _updates_of(batches: list[tuple[Edit, ...]], client_id: int) -> list[bytes]:
    doc: Doc[Any] = Doc(client_id=client_id)
    out: list[bytes] = []

    def record(event: TransactionEvent) -> None:
        out.append(event.update)

    doc.observe(record)
    for batch in batches:
        with doc.transaction():
            for edit in batch:
                apply_edit(doc, edit)
    return [u for u in out if u]


def update_sequences(
    min_size: int = 1, max_size: int = 6, client_id: int = 4242
) -> st.SearchStrategy[list[bytes]]:
    """Consecutive real Yjs updates of one client (each depends on the ones before)."""
    return st.lists(transactions(), min_size=min_size, max_size=max_size).map(
        lambda batches: _updates_of(batches, client_id)
    )


def valid_updates(client_id: int = 4242) -> st.SearchStrategy[bytes]:
    """One real Yjs update (all the drawn edits of one client, merged)."""
    return st.lists(transactions(), min_size=1, max_size=4).map(
        lambda batches: _whole(batches, client_id)
    )


def _whole(batches: list[tuple[Edit, ...]], client_id: int) -> bytes:
    doc: Doc[Any] = Doc(client_id=client_id)
    for batch in batches:
        with doc.transaction():
            for edit in batch:
                apply_edit(doc, edit)
    return doc.get_update()


@st.composite
def _damaged(draw: st.DrawFn, update: bytes) -> bytes:
    how = draw(st.sampled_from(["truncate", "flip", "set", "insert", "delete", "splice"]))
    if not update or how == "splice":
        junk = draw(st.binary(min_size=1, max_size=16))
        at = draw(st.integers(0, len(update)))
        return update[:at] + junk + update[at:]
    at = draw(st.integers(0, len(update) - 1))
    if how == "truncate":
        return update[:at]
    if how == "flip":
        bit = draw(st.integers(0, 7))
        return update[:at] + bytes([update[at] ^ (1 << bit)]) + update[at + 1 :]
    if how == "set":
        value = draw(st.sampled_from([0x00, 0x01, 0x7F, 0x80, 0xFF]))
        return update[:at] + bytes([value]) + update[at + 1 :]
    if how == "insert":
        return update[:at] + draw(st.binary(min_size=1, max_size=4)) + update[at:]
    return update[:at] + update[at + 1 :]


def hostile_updates(valid: st.SearchStrategy[bytes] | None = None) -> st.SearchStrategy[bytes]:
    """Damaged updates: a real one (``valid``, :func:`valid_updates` by default) truncated,
    with a bit flipped, a byte set to a boundary value, inserted or deleted, or junk spliced
    in; and now and then arbitrary bytes. Some damaged updates are still valid Yjs: a
    server must then apply them like any other, so assert on outcomes, not on refusal."""
    base = valid_updates() if valid is None else valid
    return st.one_of(base.flatmap(_damaged), base.flatmap(_damaged), st.binary(max_size=64))


def out_of_order(updates: list[bytes]) -> st.SearchStrategy[list[bytes]]:
    """``updates`` in any order, possibly with duplicates (as a flaky network delivers)."""
    if not updates:
        return st.just([])
    duplicates = st.lists(st.sampled_from(updates), max_size=2)
    return st.tuples(st.permutations(updates), duplicates).map(lambda p: [*p[0], *p[1]])
