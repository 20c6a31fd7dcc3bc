"""Guest CSV export and import through a real server: a round trip changes nothing, dry runs
answer the diff and line-numbered errors, a real import is one update credited to the
importer with the usual guest events, formulas are neutralised, bad input is problem+json."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from pycrdt import Doc, Map

from crdt_server.features.integrations.domain_guests_csv import (
    apply_import,
    export_guests,
    plan_import,
)
from crdt_server.testing.tokens import TokenMinter
from tests.server import FreshWedding, ServerProcess

SECRET = "guests-csv-secret-at-least-32-bytes!!!"
MINT = TokenMinter(SECRET)
ENV = {"CRDT_SERVER_AUTH_SECRET": SECRET, "CRDT_SERVER_MAX_CSV_BODY_BYTES": "200000"}
CSV_TYPE = {"Content-Type": "text/csv"}
WEDDING = FreshWedding("csv")
"""The running test's wedding: a fresh one per test on the module's server."""


@pytest.fixture(autouse=True)
def fresh_wedding() -> None:
    WEDDING.renew()


def csv_path() -> str:
    return WEDDING.at("/guests.csv")


def auth(role: str = "planner", sub: str = "ada") -> dict[str, str]:
    return MINT.headers(role, sub, WEDDING.id)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def http(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[httpx.AsyncClient]:
    """One server for the module; each test works on a wedding of its own (``WEDDING.id``)."""
    async with (
        ServerProcess(tmp_path_factory.mktemp("csv") / "data", env=ENV, anonymous=False) as server,
        httpx.AsyncClient(base_url=server.url, timeout=20) as client,
    ):
        yield client


async def upload(
    http: httpx.AsyncClient, text: str, *, dry_run: bool = False, role: str = "planner"
) -> httpx.Response:
    params = {"dry_run": "true"} if dry_run else {}
    return await http.post(
        csv_path(), content=text.encode(), params=params, headers={**auth(role), **CSV_TYPE}
    )


async def export(http: httpx.AsyncClient, **params: str) -> httpx.Response:
    answer = await http.get(csv_path(), params=params, headers=auth())
    assert answer.status_code == 200, answer.text
    return answer


async def history_of(http: httpx.AsyncClient) -> Any:
    return (await http.get(WEDDING.at("/docs/guests/history"), headers=auth())).json()


async def guests(http: httpx.AsyncClient) -> dict[str, Any]:
    answer = await http.get(WEDDING.at("/docs/guests"), headers=auth())
    found: dict[str, Any] = answer.json()["guests"]
    return found


SHEET = (
    "name,household,side,rsvp,meal,dietary,plus_one,contact\r\n"
    "Ann Lee,Lee,partner_a,accepted,fish,vegan; nuts,true,ann@example.com\r\n"
    'Bob Lee,Lee,partner_a,pending,,,false,"+44 20 7946 0000"\r\n'
    '"=HYPERLINK(""http://evil"")",Mallory,both,,,,,@cmd\r\n'
    '"Zoë ""Z"" Ng","Ng, family",partner_b,declined,"veg\r\nno salt",,,\r\n'
)


@pytest.mark.asyncio(loop_scope="module")
async def test_import_then_export_round_trips_and_neutralises_formulas(
    http: httpx.AsyncClient,
) -> None:
    preview = await upload(http, SHEET, dry_run=True)
    assert preview.status_code == 200, preview.text
    diff = preview.json()
    assert diff["dry_run"] and not diff["committed"] and diff["errors"] == []
    assert [a["line"] for a in diff["added"]] == [2, 3, 4, 5]
    assert await guests(http) == {}  # a dry run changes nothing

    done = await upload(http, SHEET)
    assert done.status_code == 200, done.text
    assert done.json()["committed"] and len(done.json()["added"]) == 4
    stored = await guests(http)
    by_name = {g["name"]: g for g in stored.values()}
    assert by_name["Ann Lee"]["dietary"] == ["vegan", "nuts"] and by_name["Ann Lee"]["plus_one"]
    assert by_name['Zoë "Z" Ng']["household"] == "Ng, family"
    assert by_name['=HYPERLINK("http://evil")']["contact"] == "@cmd"

    # One update, credited to the importer, the usual guest events, and one that says an
    # import made them.
    history = await history_of(http)
    assert [(h["sub"], h["role"]) for h in history["history"]] == [("ada", "planner")]
    events = (await http.get(WEDDING.at("/events"), headers=auth())).json()["events"]
    assert [e["type"] for e in events] == ["guest.added"] * 4 + ["integration.guests_imported"]
    assert {e["actor"]["sub"] for e in events} == {"ada"}
    counts = {"doc": "guests", "rows": 4, "added": 4, "changed": 0, "unchanged": 0}
    assert events[-1]["data"] == counts and events[-1]["doc"] == "guests"

    exported = await export(http)
    assert exported.headers["content-type"] == "text/csv; charset=utf-8"
    assert exported.headers["cache-control"] == "no-store"
    text = exported.content.decode()
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert rows[0] == ["id", "name", "household", "side", "rsvp", "meal", "dietary", "plus_one",
                       "contact", "household_id", "plus_one_of"]  # fmt: skip
    cells = [cell for row in rows for cell in row]
    assert '\'=HYPERLINK("http://evil")' in cells and "'@cmd" in cells
    assert "'+44 20 7946 0000" in cells
    assert not any(c.startswith(("=", "+", "-", "@")) for c in cells)
    assert text.endswith("\r\n") and "\r\n" in text

    # Export, import back: nothing changes (no update, no event).
    again = await upload(http, text)
    assert again.status_code == 200, again.text
    assert again.json()["added"] == [] and again.json()["changed"] == []
    assert len(again.json()["unchanged"]) == 4
    assert await guests(http) == stored
    history = await history_of(http)
    assert len(history["history"]) == 1
    after = (await http.get(WEDDING.at("/events"), headers=auth())).json()["events"]
    assert len(after) == len(events)  # nor an import event
    # With a BOM (Excel), and read back with it.
    bom = await export(http, bom="true")
    assert bom.content.startswith("\ufeff".encode())
    assert (await upload(http, bom.content.decode(), dry_run=True)).json()["changed"] == []


@pytest.mark.asyncio(loop_scope="module")
async def test_upsert_by_id_then_by_name_and_household(http: httpx.AsyncClient) -> None:
    assert (await upload(http, "id,name,household\r\ng1,Ann Lee,Lee\r\n")).status_code == 200
    await upload(http, "name,household\r\nAnn Lee,Smith\r\n")  # another household: a new guest
    sheet = (
        "id,name,household,rsvp\r\n"
        "g1,Ann Lee-Smith,Lee,accepted\r\n"  # by id: renamed
        ",ann lee , smith ,declined\r\n"  # by name and household, case and spaces ignored
        "g9,New Person,,\r\n"  # a new id: added with it
    )
    preview = (await upload(http, sheet, dry_run=True)).json()
    assert [(c["line"], c["id"], c["fields"]) for c in preview["changed"]][0] == (
        2,
        "g1",
        ["name", "rsvp"],
    )
    assert preview["changed"][1]["fields"] == ["rsvp"]
    assert [(a["line"], a["id"]) for a in preview["added"]] == [(4, "g9")]
    done = await upload(http, sheet)
    assert done.status_code == 200
    found = await guests(http)
    assert found["g1"]["name"] == "Ann Lee-Smith" and found["g9"]["name"] == "New Person"
    assert sorted(g["rsvp"] for g in found.values()) == ["accepted", "declined", "pending"]
    # Columns left out stay as they are.
    assert (await upload(http, "id,meal\r\ng1,fish\r\n")).status_code == 200
    assert (await guests(http))["g1"]["rsvp"] == "accepted"
    events = (await http.get(WEDDING.at("/events"), headers=auth())).json()["events"]
    assert "guest.rsvp_changed" in {e["type"] for e in events}


@pytest.mark.asyncio(loop_scope="module")
async def test_errors_name_their_line_and_nothing_is_applied(http: httpx.AsyncClient) -> None:
    sheet = (
        "name,rsvp,plus_one\r\n"
        "Ann,accepted,true\r\n"
        "\r\n"
        "Bob,maybe,false\r\n"  # line 4
        '"Cy\r\nmultiline",pending,perhaps\r\n'  # starts on line 5
        ",pending,false\r\n"  # line 7: no name
        "Dee,pending\r\n"  # line 8: a cell short
    )
    preview = await upload(http, sheet, dry_run=True)
    assert preview.status_code == 200
    errors = [(e["line"], e["field"]) for e in preview.json()["errors"]]
    assert errors == [(4, "rsvp"), (5, "plus_one"), (7, "name"), (8, "row")]
    refused = await upload(http, sheet)
    assert refused.status_code == 422
    assert refused.headers["content-type"] == "application/problem+json"
    problem = refused.json()
    assert [(r["line"], r["field"]) for r in problem["rows"]] == errors
    assert problem["errors"][0] == {"field": "rsvp", "message": problem["errors"][0]["message"]}
    assert problem["errors"][0]["message"].startswith("line 4: ")
    assert await guests(http) == {}
    # Two rows for one guest.
    twice = await upload(http, "id,name\r\ng1,A\r\ng1,B\r\n", dry_run=True)
    assert [(e["line"], e["field"]) for e in twice.json()["errors"]] == [(3, "id")]


@pytest.mark.asyncio(loop_scope="module")
async def test_bad_files_and_bad_callers(http: httpx.AsyncClient) -> None:
    for body, field in (
        ("", "body"),
        ("name,colour\r\nAnn,red\r\n", "body"),
        ("name,name\r\nAnn,Ann\r\n", "body"),
        ("household\r\nLee\r\n", "body"),
        ('name\r\n"unterminated\r\n', "body"),
    ):
        answer = await upload(http, body)
        assert answer.status_code == 400, (body, answer.text)
        assert answer.json()["errors"][0]["field"] == field
    not_utf8 = await http.post(
        csv_path(), content=b"name\r\n\xff\xfe\r\n", headers={**auth(), **CSV_TYPE}
    )
    assert not_utf8.status_code == 400
    wrong_type = await http.post(
        csv_path(), content=b"name\r\nAnn\r\n", headers={**auth(), "Content-Type": "image/png"}
    )
    assert wrong_type.status_code == 415
    assert wrong_type.json()["errors"][0]["field"] == "Content-Type"
    big = "name\r\n" + "x" * 200_001
    assert (await upload(http, big)).status_code == 413
    bad_flag = await http.post(
        csv_path(), content=b"name\r\nAnn\r\n", params={"dry_run": "maybe"},
        headers={**auth(), **CSV_TYPE},
    )  # fmt: skip
    assert bad_flag.status_code == 400 and bad_flag.json()["errors"][0]["field"] == "dry_run"
    assert (await upload(http, "name\r\nAnn\r\n", role="vendor")).status_code == 403
    friend = await http.get(csv_path(), headers=auth("friend", "f"))
    assert friend.status_code == 403
    assert (await http.get(csv_path())).status_code == 401
    assert (await http.get("/api/weddings/bad id/guests.csv", headers=auth())).status_code == 404
    assert await guests(http) == {}


def test_a_large_sheet_round_trips_in_memory() -> None:
    doc: Doc[Any] = Doc()
    rows = ["name,household,dietary,plus_one"]
    rows += [f"Guest {i},House {i // 4},vegan; -nuts,{i % 2 == 0}" for i in range(2000)]
    plan = plan_import(doc, "\n".join(rows))
    assert not plan.errors and len(plan.added) == 2000
    apply_import(doc, plan)
    again = plan_import(doc, export_guests(doc))
    assert len(again.unchanged) == 2000 and not again.changed and not again.added


def test_awkward_values_round_trip() -> None:
    doc: Doc[Any] = Doc()
    from crdt_server.documents import apply_operation

    awkward = [
        {"name": "'=quoted", "household": "'@x", "contact": "-", "meal": '"quoted", comma'},
        {"name": "+1 Guest", "household": "line\nbreak", "dietary": ["no nuts; no milk", "=x"]},
        {"name": "Zoë \u00a0Ünïcode 🎉", "contact": "\ttab", "plus_one": True, "side": "both"},
    ]
    for values in awkward:
        apply_operation(doc, "guests", {"op": "add_guest", **values})
    text = export_guests(doc, bom=True)
    plan = plan_import(doc, text)
    assert not plan.errors and not plan.changed and not plan.added
    assert len(plan.unchanged) == 3
    rows = list(csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline="")))
    assert all(not cell.startswith(("=", "+", "-", "@", "\t")) for row in rows for cell in row)


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize("depth", [3_000, 30_000])
async def test_a_guest_nested_thousands_of_maps_deep_exports_and_imports(
    http: httpx.AsyncClient, depth: int
) -> None:
    """A guest whose dietary holds 3,000 nested maps (a real update, stored) made the CSV
    export and import answer 500, and 30,000 (a 450 KB update) ended the server (yrs's
    JSON rendering overflowed the native stack) (issue 47): the guest list is read with
    bounded depth, so the other guests export whole and the deep one with its readable
    fields."""
    doc: Doc[Any] = Doc()
    entries = doc.get("guests", type=Map)
    deep: Map[Any] = Map({})
    entries["g1"] = Map({"name": "Deep", "dietary": deep})
    entries["g2"] = Map({"name": "Plain", "meal": "fish"})
    with doc.transaction():
        level = deep
        for _ in range(depth):
            level["d"] = inner = Map({})
            level = inner
    sent = await http.post(
        WEDDING.at("/docs/guests/update"), content=doc.get_update(), headers=auth()
    )
    assert sent.status_code == 200, sent.text
    rows = list(csv.DictReader(io.StringIO((await export(http)).text)))
    assert [(r["id"], r["name"], r["dietary"]) for r in rows] == [
        ("g1", "Deep", ""),
        ("g2", "Plain", ""),
    ]
    assert rows[1]["meal"] == "fish"
    planned = await upload(http, "id,meal\r\ng1,vegan\r\n", dry_run=True)
    assert planned.status_code == 200, planned.text
    assert planned.json()["changed"] == [{"line": 2, "id": "g1", "fields": ["meal"]}]


@pytest.mark.asyncio(loop_scope="module")
async def test_a_large_file_is_written_in_parts_and_read_as_one_import(
    http: httpx.AsyncClient,
) -> None:
    """A file past CRDT_SERVER_UPDATE_SLICE_STRUCTS (1,000) is committed in parts, each a
    history entry credited to the importer; its guests are all there, each with its
    ``guest.added``, and one ``integration.guests_imported`` says it was one import. An
    error in its last row writes none of it."""
    rows = 1_000
    lines = [f"Guest {i},accepted,partner_a,fish" for i in range(rows)]
    bad = "name,rsvp,side,meal\r\n" + "\r\n".join([*lines, "Late,maybe,both,fish"]) + "\r\n"
    refused = await upload(http, bad)
    assert refused.status_code == 422
    assert [(r["line"], r["field"]) for r in refused.json()["rows"]] == [(rows + 2, "rsvp")]
    assert await guests(http) == {} and (await history_of(http))["history"] == []

    done = await upload(http, "name,rsvp,side,meal\r\n" + "\r\n".join(lines) + "\r\n")
    assert done.status_code == 200, done.text[:300]
    assert done.json()["committed"] and len(done.json()["added"]) == rows
    stored = await guests(http)
    assert sorted(g["name"] for g in stored.values()) == sorted(f"Guest {i}" for i in range(rows))
    history = (await history_of(http))["history"]
    assert len(history) > 1 and {(h["sub"], h["role"]) for h in history} == {("ada", "planner")}
    added = 0
    after = 0
    while True:  # every guest's event, page by page
        page = await http.get(
            WEDDING.at("/events"),
            params={"types": "guest.added", "after": after, "limit": 500},
            headers=auth(),
        )
        found = page.json()["events"]
        if not found:
            break
        added += len(found)
        after = found[-1]["seq"]
    assert added == rows
    imported = await http.get(
        WEDDING.at("/events"), params={"types": "integration.guests_imported"}, headers=auth()
    )
    [event] = imported.json()["events"]
    assert event["seq"] > after  # after the guests' own events
    assert event["actor"]["sub"] == "ada"
    assert event["data"] == {
        "doc": "guests",
        "rows": rows,
        "added": rows,
        "changed": 0,
        "unchanged": 0,
    }
