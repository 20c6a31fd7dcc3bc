"""What a vendor reads of the guest list is the couple's choice (``guest_fields``), on
SQLite and PostgreSQL.

A caterer is invited with ``names_meals``, a florist with ``names``, a photographer with
``counts`` and a musician with ``nothing``; each joins through their invitation as a person
would. Canary values are written into a guest's meal and dietary needs: every way a
florist reads the guest list (the socket, the JSON and binary reads, the events, the CSV)
is grepped for them, and the caterer's shows them. The couple changes the florist's
choice through the members API: their older tokens stop. The upgrade keeps what vendors
who were members read before (a migration records ``names_meals`` on their entry).
"""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from pycrdt import Map
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from crdt_server.app import FEATURES
from crdt_server.features import install_tables
from crdt_server.storage import DocumentStore, Gateway, PostgresStore, SqliteStore
from tests.features.conversations import ADMIN_AUTH, COUPLE, ENV, PLANNER, VENDOR, W
from tests.server import ServerProcess
from tests.yclient import YClient

pytestmark = pytest.mark.timeout(120)

MEAL = "Fish-Mx9"
DIET = "Vegan-Dt8"
CANARIES = (MEAL, DIET, "Mx9", "Dt8")
LEGACY = Path(__file__).parent.parent.parent / "fixtures" / "legacy"

Api = tuple[ServerProcess, httpx.AsyncClient]


def leaked(raw: bytes | str) -> list[str]:
    text = raw if isinstance(raw, str) else raw.decode("utf-8", "replace")
    return [c for c in CANARIES if c in text]


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    """The store's settings: SQLite under the server's data directory, or a fresh
    PostgreSQL database."""
    if request.param == "sqlite":
        yield {}
    else:
        yield {"CRDT_SERVER_DATABASE_URL": request.getfixturevalue("scratch_postgres")}


@pytest_asyncio.fixture
async def api(tmp_path: Path, database: dict[str, str]) -> AsyncIterator[Api]:
    async with (
        ServerProcess(tmp_path / "data", env={**ENV, **database}, anonymous=False) as server,
        httpx.AsyncClient(base_url=server.url, timeout=10) as http,
    ):
        yield server, http


async def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def field_of(response: httpx.Response) -> str:
    return str(response.json()["errors"][0]["field"])


async def join(http: httpx.AsyncClient, name: str, **choice: Any) -> tuple[str, dict[str, str]]:
    """A vendor invited by the couple (``choice``: the invitation's ``guest_fields``), who
    joins with its code: their sub and the headers of the token they were given."""
    body = {"role": "vendor", "name": name, **choice}
    made = await ok(await http.post(f"{W}/invitations", json=body, headers=COUPLE), 201)
    joined = await ok(
        await http.post("/api/invitations/accept", json={"code": made["code"], "name": name}),
        201,
    )
    return joined["sub"], {"Authorization": f"Bearer {joined['token']}"}


async def add_guest(http: httpx.AsyncClient) -> None:
    body = {"op": "add_guest", "guest_id": "g1", "name": "Ann Lee", "meal": MEAL}
    await ok(await http.post(f"{W}/docs/guests/ops", json=body, headers=COUPLE))
    change = {"op": "update_guest", "guest_id": "g1", "dietary": [DIET]}
    await ok(await http.post(f"{W}/docs/guests/ops", json=change, headers=COUPLE))


async def socket_copy(server: ServerProcess, token: str) -> bytes:
    """The guest list as the socket gives it to ``token``'s holder, once it has Ann."""
    async with YClient(server.ws_url, "w1/guests", token=token) as client:
        await asyncio.wait_for(client.synced.wait(), 10)
        await client.wait(lambda: "g1" in (client.doc.get("guests", type=Map).to_py() or {}))
        return client.doc.get_update()


@pytest.mark.asyncio
async def test_each_vendor_reads_what_the_couple_chose_on_every_way_out(api: Api) -> None:
    server, http = api
    caterer, as_caterer = await join(http, "Cato", guest_fields="names_meals")
    florist, as_florist = await join(http, "Flora", guest_fields="names")
    shooter, as_shooter = await join(http, "Pia", guest_fields="counts")
    player, as_player = await join(http, "Mo", guest_fields="nothing")
    _, as_default = await join(http, "Dee")  # no choice: the counts
    await add_guest(http)
    binary = {"Accept": "application/octet-stream"}

    # The caterer reads meals and dietary needs; the florist the names only.
    shown = await ok(await http.get(f"{W}/docs/guests", headers=as_caterer))
    assert shown["guests"]["g1"]["meal"] == MEAL and shown["guests"]["g1"]["dietary"] == [DIET]
    read = await http.get(f"{W}/docs/guests", headers=as_florist)
    assert read.json()["guests"]["g1"]["name"] == "Ann Lee" and leaked(read.text) == []
    caterer_bytes = await http.get(f"{W}/docs/guests", headers=as_caterer | binary)
    assert leaked(caterer_bytes.content) == [MEAL, DIET, "Mx9", "Dt8"]
    florist_bytes = await http.get(f"{W}/docs/guests", headers=as_florist | binary)
    assert florist_bytes.status_code == 200 and leaked(florist_bytes.content) == []
    # The socket: two projections, one per field set.
    florist_token = as_florist["Authorization"].split()[1]
    caterer_token = as_caterer["Authorization"].split()[1]
    assert leaked(await socket_copy(server, florist_token)) == []
    assert MEAL in leaked(await socket_copy(server, caterer_token))
    # The events (guest.added carries the meal, guest.updated the dietary needs), the CSV.
    florist_events = await http.get(f"{W}/events?types=guest.*", headers=as_florist)
    assert len(florist_events.json()["events"]) == 2 and leaked(florist_events.text) == []
    caterer_events = await http.get(f"{W}/events?types=guest.*", headers=as_caterer)
    assert MEAL in leaked(caterer_events.text)
    csv = await http.get(f"{W}/guests.csv", headers=as_florist)
    assert csv.status_code == 200 and "Ann Lee" in csv.text and leaked(csv.text) == []
    assert MEAL in (await http.get(f"{W}/guests.csv", headers=as_caterer)).text
    # What the app is told.
    access = await ok(await http.get(f"{W}/access", headers=as_florist))
    assert access["guest_fields"] == "names" and access["projected"] == ["guests"]

    # counts: the document is closed, the totals are open; nothing: neither.
    for closed in (as_shooter, as_player, as_default):
        assert (await http.get(f"{W}/docs/guests", headers=closed)).status_code == 403
        assert (await http.get(f"{W}/docs/guests", headers=closed | binary)).status_code == 403
        assert (await http.get(f"{W}/guests.csv", headers=closed)).status_code == 403
        gone = await ok(await http.get(f"{W}/events?types=guest.*", headers=closed))
        assert gone["events"] == []
    for counted in (as_shooter, as_default, as_caterer, COUPLE):
        totals = await ok(await http.get(f"{W}/guest-counts", headers=counted))
        assert totals["people"] == 1 and totals["meals"] == {MEAL: 1}
        assert totals["dietary"] == {DIET: 1}
    assert (await http.get(f"{W}/guest-counts", headers=as_player)).status_code == 403
    player_token = as_player["Authorization"].split()[1]
    with pytest.raises(InvalidStatus) as upgrade:
        async with connect(f"{server.ws_url}/w1/guests?token={player_token}"):
            pass
    assert upgrade.value.response.status_code == 403
    assert (await ok(await http.get(f"{W}/access", headers=as_player)))["docs"]["guests"] == "none"

    # The directory says who reads what.
    listed = await ok(await http.get(f"{W}/members", headers=COUPLE))
    fields = {m["sub"]: m.get("guest_fields", "-") for m in listed["members"]}
    assert fields[caterer] == "names_meals" and fields[florist] == "names"
    assert fields[shooter] == "counts" and fields[player] == "nothing"
    assert fields["cam"] == "-"  # not a vendor: no choice to show


@pytest.mark.asyncio
async def test_the_couple_and_planner_change_a_vendors_choice(api: Api) -> None:
    server, http = api
    florist, as_florist = await join(http, "Flora", guest_fields="names")
    await add_guest(http)
    assert leaked((await http.get(f"{W}/docs/guests", headers=as_florist)).text) == []

    # Bad input: nothing changes, the field is named.
    url = f"{W}/members/{florist}"
    for bad in ({"guest_fields": "everything"}, {"guest_fields": None}, {"role": "couple"}, {}):
        refused = await http.patch(url, json=bad, headers=COUPLE)
        assert refused.status_code in (400, 422), refused.text
    wrong = await http.patch(url, json={"guest_fields": "everything"}, headers=COUPLE)
    assert field_of(wrong) == "guest_fields"
    couple_entry = await http.patch(
        f"{W}/members/cam", json={"guest_fields": "names"}, headers=COUPLE
    )
    assert couple_entry.status_code == 422 and field_of(couple_entry) == "guest_fields"
    missing = await http.patch(
        f"{W}/members/nobody", json={"guest_fields": "names"}, headers=COUPLE
    )
    assert missing.status_code == 404
    # Only who manages members: not a vendor (their own choice included).
    for vendor in (VENDOR, as_florist):
        denied = await http.patch(url, json={"guest_fields": "names_meals"}, headers=vendor)
        assert denied.status_code == 403
    # Nor for a friend: an invitation's choice is a vendor's only.
    friend = {"role": "friend", "guest_fields": "names"}
    made = await http.post(f"{W}/invitations", json=friend, headers=COUPLE)
    assert made.status_code == 422 and field_of(made) == "guest_fields"
    assert leaked((await http.get(f"{W}/docs/guests", headers=as_florist)).text) == []

    # The planner gives the florist the meals: her older token stops (its socket closes),
    # and the event says who changed what.
    changed = await ok(await http.patch(url, json={"guest_fields": "names_meals"}, headers=PLANNER))
    assert changed["guest_fields"] == "names_meals" and changed["sub"] == florist
    assert (await http.get(f"{W}/docs/guests", headers=as_florist)).status_code == 401
    events = await ok(await http.get(f"{W}/events?types=member.*", headers=COUPLE))
    [event] = [e for e in events["events"] if e["type"] == "member.guest_fields_changed"]
    assert event["data"] == {"sub": florist, "from": "names", "to": "names_meals"}
    assert event["actor"] == {"sub": "pat", "role": "planner"}
    # The same choice again changes nothing (no event, no revocation).
    again = await ok(await http.patch(url, json={"guest_fields": "names_meals"}, headers=COUPLE))
    assert again["guest_fields"] == "names_meals"
    events = await ok(await http.get(f"{W}/events?types=member.*", headers=COUPLE))
    assert [e["type"] for e in events["events"]].count("member.guest_fields_changed") == 1
    # The admin key may set it too: down to nothing.
    await ok(await http.patch(url, json={"guest_fields": "nothing"}, headers=ADMIN_AUTH))
    listed = await ok(await http.get(f"{W}/members", headers=COUPLE))
    assert {m["sub"]: m.get("guest_fields") for m in listed["members"]}[florist] == "nothing"


def _psql(dsn: str, *args: str) -> str:
    return subprocess.run(
        ["psql", "--no-psqlrc", "-v", "ON_ERROR_STOP=1", "-q", *args, dsn],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout


async def _upgraded(store: DocumentStore) -> dict[str, tuple[str, str | None]]:
    """Open a store of an earlier release with this release's features: each member's
    role and field set."""
    await store.open()
    try:
        await install_tables(store, FEATURES)
        rows = await Gateway.of(store).fetch("SELECT sub, role, guest_fields FROM {t}members")
        return {str(sub): (str(role), fields) for sub, role, fields in rows}
    finally:
        await store.close()


@pytest.mark.asyncio
async def test_vendors_who_were_members_at_the_upgrade_keep_what_they_read(
    tmp_path: Path, database: dict[str, str]
) -> None:
    """The earlier release's store (its directory then named ``thread_members``) with a
    vendor in it: after the upgrade the vendor reads ``names_meals`` (what every vendor
    read), the others have no field set."""
    vendor = "('w1', 'vic', 'vendor', 'Vic', NULL, 'all', 1, 'k', 0, 0)"
    insert = f"INSERT INTO {{}}thread_members VALUES {vendor}"
    dsn = database.get("CRDT_SERVER_DATABASE_URL")
    if dsn is None:
        path = tmp_path / "store.sqlite3"
        shutil.copyfile(LEGACY / "store.sqlite3", path)
        with sqlite3.connect(path) as db:
            db.execute(insert.format(""))
        store: DocumentStore = SqliteStore(path)
    else:
        _psql(dsn, "-f", str(LEGACY / "postgres.sql"))
        _psql(dsn, "-c", insert.format("legacy."))
        store = PostgresStore(dsn, schema="legacy")
    members = await _upgraded(store)
    assert members == {
        "ada": ("planner", None),
        "bob": ("couple", None),
        "vic": ("vendor", "names_meals"),
    }
