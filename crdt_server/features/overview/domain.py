"""The overview's figures, from the documents as read and the answers' events: pure.

Each section is computed from one document (and, for the answers by day, the guest list's
answer events); the route leaves out every section whose document the caller may not read.
Amounts are minor units of the budget's currency, as the budget holds them; days are ISO
days in the wedding's time zone; months ``YYYY-MM``.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from crdt_server.documents.households import households
from crdt_server.documents.model import RSVP_STATES, SIDES, zone_of
from crdt_server.documents.schema import Budget, GuestList, TaskList
from crdt_server.documents.tasks import due_dates
from crdt_server.documents.totals import people, totals

__all__ = [
    "ANSWER_EVENTS",
    "UNDATED",
    "Answer",
    "answers_of",
    "budget_section",
    "guests_section",
    "tasks_section",
]

ANSWER_EVENTS = ("guest.rsvp_changed", "rsvp.answered")
"""The events an answer is read from: every change of a guest's ``rsvp`` (whoever made
it), and the answers a household sent by its link that changed nothing (the changed ones
are ``guest.rsvp_changed`` too)."""
UNDATED = "undated"
"""The month of a payment or task without a day."""


@dataclass(frozen=True)
class Answer:
    """One answer: guest ``guest_id`` said ``rsvp`` at ``at`` (Unix seconds)."""

    seq: int
    guest_id: str
    rsvp: str
    at: float
    changed: bool = True


def answers_of(seq: int, event_type: str, at: float, data: str) -> list[Answer]:
    """The answers one stored event holds (none for anything else or a malformed one)."""
    try:
        body = json.loads(data)
    except ValueError:
        return []
    if not isinstance(body, dict):
        return []
    if event_type == "guest.rsvp_changed":
        guest, to = body.get("id"), body.get("to")
        if isinstance(guest, str) and to in RSVP_STATES:
            return [Answer(seq, guest, str(to), at)]
        return []
    if event_type != "rsvp.answered" or not isinstance(body.get("answers"), list):
        return []
    return [
        Answer(seq, a["id"], a["rsvp"], at, changed=False)
        for a in body["answers"][:500]
        if isinstance(a, dict)
        and isinstance(a.get("id"), str)
        and a.get("rsvp") in RSVP_STATES
        and a.get("changed") is False
    ]


def _local_day(at: float, zone: str | None) -> str:
    return datetime.fromtimestamp(at, zone_of(zone)).date().isoformat()


def _by_day(guests: GuestList, answers: Sequence[Answer], zone: str | None) -> list[dict[str, Any]]:
    """Per day with an answer, first first: the answers given that day by state, and how
    many guests of the list had answered (accepted or declined) by its end, as the
    answers recorded tell it."""
    state: dict[str, str] = {}
    days: dict[str, Counter[str]] = {}
    answered: dict[str, int] = {}
    for answer in sorted(answers, key=lambda a: a.seq):
        if answer.guest_id not in guests.guests:
            continue  # a guest removed since
        day = _local_day(answer.at, zone)
        days.setdefault(day, Counter())[answer.rsvp] += 1
        state[answer.guest_id] = answer.rsvp
        answered[day] = sum(1 for s in state.values() if s != "pending")
    return [
        {**{s: days[day].get(s, 0) for s in RSVP_STATES}, "day": day, "answered": answered[day]}
        for day in sorted(days)
    ]


def guests_section(
    guests: GuestList, answers: Sequence[Answer] | None, zone: str | None
) -> dict[str, Any]:
    """Who answered what: people by answer (unnamed plus-ones counted, as the guest list's
    totals count them), by side and by household; the meals and dietary needs of who may
    come; the answers by day (``None`` where no event log is kept: the key is left out)."""
    summary = totals(guests)
    sides: dict[str, Counter[str]] = {}
    for person in people(guests):
        guest = guests.guests[person.seat_of]
        sides.setdefault(guest.side or "", Counter())[person.rsvp] += 1
    by_household = []
    housed: set[str] = set()
    for household in households(guests).values():
        housed.update(g.id for g in household.guests)
        if not household.people:
            continue
        count: Counter[str] = Counter(g.rsvp for g in household.guests)
        for host in household.unnamed_plus_ones:
            count[guests.guests[host].rsvp] += 1
        by_household.append(
            {
                "id": household.id,
                "name": household.name,
                "people": household.people,
                **{s: count.get(s, 0) for s in RSVP_STATES},
            }
        )
    no_household = [p for p in people(guests) if p.seat_of not in housed]
    section: dict[str, Any] = {
        "people": summary["people"],
        "guests": len(guests.guests),
        "rsvp": summary["rsvp"],
        "by_side": [
            {"side": side or None, **{s: sides[side].get(s, 0) for s in RSVP_STATES}}
            for side in sorted(sides, key=lambda s: (SIDES.index(s) if s in SIDES else 3, s))
        ],
        "by_household": by_household,
        "without_household": len(no_household),
        "meals": summary["meals"],
        "no_meal": summary["no_meal"],
        "dietary": summary["dietary"],
        "menu": list(guests.menu.choices or ()),
    }
    if answers is not None:
        section["answers_by_day"] = _by_day(guests, answers, zone)
    return section


def _month(day: str | None) -> str:
    return day[:7] if day else UNDATED


def _months(keys: Iterable[str]) -> list[str]:
    """Months in order, the undated last."""
    return sorted(set(keys), key=lambda m: (m == UNDATED, m))


def budget_section(budget: Budget) -> dict[str, Any]:
    """Planned, paid and scheduled, in all, by category (every category, in name order;
    payments of a category that does not exist under ``null``) and by month (paid by the
    payment's date, scheduled by its due day)."""
    paid: Counter[str] = Counter()
    scheduled: Counter[str] = Counter()
    months: dict[str, Counter[str]] = {}
    for payment in budget.payments.values():
        if payment.scheduled:
            scheduled[payment.category_id] += payment.amount
            months.setdefault(_month(payment.due), Counter())["scheduled"] += payment.amount
        else:
            paid[payment.category_id] += payment.amount
            months.setdefault(_month(payment.date), Counter())["paid"] += payment.amount
    categories = sorted(budget.categories.values(), key=lambda c: (c.name.casefold(), c.id))
    by_category = [
        {
            "id": c.id,
            "name": c.name,
            "planned": c.planned,
            "paid": paid.get(c.id, 0),
            "scheduled": scheduled.get(c.id, 0),
        }
        for c in categories
    ]
    stray = set(paid) | set(scheduled)
    stray -= set(budget.categories)
    if stray:
        by_category.append(
            {
                "id": None,
                "name": None,
                "planned": 0,
                "paid": sum(paid[c] for c in stray),
                "scheduled": sum(scheduled[c] for c in stray),
            }
        )
    return {
        "currency": budget.currency,
        "total": budget.total,
        "planned": sum(c.planned for c in categories),
        "paid": sum(paid.values()),
        "scheduled": sum(scheduled.values()),
        "by_category": by_category,
        "by_month": [
            {
                "month": m,
                "paid": months[m].get("paid", 0),
                "scheduled": months[m].get("scheduled", 0),
            }
            for m in _months(months)
        ],
    }


def tasks_section(tasks: TaskList, wedding_date: str | None, today: date) -> dict[str, Any]:
    """Done against due: in all, overdue (open, due before ``today``), due today, due in the
    next seven days, and by the month each task is due (its own day, or its offset from the
    wedding's date): how many fall due then and how many of those are done."""
    days = due_dates(tasks.tasks, wedding_date)
    months: dict[str, Counter[str]] = {}
    today_text = today.isoformat()
    week = date.fromordinal(today.toordinal() + 7).isoformat()
    overdue = due_today = due_soon = 0
    for task_id, day in days.items():
        done = tasks.tasks[task_id].done
        month = months.setdefault(_month(day), Counter())
        month["due"] += 1
        month["done"] += int(done)
        if done or day is None:
            continue
        if day < today_text:
            overdue += 1
        elif day == today_text:
            due_today += 1
        elif day <= week:
            due_soon += 1
    done_count = sum(1 for t in tasks.tasks.values() if t.done)
    return {
        "total": len(tasks.tasks),
        "done": done_count,
        "open": len(tasks.tasks) - done_count,
        "overdue": overdue,
        "due_today": due_today,
        "due_soon": due_soon,
        "by_month": [
            {"month": m, "due": months[m]["due"], "done": months[m]["done"]}
            for m in _months(months)
        ],
    }


def vendor_entry(
    key: str,
    name: str,
    category: str | None,
    arrival: str | None,
    items: int,
    *,
    has_contact: bool,
    contact: Mapping[str, str | None] | None,
    run_sheet: bool,
    members: int,
) -> dict[str, Any]:
    """One vendor of the day: ready when it has a contact, an arrival time and a way to
    see its part of the day (an account acting for it, or a run sheet link)."""
    entry: dict[str, Any] = {
        "id": key,
        "name": name,
        "category": category,
        "arrival": arrival,
        "items": items,
        "has_contact": has_contact,
        "run_sheet": run_sheet,
        "members": members,
        "ready": has_contact and arrival is not None and (run_sheet or members > 0),
    }
    if contact is not None:
        entry["contact"] = dict(contact)
    return entry
