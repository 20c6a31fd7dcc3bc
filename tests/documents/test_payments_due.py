"""Payments due (issue 54, point 3): a payment is paid (with the date it was paid) or
scheduled (with the date it is due); paid totals count paid ones, the budget's findings count
both and say so; ``budget.payment_paid`` when a scheduled one is made."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pycrdt import Doc, Map, Text

from crdt_server.documents import Conflict, DocumentError, check, from_json, to_json
from crdt_server.documents.changes import ChangeRecorder
from crdt_server.documents.events import apply_events, derive_events, entries_of
from crdt_server.documents.schema import read_budget
from tests.tier import examples

from .wedding import Docs, new_wedding, refused, run


@pytest.fixture
def docs() -> Docs:
    docs = new_wedding()
    run(docs, "set_budget_total", total=1_000_000, currency="EUR")
    run(docs, "set_category", category_id="venue", name="Venue", planned=600_000)
    run(docs, "set_category", category_id="music", name="Music", planned=100_000)
    return docs


def payments(docs: Docs) -> dict[str, Any]:
    found: dict[str, Any] = to_json(docs["budget"], "budget")["payments"]
    return found


# -- reading ---------------------------------------------------------------------------------


def _budget_with(entries: dict[str, dict[str, Any]]) -> Doc[Any]:
    doc: Doc[Any] = Doc()
    stored = doc.get("payments", type=Map)
    with doc.transaction():
        for key, fields in entries.items():
            stored[key] = Map({**fields, "notes": Text("")})
    return doc


def test_a_payment_with_no_status_is_paid_and_an_old_one_reads_as_it_did() -> None:
    doc = _budget_with(
        {
            "old": {"amount": 5, "category_id": "c", "date": "2026-01-15"},
            "later": {"amount": 7, "category_id": "c", "status": "scheduled", "due": "2027-03-01"},
            "undated": {"amount": 9, "category_id": "c"},
            "dated_later": {"amount": 3, "category_id": "c", "status": "paid"},
        }
    )
    budget = read_budget(doc)
    assert budget.payments["old"].status is None and not budget.payments["old"].scheduled
    assert budget.payments["later"].scheduled and budget.payments["later"].date is None
    assert budget.payments["later"].due == "2027-03-01"
    # A paid payment needs its date, as every payment did before statuses: left out.
    assert "undated" not in budget.payments and "dated_later" not in budget.payments
    assert {(p.path, p.message) for p in budget.problems} == {
        ("budget/payments/undated/date", "Payment 'undated' has no date."),
        ("budget/payments/dated_later/date", "Payment 'dated_later' has no date."),
    }


def test_an_unknown_status_reads_as_paid_and_is_reported() -> None:
    doc = _budget_with({"p": {"amount": 5, "category_id": "c", "date": "2026-01-15", "status": 3}})
    budget = read_budget(doc)
    assert not budget.payments["p"].scheduled
    assert [p.path for p in budget.problems] == ["budget/payments/p/status"]


# -- operations ------------------------------------------------------------------------------


def test_record_a_scheduled_payment_then_mark_it_paid(docs: Docs) -> None:
    run(
        docs,
        "record_payment",
        payment_id="p1",
        amount=250_000,
        category_id="venue",
        date="2026-05-01",
    )
    run(
        docs,
        "record_payment",
        payment_id="p2",
        amount=300_000,
        category_id="venue",
        status="scheduled",
        due="2027-03-01",
        vendor="Castle Hall",
    )
    assert payments(docs)["p2"] == {
        "amount": 300_000,
        "category_id": "venue",
        "date": None,
        "payer": None,
        "vendor": "Castle Hall",
        "notes": "",
        "due": "2027-03-01",
        "status": "scheduled",
        "vendor_id": None,
    }
    moved = run(docs, "update_payment", payment_id="p2", due="2027-04-01")
    assert moved == {"op": "update_payment", "id": "p2", "changed": True}
    paid = run(docs, "update_payment", payment_id="p2", status="paid", date="2027-03-28")
    assert paid["changed"] is True
    assert payments(docs)["p2"]["status"] == "paid"
    assert payments(docs)["p2"]["date"] == "2027-03-28"
    assert payments(docs)["p2"]["due"] == "2027-04-01"  # kept, as a record
    # The same again changes nothing (no write, so no concurrent edit is overwritten).
    again = run(docs, "update_payment", payment_id="p2", status="paid", date="2027-03-28")
    assert again["changed"] is False


def test_the_payment_dates_rule_holds_for_the_payment_as_it_would_be(docs: Docs) -> None:
    run(
        docs,
        "record_payment",
        payment_id="p1",
        amount=1,
        category_id="venue",
        status="scheduled",
        due="2027-01-01",
    )
    # Paid without the date it was paid: the stored payment has none (impossible).
    assert refused(docs, "update_payment", 422, payment_id="p1", status="paid").path == "date"
    # The arguments alone break the rule (malformed, whatever is stored).
    bad = refused(docs, "update_payment", 400, payment_id="p1", status="paid", date=None)
    assert bad.path == "date"
    assert refused(docs, "update_payment", 400, payment_id="p1", due=None, status="scheduled")
    # Clearing the due date of a scheduled payment.
    assert refused(docs, "update_payment", 422, payment_id="p1", due=None).path == "due"
    assert refused(docs, "update_payment", 400, payment_id="p1", status="later").path == "status"
    assert refused(docs, "update_payment", 400, payment_id="p1", due="2027-02-30").path == "due"
    assert refused(docs, "update_payment", 422, payment_id="p1", category_id="cake").path == (
        "category_id"
    )
    assert refused(docs, "update_payment", 422, payment_id="nope", amount=2).path == "payment_id"
    assert refused(docs, "update_payment", 422, payment_id="p1", currency="USD").path == (
        "currency"
    )
    assert refused(docs, "update_payment", 400, payment_id="p1").path == ""
    assert refused(docs, "update_payment", 400, payment_id="p1", when="now").path == "when"
    # A cleared status reads as paid: it needs the date.
    assert refused(docs, "update_payment", 422, payment_id="p1", status=None).path == "date"
    assert run(docs, "update_payment", payment_id="p1", status=None, date="2027-01-02")["changed"]
    assert payments(docs)["p1"]["status"] is None


# -- findings --------------------------------------------------------------------------------


def test_findings_count_paid_and_scheduled_and_say_so(docs: Docs) -> None:
    run(docs, "record_payment", payment_id="p1", amount=400_000, category_id="venue",
        date="2026-05-01")  # fmt: skip
    assert check(docs) == []
    run(
        docs,
        "record_payment",
        payment_id="p2",
        amount=700_000,
        category_id="venue",
        status="scheduled",
        due="2027-03-01",
    )
    assert check(docs) == [
        Conflict(
            "budget.category_over_plan",
            ("budget/categories/venue",),
            "Payments for 'Venue' total 11,000.00 EUR paid and scheduled (4,000.00 EUR paid,"
            " 7,000.00 EUR scheduled) but the plan is 6,000.00 EUR.",
        ),
        Conflict(
            "budget.over_total",
            ("budget/settings/total",),
            "Payments total 11,000.00 EUR paid and scheduled (4,000.00 EUR paid, 7,000.00 EUR"
            " scheduled) but the budget is 10,000.00 EUR.",
        ),
    ]
    # Made: the same sum, all of it paid now.
    run(docs, "update_payment", payment_id="p2", status="paid", date="2027-02-27")
    assert [c.message for c in check(docs)] == [
        "Payments for 'Venue' total 11,000.00 EUR paid (none scheduled) but the plan is"
        " 6,000.00 EUR.",
        "Payments total 11,000.00 EUR paid (none scheduled) but the budget is 10,000.00 EUR.",
    ]
    run(docs, "remove_payment", payment_id="p2")
    assert check(docs) == []


# -- events ----------------------------------------------------------------------------------


def _events_of(docs: Docs, op: str, **fields: Any) -> list[tuple[str, dict[str, Any]]]:
    reader: Doc[Any] = Doc()
    reader.apply_update(docs["budget"].get_update())
    recorder = ChangeRecorder(reader, "budget")
    state = docs["budget"].get_state()
    run(docs, op, **fields)
    before = entries_of(reader, "budget")
    reader.apply_update(docs["budget"].get_update(state))
    events = derive_events("budget", recorder.take())
    assert apply_events("budget", before, events) == entries_of(reader, "budget")
    return [(e.type, e.data) for e in events]


def test_payment_paid_is_derived_when_a_scheduled_payment_becomes_paid(docs: Docs) -> None:
    recorded = _events_of(
        docs,
        "record_payment",
        payment_id="p1",
        amount=5,
        category_id="music",
        status="scheduled",
        due="2027-01-01",
    )
    assert [t for t, _ in recorded] == ["budget.payment_recorded"]
    assert [t for t, _ in _events_of(docs, "update_payment", payment_id="p1", amount=6)] == [
        "budget.payment_updated"
    ]
    made = _events_of(docs, "update_payment", payment_id="p1", status="paid", date="2026-12-30")
    assert made == [
        (
            "budget.payment_updated",
            {
                "id": "p1",
                "changes": {
                    "date": {"from": None, "to": "2026-12-30"},
                    "status": {"from": "scheduled", "to": "paid"},
                },
            },
        ),
        (
            "budget.payment_paid",
            {"id": "p1", "from": "scheduled", "to": "paid", "date": "2026-12-30"},
        ),
    ]
    # Paid already: no second payment_paid (a status written again changes nothing).
    assert _events_of(docs, "update_payment", payment_id="p1", status="paid") == []
    # Back to scheduled, then paid by clearing the status (no status is paid).
    _events_of(docs, "update_payment", payment_id="p1", status="scheduled")
    cleared = _events_of(docs, "update_payment", payment_id="p1", status=None)
    assert [t for t, _ in cleared] == ["budget.payment_updated", "budget.payment_paid"]
    # A payment recorded paid is recorded, not "paid" (nothing was scheduled).
    direct = _events_of(
        docs, "record_payment", payment_id="p2", amount=1, category_id="music", date="2026-01-01"
    )
    assert [t for t, _ in direct] == ["budget.payment_recorded"]


@settings(max_examples=examples(full=60, fast=20), deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["p1", "p2"]),
            st.sampled_from([None, "scheduled", "paid"]),
            st.sampled_from(["2026-01-01", "2026-02-01"]),
        ),
        min_size=1,
        max_size=12,
    )
)
def test_payment_paid_follows_the_status_whatever_the_order(
    steps: list[tuple[str, str | None, str]],
) -> None:
    """Whatever statuses are written in whatever order, ``payment_paid`` comes exactly when
    a payment's effective status goes from scheduled to paid."""
    docs = new_wedding()
    run(docs, "set_category", category_id="c", name="C", planned=10)
    status: dict[str, str] = {}
    for payment_id, wanted, day in steps:
        fields: dict[str, Any] = {"status": wanted, "date": day, "due": day}
        if payment_id not in status:
            events = _events_of(
                docs, "record_payment", payment_id=payment_id, amount=1, category_id="c", **fields
            )
            assert [t for t, _ in events] == ["budget.payment_recorded"]
        else:
            events = _events_of(docs, "update_payment", payment_id=payment_id, **fields)
            paid_now = status[payment_id] == "scheduled" and (wanted or "paid") == "paid"
            assert ("budget.payment_paid" in [t for t, _ in events]) is paid_now
        status[payment_id] = wanted or "paid"


# -- export and import -----------------------------------------------------------------------


def test_an_export_with_scheduled_payments_imports_back_and_a_dateless_paid_one_is_refused(
    docs: Docs,
) -> None:
    run(docs, "record_payment", payment_id="p1", amount=3, category_id="venue",
        status="scheduled", due="2027-01-01")  # fmt: skip
    run(docs, "record_payment", payment_id="p2", amount=4, category_id="venue", date="2026-12-01")
    view = to_json(docs["budget"], "budget")
    again = from_json("budget", view)
    assert to_json(again, "budget")["payments"] == view["payments"]
    broken = {**view, "payments": {"p3": {"amount": 1, "category_id": "venue"}}}
    with pytest.raises(DocumentError) as refused_import:
        from_json("budget", broken)
    assert refused_import.value.path == "payments/p3/date"
    older = {**view, "payments": {"p4": {"amount": 1, "category_id": "venue", "due": "x"}}}
    with pytest.raises(DocumentError) as bad_day:
        from_json("budget", older)
    assert bad_day.value.path == "payments/p4/due"
