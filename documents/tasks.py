"""The tasks document: the wedding's checklist, its due dates and its default tasks.

A task's due date is either a day (``due``) or an offset from the wedding date
(``due_offset``, ``-6M``: six months before). An offset is stored as written and the day is
derived when read (:func:`due_date`), so every task planned relative to the wedding moves
with it when the couple moves the date, and nothing is rewritten.

The default checklist (:data:`CHECKLIST`) is added by the ``seed_checklist`` operation with
fixed ids: a task already there (done, renamed, rescheduled) is left as it is, so seeding
twice, or on two processes, never duplicates a task. A default task someone removed comes
back only if the operation is run again on purpose (a new wedding runs it once).
"""

from __future__ import annotations

import calendar
from collections.abc import Mapping
from datetime import date, timedelta
from typing import Any

from pycrdt import Map

from .edits import Invocation, Result, refuse
from .model import DUE_OFFSET_PATTERN, TASK, OperationError
from .schema import Task, changes, new_entry, root, write

__all__ = [
    "CHECKLIST",
    "add_task_check",
    "REMINDER_KIND",
    "describe_offset",
    "due_date",
    "due_dates",
    "offset_from",
    "seed_checklist",
    "set_done",
    "task_update_check",
    "wanted_reminders",
]

CHECKLIST: tuple[tuple[str, str, str], ...] = (
    ("t-budget", "Agree on the budget", "-12M"),
    ("t-guest-list", "Draft the guest list", "-10M"),
    ("t-venue", "Book the venue", "-10M"),
    ("t-photographer", "Book the photographer", "-9M"),
    ("t-caterer", "Choose the caterer", "-8M"),
    ("t-save-the-dates", "Send the save-the-dates", "-6M"),
    ("t-attire", "Choose the wedding attire", "-6M"),
    ("t-music", "Book the music", "-6M"),
    ("t-invitations", "Send the invitations", "-3M"),
    ("t-rings", "Order the rings", "-3M"),
    ("t-licence", "Apply for the marriage licence", "-1M"),
    ("t-final-numbers", "Give the caterer the final numbers", "-2W"),
    ("t-seating", "Finish the seating plan", "-1W"),
    ("t-thank-you", "Send the thank-you cards", "+1M"),
)
"""The default checklist: (fixed id, title, due offset from the wedding date)."""

_UNITS = {"D": ("day", "days"), "W": ("week", "weeks"), "M": ("month", "months")}


def offset_from(wedding: date, offset: str) -> date | None:
    """``wedding`` moved by ``offset`` (:data:`~documents.model.DUE_OFFSET_PATTERN`);
    months are calendar months, the day clamped to the month's last (``-1M`` from March 31
    is February 28 or 29). ``None`` for an offset that does not parse or leaves the years a
    date can hold."""
    found = DUE_OFFSET_PATTERN.fullmatch(offset)
    if found is None:
        return None
    sign = -1 if found[1] == "-" else 1
    count = sign * int(found[2])
    try:
        if found[3] == "D":
            return wedding + timedelta(days=count)
        if found[3] == "W":
            return wedding + timedelta(weeks=count)
        months = wedding.year * 12 + wedding.month - 1 + count
        year, month = divmod(months, 12)
        last = calendar.monthrange(year, month + 1)[1]
        return date(year, month + 1, min(wedding.day, last))
    except (OverflowError, ValueError):
        return None


def describe_offset(offset: str) -> str:
    """``-6M`` as people read it: ``6 months before``."""
    found = DUE_OFFSET_PATTERN.fullmatch(offset)
    if found is None:
        return offset
    count = int(found[2])
    if count == 0:
        return "on the day"
    one, many = _UNITS[found[3]]
    return f"{count} {one if count == 1 else many} {'before' if found[1] == '-' else 'after'}"


def due_date(task: Task, wedding_date: str | None) -> str | None:
    """The day ``task`` is due: its offset from ``wedding_date`` where it has one (``None``
    while the wedding has no date), else its ``due`` day (or ``None``)."""
    if task.due_offset is not None:
        if wedding_date is None:
            return None
        found = offset_from(date.fromisoformat(wedding_date), task.due_offset)
        return None if found is None else found.isoformat()
    return task.due


def due_dates(tasks: Mapping[str, Task], wedding_date: str | None) -> dict[str, str | None]:
    """Every task's due date (:func:`due_date`), by id in id order."""
    return {task_id: due_date(tasks[task_id], wedding_date) for task_id in sorted(tasks)}


REMINDER_KIND = "tasks.reminder"
"""The scheduler's job kind for a task's reminder (the seam the scheduler feature fills:
one job per wedding, kind, task id and due day)."""


def wanted_reminders(
    tasks: Mapping[str, Task], wedding_date: str | None, today: str | None = None
) -> dict[str, str]:
    """The reminders a wedding's tasks want now: task id -> the day it falls due, for every
    task not done that has a day (its own, or its offset from ``wedding_date``), that day
    not before ``today`` (an ISO day in the wedding's zone: a task already overdue when it
    is planned, as a new wedding's checklist six months before its date is, is shown
    overdue and not reminded; one due today is). A scheduler keeps its pending ``task.due``
    jobs equal to this after each change to the tasks or to the wedding date: a job whose
    task left (done, removed, undated, overdue) is cancelled, one whose day moved is
    rescheduled, one new is scheduled."""
    wanted: dict[str, str] = {}
    for task_id, day in due_dates(tasks, wedding_date).items():
        if day is None or tasks[task_id].done or (today is not None and day < today):
            continue
        wanted[task_id] = day
    return wanted


def _one_due(args: Mapping[str, Any]) -> None:
    if args.get("due") is not None and args.get("due_offset") is not None:
        raise OperationError(
            "give a due date or a due_offset from the wedding date, not both", path="due_offset"
        )


def add_task_check(call: Invocation) -> None:
    _one_due(call.args)


def task_update_check(call: Invocation, task_id: str, entry: Map[Any]) -> None:
    """One due date at a time: setting ``due`` clears ``due_offset``, and the other way."""
    _one_due(call.args)
    if call.args.get("due") is not None:
        call.args.setdefault("due_offset", None)
    if call.args.get("due_offset") is not None:
        call.args.setdefault("due", None)


def set_done(done: bool) -> Any:
    """``complete_task`` (``True``) or ``reopen_task``: a task already so changes nothing."""

    def run(call: Invocation) -> Result:
        task_id = call.args["task_id"]
        entry = root(call.doc, TASK.collection).get(task_id)
        if not isinstance(entry, Map):
            raise refuse(f"there is no task '{task_id}'", "task_id")
        changed = changes(entry, TASK.fields, {"done": done})
        if changed:
            with call.doc.transaction(origin=call.origin):
                write(entry, changed)
        return call.result(task_id, bool(changed))

    return run


def seed_checklist(call: Invocation) -> Result:
    """Add the tasks of :data:`CHECKLIST` the document lacks, by their fixed ids; the result's
    ``added`` lists them (empty when every one is there)."""
    tasks = root(call.doc, TASK.collection)
    missing = [(tid, title, off) for tid, title, off in CHECKLIST if tid not in tasks]
    if missing:
        with call.doc.transaction(origin=call.origin):
            for task_id, title, offset in missing:
                tasks[task_id] = new_entry(TASK, {"title": title, "due_offset": offset})
    return call.result(None, bool(missing), added=[task_id for task_id, _, _ in missing])
