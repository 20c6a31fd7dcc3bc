"""The ripple of a delay (documents.delays): exactly the dependent items move."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta

import pytest

from crdt_server.documents.delays import MAX_MINUTES, DelayError, Planned, ripple

pytestmark = pytest.mark.timeout(30)

DAY = datetime(2026, 6, 13, tzinfo=UTC)


def at(hour: float) -> datetime:
    return DAY + timedelta(hours=hour)


def utc_day(moment: datetime) -> date:
    return moment.astimezone(UTC).date()


def item(id: str, start: float, end: float, vendor: str | None = None, **more: object) -> Planned:
    return Planned(id, at(start), at(end), vendor, **more)  # type: ignore[arg-type]


def moved(items: list[Planned], delayed: str, minutes: int) -> dict[str, tuple[float, float]]:
    found = ripple(items, delayed, minutes, utc_day)
    return {
        m.id: ((m.new_start - DAY).total_seconds() / 3600, (m.new_end - DAY).total_seconds() / 3600)
        for m in found.moves
    }


def test_the_delayed_item_moves_and_keeps_its_length() -> None:
    assert moved([item("a", 10, 11)], "a", 30) == {"a": (10.5, 11.5)}


def test_followers_move_by_as_much_transitively() -> None:
    items = [
        item("a", 10, 11),
        item("b", 12, 13, follows="a"),
        item("c", 14, 15, follows="b"),
        item("d", 16, 17),  # depends on nothing
    ]
    assert moved(items, "a", 30) == {"a": (10.5, 11.5), "b": (12.5, 13.5), "c": (14.5, 15.5)}


def test_same_vendor_moves_only_when_it_would_start_before_the_new_end() -> None:
    items = [
        item("hair", 9, 10, "name:glam"),
        item("makeup", 10, 11, "name:glam"),  # back to back: pushed by the whole delay
        item("touch_up", 15, 15.5, "name:glam"),  # far later: stays
        item("other", 10, 11, "name:florist"),
    ]
    assert moved(items, "hair", 45) == {"hair": (9.75, 10.75), "makeup": (10.75, 11.75)}


def test_a_gap_absorbs_part_of_a_same_vendor_delay() -> None:
    items = [item("a", 9, 10, "v"), item("b", 10.25, 11, "v")]
    assert moved(items, "a", 30) == {"a": (9.5, 10.5), "b": (10.5, 11.25)}


def test_fixed_items_never_move_nor_what_follows_them() -> None:
    items = [
        item("photos", 13, 14, "name:photo"),
        item("ceremony", 14, 15, "name:photo", fixed=True),
        item("after", 15, 16, follows="ceremony"),
        item("portraits", 14.5, 15, "name:photo", follows="ceremony"),
    ]
    found = ripple(items, "photos", 30, utc_day)
    assert [m.id for m in found.moves] == ["photos"]
    assert found.fixed == ("ceremony",)
    with pytest.raises(DelayError) as refused:
        ripple(items, "ceremony", 10, utc_day)
    assert refused.value.field == "item"


def test_earlier_items_and_other_days_keep_their_times() -> None:
    items = [
        item("before", 8, 9, "v"),
        item("a", 9, 10, "v"),
        item("tomorrow", 34, 35, follows="a"),
    ]
    assert moved(items, "a", 60) == {"a": (10, 11)}


def test_the_vendors_told_are_those_whose_items_moved() -> None:
    items = [
        item("a", 9, 10, "v1"),
        item("b", 10, 11, "v2", follows="a"),
        item("c", 12, 13, "v3"),
    ]
    assert ripple(items, "a", 15, utc_day).vendors == ("v1", "v2")


def test_bad_input_names_its_field() -> None:
    items = [item("a", 9, 10)]
    for minutes in (0, -5, MAX_MINUTES + 1):
        with pytest.raises(DelayError) as refused:
            ripple(items, "a", minutes, utc_day)
        assert refused.value.field == "minutes"
    with pytest.raises(DelayError) as unknown:
        ripple(items, "zz", 5, utc_day)
    assert unknown.value.field == "item"


def test_a_long_chain_is_one_bounded_pass() -> None:
    n = 5000
    items = [
        Planned(f"i{k}", DAY + timedelta(seconds=k), DAY + timedelta(seconds=k + 1), "v",
                f"i{k - 1}" if k else None)
        for k in range(n)
    ]  # fmt: skip
    began = time.monotonic()
    found = ripple(items, "i0", 5, utc_day)
    assert len(found.moves) == n
    assert time.monotonic() - began < 2.0
