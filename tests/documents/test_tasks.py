"""The tasks document: its operations, the default checklist seeded by fixed ids (twice, or on
two replicas at once, never duplicates), due dates derived from the wedding date, the
``task.*`` events, and the JSON round trip."""

from __future__ import annotations

import time
from datetime import date
from typing import Any

import pytest
from pycrdt import Doc

from crdt_server.documents import OperationError, apply_operation, from_json, to_json
from crdt_server.documents.changes import ChangeRecorder
from crdt_server.documents.domain import WEDDINGS
from crdt_server.documents.events import apply_events, derive_events, entries_of
from crdt_server.documents.schema import read_tasks
from crdt_server.documents.tasks import (
    CHECKLIST,
    describe_offset,
    due_dates,
    offset_from,
    wanted_reminders,
)

pytestmark = pytest.mark.timeout(30)


def sync(a: Doc[Any], b: Doc[Any]) -> None:
    a.apply_update(b.get_update(a.get_state()))
    b.apply_update(a.get_update(b.get_state()))


def test_seeding_the_checklist_twice_or_on_two_replicas_never_duplicates() -> None:
    one: Doc[Any] = Doc()
    two: Doc[Any] = Doc()
    first = apply_operation(one, "tasks", {"op": "seed_checklist"})
    assert first["added"] == [task_id for task_id, _, _ in CHECKLIST]
    assert apply_operation(one, "tasks", {"op": "seed_checklist"})["changed"] is False
    # Another replica seeds at the same time, before it has seen the first.
    apply_operation(two, "tasks", {"op": "seed_checklist"})
    sync(one, two)
    assert len(read_tasks(one).tasks) == len(CHECKLIST) == len(read_tasks(two).tasks)
    assert to_json(one, "tasks") == to_json(two, "tasks")
    # A task someone changed is left as it is by a later seed.
    apply_operation(one, "tasks", {"op": "update_task", "task_id": "t-venue", "title": "Barn!"})
    apply_operation(one, "tasks", {"op": "complete_task", "task_id": "t-venue"})
    assert apply_operation(one, "tasks", {"op": "seed_checklist"})["changed"] is False
    venue = read_tasks(one).tasks["t-venue"]
    assert venue.title == "Barn!" and venue.done is True


def test_due_dates_follow_the_wedding_date() -> None:
    doc: Doc[Any] = Doc()
    apply_operation(doc, "tasks", {"op": "seed_checklist"})
    apply_operation(
        doc, "tasks", {"op": "add_task", "task_id": "k1", "title": "Cake", "due": "2027-02-01"}
    )
    tasks = read_tasks(doc).tasks
    assert due_dates(tasks, None)["t-save-the-dates"] is None
    assert due_dates(tasks, None)["k1"] == "2027-02-01"
    assert due_dates(tasks, "2027-06-12")["t-save-the-dates"] == "2026-12-12"
    assert due_dates(tasks, "2027-08-31")["t-licence"] == "2027-07-31"
    assert due_dates(tasks, "2027-03-31")["t-licence"] == "2027-02-28"
    assert due_dates(tasks, "2027-06-12")["t-thank-you"] == "2027-07-12"
    assert due_dates(tasks, "2027-06-12")["k1"] == "2027-02-01"
    # The JSON view derives them from the timeline's profile.
    timeline: Doc[Any] = Doc()
    apply_operation(timeline, "timeline", {"op": "set_profile", "date": "2027-06-12"})
    view = WEDDINGS.to_json(doc, "tasks", related={"timeline": timeline})
    assert view["due_dates"]["t-invitations"] == "2027-03-12"
    assert WEDDINGS.context("tasks") == ("timeline",)
    assert describe_offset("-6M") == "6 months before"
    # Far offsets at the calendar's edge give no day rather than an error.
    assert offset_from(date(1, 1, 1), "-999M") is None
    assert offset_from(date(9999, 12, 31), "+999D") is None


@pytest.mark.parametrize(
    ("op", "field", "reason"),
    [
        ({"op": "add_task", "title": "  "}, "title", "malformed"),
        ({"op": "add_task", "title": "x", "due": "soon"}, "due", "malformed"),
        ({"op": "add_task", "title": "x", "due_offset": "-6Y"}, "due_offset", "malformed"),
        (
            {"op": "add_task", "title": "x", "due_offset": "-6M", "due": "2027-01-01"},
            "due_offset",
            "malformed",
        ),
        ({"op": "add_task", "title": "x", "done": "yes"}, "done", "malformed"),
        ({"op": "update_task", "task_id": "k1"}, "", "malformed"),
        ({"op": "complete_task", "task_id": "nope"}, "task_id", "impossible"),
        ({"op": "remove_task", "task_id": "nope"}, "task_id", "impossible"),
        ({"op": "add_task", "task_id": "k1", "title": "Again"}, "task_id", "impossible"),
    ],
)
def test_refusals_name_the_field_and_change_nothing(
    op: dict[str, Any], field: str, reason: str
) -> None:
    doc: Doc[Any] = Doc()
    apply_operation(doc, "tasks", {"op": "add_task", "task_id": "k1", "title": "Cake"})
    before = doc.get_state()
    with pytest.raises(OperationError) as refused:
        apply_operation(doc, "tasks", op)
    assert refused.value.path == field and refused.value.reason == reason
    assert doc.get_state() == before


def test_ticking_a_task_is_a_task_completed_event_that_replays() -> None:
    doc: Doc[Any] = Doc()
    apply_operation(doc, "tasks", {"op": "add_task", "task_id": "k1", "title": "Cake"})
    recorder = ChangeRecorder(doc, "tasks")
    before = entries_of(doc, "tasks")
    apply_operation(doc, "tasks", {"op": "complete_task", "task_id": "k1"})
    apply_operation(doc, "tasks", {"op": "update_task", "task_id": "k1", "due_offset": "-1W"})
    events = derive_events("tasks", recorder.take())
    # One entry's changes are merged: its fields, then the tick (as a guest's RSVP).
    assert [e.type for e in events] == ["task.updated", "task.completed"]
    assert events[1].data == {"id": "k1"}
    assert apply_events("tasks", before, events) == entries_of(doc, "tasks")
    apply_operation(doc, "tasks", {"op": "reopen_task", "task_id": "k1"})
    assert [e.type for e in derive_events("tasks", recorder.take())] == ["task.reopened"]
    apply_operation(doc, "tasks", {"op": "remove_task", "task_id": "k1"})
    assert [e.type for e in derive_events("tasks", recorder.take())] == ["task.removed"]


def test_the_json_round_trip_keeps_every_task_and_reads_due_dates_as_derived() -> None:
    doc: Doc[Any] = Doc()
    apply_operation(doc, "tasks", {"op": "seed_checklist"})
    apply_operation(
        doc, "tasks", {"op": "update_task", "task_id": "t-rings", "owner": "ann", "notes": "Gold"}
    )
    view = to_json(doc, "tasks")
    again = from_json("tasks", {**view, "due_dates": {"t-rings": "2027-01-01"}})
    assert to_json(again, "tasks") == view
    assert view["tasks"]["t-rings"] == {
        "title": "Order the rings",
        "owner": "ann",
        "due": None,
        "due_offset": "-3M",
        "done": False,
        "notes": "Gold",
    }


def test_reading_many_tasks_has_a_bounded_cost() -> None:
    doc: Doc[Any] = Doc()
    with doc.transaction():
        for i in range(2000):
            apply_operation(
                doc,
                "tasks",
                {"op": "add_task", "task_id": f"k{i}", "title": "x" * 200}
                | {"due_offset": "-999M"},
            )
    started = time.perf_counter()
    dates = due_dates(read_tasks(doc).tasks, "2027-06-12")
    assert len(dates) == 2000 and time.perf_counter() - started < 2.0


def test_the_reminders_wanted_follow_done_and_the_wedding_date() -> None:
    doc: Doc[Any] = Doc()
    apply_operation(doc, "tasks", {"op": "seed_checklist"})
    apply_operation(doc, "tasks", {"op": "add_task", "task_id": "k1", "title": "Cake"})
    apply_operation(doc, "tasks", {"op": "complete_task", "task_id": "t-venue"})
    tasks = read_tasks(doc).tasks
    assert wanted_reminders(tasks, None) == {}  # no date: nothing falls due
    wanted = wanted_reminders(tasks, "2027-06-12")
    assert "t-venue" not in wanted and "k1" not in wanted  # done; no date
    assert wanted["t-invitations"] == "2027-03-12"
    assert wanted_reminders(tasks, "2027-09-12")["t-invitations"] == "2027-06-12"
    # Planned on 2027-03-12: what fell due before is overdue, not reminded; that day's is.
    late = wanted_reminders(tasks, "2027-06-12", "2027-03-12")
    assert late["t-invitations"] == "2027-03-12"
    assert all(day >= "2027-03-12" for day in late.values())
    assert set(wanted) - set(late)  # the checklist's earlier tasks
