"""Creating a wedding and its settings through a real server (SQLite and PostgreSQL): the
admin key or open signup, the profile in the timeline document, the couple's member,
idempotent retries, hostile input, open signup's limits, and ``crdt-server wedding
create`` writing into the store a running server uses."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller

from crdt_server.documents.model import WEDDING_ID_PATTERN
from crdt_server.testing.waits import until
from tests.features.conversations import ADMIN, ADMIN_AUTH, CODEC, ENV, Inbox
from tests.server import cli, served

pytestmark = [pytest.mark.timeout(180)]

NEW = {
    "names": ["Ann Lee", "Bo Chen"],
    "date": "2027-06-12",
    "time_zone": "Europe/Lisbon",
    "currency": "EUR",
    "email": "ann@example.com",
}


def token(wedding: str, sub: str, role: str) -> dict[str, str]:
    minted = CODEC.mint(sub=sub, role=role, wedding=wedding, ttl=3600, name=sub.title())
    return {"Authorization": f"Bearer {minted}"}


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> dict[str, str]:
    if request.param == "postgres":
        return {"CRDT_SERVER_DATABASE_URL": request.getfixturevalue("scratch_postgres")}
    return {}


async def created(http: httpx.AsyncClient, body: dict[str, Any], **headers: str) -> Any:
    answer = await http.post("/api/weddings", json=body, headers={**ADMIN_AUTH, **headers})
    assert answer.status_code == 201, answer.text
    return answer.json()


@pytest.mark.asyncio
async def test_the_admin_creates_a_wedding_with_its_profile(
    backend: dict[str, str], tmp_path: Path
) -> None:
    async with served(tmp_path / "data", {**ENV, **backend}) as (_, http):
        made = await created(http, NEW)
        wedding = made["id"]
        assert WEDDING_ID_PATTERN.fullmatch(wedding) and wedding.startswith("w")
        assert made["member"]["role"] == "couple"
        # The couple's first sign-in link is queued in the outbox (this server mails none).
        assert made["sign_in_link"] == "queued"
        couple = token(wedding, made["member"]["sub"], "couple")
        settings = await http.get(f"/api/weddings/{wedding}/settings", headers=couple)
        assert settings.status_code == 200, settings.text
        assert settings.json() == {
            "wedding_id": wedding,
            "names": ["Ann Lee", "Bo Chen"],
            "date": "2027-06-12",
            "time_zone": "Europe/Lisbon",
            "venue": None,
            "rsvp_deadline": None,
            "currency": "EUR",
        }
        # The profile is the timeline document's: every reader of it sees it.
        view = await http.get(f"/api/weddings/{wedding}/docs/timeline", headers=couple)
        assert view.json()["profile"]["time_zone"] == "Europe/Lisbon"
        budget = await http.get(f"/api/weddings/{wedding}/docs/budget", headers=couple)
        assert budget.json()["currency"] == "EUR"
        # The couple's member holds the email (operator-set: the admin key made it).
        planner = token(wedding, "pat", "planner")
        members = await http.get(f"/api/weddings/{wedding}/members", headers=planner)
        found = [m for m in members.json()["members"] if m["sub"] == made["member"]["sub"]]
        assert found and found[0]["email"] == "ann@example.com"
        # Named as one person, the creator (the first partner when the call says nothing).
        assert found[0]["name"] == "Ann Lee"
        # A vendor reads the profile (date, venue) but not the budget's currency.
        vendor = token(wedding, "vic", "vendor")
        seen = await http.get(f"/api/weddings/{wedding}/settings", headers=vendor)
        assert seen.status_code == 200 and seen.json()["currency"] is None
        assert seen.json()["date"] == "2027-06-12"
        # Two weddings never share an id.
        assert (await created(http, NEW))["id"] != wedding


@pytest.mark.asyncio
async def test_put_merges_settings_and_a_token_wedding_gets_its_profile(tmp_path: Path) -> None:
    async with served(tmp_path / "data", ENV) as (_, http):
        # A wedding known only from tokens: no profile until the first PUT.
        planner = token("w9", "pat", "planner")
        empty = await http.get("/api/weddings/w9/settings", headers=planner)
        assert empty.status_code == 200 and empty.json()["names"] is None
        put = await http.put(
            "/api/weddings/w9/settings",
            json={"venue": "The Barn", "time_zone": "America/New_York", "currency": "USD"},
            headers=planner,
        )
        assert put.status_code == 200, put.text
        assert put.json()["venue"] == "The Barn" and put.json()["currency"] == "USD"
        again = await http.put(
            "/api/weddings/w9/settings", json={"date": "2027-01-02"}, headers=planner
        )
        assert again.json()["venue"] == "The Barn" and again.json()["date"] == "2027-01-02"
        # Every timeline reader reads it, with the change credited to the planner.
        history = await http.get("/api/weddings/w9/docs/timeline/history", headers=planner)
        assert any(e.get("sub") == "pat" for e in history.json()["history"])
        # Others may not change it; hostile input names its field and changes nothing.
        family = token("w9", "gran", "family")
        refused = await http.put("/api/weddings/w9/settings", json={"venue": "X"}, headers=family)
        assert refused.status_code == 403
        for body, field in [
            ({"time_zone": "Mars/Olympus"}, "time_zone"),
            ({"time_zone": "../../../etc/passwd"}, "time_zone"),
            ({"date": "2027-02-30"}, "date"),
            ({"names": ["x" * 5000]}, "names"),
            ({"names": ["Ann\r\nBcc: evil@example.com"] * 3}, "names"),
            ({"colour": "blue"}, "colour"),
            ({"currency": "euro"}, "currency"),
            ({"venue": "Y", "date": "soon"}, "date"),
        ]:
            bad = await http.put("/api/weddings/w9/settings", json=body, headers=planner)
            assert bad.status_code == 400, (body, bad.text)
            assert bad.json()["errors"][0]["field"] == field, bad.text
        after = await http.get("/api/weddings/w9/settings", headers=planner)
        assert after.json() == again.json()
        # No such wedding id: 404; no token: 401.
        assert (await http.get("/api/weddings/-bad/settings", headers=planner)).status_code == 404
        assert (await http.get("/api/weddings/w9/settings")).status_code == 401


@pytest.mark.asyncio
async def test_an_idempotent_retry_answers_the_first_answer(tmp_path: Path) -> None:
    async with served(tmp_path / "data", ENV) as (_, http):
        first = await http.post(
            "/api/weddings", json=NEW, headers={**ADMIN_AUTH, "Idempotency-Key": "k1"}
        )
        assert first.status_code == 201, first.text
        retry = await http.post(
            "/api/weddings", json=NEW, headers={**ADMIN_AUTH, "Idempotency-Key": "k1"}
        )
        assert retry.status_code == 200 or retry.status_code == 201
        assert retry.json() == first.json()
        assert retry.headers["Idempotent-Replayed"] == "true"
        other = await http.post(
            "/api/weddings",
            json={**NEW, "currency": "USD"},
            headers={**ADMIN_AUTH, "Idempotency-Key": "k1"},
        )
        assert other.status_code == 409
        assert other.json()["errors"][0]["field"] == "Idempotency-Key"
        long = await http.post(
            "/api/weddings", json=NEW, headers={**ADMIN_AUTH, "Idempotency-Key": "k" * 256}
        )
        assert long.status_code == 400


@pytest.mark.asyncio
async def test_creation_refuses_hostile_input_and_strangers(tmp_path: Path) -> None:
    async with served(tmp_path / "data", ENV) as (_, http):
        for change, field in [
            ({"time_zone": "Not/AZone"}, "time_zone"),
            ({"time_zone": "/etc/localtime"}, "time_zone"),
            ({"date": "2027-13-40"}, "date"),
            ({"names": ["n" * 100_000]}, "names"),
            ({"names": []}, "names"),
            ({"email": "ann@example.com\r\nBcc: x@example.com"}, "email"),
            ({"email": "Ann <ann@example.com>"}, "email"),
            ({"currency": "eur"}, "currency"),
            ({"wedding_id": "mine"}, "wedding_id"),
        ]:
            bad = await http.post("/api/weddings", json={**NEW, **change}, headers=ADMIN_AUTH)
            assert bad.status_code == 400, (change, bad.text)
            assert bad.json()["errors"][0]["field"] == field, bad.text
        missing = await http.post(
            "/api/weddings", json={k: v for k, v in NEW.items() if k != "date"}, headers=ADMIN_AUTH
        )
        assert missing.status_code == 400 and missing.json()["errors"][0]["field"] == "date"
        # Open signup is off: no credential is 401, a member's token 403.
        assert (await http.post("/api/weddings", json=NEW)).status_code == 401
        member = token("w1", "cam", "couple")
        assert (await http.post("/api/weddings", json=NEW, headers=member)).status_code == 403


@pytest.mark.asyncio
async def test_open_signup_is_limited(tmp_path: Path) -> None:
    env = {
        **ENV,
        "CRDT_SERVER_OPEN_SIGNUP": "true",
        "CRDT_SERVER_SIGNUPS_PER_ADDRESS_PER_HOUR": "3",
        "CRDT_SERVER_MAX_WEDDINGS_PER_PERSON": "2",
    }
    async with served(tmp_path / "data", env) as (_, http):
        first = await http.post("/api/weddings", json=NEW)
        assert first.status_code == 201, first.text
        assert (await http.post("/api/weddings", json=NEW)).status_code == 201
        # The same person (the email, however it is cased) has made as many as they may.
        third = await http.post("/api/weddings", json={**NEW, "email": "ANN@example.com"})
        assert third.status_code == 429 and third.json()["errors"][0]["field"] == "email"
        assert "Retry-After" in third.headers
        # Another person from the same address: the address's hourly limit.
        fourth = await http.post("/api/weddings", json={**NEW, "email": "bo@example.com"})
        assert fourth.status_code == 201, fourth.text
        fifth = await http.post("/api/weddings", json={**NEW, "email": "cy@example.com"})
        assert fifth.status_code == 429
        # The admin key is not limited.
        assert (await http.post("/api/weddings", json=NEW, headers=ADMIN_AUTH)).status_code == 201


@pytest.mark.asyncio
async def test_the_command_creates_a_wedding_a_running_server_serves(
    backend: dict[str, str], tmp_path: Path, smtp: tuple[Controller, Inbox]
) -> None:
    controller, inbox = smtp
    env = {**ENV, **backend, "CRDT_SERVER_SMTP_URL": f"smtp://127.0.0.1:{controller.port}"}
    data = tmp_path / "data"
    store = [] if backend else ["--data-dir", str(data)]
    async with served(data, env) as (server, http):
        args = ["wedding", "create", "--name", "Ann Lee", "--name", "Bo Chen"]
        args += ["--date", "2027-06-12", "--time-zone", "Asia/Kolkata", "--currency", "INR"]
        args += ["--email", "Ann@example.com", "--json", *store]
        # The operator runs it with the server's environment (its public URL included).
        code, out, err = await cli(*args, env={**env, "CRDT_SERVER_PUBLIC_URL": server.url})
        assert code == 0, err
        made = json.loads(out)
        wedding = made["id"]
        assert WEDDING_ID_PATTERN.fullmatch(wedding)
        # The couple's first sign-in link is queued in the store's outbox: the running
        # server sends it, and it signs the couple in to the new wedding.
        assert made["sign_in_link"] == "queued"

        async def mailed() -> bool:
            return any(m["To"] == "ann@example.com" for m in inbox.messages)

        await until(mailed)
        mail = next(m for m in inbox.messages if m["To"] == "ann@example.com")
        assert mail["Subject"] == "Your sign-in link"
        found = re.search(r"/app/sign-in#code=([A-Za-z0-9_-]+)", mail.get_content())
        assert found is not None and f"{server.url}/app/sign-in#code=" in mail.get_content()
        signed = await http.post(
            "/api/sign-in/complete", json={"code": found[1]}, headers={"Origin": server.url}
        )
        assert signed.status_code == 200, signed.text
        assert signed.json()["wedding"] == wedding and signed.json()["role"] == "couple"
        couple = token(wedding, made["member"]["sub"], "couple")
        settings = await http.get(f"/api/weddings/{wedding}/settings", headers=couple)
        assert settings.status_code == 200, settings.text
        assert settings.json()["time_zone"] == "Asia/Kolkata"
        assert settings.json()["currency"] == "INR"
        planner = token(wedding, "pat", "planner")
        members = await http.get(f"/api/weddings/{wedding}/members", headers=planner)
        emails = {m["sub"]: m["email"] for m in members.json()["members"]}
        assert emails[made["member"]["sub"]] == "Ann@example.com"
        bad = [*args[:6], "--date", "2027-06-12", "--time-zone", "Nowhere/Land"]
        bad += ["--currency", "EUR", "--email", "ann@example.com", *store]
        code, _, err = await cli(*bad, env=env)
        assert code == 2 and "time_zone" in err
    assert ADMIN  # the admin key the server ran with


@pytest.mark.asyncio
async def test_erasing_a_wedding_erases_its_creation_record(tmp_path: Path) -> None:
    env = {
        **ENV,
        "CRDT_SERVER_OPEN_SIGNUP": "true",
        "CRDT_SERVER_SIGNUPS_PER_ADDRESS_PER_HOUR": "10",
        "CRDT_SERVER_MAX_WEDDINGS_PER_PERSON": "1",
    }
    async with served(tmp_path / "data", env) as (_, http):
        first = await http.post("/api/weddings", json=NEW)
        assert first.status_code == 201, first.text
        assert (await http.post("/api/weddings", json=NEW)).status_code == 429
        wedding = first.json()["id"]
        erased = await http.delete(f"/api/weddings/{wedding}", headers=ADMIN_AUTH)
        assert erased.status_code == 200, erased.text
        # Its record went with it (the per-person count is of weddings that exist), and its
        # profile with its documents: the id now answers 410.
        again = await http.post("/api/weddings", json=NEW)
        assert again.status_code == 201, again.text
        couple = token(wedding, first.json()["member"]["sub"], "couple")
        gone = await http.get(f"/api/weddings/{wedding}/settings", headers=couple)
        assert gone.status_code == 410
