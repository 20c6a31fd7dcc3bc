"""The wedding's profile: the timeline's ``profile`` map (names, date, IANA time zone, venue,
RSVP deadline), set by ``set_profile``, shown by the JSON view, carried by export and
import, read from documents written before it (no profile) and from hostile ones in
bounded time; the budget's currency set alone by ``set_currency``."""

from __future__ import annotations

import time
from typing import Any

import pytest
from pycrdt import Array, Doc, Map

from crdt_server.documents import from_json, import_json, to_json
from crdt_server.documents.changes import ChangeRecorder
from crdt_server.documents.events import apply_events, derive_events, entries_of
from crdt_server.documents.schema import Profile, read_profile, read_timeline

from .wedding import Docs, new_wedding, refused, run

PROFILE = {
    "names": ["Ann Lee", "Bo Chen"],
    "date": "2027-06-12",
    "time_zone": "Europe/Lisbon",
    "venue": "Quinta da Serra",
    "rsvp_deadline": "2027-05-01",
}


@pytest.fixture
def docs() -> Docs:
    return new_wedding()


def test_a_document_without_a_profile_reads_as_none(docs: Docs) -> None:
    assert read_profile(docs["timeline"]) == Profile()
    assert read_timeline(docs["timeline"]).profile == Profile()
    assert to_json(docs["timeline"], "timeline")["profile"] == {
        "names": None,
        "date": None,
        "time_zone": None,
        "venue": None,
        "rsvp_deadline": None,
    }


def test_set_profile_merges_the_fields_given(docs: Docs) -> None:
    assert run(docs, "set_profile", **PROFILE)["changed"] is True
    assert to_json(docs["timeline"], "timeline")["profile"] == PROFILE
    assert run(docs, "set_profile", **PROFILE)["changed"] is False
    run(docs, "set_profile", venue="The Barn")
    profile = read_profile(docs["timeline"])
    assert profile.venue == "The Barn"
    assert profile.names == ("Ann Lee", "Bo Chen")
    assert profile.time_zone == "Europe/Lisbon"
    run(docs, "set_profile", venue=None)
    assert read_profile(docs["timeline"]).venue is None


@pytest.mark.parametrize(
    ("fields", "path"),
    [
        ({"time_zone": "Mars/Olympus"}, "time_zone"),
        ({"time_zone": "../../etc/passwd"}, "time_zone"),
        ({"time_zone": "/usr/share/zoneinfo/UTC"}, "time_zone"),
        ({"time_zone": "Europe/Lisbon\n"}, "time_zone"),
        ({"time_zone": "A" * 10_000}, "time_zone"),
        ({"time_zone": 3}, "time_zone"),
        ({"date": "2027-02-30"}, "date"),
        ({"date": "next june"}, "date"),
        ({"rsvp_deadline": "2027-13-01"}, "rsvp_deadline"),
        ({"names": ["x" * 101]}, "names"),
        ({"names": ["A", "B", "C"]}, "names"),
        ({"names": "Ann and Bo"}, "names"),
        ({"venue": "v" * 201}, "venue"),
        ({"colour": "blue"}, "colour"),
        ({}, ""),
    ],
)
def test_set_profile_refusals(docs: Docs, fields: dict[str, Any], path: str) -> None:
    assert refused(docs, "set_profile", 400, **fields).path == path


def test_set_currency_sets_the_budget_currency_alone(docs: Docs) -> None:
    assert run(docs, "set_currency", currency="EUR")["changed"] is True
    assert to_json(docs["budget"], "budget")["currency"] == "EUR"
    assert to_json(docs["budget"], "budget")["total"] is None
    run(docs, "set_currency", currency="GBP")  # no amounts yet: it may change
    run(docs, "set_category", category_id="venue", name="Venue", planned=100)
    assert refused(docs, "set_currency", 422, currency="EUR").path == "currency"
    assert refused(docs, "set_currency", 400, currency="euro").path == "currency"


def test_export_and_import_carry_the_profile(docs: Docs) -> None:
    run(docs, "set_profile", **PROFILE)
    view = to_json(docs["timeline"], "timeline")
    copy = from_json("timeline", view)
    assert to_json(copy, "timeline")["profile"] == PROFILE
    assert import_json(docs["timeline"], "timeline", view) is False


def test_an_export_from_before_profiles_imports_and_leaves_the_profile(docs: Docs) -> None:
    run(docs, "set_profile", **PROFILE)
    old = to_json(docs["timeline"], "timeline")
    del old["profile"]
    assert import_json(docs["timeline"], "timeline", old) is False
    assert read_profile(docs["timeline"]).venue == PROFILE["venue"]


def test_an_import_with_a_bad_profile_names_the_field(docs: Docs) -> None:
    view = to_json(docs["timeline"], "timeline")
    view["profile"] = {**PROFILE, "time_zone": "Nowhere/Land"}
    with pytest.raises(ValueError) as info:
        import_json(docs["timeline"], "timeline", view)
    assert getattr(info.value, "path", "") == "profile/time_zone"
    view["profile"] = {"secret": 1}
    with pytest.raises(ValueError) as info:
        import_json(docs["timeline"], "timeline", view)
    assert getattr(info.value, "path", "") == "profile/secret"


def test_profile_changes_are_events_that_rebuild_it(docs: Docs) -> None:
    doc = docs["timeline"]
    recorder = ChangeRecorder(doc, "timeline")
    run(docs, "set_profile", **PROFILE)
    events = derive_events("timeline", recorder.take())
    assert {e.type for e in events} == {"timeline.profile_changed"}
    assert {e.data["field"] for e in events} == set(PROFILE)
    assert apply_events("timeline", entries_of(Doc(), "timeline"), events) == entries_of(
        doc, "timeline"
    )


def test_a_profile_a_client_broke_reads_as_missing_fields() -> None:
    doc: Doc[Any] = Doc()
    profile = doc.get("profile", type=Map)
    with doc.transaction():
        profile["time_zone"] = "Not/AZone"
        profile["date"] = 42
        profile["venue"] = "Barn"
    timeline = read_timeline(doc)
    assert timeline.profile == Profile(venue="Barn")
    assert {p.path for p in timeline.problems} == {
        "timeline/profile/time_zone",
        "timeline/profile/date",
    }


def test_a_hostile_profile_is_read_in_bounded_time() -> None:
    """A profile a client filled with many keys, a huge names array and a deep nest: the
    reader looks up its own five keys, and the list rule stops at its length."""
    doc: Doc[Any] = Doc()
    profile = doc.get("profile", type=Map)
    with doc.transaction():
        for index in range(20_000):
            profile[f"k{index}"] = index
        profile["names"] = [f"n{i}" for i in range(50_000)]
        profile["rsvp_deadline"] = Array([f"n{i}" for i in range(2_000)])
        nested: Map[Any] = Map()
        profile["venue"] = nested
        for _ in range(200):
            inner: Map[Any] = Map()
            nested["x"] = inner
            nested = inner
    started = time.process_time()
    for _ in range(5):
        timeline = read_timeline(doc)
    assert time.process_time() - started < 5.0
    assert timeline.profile == Profile()
    assert to_json(doc, "timeline")["profile"]["names"] is None
