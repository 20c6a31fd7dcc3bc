"""A timeline over several days in the wedding's time zone (issue 54, point 4): each item is
written with its zone's offset on its own date, across a daylight-saving change; a wall
clock without an offset is read in the zone; an item may end after midnight."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from crdt_server.documents import check, to_json

from .wedding import Docs, new_wedding, refused, run


def weekend(zone: str, date: str) -> Docs:
    docs = new_wedding()
    run(docs, "set_profile", date=date, time_zone=zone)
    return docs


def stored(docs: Docs, item_id: str) -> tuple[str, str]:
    item = to_json(docs["timeline"], "timeline")["items"][item_id]
    return item["start"], item["end"]


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


@pytest.mark.timeout(10)
def test_a_berlin_weekend_across_the_october_change_has_each_days_offset() -> None:
    # Summer time ends in Berlin at 03:00 on Sunday 25 October 2026 (the last Sunday).
    docs = weekend("Europe/Berlin", "2026-10-24")
    run(
        docs,
        "add_timeline_item",
        item_id="dinner",
        title="Rehearsal dinner",
        start="2026-10-23T19:00",
        end="2026-10-23T22:00",
    )
    run(
        docs,
        "add_timeline_item",
        item_id="ceremony",
        title="Ceremony",
        start="2026-10-24T14:00",
        end="2026-10-24T15:00",
    )
    # Given with Friday's offset: the same instant, written with Sunday's.
    run(
        docs,
        "add_timeline_item",
        item_id="brunch",
        title="Brunch",
        start="2026-10-25T12:00:00+02:00",
        end="2026-10-25T13:00",
    )
    assert stored(docs, "dinner") == ("2026-10-23T19:00:00+02:00", "2026-10-23T22:00:00+02:00")
    assert stored(docs, "ceremony") == ("2026-10-24T14:00:00+02:00", "2026-10-24T15:00:00+02:00")
    assert stored(docs, "brunch") == ("2026-10-25T11:00:00+01:00", "2026-10-25T13:00:00+01:00")
    # Moved to another day: that day's offset again.
    run(
        docs,
        "move_timeline_item",
        item_id="dinner",
        start="2026-10-25T19:00",
        end="2026-10-25T21:00",
    )
    assert stored(docs, "dinner") == ("2026-10-25T19:00:00+01:00", "2026-10-25T21:00:00+01:00")
    # An instant in UTC is the same instant in the zone.
    run(
        docs,
        "move_timeline_item",
        item_id="dinner",
        start="2026-10-22T17:00:00Z",
        end="2026-10-22T20:00:00Z",
    )
    assert stored(docs, "dinner") == ("2026-10-22T19:00:00+02:00", "2026-10-22T22:00:00+02:00")


@pytest.mark.timeout(10)
def test_a_new_york_weekend_across_the_november_change() -> None:
    # Daylight time ends in New York at 02:00 on Sunday 1 November 2026.
    docs = weekend("America/New_York", "2026-10-31")
    run(
        docs,
        "add_timeline_item",
        item_id="dinner",
        title="Rehearsal dinner",
        start="2026-10-30T19:00",
        end="2026-10-30T22:00",
    )
    run(
        docs,
        "add_timeline_item",
        item_id="brunch",
        title="Brunch",
        start="2026-11-01T11:00",
        end="2026-11-01T13:00",
    )
    assert stored(docs, "dinner")[0] == "2026-10-30T19:00:00-04:00"
    assert stored(docs, "brunch") == ("2026-11-01T11:00:00-05:00", "2026-11-01T13:00:00-05:00")
    assert utc(stored(docs, "brunch")[0]) == datetime(2026, 11, 1, 16, 0, tzinfo=UTC)


@pytest.mark.timeout(10)
def test_times_the_changes_skip_or_repeat() -> None:
    docs = weekend("Europe/Berlin", "2027-03-27")
    # 02:30 on 28 March 2027 does not exist in Berlin: it moves on by the hour skipped.
    run(
        docs,
        "add_timeline_item",
        item_id="late",
        title="Last dance",
        start="2027-03-28T01:30",
        end="2027-03-28T02:30",
    )
    assert stored(docs, "late") == ("2027-03-28T01:30:00+01:00", "2027-03-28T03:30:00+02:00")
    # 02:30 on 25 October 2026 happens twice: the first one (still summer time).
    run(
        docs,
        "add_timeline_item",
        item_id="twice",
        title="Taxi",
        start="2026-10-25T02:30",
        end="2026-10-25T02:45:00+01:00",
    )
    assert stored(docs, "twice") == ("2026-10-25T02:30:00+02:00", "2026-10-25T02:45:00+01:00")
    assert (utc(stored(docs, "twice")[1]) - utc(stored(docs, "twice")[0])).seconds == 75 * 60


@pytest.mark.timeout(10)
def test_an_item_that_ends_after_midnight_is_no_finding() -> None:
    docs = weekend("Europe/Berlin", "2026-10-24")
    run(
        docs,
        "add_timeline_item",
        item_id="party",
        title="After-party",
        location="Barn",
        start="2026-10-24T22:00",
        end="2026-10-25T02:00",
    )
    assert stored(docs, "party") == ("2026-10-24T22:00:00+02:00", "2026-10-25T02:00:00+02:00")
    codes = [c.code for c in check(docs)]
    assert "timeline.ends_before_start" not in codes
    # What it overlaps after midnight is found, in the wedding's offset.
    run(
        docs,
        "add_timeline_item",
        item_id="taxi",
        title="Taxis",
        location="Barn",
        start="2026-10-25T01:00",
        end="2026-10-25T01:30",
    )
    found = [c for c in check(docs)]
    assert [c.code for c in found] == ["timeline.location_overlap"]
    assert "from 2026-10-25T01:00:00+02:00 to 2026-10-25T01:30:00+02:00" in found[0].message
    # Ending before it starts is still refused, on any day.
    error = refused(docs, "move_timeline_item", 422, item_id="party", end="2026-10-24T21:00")
    assert error.path == "end"


@pytest.mark.timeout(10)
def test_a_wall_clock_needs_a_zone_and_bad_times_name_their_field() -> None:
    docs = new_wedding()  # no profile: no zone to read a wall clock in
    error = refused(
        docs,
        "add_timeline_item",
        422,
        title="Dinner",
        start="2026-10-23T19:00",
        end="2026-10-23T21:00:00+02:00",
    )
    assert error.path == "start" and "time zone" in error.message
    run(
        docs,
        "add_timeline_item",
        item_id="d",
        title="Dinner",
        start="2026-10-23T19:00:00+02:00",
        end="2026-10-23T21:00:00Z",
    )
    assert stored(docs, "d") == ("2026-10-23T19:00:00+02:00", "2026-10-23T21:00:00+00:00")
    docs = weekend("Pacific/Kiritimati", "2026-10-24")
    for bad in ("tomorrow", 19, "2026-13-01T10:00", "x" * 100_000):
        error = refused(
            docs, "add_timeline_item", 400, title="Dinner", start=bad, end="2026-10-23T21:00"
        )
        assert error.path == "start", error
    # Before the calendar's first instant in UTC: no time in any zone.
    error = refused(
        docs,
        "add_timeline_item",
        422,
        title="Dinner",
        start="0001-01-01T00:30+05:00",
        end="2026-10-23T21:00",
    )
    assert error.path == "start" and "out of range" in error.message
    started = time.monotonic()
    refused(docs, "add_timeline_item", 400, title="D", start="9" * 1_000_000, end="x")
    assert time.monotonic() - started < 0.5
