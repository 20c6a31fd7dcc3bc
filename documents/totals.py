"""Headcounts, meal and dietary totals: people, not rows.

A guest is one person; a guest with ``plus_one: true`` whom no guest names as their host
(``plus_one_of``) brings one unnamed person, who answers as their host did, sits where their
host sits, and has no meal chosen yet. Meals are counted by the menu's spelling of a choice
where one matches (spaces and case aside), else as written. Declined people are counted in
``rsvp`` only: the meal, dietary and table totals count who may come (accepted or pending).

Pure, and linear in the guest list and the seating plan.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from .households import named_plus_ones
from .model import RSVP_STATES
from .schema import GuestList, SeatingPlan

__all__ = ["Person", "people", "totals"]


@dataclass(frozen=True)
class Person:
    """One person of the guest list: a guest (``guest_id``), or the unnamed plus-one of
    ``host``."""

    guest_id: str | None
    host: str | None
    rsvp: str
    meal: str | None
    dietary: tuple[str, ...]

    @property
    def seat_of(self) -> str:
        """The guest whose seat this person sits in (their own, or their host's)."""
        found = self.guest_id or self.host
        assert found is not None
        return found


def people(guest_list: GuestList) -> list[Person]:
    """Every person of the guest list, in guest id order, each unnamed plus-one after their
    host."""
    named = named_plus_ones(guest_list)
    found: list[Person] = []
    for guest_id in sorted(guest_list.guests):
        guest = guest_list.guests[guest_id]
        found.append(Person(guest_id, None, guest.rsvp, guest.meal, guest.dietary))
        if guest.plus_one and guest_id not in named:
            found.append(Person(None, guest_id, guest.rsvp, None, ()))
    return found


def _counts(
    group: list[Person], spelled: dict[str, str]
) -> tuple[dict[str, int], int, dict[str, int]]:
    meals: Counter[str] = Counter()
    dietary: Counter[str] = Counter()
    no_meal = 0
    for person in group:
        if person.meal is None:
            no_meal += 1
        else:
            meals[spelled.get(" ".join(person.meal.split()).casefold(), person.meal)] += 1
        dietary.update(person.dietary)
    return dict(sorted(meals.items())), no_meal, dict(sorted(dietary.items()))


def _summary(group: list[Person], spelled: dict[str, str]) -> dict[str, Any]:
    meals, no_meal, dietary = _counts(group, spelled)
    return {"people": len(group), "meals": meals, "no_meal": no_meal, "dietary": dietary}


def totals(guest_list: GuestList, plan: SeatingPlan | None = None) -> dict[str, Any]:
    """The guest list's totals, JSON-ready::

        {"people": 12, "rsvp": {"accepted": 8, "pending": 3, "declined": 1},
         "unnamed_plus_ones": 2, "meals": {"Fish": 5, ...}, "no_meal": 4,
         "dietary": {"vegan": 1, ...},
         "tables": {"t1": {"name", "capacity", "people", "meals", "no_meal", "dietary"}},
         "unseated": 3}

    ``meals``, ``no_meal`` and ``dietary`` count who may come; ``tables`` (with a seating
    plan; every table, in id order) counts who may come seated at each; ``unseated`` who
    may come and has no seat (or a seat at a table that does not exist)."""
    everyone = people(guest_list)
    spelled = {" ".join(c.split()).casefold(): c for c in guest_list.menu.choices or ()}
    rsvp = Counter(p.rsvp for p in everyone)
    coming = [p for p in everyone if p.rsvp != "declined"]
    result: dict[str, Any] = {
        "people": len(everyone),
        "rsvp": {state: rsvp.get(state, 0) for state in RSVP_STATES},
        "unnamed_plus_ones": sum(1 for p in everyone if p.guest_id is None),
        **{k: v for k, v in _summary(coming, spelled).items() if k != "people"},
    }
    if plan is None:
        return result
    by_table: dict[str, list[Person]] = {table_id: [] for table_id in plan.tables}
    unseated = 0
    for person in coming:
        seat = plan.assignments.get(person.seat_of)
        if seat is None or seat.table_id not in by_table:
            unseated += 1
        else:
            by_table[seat.table_id].append(person)
    result["tables"] = {
        table_id: {
            "name": plan.tables[table_id].name,
            "capacity": plan.tables[table_id].capacity,
            **_summary(by_table[table_id], spelled),
        }
        for table_id in sorted(by_table)
    }
    result["unseated"] = unseated
    return result
