"""RSVP links through a real server: the couple mints a household's link, the household
reads and answers through it as ``guest:<guest id>`` principals (events credited to each
person), a link cannot read or answer for another household, a revoked link stays revoked
whatever the guests document holds, answers replay by Idempotency-Key, the deadline
closes the link, rate limits, the CSV and printable sheet, and the code never reaches the
server's log."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from crdt_server.features.rsvp.domain import MAX_NOTE
from crdt_server.features.rsvp.domain_households import household_id_of
from crdt_server.features.rsvp.routes_guest import plus_one_id
from crdt_server.testing.tokens import TokenMinter
from tests.server import FreshWedding, ServerProcess

SECRET = "rsvp-links-secret-at-least-32-bytes!!!"
MINT = TokenMinter(SECRET)
PER_LINK = 12
ADMIN = "rsvp-admin-key-0123456789abcdef"
ENV = {
    "CRDT_SERVER_AUTH_SECRET": SECRET,
    "CRDT_SERVER_ADMIN_API_KEY": ADMIN,
    "CRDT_SERVER_PUBLIC_URL": "https://plan.example.com",
    "CRDT_SERVER_LOG_FORMAT": "json",
    "CRDT_SERVER_RSVP_PER_LINK_PER_HOUR": str(PER_LINK),
}
WEDDING = FreshWedding("rsvp")
TTL = 4 * 3600


@pytest.fixture(autouse=True)
def fresh_wedding() -> None:
    WEDDING.renew()


def auth(role: str = "couple", sub: str = "ada") -> dict[str, str]:
    return MINT.headers(role, sub, WEDDING.id, ttl=TTL)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def api(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[tuple[ServerProcess, httpx.AsyncClient]]:
    """One server for the module; each test works on a wedding of its own."""
    async with (
        ServerProcess(tmp_path_factory.mktemp("rsvp") / "data", env=ENV) as server,
        httpx.AsyncClient(base_url=server.url, timeout=20) as client,
    ):
        yield server, client


async def op(http: httpx.AsyncClient, doc: str, body: dict[str, Any]) -> None:
    answer = await http.post(WEDDING.at(f"/docs/{doc}/ops"), json=body, headers=auth())
    assert answer.status_code == 200, answer.text


async def household(http: httpx.AsyncClient, name: str, *guests: tuple[str, str]) -> str:
    """A household of ``guests`` (id, name); its id."""
    for guest_id, guest_name in guests:
        await op(
            http,
            "guests",
            {"op": "add_guest", "guest_id": guest_id, "name": guest_name, "household": name},
        )
    return household_id_of(name)


async def mint(http: httpx.AsyncClient, hid: str) -> dict[str, Any]:
    answer = await http.post(WEDDING.at(f"/households/{hid}/rsvp-link"), headers=auth())
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


async def guests(http: httpx.AsyncClient) -> dict[str, Any]:
    found: dict[str, Any] = (await http.get(WEDDING.at("/docs/guests"), headers=auth())).json()[
        "guests"
    ]
    return found


async def events(http: httpx.AsyncClient, prefix: str) -> list[dict[str, Any]]:
    answer = await http.get(WEDDING.at("/events"), headers=auth())
    assert answer.status_code == 200, answer.text
    return [e for e in answer.json()["events"] if e["type"].startswith(prefix)]


def answer_for(*people: tuple[str, bool], meal: str | None = None) -> dict[str, Any]:
    return {
        "people": [
            {"guest_id": gid, "attending": going, **({"meal": meal} if meal else {})}
            for gid, going in people
        ]
    }


@pytest.mark.asyncio(loop_scope="module")
async def test_a_household_reads_and_answers_as_its_guests(
    api: tuple[ServerProcess, httpx.AsyncClient],
) -> None:
    _, http = api
    await op(
        http,
        "timeline",
        {"op": "set_profile", "names": ["Ada", "Grace"], "date": "2030-06-13", "venue": "Kew"},
    )
    hid = await household(http, "Lee family", ("g1", "Ann Lee"), ("g2", "Bo Lee"))
    link = await mint(http, hid)
    assert link["url"] == f"https://plan.example.com/rsvp/#code={link['code']}"
    assert link == await mint(http, hid), "derived: the same link until revoked"
    page = await http.get(f"/api/rsvp/{link['code']}")
    assert page.status_code == 200, page.text
    assert page.headers["cache-control"] == "no-store"
    body = page.json()
    assert body["household"] == "Lee family" and body["closed"] is False
    assert body["wedding"] == {
        "names": ["Ada", "Grace"], "date": "2030-06-13", "venue": "Kew", "time_zone": None,
    }  # fmt: skip
    assert body["kind"] == "household"
    assert [p["guest_id"] for p in body["people"]] == ["g1", "g2"]
    assert body["menu"] is None and body["deadline"] is None

    put = await http.put(
        f"/api/rsvp/{link['code']}",
        json={
            "people": [
                {"guest_id": "g1", "attending": True, "meal": "fish", "dietary": ["nuts"]},
                {"guest_id": "g2", "attending": False},
            ]
        },
    )
    assert put.status_code == 200, put.text
    receipt = put.json()
    assert [(a["guest_id"], a["rsvp"]) for a in receipt["answered"]] == [
        ("g1", "accepted"),
        ("g2", "declined"),
    ]
    stored = await guests(http)
    assert stored["g1"]["rsvp"] == "accepted" and stored["g1"]["meal"] == "fish"
    assert stored["g1"]["dietary"] == ["nuts"] and stored["g2"]["rsvp"] == "declined"
    changed = await events(http, "guest.rsvp_changed")
    credited = {e["data"]["id"]: e["actor"] for e in changed}
    assert credited == {
        "g1": {"sub": "guest:g1", "role": "guest"},
        "g2": {"sub": "guest:g2", "role": "guest"},
    }
    # Every answer is an event, changed or not (issue 77: "Answered by RSVP link: nobody
    # yet" after a household answered what the couple had typed already).
    again = await http.put(f"/api/rsvp/{link['code']}", json=answer_for(("g1", True)))
    assert again.status_code == 200 and again.json()["answered"][0]["changed"] is False
    answered = await events(http, "rsvp.answered")
    assert [e["data"] for e in answered] == [
        {
            "household": hid,
            "answers": [
                {"id": "g1", "rsvp": "accepted", "changed": True},
                {"id": "g2", "rsvp": "declined", "changed": True},
            ],
        },
        {"household": hid, "answers": [{"id": "g1", "rsvp": "accepted", "changed": False}]},
    ]
    assert answered[1]["actor"] == {"sub": "guest:g1", "role": "guest"}
    assert len(await events(http, "guest.rsvp_changed")) == 2  # no change, no change event


async def households_view(http: httpx.AsyncClient, role: str = "couple") -> dict[str, Any]:
    view = await http.get(WEDDING.at("/docs/guests"), headers=auth(role, role))
    assert view.status_code == 200, view.text
    found: dict[str, Any] = view.json().get("households", {})
    return found


@pytest.mark.asyncio(loop_scope="module")
async def test_a_household_leaves_the_couple_a_note(
    api: tuple[ServerProcess, httpx.AsyncClient],
) -> None:
    """Stored on the household's entry (created for a free-text household) with when it
    was written, replaced, cleared by an empty note, left alone by an absent one; credited
    to the first person named; hidden from vendors."""
    _, http = api
    hid = await household(http, "Lee family", ("g1", "Ann Lee"), ("g2", "Bo Lee"))
    code = (await mint(http, hid))["code"]
    first = "We arrive Saturday only.\n<b>Sam</b> is allergic to nuts."
    put = await http.put(
        f"/api/rsvp/{code}", json=answer_for(("g2", True), ("g1", True)) | {"note": first}
    )
    assert put.status_code == 200, put.text
    assert [a["guest_id"] for a in put.json()["answered"]] == ["g2", "g1"]
    entry = (await households_view(http))[hid]
    assert entry["name"] == "Lee family" and entry["rsvp_note"] == first
    assert entry["rsvp_note_at"] is not None
    page = (await http.get(f"/api/rsvp/{code}")).json()
    assert page["note"] == first and [p["guest_id"] for p in page["people"]] == ["g1", "g2"]
    (noted,) = [e for e in await events(http, "guest.household_") if e["data"]["id"] == hid]
    assert noted["actor"] == {"sub": "guest:g2", "role": "guest"}
    assert "allergic" not in json.dumps(noted), "events say when, never what it says"
    # The free-text household got its entry, under the id it already read under.
    assert noted["type"] == "guest.household_added"
    assert noted["data"]["fields"] == {"name": "Lee family", "rsvp_note_at": entry["rsvp_note_at"]}
    # A vendor reads the household, never its note, in the view and the events.
    assert (await households_view(http, "vendor"))[hid] == {
        "name": "Lee family",
        "rsvp_deadline": None,
    }
    vendor_events = await http.get(WEDDING.at("/events"), headers=auth("vendor", "vendor"))
    assert vendor_events.status_code == 200, vendor_events.text
    assert "allergic" not in vendor_events.text and "rsvp_note" not in vendor_events.text

    # The same note again changes nothing; another replaces it; no note leaves it.
    again = await http.put(f"/api/rsvp/{code}", json=answer_for(("g1", True)) | {"note": first})
    assert again.status_code == 200, again.text
    assert (await households_view(http))[hid]["rsvp_note_at"] == entry["rsvp_note_at"]
    second = "Saturday and Sunday after all"
    await http.put(f"/api/rsvp/{code}", json=answer_for(("g1", True)) | {"note": second})
    assert (await households_view(http))[hid]["rsvp_note"] == second
    await http.put(f"/api/rsvp/{code}", json=answer_for(("g1", False)))
    assert (await households_view(http))[hid]["rsvp_note"] == second
    cleared = await http.put(f"/api/rsvp/{code}", json=answer_for(("g1", True)) | {"note": " "})
    assert cleared.status_code == 200, cleared.text
    entry = (await households_view(http))[hid]
    assert entry["rsvp_note"] is None and entry["rsvp_note_at"] is None
    assert (await http.get(f"/api/rsvp/{code}")).json()["note"] is None


@pytest.mark.asyncio(loop_scope="module")
async def test_a_note_too_long_is_refused_naming_it_and_changes_nothing(
    api: tuple[ServerProcess, httpx.AsyncClient],
) -> None:
    _, http = api
    hid = await household(http, "Lee", ("g1", "Ann Lee"))
    await op(http, "guests", {"op": "add_household", "household_id": hid, "name": "Lee"})
    code = (await mint(http, hid))["code"]
    kept = await http.put(f"/api/rsvp/{code}", json=answer_for(("g1", False)) | {"note": "hi"})
    assert kept.status_code == 200, kept.text
    # Well-formed JSON the answer's model refuses: 422, as the edge answers for every field.
    for note in ("x" * (MAX_NOTE + 1), 12, ["a"]):
        refused = await http.put(
            f"/api/rsvp/{code}", json=answer_for(("g1", True)) | {"note": note}
        )
        assert refused.status_code == 422, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["errors"][0]["field"] == "note", refused.text
    at_most = await http.put(
        f"/api/rsvp/{code}", json=answer_for(("g1", False)) | {"note": "y" * MAX_NOTE}
    )
    assert at_most.status_code == 200, at_most.text
    # A refused note refuses the whole answer: nobody's answer changed with it.
    await http.put(f"/api/rsvp/{code}", json=answer_for(("g1", False)) | {"note": "hi"})
    refused = await http.put(
        f"/api/rsvp/{code}", json=answer_for(("g1", True)) | {"note": "z" * (MAX_NOTE + 1)}
    )
    assert refused.status_code == 422
    assert (await guests(http))["g1"]["rsvp"] == "declined"
    assert (await households_view(http))[hid]["rsvp_note"] == "hi"


@pytest.mark.asyncio(loop_scope="module")
async def test_a_link_cannot_read_or_answer_for_another_household(
    api: tuple[ServerProcess, httpx.AsyncClient],
) -> None:
    _, http = api
    lee = await household(http, "Lee", ("g1", "Ann Lee"))
    kim = await household(http, "Kim", ("k1", "Jo Kim"))
    code = (await mint(http, lee))["code"]
    refused = await http.put(f"/api/rsvp/{code}", json=answer_for(("k1", True)))
    assert refused.status_code == 422, refused.text
    assert refused.json()["errors"][0]["field"] == "people[0].guest_id"
    mixed = await http.put(f"/api/rsvp/{code}", json=answer_for(("g1", True), ("k1", True)))
    assert mixed.status_code == 422
    assert {g["rsvp"] for g in (await guests(http)).values()} == {"pending"}, "nothing changed"
    # The code's household swapped for another's: its HMAC no longer verifies.
    wedding, _, mac = code.split(".")
    for forged in (f"{wedding}.{kim}.{mac}", f"{wedding}.{lee}.{'A' * 22}", "nonsense"):
        for method in ("GET", "PUT"):
            answer = await http.request(
                method, f"/api/rsvp/{forged}", json=answer_for(("k1", True))
            )
            assert answer.status_code == 404, (forged, answer.text)
            assert "Jo Kim" not in answer.text
    page = (await http.get(f"/api/rsvp/{code}")).json()
    assert [p["name"] for p in page["people"]] == ["Ann Lee"]
    # The code is not a token anywhere else.
    other = await http.get(WEDDING.at("/docs/guests"), headers={"Authorization": f"Bearer {code}"})
    assert other.status_code == 401


@pytest.mark.asyncio(loop_scope="module")
async def test_a_revoked_link_stays_revoked_whatever_the_document_holds(
    api: tuple[ServerProcess, httpx.AsyncClient],
) -> None:
    _, http = api
    hid = await household(http, "Lee", ("g1", "Ann Lee"))
    old = (await mint(http, hid))["code"]
    revoked = await http.delete(WEDDING.at(f"/households/{hid}/rsvp-link"), headers=auth())
    assert revoked.status_code == 200 and revoked.json()["version"] == 1
    # Whatever a guest-list writer puts in the document (a link version of its own, the
    # household removed and added again) cannot bring the old link back.
    await op(http, "guests", {"op": "remove_guest", "guest_id": "g1"})
    await household(http, "Lee", ("g1", "Ann Lee"))
    await op(http, "guests", {"op": "add_guest", "guest_id": "g0", "name": "rsvp_version 0"})
    assert (await http.get(f"/api/rsvp/{old}")).status_code == 404
    assert (await http.put(f"/api/rsvp/{old}", json=answer_for(("g1", True)))).status_code == 404
    new = (await mint(http, hid))["code"]
    assert new != old
    assert (await http.get(f"/api/rsvp/{new}")).status_code == 200
    vendor = await http.delete(
        WEDDING.at(f"/households/{hid}/rsvp-link"), headers=auth("vendor", "v")
    )
    assert vendor.status_code == 403
    assert (await http.get(f"/api/rsvp/{new}")).status_code == 200


@pytest.mark.asyncio(loop_scope="module")
async def test_an_answer_replays_by_its_idempotency_key(
    api: tuple[ServerProcess, httpx.AsyncClient],
) -> None:
    _, http = api
    hid = await household(http, "Lee", ("g1", "Ann Lee"))
    code = (await mint(http, hid))["code"]
    key = {"Idempotency-Key": "rsvp:answer:1"}
    first = await http.put(f"/api/rsvp/{code}", json=answer_for(("g1", True)), headers=key)
    assert first.status_code == 200, first.text
    # The couple changes it meanwhile; the page's queued replay gets its first answer back
    # and changes nothing.
    await op(http, "guests", {"op": "set_rsvp", "guest_id": "g1", "rsvp": "pending"})
    again = await http.put(f"/api/rsvp/{code}", json=answer_for(("g1", True)), headers=key)
    assert again.status_code == 200 and again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert (await guests(http))["g1"]["rsvp"] == "pending"
    other = await http.put(f"/api/rsvp/{code}", json=answer_for(("g1", False)), headers=key)
    assert other.status_code == 409
    assert other.json()["errors"][0]["field"] == "Idempotency-Key"


@pytest.mark.asyncio(loop_scope="module")
async def test_the_deadline_closes_the_link(
    api: tuple[ServerProcess, httpx.AsyncClient],
) -> None:
    _, http = api
    hid = await household(http, "Lee", ("g1", "Ann Lee"))
    code = (await mint(http, hid))["code"]
    await op(http, "timeline", {"op": "set_profile", "rsvp_deadline": "2020-01-01"})
    page = (await http.get(f"/api/rsvp/{code}")).json()
    assert page["closed"] is True and page["people"] == [] and page["deadline"] == "2020-01-01"
    late = await http.put(f"/api/rsvp/{code}", json=answer_for(("g1", True)))
    assert late.status_code == 410, late.text
    await op(http, "timeline", {"op": "set_profile", "rsvp_deadline": "2099-01-01"})
    assert (await http.put(f"/api/rsvp/{code}", json=answer_for(("g1", True)))).status_code == 200


@pytest.mark.asyncio(loop_scope="module")
async def test_bad_answers_name_the_field_and_change_nothing(
    api: tuple[ServerProcess, httpx.AsyncClient],
) -> None:
    _, http = api
    hid = await household(http, "Lee", ("g1", "Ann Lee"))
    code = (await mint(http, hid))["code"]
    for body, field in (
        ({"people": []}, "people"),
        ({"people": [{"guest_id": "g1"}]}, "people[0].attending"),
        ({"people": [{"guest_id": "g1", "attending": True, "meal": "x" * 201}]}, "people[0].meal"),
        ({"people": [{"guest_id": "g1", "attending": True}], "extra": 1}, "extra"),
        ({"people": [{"guest_id": "g1", "attending": True, "dietary": ["a"] * 21}]}, None),
    ):
        answer = await http.put(f"/api/rsvp/{code}", json=body)
        assert answer.status_code in (400, 422), (body, answer.text)
        assert answer.headers["content-type"] == "application/problem+json"
        if field is not None:
            assert answer.json()["errors"][0]["field"].startswith(field), answer.text
    huge = await http.put(f"/api/rsvp/{'a' * 5000}", json=answer_for(("g1", True)))
    assert huge.status_code in (404, 414)
    assert (await guests(http))["g1"]["rsvp"] == "pending"


@pytest.mark.asyncio(loop_scope="module")
async def test_a_link_is_rate_limited(
    api: tuple[ServerProcess, httpx.AsyncClient],
) -> None:
    _, http = api
    hid = await household(http, "Lee", ("g1", "Ann Lee"))
    code = (await mint(http, hid))["code"]
    statuses = [(await http.get(f"/api/rsvp/{code}")).status_code for _ in range(PER_LINK + 1)]
    assert statuses[:PER_LINK] == [200] * PER_LINK and statuses[-1] == 429
    limited = await http.get(f"/api/rsvp/{code}")
    assert int(limited.headers["retry-after"]) >= 1
    # Another household's link, from the same address, is not limited by it.
    other = await household(http, "Kim", ("k1", "Jo Kim"))
    assert (await http.get(f"/api/rsvp/{(await mint(http, other))['code']}")).status_code == 200


@pytest.mark.asyncio(loop_scope="module")
async def test_the_links_csv_and_sheet_are_recorded_and_never_cached(
    api: tuple[ServerProcess, httpx.AsyncClient],
) -> None:
    _, http = api
    lee = await household(http, "=Lee", ("g1", "Ann Lee"), ("g2", "Bo Lee"))
    await household(http, "Kim", ("k1", "Jo Kim"))
    exported = await http.get(WEDDING.at("/rsvp-links.csv"), headers=auth("planner", "pia"))
    assert exported.status_code == 200, exported.text
    assert exported.headers["cache-control"] == "no-store"
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert [r["household"] for r in rows] == ["'=Lee", "Kim"]
    assert rows[0]["people"] == "Ann Lee; Bo Lee"
    assert rows[0]["url"].endswith(rows[0]["code"]) and rows[0]["household_id"] == lee
    sheet = await http.get(WEDDING.at("/rsvp-links.html"), headers=auth())
    assert sheet.status_code == 200 and sheet.headers["cache-control"] == "no-store"
    assert sheet.text.count("<svg") == 2 and "&#x27;" not in sheet.text.split("<body>")[0]
    assert "=Lee" in sheet.text
    recorded = await events(http, "rsvp.links_exported")
    assert [(e["actor"], e["data"]["format"]) for e in recorded] == [
        ({"sub": "pia", "role": "planner"}, "csv"),
        ({"sub": "ada", "role": "couple"}, "sheet"),
    ]
    for role in ("vendor", "family", "friend"):
        answer = await http.get(WEDDING.at("/rsvp-links.csv"), headers=auth(role, "x"))
        assert answer.status_code == 403, role
    minted = await http.post(WEDDING.at("/households/nobody/rsvp-link"), headers=auth())
    assert minted.status_code == 404


@pytest.mark.asyncio(loop_scope="module")
async def test_the_code_never_reaches_the_log(
    api: tuple[ServerProcess, httpx.AsyncClient],
) -> None:
    server, http = api
    hid = await household(http, "Lee", ("g1", "Ann Lee"))
    code = (await mint(http, hid))["code"]
    await http.get(f"/api/rsvp/{code}", headers={"X-Request-ID": "rsvp-log-1"})
    await http.get(f"/api/rsvp/{code}x", headers={"X-Request-ID": "rsvp-log-2"})
    deadline = time.monotonic() + 5
    while b"rsvp-log-2" not in server.log:
        assert time.monotonic() < deadline, "the access log line never came"
        await asyncio.sleep(0.02)
    text = bytes(server.log).decode(errors="replace")
    assert code.split(".")[-1] not in text
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    routes = {line.get("route") for line in lines if line.get("request_id", "").startswith("rsvp")}
    assert routes == {"/api/rsvp/<redacted>"}


@pytest.mark.asyncio(loop_scope="module")
async def test_a_household_entry_names_its_plus_one_and_has_its_own_deadline(
    api: tuple[ServerProcess, httpx.AsyncClient],
) -> None:
    _, http = api
    await op(http, "timeline", {"op": "set_profile", "rsvp_deadline": "2020-01-01"})
    await op(
        http,
        "guests",
        {"op": "add_household", "household_id": "h1", "name": "The Lees",
         "rsvp_deadline": "2099-12-31"},
    )  # fmt: skip
    await op(
        http,
        "guests",
        {"op": "add_guest", "guest_id": "g1", "name": "Ann", "household_id": "h1",
         "plus_one": True},
    )  # fmt: skip
    code = (await mint(http, "h1"))["code"]
    page = (await http.get(f"/api/rsvp/{code}")).json()
    assert page["closed"] is False and page["deadline"] == "2099-12-31", "its own deadline"
    body = {**answer_for(("g1", True)), "plus_one": {"name": "Sam <b>", "meal": "veg"}}
    put = await http.put(f"/api/rsvp/{code}", json=body)
    assert put.status_code == 200, put.text
    named = plus_one_id("g1")
    assert [a["guest_id"] for a in put.json()["answered"]] == ["g1", named]
    stored = await guests(http)
    assert stored[named]["name"] == "Sam <b>" and stored[named]["plus_one_of"] == "g1"
    assert stored[named]["rsvp"] == "accepted" and stored[named]["meal"] == "veg"
    # Named again (another device): the same guest, renamed.
    body["plus_one"] = {"name": "Sam Lee"}
    assert (await http.put(f"/api/rsvp/{code}", json=body)).status_code == 200
    stored = await guests(http)
    assert stored[named]["name"] == "Sam Lee" and len(stored) == 2
    people = (await http.get(f"/api/rsvp/{code}")).json()["people"]
    assert [p["name"] for p in people] == ["Ann", "Sam Lee"]
    credited = {e["data"]["id"]: e["actor"]["sub"] for e in await events(http, "guest.")}
    assert credited[named] == f"guest:{named}"
    await op(http, "timeline", {"op": "set_profile", "rsvp_deadline": None})
    lonely = await household(http, "Kim", ("k1", "Jo Kim"))
    other = (await mint(http, lonely))["code"]
    refused = await http.put(f"/api/rsvp/{other}", json={**body, **answer_for(("k1", True))})
    assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == "plus_one"


@pytest.mark.asyncio(loop_scope="module")
async def test_erasure_removes_a_guest_from_the_page_and_an_erased_household_reads_nothing(
    api: tuple[ServerProcess, httpx.AsyncClient],
) -> None:
    _, http = api
    hid = await household(http, "Lee", ("g1", "Ann Lee"), ("g2", "Bo Lee"))
    code = (await mint(http, hid))["code"]
    assert (await http.put(f"/api/rsvp/{code}", json=answer_for(("g1", True)))).status_code == 200
    admin = {"Authorization": f"Bearer {ADMIN}"}
    erased = await http.post(WEDDING.at("/guests/g1/erase"), headers=admin)
    assert erased.status_code == 200, erased.text
    page = await http.get(f"/api/rsvp/{code}")
    assert page.status_code == 200 and "Ann" not in page.text
    assert [p["guest_id"] for p in page.json()["people"]] == ["g2"]
    assert not any("g1" in json.dumps(e) for e in await events(http, "guest."))
    assert (await http.put(f"/api/rsvp/{code}", json=answer_for(("g2", False)))).status_code == 200
    assert (await http.post(WEDDING.at("/guests/g2/erase"), headers=admin)).status_code == 200
    assert (await http.get(f"/api/rsvp/{code}")).status_code == 404
    other = await household(http, "Kim", ("k1", "Jo Kim"))
    kept = (await mint(http, other))["code"]
    deleted = await http.delete(WEDDING.at(), headers=admin)
    assert deleted.status_code in (200, 202, 204), deleted.text
    for method in ("GET", "PUT"):
        gone = await http.request(method, f"/api/rsvp/{kept}", json=answer_for(("k1", True)))
        assert gone.status_code == 404, gone.text


@pytest.mark.asyncio(loop_scope="module")
async def test_the_note_goes_with_the_household_s_last_guest(
    api: tuple[ServerProcess, httpx.AsyncClient],
) -> None:
    """Erasing a guest leaves the household's note to those still in it; erasing the last
    one clears it from the entry (which stays the couple's), the events and the export."""
    _, http = api
    hid = await household(http, "Lee", ("g1", "Ann Lee"), ("g2", "Bo Lee"))
    code = (await mint(http, hid))["code"]
    note = "Canary-note-Qz7: we arrive Saturday only"
    for first in ("g1", "g2"):
        answer = answer_for((first, True)) | {"note": f"{note} ({first})"}
        assert (await http.put(f"/api/rsvp/{code}", json=answer)).status_code == 200
    admin = {"Authorization": f"Bearer {ADMIN}"}
    assert (await http.post(WEDDING.at("/guests/g1/erase"), headers=admin)).status_code == 200
    assert (await households_view(http))[hid]["rsvp_note"] == f"{note} (g2)"
    assert (await http.get(f"/api/rsvp/{code}")).json()["note"] == f"{note} (g2)"
    # What they wrote from the page (the household's entry, made for its note) went too.
    assert all(e["actor"]["sub"] != "guest:g1" for e in await events(http, "")), "credited"
    assert (await http.post(WEDDING.at("/guests/g2/erase"), headers=admin)).status_code == 200
    entry = (await households_view(http))[hid]
    assert entry["name"] == "Lee" and entry["rsvp_note"] is None and entry["rsvp_note_at"] is None
    assert "Qz7" not in json.dumps(await events(http, ""))
    exported = await http.get(WEDDING.at("/export"), headers=admin)
    assert exported.status_code == 200, exported.text
    assert "Qz7" not in exported.text


@pytest.mark.asyncio(loop_scope="module")
async def test_the_page_has_its_own_bundle_policy_and_worker_scope(
    api: tuple[ServerProcess, httpx.AsyncClient],
) -> None:
    _, http = api
    page = await http.get("/rsvp/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    policy = page.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "connect-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy and "http" not in policy
    scripts = [part.split('"')[0] for part in page.text.split('src="/rsvp/')[1:]]
    assert scripts and all(s.startswith("rsvp-") for s in scripts), "its own bundle"
    worker = await http.get("/rsvp/sw.js")
    assert worker.status_code == 200 and worker.headers["service-worker-allowed"] == "/rsvp/"
    assert "/app/" not in worker.text
    assert (await http.get("/rsvp/app.js")).status_code == 404
    redirect = await http.get("/rsvp", follow_redirects=False)
    assert redirect.status_code == 307 and redirect.headers["location"] == "/rsvp/"


@pytest.mark.asyncio(loop_scope="module")
async def test_a_meal_must_be_on_the_menu_when_there_is_one(
    api: tuple[ServerProcess, httpx.AsyncClient],
) -> None:
    _, http = api
    hid = await household(http, "Lee", ("g1", "Ann Lee"))
    code = (await mint(http, hid))["code"]
    assert (await http.get(f"/api/rsvp/{code}")).json()["menu"] is None
    anything = await http.put(f"/api/rsvp/{code}", json=answer_for(("g1", True), meal="stew"))
    assert anything.status_code == 200, "no menu: any meal is taken"
    await op(http, "guests", {"op": "set_menu", "choices": ["Fish", "Vegetarian"]})
    assert (await http.get(f"/api/rsvp/{code}")).json()["menu"] == ["Fish", "Vegetarian"]
    off = await http.put(f"/api/rsvp/{code}", json=answer_for(("g1", True), meal="stew"))
    assert off.status_code == 422 and off.json()["errors"][0]["field"] == "people[0].meal"
    on = await http.put(f"/api/rsvp/{code}", json=answer_for(("g1", True), meal="fish"))
    assert on.status_code == 200, on.text
