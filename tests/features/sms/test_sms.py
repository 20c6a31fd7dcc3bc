"""Texts through a real Kannel (bearerbox, smsbox, and fakesmsc as the SMSC; installed by
``scripts/setup-kannel``, started per test by ``tests/kannel.py``) and a real server
(uvicorn) on SQLite and PostgreSQL: a number verified with the code the phone got, an
emergency reaching it, Kannel's delivery report landing on the text, replies (HERE checks
a vendor in, LATE 20 reports them late with the day's delay proposal in the vendor
thread, anything else lands there, STOP and START), a daily cap refusing with its name,
and a server restart in the middle of a burst of texts losing and doubling nothing."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from crdt_server.features.sms.domain import dlr_token
from crdt_server.testing.waits import until
from tests.features.test_feature_list import MINT, SECRET
from tests.kannel import Kannel, free_port
from tests.server import ServerProcess

pytestmark = [pytest.mark.services, pytest.mark.timeout(150)]

W = "/api/weddings/w1"
INBOUND = "inbound-secret-for-the-tests-0123"
ADMIN = "sms-test-admin-key"
_ADD = "/api/session/phone"
_CODE = re.compile(r"code is (\d{6})")


def member(role: str, sub: str, wedding: str = "w1") -> dict[str, str]:
    return MINT.headers(role=role, sub=sub, wedding=wedding, ttl=3600)


COUPLE = ("couple", "cam")
PLANNER = ("planner", "pat")
FLORIST = ("vendor", "flo")


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest) -> str:
    if request.param == "postgres":
        return str(request.getfixturevalue("postgres_url"))
    return ""


@asynccontextmanager
async def sms_server(
    tmp_path: Path, database_url: str, **env: str
) -> AsyncIterator[tuple[ServerProcess, httpx.AsyncClient, Kannel]]:
    """Kannel posting inbound texts to a server on a port chosen first, and that server."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    kannel = Kannel(tmp_path / "kannel")
    try:
        await kannel.start(f"{base}/api/sms/inbound/{INBOUND}")
        settings = {
            "CRDT_SERVER_AUTH_SECRET": SECRET,
            "CRDT_SERVER_PUBLIC_URL": base,
            "CRDT_SERVER_SMS_URL": kannel.sms_url,
            "CRDT_SERVER_SMS_FROM": "Wedding",
            "CRDT_SERVER_SMS_COUNTRIES": "44",
            "CRDT_SERVER_SMS_INBOUND_SECRET": INBOUND,
            "CRDT_SERVER_SMS_RETRY_SCHEDULE": "0,1,1,1",
            "CRDT_SERVER_ADMIN_API_KEY": ADMIN,
            **env,
        }
        if database_url:
            settings["CRDT_SERVER_DATABASE_URL"] = database_url
        server = ServerProcess(tmp_path / "data", env=settings, anonymous=False, port=port)
        async with server, httpx.AsyncClient(base_url=base, timeout=20) as http:
            yield server, http, kannel
    finally:
        await kannel.stop()


async def dlr_key(tmp_path: Path, database_url: str) -> bytes:
    """The key of the delivery report tokens, read from the server's store."""
    query = "SELECT secret FROM sms_keys WHERE name = 'sms'"
    if database_url:
        conn = await asyncpg.connect(database_url)
        try:
            secret = await conn.fetchval(query)
        finally:
            await conn.close()
    else:
        path = tmp_path / "data" / "crdt.sqlite3"
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            [secret] = db.execute(query).fetchone()
    return bytes.fromhex(str(secret))


async def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json() if response.content else None


async def verified(
    http: httpx.AsyncClient, kannel: Kannel, who: tuple[str, str], phone: str, wedding: str = "w1"
) -> Any:
    """``who`` adds ``phone`` and types the code the phone got."""
    headers = member(*who, wedding)
    await ok(await http.get(f"/api/weddings/{wedding}/members", headers=headers))
    before = len(kannel.to(phone))
    await ok(await http.post("/api/session/phone", json={"phone": phone}, headers=headers), 202)

    async def code() -> str | None:
        texts = kannel.to(phone)[before:]
        found = [m.group(1) for t in texts if (m := _CODE.search(t.body))]
        return found[-1] if found else None

    typed = await until(code, deadline=30)
    answer = await ok(
        await http.post("/api/session/phone/verify", json={"code": typed}, headers=headers)
    )
    assert answer["phone"] == phone and answer["pending"] is None
    return answer


def emergency(what: str) -> dict[str, Any]:
    return {"type": "day.emergency", "data": {"what": what}, "priority": "emergency"}


@pytest.mark.asyncio
async def test_a_verified_phone_gets_the_emergency_and_its_delivery_report_lands(
    tmp_path: Path, database_url: str
) -> None:
    async with sms_server(tmp_path, database_url) as (server, http, kannel):
        phone = "+447700900001"
        # Refusals first: a country not allowed, no number at all, an unknown code.
        couple = member(*COUPLE)
        for bad in ("+33612345678", "07700 900001", "+44"):
            refused = await http.post("/api/session/phone", json={"phone": bad}, headers=couple)
            assert refused.status_code == 422, refused.text
            assert refused.json()["errors"][0]["field"] == "phone"
        await verified(http, kannel, COUPLE, phone)
        assert "code is" in kannel.to(phone)[0].body and kannel.to(phone)[0].sender == "Wedding"
        # A wrong code is refused, naming the field; another person cannot take the number.
        await ok(await http.get(f"{W}/members", headers=member(*PLANNER)))
        taken = await http.post(
            "/api/session/phone", json={"phone": "+44 7700 900001"}, headers=member(*PLANNER)
        )
        assert taken.status_code == 409, taken.text
        wrong = await http.post(
            "/api/session/phone/verify", json={"code": "000000"}, headers=member(*PLANNER)
        )
        assert wrong.status_code == 422 and wrong.json()["errors"][0]["field"] == "code"

        # The couple chose mentions by text, with quiet hours holding now: a mention waits
        # (queued until they end); an emergency is texted at once all the same.
        now = datetime.now(UTC)
        quiet = {
            "start": (now - timedelta(hours=1)).strftime("%H:%M"),
            "end": (now + timedelta(hours=1)).strftime("%H:%M"),
            "zone": "UTC",
        }
        chosen = {"mentions": True, "quiet_hours": quiet}
        shown = await ok(await http.put("/api/session/phone/choices", json=chosen, headers=couple))
        assert shown["choices"]["mentions"] and shown["choices"]["quiet_hours"] == quiet
        planner = member(*PLANNER)
        thread = {"subject": "Seating", "participants": ["cam"]}
        tid = (await ok(await http.post(f"{W}/threads", json=thread, headers=planner), 201))["id"]
        said = {"body": "@cam can you check table 4?"}
        await ok(await http.put(f"{W}/threads/{tid}/messages/m1", json=said, headers=planner), 201)

        async def held() -> list[Any]:
            listed = await ok(await http.get("/api/session/phone/texts", headers=couple))
            return [t for t in listed["texts"] if t["kind"] == "mention"]

        [mention] = await until(held, deadline=30)
        assert mention["status"] == "queued" and mention["sent_at"] is None

        # A vendor raises an emergency: the couple's phone gets it, with a link built
        # from the public URL (never a request's Host).
        await ok(
            await http.post(
                f"{W}/events",
                json=emergency("power cut in the marquee"),
                headers={**member(*FLORIST), "Host": "evil.example"},
            ),
            201,
        )

        async def texted() -> list[Any]:
            return [t for t in kannel.to(phone) if t.body.startswith("EMERGENCY")]

        [text] = await until(texted, deadline=30)
        assert "power cut in the marquee" in text.body
        assert f"{server.url}/app/?wedding=w1" in text.body and "evil" not in text.body
        assert not [t for t in kannel.to(phone) if "table 4" in t.body]  # still held

        # Kannel fetched the dlr-url: the report is on the text (fakesmsc's SMSC answers
        # with type 8, accepted by the SMSC, and then type 1, delivered).
        async def reported() -> list[Any]:
            listed = await ok(await http.get("/api/session/phone/texts", headers=couple))
            return [t for t in listed["texts"] if t["kind"] == "emergency" and t["report"] == 1]

        [report] = await until(reported, deadline=30)
        assert report["status"] == "delivered" and report["reported_at"]
        # A report with another text's token is refused, nothing recorded.
        forged = await http.get(
            f"/api/sms/status/{report['id']}", params={"token": "0" * 32, "status": 2}
        )
        assert forged.status_code == 404

        # Kannel fetched two reports for each of the two texts (the code, the emergency):
        # type 8 and type 1, in either order (fakesmsc sends both, at once).
        async def reports() -> bool:
            text = (await http.get("/metrics")).text
            route = 'route="/api/sms/status/{message_id}"'
            lines = [ln for ln in text.splitlines() if route in ln and 'status="204"' in ln]
            return sum(float(ln.rsplit(" ", 1)[1]) for ln in lines) >= 4

        await until(reports, deadline=30)
        # A type 8 is recorded on its text; one after the final report never hides it.
        key = await dlr_key(tmp_path, database_url)
        for text_id in (mention["id"], report["id"]):
            query = {"token": dlr_token(key, text_id), "status": 8}
            late = await http.get(f"/api/sms/status/{text_id}", params=query)
            assert late.status_code == 204, late.text
        shown = await ok(await http.get("/api/session/phone/texts", headers=couple))
        by_id = {t["id"]: (t["status"], t["report"]) for t in shown["texts"]}
        assert by_id[mention["id"]] == ("queued", 8)
        assert by_id[report["id"]] == ("delivered", 1)
        metrics = (await http.get("/metrics")).text
        assert 'crdt_sms_sent_total{kind="emergency"} 1.0' in metrics
        assert 'crdt_sms_sent_total{kind="code"}' in metrics
        # The secret and the tokens never reach the server's log.
        log = server.log.decode(errors="replace")
        assert INBOUND not in log and phone not in log
        assert "GET /api/sms/status/{message_id} 204" in log  # the access log: its template
        assert dlr_token(key, report["id"]) not in log


async def op(http: httpx.AsyncClient, body: dict[str, Any]) -> None:
    await ok(await http.post(f"{W}/docs/timeline/ops", json=body, headers=member(*PLANNER)))


async def wedding_day(http: httpx.AsyncClient) -> None:
    """A florist in the vendor directory (member ``flo``) with two items, far ahead."""
    await op(http, {"op": "set_profile", "date": "2031-06-13", "time_zone": "UTC"})
    await op(
        http,
        {"op": "add_vendor", "vendor_id": "flo", "name": "Bloom & Co", "category": "florist",
         "members": ["flo"], "call_time": "2031-06-13T08:00:00Z"},
    )  # fmt: skip
    for item_id, title, start, end in (
        ("i1", "Flowers", "2031-06-13T08:30:00Z", "2031-06-13T09:30:00Z"),
        ("i2", "Bouquets", "2031-06-13T09:30:00Z", "2031-06-13T10:00:00Z"),
    ):
        await op(
            http,
            {"op": "add_timeline_item", "item_id": item_id, "title": title, "start": start,
             "end": end, "vendor_id": "flo"},
        )  # fmt: skip


async def thread_messages(http: httpx.AsyncClient) -> list[dict[str, Any]]:
    planner = member(*PLANNER)
    threads = await ok(await http.get(f"{W}/threads?kind=vendor", headers=planner))
    found = []
    for thread in threads["threads"]:
        page = await ok(await http.get(f"{W}/threads/{thread['id']}/messages", headers=planner))
        found += page["messages"]
    return found


@pytest.mark.asyncio
async def test_replies_check_in_report_late_reach_the_thread_and_stop(
    tmp_path: Path, database_url: str
) -> None:
    async with sms_server(tmp_path, database_url) as (server, http, kannel):
        florist, couple = "+447700900002", "+447700900003"
        await ok(await http.get(f"{W}/members", headers=member(*PLANNER)))
        await wedding_day(http)
        await verified(http, kannel, FLORIST, florist)
        await verified(http, kannel, COUPLE, couple)
        planner = member(*PLANNER)

        async def check_ins() -> list[dict[str, Any]]:
            kind = "day.vendor_checked_in"
            body = await ok(await http.get(f"{W}/events?types={kind}", headers=planner))
            return [e["data"] | {"sub": e["actor"]["sub"]} for e in body["events"]]

        # HERE checks the florist in, as the member who verified the number.
        await kannel.text_in(florist, "here")
        [arrived] = await until(check_ins, deadline=30)
        assert arrived["status"] == "arrived" and arrived["sub"] == "flo"
        assert arrived["vendor"] == "flo"

        async def replied() -> list[Any]:
            return [t for t in kannel.to(florist) if t.body.startswith("Checked in: Bloom")]

        await until(replied, deadline=30)

        # LATE 20: a running-late check-in with its ETA, and the day's proposal for the
        # florist's next item in the vendor thread (nothing moved).
        await kannel.text_in(florist, "LATE 20")

        async def late() -> list[dict[str, Any]]:
            return [c for c in await check_ins() if c["status"] == "running_late"]

        [running] = await until(late, deadline=30)
        assert running["eta"]
        [said] = await until(lambda: thread_messages(http), deadline=30)
        assert said["author"]["sub"] == "flo" and "20 minutes late" in said["body"]
        assert "Proposed: move 2 item(s)" in said["body"] and "Flowers" in said["body"]
        timeline = await ok(await http.get(f"{W}/docs/timeline", headers=planner))
        assert timeline["items"]["i1"]["start"].startswith("2031-06-13T08:30")
        # The planner applies it: the delay moves the florist's items, and their phone is
        # told their own new times.
        delay = {"item": "i1", "minutes": 20, "apply": True}
        await ok(await http.post(f"{W}/day/delays", json=delay, headers=planner))

        async def moved() -> list[Any]:
            return [t for t in kannel.to(florist) if t.body.startswith("The day runs 20")]

        [told] = await until(moved, deadline=30)
        assert "Flowers now 08:50" in told.body and "Bouquets now 09:50" in told.body

        # Anything else lands in the vendor thread, from the member who verified it.
        await kannel.text_in(couple, "Can the flowers go by the door?")

        async def from_couple() -> list[dict[str, Any]]:
            return [m for m in await thread_messages(http) if m["author"]["sub"] == "cam"]

        [asked] = await until(from_couple, deadline=30)
        assert asked["body"] == "Can the flowers go by the door?"

        # Only Kannel knows the inbound secret: another is a 404, and nothing happens.
        wrong = await http.post(
            "/api/sms/inbound/not-the-secret-at-all-0000",
            params={"from": florist, "to": "+15550100", "text": "hello"},
        )
        assert wrong.status_code == 404
        # A number nobody verified gets nothing, and changes nothing.
        await kannel.text_in("+447700900999", "here")
        assert len(await thread_messages(http)) == 2
        assert not [t for t in kannel.to("+447700900999")]

        # STOP: the next emergency is not texted to that number; START: it is again.
        await kannel.text_in(couple, "STOP")

        async def stopped() -> bool:
            shown = await ok(await http.get("/api/session/phone", headers=member(*COUPLE)))
            return bool(shown["stopped"])

        await until(stopped, deadline=30)

        async def told_stop() -> list[Any]:
            return [t for t in kannel.to(couple) if t.body.startswith("You will get no more")]

        await until(told_stop, deadline=30)
        # The message to the thread got no reply (an empty answer: omit-empty), only the
        # code and STOP's confirmation reached that phone.
        said_to_couple = [t.body for t in kannel.to(couple)]
        assert len(said_to_couple) == 2 and "code is" in said_to_couple[0], said_to_couple
        events = f"{W}/events"
        await ok(await http.post(events, json=emergency("first"), headers=member(*FLORIST)), 201)

        async def planner_inbox(n: int) -> bool:
            body = await ok(await http.get(f"{W}/notifications", headers=planner))
            return sum(x["reason"] == "emergency" for x in body["notifications"]) >= n

        await until(lambda: planner_inbox(1), deadline=30)
        await kannel.text_in(couple, "start")

        async def started() -> bool:
            return not await stopped()

        await until(started, deadline=30)
        await ok(await http.post(events, json=emergency("second"), headers=member(*FLORIST)), 201)

        async def second() -> list[Any]:
            return [t for t in kannel.to(couple) if "second" in t.body]

        await until(second, deadline=30)
        assert not [t for t in kannel.to(couple) if "first" in t.body]
        # The inbound secret and the numbers never reach the server's log.
        log = server.log.decode(errors="replace")
        assert INBOUND not in log and florist not in log and couple not in log
        assert "POST /api/sms/inbound/{secret} 200" in log  # the access log: its template


@pytest.mark.asyncio
async def test_a_daily_cap_refuses_naming_it(tmp_path: Path, database_url: str) -> None:
    caps = {"CRDT_SERVER_SMS_PER_WEDDING_PER_DAY": "2", "CRDT_SERVER_SMS_PER_SERVER_PER_DAY": "3"}
    async with sms_server(tmp_path, database_url, **caps) as (_, http, kannel):
        await verified(http, kannel, COUPLE, "+447700900011")
        await verified(http, kannel, PLANNER, "+447700900012")
        await ok(await http.get(f"{W}/members", headers=member(*FLORIST)))
        refused = await http.post(
            "/api/session/phone", json={"phone": "+447700900013"}, headers=member(*FLORIST)
        )
        assert refused.status_code == 429, refused.text
        assert "CRDT_SERVER_SMS_PER_WEDDING_PER_DAY" in refused.json()["detail"]
        # Nothing was kept of the refused request: no pending number, no text.
        shown = await ok(await http.get("/api/session/phone", headers=member(*FLORIST)))
        assert shown["pending"] is None
        # Another wedding has its own cap, but the server's (every wedding together) is
        # reached with its first code: its second is refused, naming the server's cap.
        await verified(http, kannel, ("couple", "dee"), "+447700900014", "w2")
        await ok(await http.get("/api/weddings/w2/members", headers=member("planner", "eve", "w2")))
        over = await http.post(
            "/api/session/phone",
            json={"phone": "+447700900015"},
            headers=member("planner", "eve", "w2"),
        )
        assert over.status_code == 429, over.text
        assert "CRDT_SERVER_SMS_PER_SERVER_PER_DAY" in over.json()["detail"]
        assert not kannel.to("+447700900013") and not kannel.to("+447700900015")
        # An emergency over the cap is not sent to the couple nor the planner, and each is
        # counted (beside the refused code).
        await ok(
            await http.post(f"{W}/events", json=emergency("over"), headers=member(*FLORIST)), 201
        )

        async def capped() -> bool:
            return 'crdt_sms_capped_total{cap="wedding"} 3.0' in (await http.get("/metrics")).text

        await until(capped, deadline=30)
        assert not [t for t in kannel.received() if "over" in t.body]
        metrics = (await http.get("/metrics")).text
        assert 'crdt_sms_capped_total{cap="server"} 1.0' in metrics
        assert 'crdt_sms_sent_total{kind="code"} 3.0' in metrics

        # Numbers are personal data: in the wedding's export, and gone with their member.
        async def exported() -> list[dict[str, Any]]:
            body = await ok(await http.get(f"{W}/export", headers=member(*COUPLE)))
            return list(body["sms"]["phones"])

        await op(http, {"op": "set_profile", "date": "2031-06-13", "time_zone": "UTC"})
        phones = await exported()
        assert [(p["sub"], p["phone"]) for p in phones] == [
            ("cam", "+447700900011"),
            ("pat", "+447700900012"),
        ]
        admin = {"Authorization": f"Bearer {ADMIN}"}
        await ok(await http.delete(f"{W}/members/pat", headers=admin), 204)
        assert [p["sub"] for p in await exported()] == ["cam"]


@pytest.mark.asyncio
async def test_a_restart_in_the_middle_of_a_burst_loses_and_doubles_nothing(
    tmp_path: Path, database_url: str
) -> None:
    # Every phone is added from this one client address: its limit is raised.
    more = {"CRDT_SERVER_SMS_PER_ADDRESS_PER_HOUR": "100"}
    async with sms_server(tmp_path, database_url, **more) as (server, http, kannel):
        leads = [("planner", f"p{i}") for i in range(16)]
        phones = {sub: f"+4477009001{i:02d}" for i, (_, sub) in enumerate(leads)}
        for who in leads:
            await verified(http, kannel, who, phones[who[1]])
        await ok(
            await http.post(f"{W}/events", json=emergency("burst"), headers=member(*FLORIST)),
            201,
        )

        def bursts() -> int:
            return len([t for t in kannel.received() if "burst" in t.body])

        async def begun() -> bool:
            return bursts() > 0

        # Once the first text reached its phone, the server is stopped (SIGTERM: the text
        # in hand is finished, the rest stay queued for the next start) and started again.
        await until(begun, deadline=30)
        await server.restart()
        assert bursts() < len(phones), "the burst was over before the restart"

        async def everyone() -> bool:
            return all(
                any("burst" in t.body for t in kannel.to(phone)) for phone in phones.values()
            )

        await until(everyone, deadline=60)

        async def all_sent() -> bool:
            for who in leads:
                listed = await ok(await http.get("/api/session/phone/texts", headers=member(*who)))
                if any(t["status"] == "queued" for t in listed["texts"]):
                    return False
            return True

        await until(all_sent, deadline=30)
        for phone in phones.values():
            assert len([t for t in kannel.to(phone) if "burst" in t.body]) == 1, phone


@pytest.mark.asyncio
async def test_a_vendor_missing_at_their_call_time_is_texted_to_the_planner(
    tmp_path: Path,
) -> None:
    # Today, with the florist's call time already past: the day's watch raises the alert
    # at its next pass (its scheduler's job is due at once), urgent to the leads, and the
    # planner's verified phone gets it in words, with the call time and nothing of a guest.
    async with sms_server(tmp_path, "") as (server, http, kannel):
        phone = "+447700900031"
        await verified(http, kannel, PLANNER, phone)
        now = datetime.now(UTC).replace(second=0, microsecond=0)
        # Ten minutes ago, but today (just after midnight: a minute after it).
        call = max(now - timedelta(minutes=10), now.replace(hour=0, minute=1))
        day = now.date().isoformat()
        await op(http, {"op": "set_profile", "date": day, "time_zone": "UTC"})
        await op(
            http,
            {"op": "add_vendor", "vendor_id": "flo", "name": "Bloom & Co", "category": "florist",
             "members": ["flo"], "call_time": call.isoformat().replace("+00:00", "Z")},
        )  # fmt: skip

        async def texted() -> list[Any]:
            return [t for t in kannel.to(phone) if "has not checked in" in t.body]

        [text] = await until(texted, deadline=90)
        link = f"{server.url}/app/?wedding=w1"
        assert text.body == f"Bloom & Co has not checked in (call time {call:%H:%M}). {link}"
        # One text, in the day's lane: the job is done, whatever the watch's later passes see.
        listed = await ok(await http.get("/api/session/phone/texts", headers=member(*PLANNER)))
        assert [t["kind"] for t in listed["texts"] if t["kind"] != "code"] == ["day"]


@pytest.mark.asyncio
async def test_codes_are_limited_per_member_and_per_client_address(tmp_path: Path) -> None:
    # As the email links are: a member is sent at most CODES_PER_HOUR codes, and one
    # client address makes at most PER_ADDRESS_PER_HOUR phone requests (codes and tries);
    # each 429 names its setting, and only the newest code works.
    limits = {"CRDT_SERVER_SMS_CODES_PER_HOUR": "2", "CRDT_SERVER_SMS_PER_ADDRESS_PER_HOUR": "6"}
    async with sms_server(tmp_path, "", **limits) as (_, http, kannel):
        couple, planner = member(*COUPLE), member(*PLANNER)
        for headers in (couple, planner):
            await ok(await http.get(f"{W}/members", headers=headers))
        phone = "+447700900041"

        async def codes(n: int) -> list[str] | None:
            found = [m.group(1) for t in kannel.to(phone) if (m := _CODE.search(t.body))]
            return found if len(found) >= n else None

        for n in (1, 2):
            await ok(await http.post(_ADD, json={"phone": phone}, headers=couple), 202)
            await until(lambda n=n: codes(n), deadline=30)
        third = await http.post(_ADD, json={"phone": phone}, headers=couple)
        assert third.status_code == 429 and third.headers["retry-after"], third.text
        assert "CRDT_SERVER_SMS_CODES_PER_HOUR" in third.json()["detail"]
        first, second = await until(lambda: codes(2), deadline=30)
        if first != second:  # one chance in a million that they are the same
            old = await http.post(f"{_ADD}/verify", json={"code": first}, headers=couple)
            assert old.status_code == 422, old.text
        await ok(await http.post(f"{_ADD}/verify", json={"code": second}, headers=couple))
        # That was the client address's fifth request: one more, then none.
        other = "+447700900042"
        await ok(await http.post(_ADD, json={"phone": other}, headers=planner), 202)
        refused = await http.post(_ADD, json={"phone": other}, headers=planner)
        assert refused.status_code == 429, refused.text
        assert "CRDT_SERVER_SMS_PER_ADDRESS_PER_HOUR" in refused.json()["detail"]

        async def texted() -> bool:
            return bool(kannel.to(other))

        await until(texted, deadline=30)
        assert len(kannel.to(other)) == 1 and len(kannel.to(phone)) == 2


@pytest.mark.asyncio
async def test_without_a_gateway_nothing_is_texted_and_no_number_is_added(
    tmp_path: Path,
) -> None:
    # Texts cost money: without CRDT_SERVER_SMS_URL the server sends none (503) and says so.
    settings = {"CRDT_SERVER_AUTH_SECRET": SECRET}
    async with ServerProcess(tmp_path / "data", env=settings, anonymous=False) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=20) as http:
            couple = member(*COUPLE)
            await ok(await http.get(f"{W}/members", headers=couple))
            refused = await http.post(_ADD, json={"phone": "+447700900051"}, headers=couple)
            assert refused.status_code == 503, refused.text
            assert "CRDT_SERVER_SMS_URL" in refused.json()["detail"]
            shown = await ok(await http.get(_ADD, headers=couple))
            assert shown["sending"] is False and shown["phone"] is None
            assert shown["pending"] is None
            # Nothing was queued either, an emergency included.
            await ok(await http.post(f"{W}/events", json=emergency("x"), headers=couple), 201)
            assert (await ok(await http.get(f"{_ADD}/texts", headers=couple)))["texts"] == []


@pytest.mark.asyncio
async def test_urgent_messages_and_mentions_reach_who_chose_them_and_long_texts_split(
    tmp_path: Path, database_url: str
) -> None:
    async with sms_server(tmp_path, database_url) as (server, http, kannel):
        phone = "+447700900061"
        await verified(http, kannel, COUPLE, phone)
        couple, planner = member(*COUPLE), member(*PLANNER)
        # The couple want urgent messages texted, not mentions.
        chosen = {"urgent": True, "mentions": False}
        await ok(await http.put("/api/session/phone/choices", json=chosen, headers=couple))
        thread = {"subject": "Ceremony", "participants": ["cam"]}
        tid = (await ok(await http.post(f"{W}/threads", json=thread, headers=planner), 201))["id"]
        messages = f"{W}/threads/{tid}/messages"

        async def listed(kind: str) -> list[Any]:
            body = await ok(await http.get(f"{_ADD}/texts", headers=couple))
            return [t for t in body["texts"] if t["kind"] == kind]

        said = {"body": "@cam the seating plan is up"}
        await ok(await http.put(f"{messages}/m1", json=said, headers=planner), 201)
        [skipped] = await until(lambda: listed("mention"), deadline=30)
        assert skipped["status"] == "skipped"

        urgent = {
            "body": "The band arrives at noon, not one: move the soundcheck",
            "priority": "urgent",
        }
        await ok(await http.put(f"{messages}/m2", json=urgent, headers=planner), 201)

        async def texted(word: str) -> list[Any]:
            return [t for t in kannel.to(phone) if word in t.body]

        link = f"{server.url}/app/?wedding=w1"
        [text] = await until(lambda: texted("soundcheck"), deadline=30)
        assert text.body.startswith("URGENT ") and text.body.endswith(link)
        assert "Ceremony" in text.body and "band arrives at noon" in text.body
        # Nothing in it needs UCS-2: it went as GSM-7, in one part.
        assert (text.kind, text.parts) == ("text", 1), text
        assert not await texted("seating plan")

        # Mentions turned on: the next one is texted; a name that needs UCS-2 sends it so.
        chosen = {"urgent": True, "mentions": True}
        await ok(await http.put("/api/session/phone/choices", json=chosen, headers=couple))
        said = {"body": "@cam Łukasz asks where the rings are"}
        await ok(await http.put(f"{messages}/m3", json=said, headers=planner), 201)
        [text] = await until(lambda: texted("rings"), deadline=30)
        assert text.kind == "ucs-2" and "Łukasz" in text.body and text.body.endswith(link)
        # 70 UCS-2 units would leave the words no room beside the link: two parts, whole.
        assert text.parts == 2 and "where the rings are" in text.body, text

        # An emergency longer than one UCS-2 part is split (by Kannel, concatenated), and
        # comes whole: its words cut to one part, the link after them, never cut.
        what = "Łukasz fell ill: " + "the best man's speech moves to after dinner, " * 4
        raised = emergency(what)
        # Only the emergency's own words are said: never other fields of its data (a
        # guest's contact or notes pasted in), whoever raised it.
        raised["data"] |= {"contact": "+447700900999", "notes": "NOTES-CANARY"}
        await ok(await http.post(f"{W}/events", json=raised, headers=planner), 201)
        [text] = await until(lambda: texted("EMERGENCY"), deadline=30)
        assert text.kind == "ucs-2" and text.parts == 2, text
        assert text.body.endswith(f"... {link}") and "Łukasz fell ill" in text.body
        assert "CANARY" not in text.body and "900999" not in text.body


@pytest.mark.asyncio
async def test_a_text_kannel_could_not_take_is_retried_until_it_can(tmp_path: Path) -> None:
    retries = {"CRDT_SERVER_SMS_RETRY_SCHEDULE": ",".join(["0"] + ["1"] * 20)}
    async with sms_server(tmp_path, "", **retries) as (server, http, kannel):
        phone = "+447700900071"
        await verified(http, kannel, COUPLE, phone)
        couple = member(*COUPLE)
        # The gateway's smsbox is down: the emergency stays queued, each attempt failing.
        await kannel.stop_smsbox()
        raised = emergency("gas leak")
        await ok(await http.post(f"{W}/events", json=raised, headers=member(*FLORIST)), 201)

        async def failing() -> bool:
            return server.log_text().count("sendsms could not be reached") >= 2

        await until(failing, deadline=30)
        listed = await ok(await http.get(f"{_ADD}/texts", headers=couple))
        assert [t["status"] for t in listed["texts"] if t["kind"] == "emergency"] == ["queued"]
        # Back up: the next attempt hands it over, once.
        await kannel.start_smsbox()

        async def texted() -> list[Any]:
            return [t for t in kannel.to(phone) if "gas leak" in t.body]

        await until(texted, deadline=30)

        async def reported() -> list[Any]:
            listed = await ok(await http.get(f"{_ADD}/texts", headers=couple))
            return [t for t in listed["texts"] if t["kind"] == "emergency"]

        async def delivered() -> bool:
            return [t["status"] for t in await reported()] == ["delivered"]

        await until(delivered, deadline=30)
        assert len(await texted()) == 1
