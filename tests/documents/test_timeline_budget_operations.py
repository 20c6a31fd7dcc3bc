"""Timeline and budget operations: what each does, and each way it is refused."""

from __future__ import annotations

from typing import Any

import pytest
from pycrdt import Map

from crdt_server.documents import to_json

from .wedding import NO_NOTES, Docs, new_wedding, refused, run

CEREMONY = {
    "item_id": "i1",
    "title": "Ceremony",
    "start": "2026-06-13T15:00:00+02:00",
    "end": "2026-06-13T16:00:00+02:00",
}


@pytest.fixture
def docs() -> Docs:
    docs = new_wedding()
    run(docs, "add_timeline_item", **CEREMONY, location="Barn")
    run(docs, "set_budget_total", total=2_000_000, currency="EUR")
    run(docs, "set_category", category_id="venue", name="Venue", planned=800_000)
    return docs


def items(docs: Docs) -> dict[str, Any]:
    result: dict[str, Any] = to_json(docs["timeline"], "timeline")["items"]
    return result


def budget(docs: Docs) -> dict[str, Any]:
    return to_json(docs["budget"], "budget")


# -- timeline -------------------------------------------------------------------------------


def test_add_timeline_item_keeps_the_offset_in_canonical_form(docs: Docs) -> None:
    result = run(
        docs,
        "add_timeline_item",
        item_id="i2",
        title="Photos",
        start="2026-06-13T14:00Z",
        end="2026-06-13 17:30+02:00",
        owner="Ann",
        vendor="Studio Lux",
        status="confirmed",
        notes="Golden hour by the lake.",
    )
    assert result == {"op": "add_timeline_item", "id": "i2", "changed": True}
    assert items(docs)["i2"] == {
        "title": "Photos",
        "start": "2026-06-13T14:00:00+00:00",
        "end": "2026-06-13T17:30:00+02:00",
        "location": None,
        "owner": "Ann",
        "vendor": "Studio Lux",
        "status": "confirmed",
        "notes": "Golden hour by the lake.",
        "vendor_id": None,
        "follows": None,
        "fixed": False,
    }


def test_times_in_different_offsets_compare_as_instants(docs: Docs) -> None:
    # 14:30 UTC is 16:30 at +02:00: after the start, though it sorts before it as text.
    start, end = "2026-06-13T15:00:00+02:00", "2026-06-13T14:30:00+00:00"
    run(docs, "add_timeline_item", item_id="i2", title="Toast", start=start, end=end)
    assert items(docs)["i2"]["end"] == end


def test_a_milestone_may_start_and_end_at_once(docs: Docs) -> None:
    start = "2026-06-13T20:00:00+02:00"
    run(docs, "add_timeline_item", item_id="kiss", title="First dance", start=start, end=start)
    assert items(docs)["kiss"]["end"] == start


@pytest.mark.parametrize(
    ("fields", "status", "path"),
    [
        ({**CEREMONY}, 422, "item_id"),
        ({**CEREMONY, "item_id": "i2", "end": "2026-06-13T14:59:59+02:00"}, 422, "end"),
        # 14:30 at +02:00 is 12:30 UTC: before the start, though it sorts after it as text.
        (
            {
                **CEREMONY,
                "item_id": "i2",
                "start": "2026-06-13T13:00Z",
                "end": "2026-06-13T14:30+02:00",
            },
            422,
            "end",
        ),
        # A wall clock without an offset: read in the profile's zone, and there is none.
        ({**CEREMONY, "item_id": "i2", "start": "2026-06-13T15:00:00"}, 422, "start"),
        ({**CEREMONY, "item_id": "i2", "start": "2026-06-13"}, 400, "start"),
        ({**CEREMONY, "item_id": "i2", "start": "tomorrow"}, 400, "start"),
        ({**CEREMONY, "item_id": "i2", "start": 1781355600}, 400, "start"),
        ({**CEREMONY, "item_id": "i2", "status": "late"}, 400, "status"),
        ({**CEREMONY, "item_id": "i2", "notes": "x" * 5001}, 400, "notes"),
        ({"title": "Dinner", "start": CEREMONY["start"]}, 400, "end"),
    ],
)
def test_add_timeline_item_refusals(
    docs: Docs, fields: dict[str, Any], status: int, path: str
) -> None:
    assert refused(docs, "add_timeline_item", status, **fields).path == path


def test_update_timeline_item(docs: Docs) -> None:
    run(docs, "update_timeline_item", item_id="i1", vendor="DJ Max", status="confirmed")
    assert items(docs)["i1"]["vendor"] == "DJ Max"
    run(docs, "update_timeline_item", item_id="i1", location=None)
    assert items(docs)["i1"]["location"] is None
    assert items(docs)["i1"]["start"] == CEREMONY["start"]
    refused(docs, "update_timeline_item", 422, item_id="i9", title="X")
    refused(docs, "update_timeline_item", 400, item_id="i1")
    # Times change only through move_timeline_item.
    assert refused(
        docs, "update_timeline_item", 400, item_id="i1", start=CEREMONY["start"]
    ).path == ("start")


def test_move_timeline_item(docs: Docs) -> None:
    start, end = "2026-06-13T17:00:00+02:00", "2026-06-13T18:00:00+02:00"
    assert run(docs, "move_timeline_item", item_id="i1", start=start, end=end)["changed"] is True
    assert (items(docs)["i1"]["start"], items(docs)["i1"]["end"]) == (start, end)
    run(docs, "move_timeline_item", item_id="i1", end="2026-06-13T19:00:00+02:00")
    assert items(docs)["i1"]["start"] == start
    assert run(docs, "move_timeline_item", item_id="i1", start=start)["changed"] is False


def test_move_timeline_item_refusals(docs: Docs) -> None:
    early = "2026-06-13T14:00:00+02:00"
    assert refused(docs, "move_timeline_item", 422, item_id="i1", end=early).path == "end"
    refused(docs, "move_timeline_item", 422, item_id="i9", start=early)
    refused(docs, "move_timeline_item", 400, item_id="i1")
    refused(docs, "move_timeline_item", 400, item_id="i1", start=None)
    refused(docs, "move_timeline_item", 400, item_id="i1", title="Moved")


def test_remove_timeline_item(docs: Docs) -> None:
    assert run(docs, "remove_timeline_item", item_id="i1")["changed"] is True
    assert items(docs) == {}
    refused(docs, "remove_timeline_item", 422, item_id="i1")


# -- budget ---------------------------------------------------------------------------------


def test_set_budget_total(docs: Docs) -> None:
    assert budget(docs)["total"] == 2_000_000
    assert run(docs, "set_budget_total", total=2_500_000)["changed"] is True
    assert (budget(docs)["total"], budget(docs)["currency"]) == (2_500_000, "EUR")
    assert run(docs, "set_budget_total", total=2_500_000, currency="EUR")["changed"] is False
    run(docs, "set_budget_total", total=None)
    assert budget(docs)["total"] is None


def test_the_currency_may_change_only_while_there_are_no_amounts() -> None:
    docs = new_wedding()
    run(docs, "set_budget_total", total=100, currency="EUR")
    run(docs, "set_budget_total", total=100, currency="GBP")
    assert budget(docs)["currency"] == "GBP"
    run(docs, "set_category", category_id="venue", name="Venue", planned=50)
    error = refused(docs, "set_budget_total", 422, total=100, currency="EUR")
    assert error.path == "currency"
    assert "GBP" in str(error)


@pytest.mark.parametrize(
    ("fields", "path"),
    [
        ({}, "total"),
        ({"total": -1}, "total"),
        ({"total": 10.5}, "total"),
        ({"total": 10.0}, "total"),
        ({"total": True}, "total"),
        ({"total": "100"}, "total"),
        ({"total": 2**53}, "total"),
        ({"total": 100, "currency": "eur"}, "currency"),
        ({"total": 100, "currency": "EURO"}, "currency"),
    ],
)
def test_set_budget_total_refusals(docs: Docs, fields: dict[str, Any], path: str) -> None:
    assert refused(docs, "set_budget_total", 400, **fields).path == path


def test_set_category_creates_and_updates(docs: Docs) -> None:
    created = run(docs, "set_category", name="Flowers")
    assert budget(docs)["categories"][created["id"]] == {"name": "Flowers", "planned": 0} | NO_NOTES
    run(docs, "set_category", category_id="venue", planned=900_000)
    assert budget(docs)["categories"]["venue"] == {"name": "Venue", "planned": 900_000} | NO_NOTES
    run(docs, "set_category", category_id="music", name="Music", planned=1)
    assert budget(docs)["categories"]["music"] == {"name": "Music", "planned": 1} | NO_NOTES
    assert run(docs, "set_category", category_id="music", planned=1)["changed"] is False


def test_set_category_refusals(docs: Docs) -> None:
    assert refused(docs, "set_category", 400, planned=5).path == "name"
    assert refused(docs, "set_category", 422, category_id="cake", planned=5).path == "name"
    assert refused(docs, "set_category", 422, category_id="venue", currency="USD").path == (
        "currency"
    )
    refused(docs, "set_category", 400, category_id="venue", planned=-5)
    refused(docs, "set_category", 400, category_id="venue", name=None)


def test_a_budget_without_a_currency_adopts_the_first_one_given() -> None:
    docs = new_wedding()
    run(docs, "set_category", category_id="venue", name="Venue", planned=5, currency="CHF")
    assert budget(docs)["currency"] == "CHF"
    run(docs, "record_payment", category_id="venue", amount=5, date="2026-01-02", currency="CHF")
    refused(
        docs,
        "record_payment",
        422,
        category_id="venue",
        amount=5,
        date="2026-01-02",
        currency="EUR",
    )


def test_record_and_remove_a_payment(docs: Docs) -> None:
    result = run(
        docs,
        "record_payment",
        payment_id="p1",
        amount=250_000,
        category_id="venue",
        date="2026-01-15",
        payer="Ann",
        vendor="Castle Hall",
        currency="EUR",
    )
    assert result == {"op": "record_payment", "id": "p1", "changed": True}
    assert budget(docs)["payments"]["p1"] == {
        "amount": 250_000,
        "category_id": "venue",
        "date": "2026-01-15",
        "payer": "Ann",
        "vendor": "Castle Hall",
        "notes": "",
        "due": None,
        "status": None,
        "vendor_id": None,
    }
    assert run(docs, "remove_payment", payment_id="p1")["changed"] is True
    assert budget(docs)["payments"] == {}
    refused(docs, "remove_payment", 422, payment_id="p1")


@pytest.mark.parametrize(
    ("fields", "status", "path"),
    [
        ({"category_id": "cake"}, 422, "category_id"),
        ({"payment_id": "p1"}, 422, "payment_id"),
        ({"currency": "USD"}, 422, "currency"),
        ({"amount": -1}, 400, "amount"),
        ({"amount": None}, 400, "amount"),
        ({"date": "15/01/2026"}, 400, "date"),
        ({"date": "2026-02-30"}, 400, "date"),
        ({"date": None}, 400, "date"),
        ({"status": "paid", "date": None}, 400, "date"),
        ({"status": "pending"}, 400, "status"),
        ({"status": "scheduled"}, 400, "due"),
        ({"status": "scheduled", "due": "2026-13-01"}, 400, "due"),
        ({"due": "tomorrow"}, 400, "due"),
        ({"category_id": None}, 400, "category_id"),
        ({"note": "deposit"}, 400, "note"),
    ],
)
def test_record_payment_refusals(
    docs: Docs, fields: dict[str, Any], status: int, path: str
) -> None:
    run(docs, "record_payment", payment_id="p1", amount=1, category_id="venue", date="2026-01-01")
    payment = {"amount": 100, "category_id": "venue", "date": "2026-01-15", **fields}
    assert refused(docs, "record_payment", status, **payment).path == path


def test_set_category_keeps_a_given_id_over_an_unreadable_entry(docs: Docs) -> None:
    docs["budget"].get("categories", type=Map)["cake"] = "chocolate"
    run(docs, "set_category", category_id="cake", name="Cake", planned=300)
    assert budget(docs)["categories"]["cake"] == {"name": "Cake", "planned": 300} | NO_NOTES


@pytest.mark.timeout(30)
def test_recording_a_payment_reads_no_other_payment(
    docs: Docs, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Recording or changing a payment reads the budget's settings (its currency), not its
    every category and payment: its cost does not grow with the budget."""
    from crdt_server.documents import schema

    for n in range(30):
        run(docs, "record_payment", payment_id=f"p{n}", category_id="venue", amount=100,
            date="2026-01-15", currency="EUR")  # fmt: skip
    read: list[str] = []
    real = schema.read_entry

    def counting(entity: Any, record: Any, key: str, stored: object, problems: Any) -> Any:
        read.append(key)
        return real(entity, record, key, stored, problems)

    monkeypatch.setattr(schema, "read_entry", counting)
    run(docs, "record_payment", payment_id="p99", category_id="venue", amount=5,
        date="2026-01-16", currency="EUR")  # fmt: skip
    run(docs, "update_payment", payment_id="p3", amount=7, currency="EUR")
    run(docs, "set_category", category_id="venue", planned=900_000, currency="EUR")
    assert read == []
    refused(docs, "record_payment", 422, payment_id="p98", category_id="venue", amount=5,
            date="2026-01-16", currency="USD")  # fmt: skip
