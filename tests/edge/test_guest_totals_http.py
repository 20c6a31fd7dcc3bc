"""Households, plus-ones and the menu over HTTP: the guest list's JSON view carries its totals
(per table for who may read the seating plan), and seating a household is one operation
that reads the guest list (only for who may read it)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from crdt_server.testing.tokens import TokenMinter, bearer
from tests.server import ServerProcess

MINT = TokenMinter("guest-totals-test-secret-at-least-32-bytes")
W = "/api/weddings/w1"
DAY = 24 * 3600
"""Tokens minted at import outlive a whole test run (the full tier takes minutes)."""
COUPLE = MINT.headers("couple", "cam", ttl=DAY)
VENDOR = MINT.headers("vendor", "vic", ttl=DAY)
FAMILY = MINT.headers("family", "fia", ttl=DAY)
# Reads the guest list, not the seating plan (a token's own matrix).
GUESTS_ONLY = bearer(MINT("gil", "friend", docs={"guests": "read"}, ttl=DAY))
# Writes the seating plan, may not read the guest list.
SEATS_ONLY = bearer(MINT("sol", "friend", docs={"seating": "write"}, ttl=DAY))
ADDRESS = "1 Canary-Row-Qz8, Leeds"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def http(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        ServerProcess(tmp_path_factory.mktemp("totals") / "data", env=MINT.env) as server,
        httpx.AsyncClient(base_url=server.url, timeout=10) as client,
    ):
        for doc, op in [
            ("guests", {"op": "set_menu", "choices": ["Fish", "Beef"]}),
            ("guests", {"op": "add_household", "household_id": "h1", "name": "The Lees"}),
            ("guests", {"op": "update_household", "household_id": "h1"}
             | {"mailing_address": ADDRESS}),
            ("guests", {"op": "add_guest", "guest_id": "g1", "name": "Ann Lee"}
             | {"household_id": "h1", "rsvp": "accepted", "meal": "fish", "plus_one": True}),
            ("guests", {"op": "add_guest", "guest_id": "g2", "name": "Bo Lee"}
             | {"household_id": "h1", "rsvp": "accepted", "meal": "beef"}),
            ("guests", {"op": "add_guest", "guest_id": "g3", "name": "Cy Dow"}
             | {"household": "Dows"}),
            ("seating", {"op": "add_table", "table_id": "t1", "name": "Rose", "capacity": 4}),
            ("seating", {"op": "add_table", "table_id": "t2", "name": "Lily", "capacity": 2}),
        ]:  # fmt: skip
            done = await client.post(f"{W}/docs/{doc}/ops", json=op, headers=COUPLE)
            assert done.status_code == 200, done.text
        yield client


async def seat(http: httpx.AsyncClient, headers: dict[str, str], **op: Any) -> httpx.Response:
    return await http.post(
        f"{W}/docs/seating/ops", json={"op": "seat_household", **op}, headers=headers
    )


@pytest.mark.asyncio(loop_scope="module")
async def test_seat_a_household_in_one_operation_then_totals_per_table(
    http: httpx.AsyncClient,
) -> None:
    too_small = await seat(http, COUPLE, household_id="h1", table_id="t2")
    assert too_small.status_code == 422, too_small.text
    assert too_small.json()["errors"][0]["field"] == "table_id"  # three people, two seats
    done = await seat(http, COUPLE, household_id="h1", table_id="t1")
    assert done.status_code == 200, done.text
    assert done.json()["result"]["seated"] == ["g1", "g2"]
    view = (await http.get(f"{W}/docs/guests", headers=COUPLE)).json()
    totals = view["totals"]
    assert totals["people"] == 4 and totals["unnamed_plus_ones"] == 1
    assert totals["meals"] == {"Beef": 1, "Fish": 1} and totals["no_meal"] == 2
    assert totals["tables"]["t1"]["people"] == 3 and totals["tables"]["t2"]["people"] == 0
    assert totals["unseated"] == 1
    assert view["households"]["h1"]["mailing_address"] == ADDRESS


@pytest.mark.asyncio(loop_scope="module")
async def test_who_may_not_read_the_seating_plan_gets_totals_without_tables(
    http: httpx.AsyncClient,
) -> None:
    view = (await http.get(f"{W}/docs/guests", headers=GUESTS_ONLY)).json()
    assert view["totals"]["people"] == 4 and "tables" not in view["totals"]
    vendor = await http.get(f"{W}/docs/guests", headers=VENDOR)
    assert "tables" in vendor.json()["totals"] and "Qz8" not in vendor.text


@pytest.mark.asyncio(loop_scope="module")
async def test_seating_a_household_needs_to_read_the_guest_list(http: httpx.AsyncClient) -> None:
    refused = await seat(http, SEATS_ONLY, household_id="h1", table_id="t2")
    assert refused.status_code == 403, refused.text
    # Family seat people through operations: a household is one of them.
    free_text = await seat(http, FAMILY, guest_id="g3", table_id="t2")
    assert free_text.status_code == 200, free_text.text
    assert free_text.json()["result"]["seated"] == ["g3"]
    malformed = await seat(http, COUPLE, table_id="t2")
    assert malformed.status_code == 400, malformed.text


@pytest.mark.asyncio(loop_scope="module")
async def test_assigning_a_seat_counts_people_for_who_reads_the_guest_list(
    http: httpx.AsyncClient,
) -> None:
    """One guest's seat over HTTP counts people as seating a household does: Ann brings an
    unnamed plus-one, so Lily (two seats, Cy at one) has no room for her; a table cannot
    shrink below the people at it; a guest the list does not hold is named."""

    async def assign(headers: dict[str, str], **op: Any) -> httpx.Response:
        return await http.post(
            f"{W}/docs/seating/ops", json={"op": "assign_seat", **op}, headers=headers
        )

    full = await assign(COUPLE, guest_id="g1", table_id="t2")
    assert full.status_code == 422, full.text
    error = full.json()["errors"][0]
    assert error["field"] == "table_id" and "plus-one" in error["message"]
    shrink = await http.post(
        f"{W}/docs/seating/ops",
        json={"op": "update_table", "table_id": "t1", "capacity": 2},
        headers=COUPLE,
    )
    assert shrink.status_code == 422, shrink.text
    assert "3 people" in shrink.json()["errors"][0]["message"]
    unknown = await assign(COUPLE, guest_id="nobody", table_id="t1")
    assert unknown.status_code == 422, unknown.text
    assert unknown.json()["errors"][0]["field"] == "guest_id"
    # Who may not read the guest list is told nothing of it: rows are counted, and Bo (one
    # row) fits beside Cy.
    blind = await assign(SEATS_ONLY, guest_id="g2", table_id="t2")
    assert blind.status_code == 200, blind.text
    view = (await http.get(f"{W}/docs/guests", headers=COUPLE)).json()
    assert view["totals"]["tables"]["t2"]["people"] == 2
