"""A guest in no household gets an RSVP link of their own, keyed by the guest, on SQLite and
PostgreSQL: minting, reading and answering it writes no household entry into the guest
list; it answers for that guest (and the plus-one they name) alone; it keeps no note; it
is revoked like a household's; it closes once the guest is put in a household; the CSV,
the sheet and email (one guest, or everyone at once) carry it."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller

from crdt_server.features.rsvp.routes_guest import plus_one_id
from crdt_server.testing.tokens import TokenMinter
from crdt_server.testing.waits import until
from tests.features.conversations import Inbox, count_emails
from tests.server import ServerProcess

SECRET = "rsvp-guest-links-secret-at-least-32-bytes"
MINT = TokenMinter(SECRET)
W = "/api/weddings/w1"


def auth(role: str = "couple", sub: str = "ada") -> dict[str, str]:
    return MINT.headers(role, sub, "w1", ttl=4 * 3600)


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest) -> str:
    """The store the server runs on: its SQLite file (``""``), or a fresh PostgreSQL."""
    if request.param == "postgres":
        return str(request.getfixturevalue("postgres_url"))
    return ""


def _env(database_url: str, smtp_port: int | None = None) -> dict[str, str]:
    env = {
        "CRDT_SERVER_AUTH_SECRET": SECRET,
        "CRDT_SERVER_PUBLIC_URL": "https://plan.example.com",
    }
    if smtp_port is not None:
        env["CRDT_SERVER_SMTP_URL"] = f"smtp://127.0.0.1:{smtp_port}"
        env["CRDT_SERVER_EMAIL_FROM"] = "plans@example.com"
    if database_url:
        env["CRDT_SERVER_DATABASE_URL"] = database_url
    return env


async def op(http: httpx.AsyncClient, doc: str, body: dict[str, Any]) -> None:
    answer = await http.post(f"{W}/docs/{doc}/ops", json=body, headers=auth())
    assert answer.status_code == 200, answer.text


async def guest_list(http: httpx.AsyncClient) -> dict[str, Any]:
    answer = await http.get(f"{W}/docs/guests", headers=auth())
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


async def seed(http: httpx.AsyncClient) -> None:
    """Solo Sam (no household, a plus-one to name, an email address), the Lees (a
    household of two) and Kit (no household, no email address)."""
    await op(http, "timeline", {"op": "set_profile", "names": ["Ada", "Grace"], "venue": "Kew"})
    await op(http, "guests", {"op": "set_menu", "choices": ["fish", "risotto"]})
    await op(
        http,
        "guests",
        {"op": "add_guest", "guest_id": "sam", "name": "Sam Solo", "plus_one": True,
         "contact": "sam@example.com"},
    )  # fmt: skip
    for gid, name in (("g1", "Ann Lee"), ("g2", "Bo Lee")):
        guest = {"op": "add_guest", "guest_id": gid, "name": name, "household": "Lees"}
        await op(http, "guests", guest | {"contact": f"{gid}@example.com"})
    await op(http, "guests", {"op": "add_guest", "guest_id": "kit", "name": "Kit"})


@pytest.mark.asyncio
@pytest.mark.timeout(90)
async def test_a_guest_in_no_household_answers_by_their_own_link(
    tmp_path: Path, database_url: str
) -> None:
    async with (
        ServerProcess(tmp_path / "data", env=_env(database_url), anonymous=False) as server,
        httpx.AsyncClient(base_url=server.url, timeout=15) as http,
    ):
        await seed(http)
        minted = await http.post(f"{W}/guests/sam/rsvp-link", headers=auth())
        assert minted.status_code == 200, minted.text
        link = minted.json()
        code = link["code"]
        assert code.startswith("w1.g.sam.") and link["url"].endswith(f"#code={code}")
        again = await http.post(f"{W}/guests/sam/rsvp-link", headers=auth("planner", "pia"))
        assert again.json()["code"] == code, "derived: the same until revoked"

        page = await http.get(f"/api/rsvp/{code}")
        assert page.status_code == 200, page.text
        body = page.json()
        assert body["kind"] == "guest" and body["household"] == "Sam Solo"
        assert [p["guest_id"] for p in body["people"]] == ["sam"]
        assert body["wedding"]["venue"] == "Kew" and body["menu"] == ["fish", "risotto"]

        # The same id read as a household's code is no code at all.
        household_form = f"w1.sam.{code.rsplit('.', 1)[1]}"
        assert (await http.get(f"/api/rsvp/{household_form}")).status_code == 404
        # It answers for Sam alone: not for a Lee, nor for Kit (another guest alone).
        for other in ("g1", "kit"):
            refused = await http.put(
                f"/api/rsvp/{code}", json={"people": [{"guest_id": other, "attending": True}]}
            )
            assert refused.status_code == 422, refused.text
            assert refused.json()["errors"][0]["field"] == "people[0].guest_id"
        # No household entry to keep a note on, and none is made.
        noted = await http.put(
            f"/api/rsvp/{code}",
            json={"people": [{"guest_id": "sam", "attending": True}], "note": "hello"},
        )
        assert noted.status_code == 422 and noted.json()["errors"][0]["field"] == "note"
        assert (await guest_list(http))["guests"]["sam"]["rsvp"] == "pending", "nothing changed"

        answer = {
            "people": [{"guest_id": "sam", "attending": True, "meal": "fish"}],
            "plus_one": {"name": "Pat Plus", "meal": "risotto"},
            "note": "",
        }
        put = await http.put(f"/api/rsvp/{code}", json=answer)
        assert put.status_code == 200, put.text
        assert [(a["guest_id"], a["rsvp"]) for a in put.json()["answered"]] == [
            ("sam", "accepted"),
            (plus_one_id("sam"), "accepted"),
        ]
        stored = await guest_list(http)
        assert stored.get("households", {}) == {}, "no household entry was written"
        assert stored["guests"]["sam"]["meal"] == "fish"
        plus = stored["guests"][plus_one_id("sam")]
        assert (plus["name"], plus["meal"], plus["plus_one_of"]) == ("Pat Plus", "risotto", "sam")
        assert plus.get("household") is None and plus.get("household_id") is None

        # The plus-one answers with their host: on Sam's page, with no link of their own.
        people = (await http.get(f"/api/rsvp/{code}")).json()["people"]
        assert [p["guest_id"] for p in people] == ["sam", plus_one_id("sam")]
        theirs = await http.post(f"{W}/guests/{plus_one_id('sam')}/rsvp-link", headers=auth())
        assert theirs.status_code == 422 and theirs.json()["errors"][0]["field"] == "guest_id"

        # Answering again, unchanged, is recorded too (who answered and when).
        assert (await http.put(f"/api/rsvp/{code}", json=answer)).status_code == 200
        listed = await http.get(f"{W}/events?types=rsvp.answered", headers=auth())
        answered = listed.json()["events"]
        assert len(answered) == 2
        assert answered[0]["actor"] == {"sub": "guest:sam", "role": "guest"}
        assert answered[0]["data"]["guest"] == "sam" and answered[0]["data"]["household"] is None
        assert [a["changed"] for a in answered[1]["data"]["answers"]] == [False, False]

        # A guest in a household has the household's link; an unknown guest none.
        housed = await http.post(f"{W}/guests/g1/rsvp-link", headers=auth())
        assert housed.status_code == 422 and housed.json()["errors"][0]["field"] == "guest_id"
        unknown = await http.post(f"{W}/guests/nobody/rsvp-link", headers=auth())
        assert unknown.status_code == 404
        for role in ("vendor", "family", "friend"):
            denied = await http.post(f"{W}/guests/sam/rsvp-link", headers=auth(role, "x"))
            assert denied.status_code == 403, role

        # The CSV and the sheet list the Lees' link and each guest alone's.
        exported = await http.get(f"{W}/rsvp-links.csv", headers=auth())
        rows = list(csv.DictReader(io.StringIO(exported.text)))
        assert [(r["household"], r["guest_id"], r["people"]) for r in rows] == [
            ("Lees", "", "Ann Lee; Bo Lee"),
            ("", "kit", "Kit"),
            ("", "sam", "Sam Solo; Pat Plus"),
        ]
        assert rows[2]["code"] == code
        sheet = await http.get(f"{W}/rsvp-links.html", headers=auth())
        assert sheet.text.count("<svg") == 3 and "Sam Solo" in sheet.text

        # Revoked: the old link reads nothing, the new one works.
        revoked = await http.delete(f"{W}/guests/sam/rsvp-link", headers=auth())
        assert revoked.status_code == 200, revoked.text
        assert revoked.json() == {
            "household_id": "sam", "revoked": True, "version": 1, "guest_id": "sam",
        }  # fmt: skip
        assert (await http.get(f"/api/rsvp/{code}")).status_code == 404
        fresh = (await http.post(f"{W}/guests/sam/rsvp-link", headers=auth())).json()["code"]
        assert fresh != code and (await http.get(f"/api/rsvp/{fresh}")).status_code == 200
        # Kit's link is Kit's: revoking Sam's did not touch it.
        kit = (await http.post(f"{W}/guests/kit/rsvp-link", headers=auth())).json()["code"]
        assert kit == rows[1]["code"]

        # Put in a household, Sam answers by its link: their own closes.
        await op(http, "guests", {"op": "update_guest", "guest_id": "sam", "household": "Lees"})
        assert (await http.get(f"/api/rsvp/{fresh}")).status_code == 404


@pytest.mark.asyncio
@pytest.mark.timeout(90)
async def test_a_guests_own_link_and_everyones_go_by_email(
    tmp_path: Path, database_url: str, smtp: tuple[Controller, Inbox]
) -> None:
    controller, inbox = smtp
    env = _env(database_url, controller.port)
    async with (
        ServerProcess(tmp_path / "data", env=env, anonymous=False) as server,
        httpx.AsyncClient(base_url=server.url, timeout=15) as http,
    ):
        await seed(http)
        one = await http.post(f"{W}/guests/sam/rsvp-link/email", headers=auth())
        assert one.status_code == 202, one.text
        assert one.json() == {"queued": ["sam"], "skipped": []}
        await until(lambda: count_emails(inbox, 1))
        mail = inbox.messages[0]
        assert mail["To"] == "sam@example.com"
        code = (await http.post(f"{W}/guests/sam/rsvp-link", headers=auth())).json()["code"]
        assert f"#code={code}" in mail.get_content()
        housed = await http.post(f"{W}/guests/g1/rsvp-link/email", headers=auth())
        assert housed.status_code == 422

        everyone = await http.post(f"{W}/rsvp-links/email", headers=auth("planner", "pia"))
        assert everyone.status_code == 202, everyone.text
        assert sorted(everyone.json()["queued"]) == ["g1", "g2", "sam"]
        assert everyone.json()["skipped"] == [{"guest_id": "kit", "reason": "no email address"}]
        await until(lambda: count_emails(inbox, 4))
        to = {m["To"]: m.get_content() for m in inbox.messages[1:]}
        assert set(to) == {"g1@example.com", "g2@example.com", "sam@example.com"}
        lees = (await http.get(f"{W}/rsvp-links.csv", headers=auth())).text
        lee_code = next(r for r in csv.DictReader(io.StringIO(lees)) if r["household"] == "Lees")
        assert f"#code={lee_code['code']}" in to["g1@example.com"]
        assert f"#code={code}" in to["sam@example.com"]
        denied = await http.post(f"{W}/rsvp-links/email", headers=auth("vendor", "v"))
        assert denied.status_code == 403
        assert len(inbox.messages) == 4


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_email_to_everyone_without_a_mail_server_is_refused(tmp_path: Path) -> None:
    async with (
        ServerProcess(tmp_path / "data", env=_env(""), anonymous=False) as server,
        httpx.AsyncClient(base_url=server.url, timeout=15) as http,
    ):
        await seed(http)
        refused = await http.post(f"{W}/rsvp-links/email", headers=auth())
        assert refused.status_code == 422, refused.text
        assert refused.json()["errors"][0]["field"] == "wedding_id"
