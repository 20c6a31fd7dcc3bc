"""RSVP reminders (issue 54, point 7): with the server's clock faked and a real SMTP server
(aiosmtpd), a household nobody of which answered gets one reminder email 7 days before its
deadline, through the scheduler and the guest-mail outbox: once per household and
deadline, never to a guest who unsubscribed, nor to a household that answered, and moved
with its deadline."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from aiosmtpd.controller import Controller

from crdt_server import clock
from crdt_server.app import FEATURES, create_app
from crdt_server.features import fragments_of
from crdt_server.settings import Settings
from crdt_server.testing.tokens import TokenMinter
from crdt_server.testing.waits import until
from tests.features.conversations import Inbox, count_emails
from tests.features.test_feature_list import serving

pytestmark = [pytest.mark.timeout(120)]

SECRET = "rsvp-reminder-secret-at-least-32-bytes!!"
MINT = TokenMinter(SECRET)
W = "/api/weddings/w1"
START = datetime(2031, 3, 1, 12, 0, tzinfo=UTC)


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def auth() -> dict[str, str]:
    return MINT.headers("couple", "ada", "w1", ttl=3600)  # dated by the (fake) clock


async def op(http: httpx.AsyncClient, doc: str, body: dict[str, object]) -> None:
    answer = await http.post(f"{W}/docs/{doc}/ops", json=body, headers=auth())
    assert answer.status_code == 200, answer.text


def jobs(data: Path) -> dict[str, tuple[float, str]]:
    """The reminders' jobs as the store holds them: household -> (due time, status) of the
    latest due time."""
    with sqlite3.connect(data / "crdt.sqlite3") as db:
        rows = db.execute(
            "SELECT entry, due_at, status FROM scheduler_jobs WHERE kind = 'rsvp.reminder'"
            " ORDER BY due_at"
        ).fetchall()
    return {entry: (due, status) for entry, due, status in rows}


def outbox_rows(data: Path) -> int:
    with sqlite3.connect(data / "crdt.sqlite3") as db:
        (count,) = db.execute("SELECT COUNT(*) FROM guest_mail").fetchone()
    return int(count)


@asynccontextmanager
async def wedding_server(data: Path, controller: Controller) -> AsyncIterator[httpx.AsyncClient]:
    env = {
        "CRDT_SERVER_AUTH_SECRET": SECRET,
        "CRDT_SERVER_DATA_DIR": str(data),
        "CRDT_SERVER_SMTP_URL": f"smtp://127.0.0.1:{controller.port}",
        "CRDT_SERVER_EMAIL_FROM": "plans@example.com",
        "CRDT_SERVER_PUBLIC_URL": "https://plan.example.com",
    }
    settings = Settings.from_env(env, fragments=fragments_of(FEATURES))
    async with serving(create_app(settings)) as http:
        yield http


@pytest.mark.asyncio
async def test_a_household_that_has_not_answered_is_reminded_once_before_its_deadline(
    tmp_path: Path, smtp: tuple[Controller, Inbox]
) -> None:
    controller, inbox = smtp
    data = tmp_path / "data"
    fake = clock.FakeClock(START)
    with clock.use(fake):
        async with wedding_server(data, controller) as http:
            profile = {"names": ["Ada", "Grace"], "date": "2031-05-01"}
            await op(
                http, "timeline", {"op": "set_profile", **profile, "rsvp_deadline": "2031-04-01"}
            )
            households = {
                "h1": ("Lees", None),  # the wedding's deadline
                "h2": ("Kims", None),  # answers
                "h3": ("Parks", "2031-03-05"),  # a deadline closer than 7 days
                "h4": ("Oaks", "2031-04-10"),  # its deadline moves
                "h5": ("Moss", None),  # no email address
            }
            for hid, (name, deadline) in households.items():
                body: dict[str, object] = {"op": "add_household", "household_id": hid, "name": name}
                if deadline:
                    body["rsvp_deadline"] = deadline
                await op(http, "guests", body)
            guests = {
                "g1": ("h1", "ann@example.com"),
                "g2": ("h1", "bob@example.com"),  # unsubscribes
                "g3": ("h1", "+44 20 7946 0000"),
                "g4": ("h2", "kim@example.com"),
                "g5": ("h3", "pat@example.com"),
                "g6": ("h4", "oli@example.com"),
                "g7": ("h5", None),
            }
            for gid, (hid, contact) in guests.items():
                guest: dict[str, object] = {
                    "op": "add_guest", "guest_id": gid, "name": gid, "household_id": hid,
                }  # fmt: skip
                if contact:
                    guest["contact"] = contact
                await op(http, "guests", guest)
            await op(http, "guests", {"op": "update_guest", "guest_id": "g4", "rsvp": "accepted"})
            # Bob unsubscribes from the link of the RSVP email he got.
            sent = await http.post(f"{W}/households/h1/rsvp-link/email", headers=auth())
            assert sent.json()["queued"] == ["g1", "g2"]
            await until(lambda: count_emails(inbox, 2))
            [bobs] = [m for m in inbox.messages if m["To"] == "bob@example.com"]
            found = re.search(r"Stop these emails: (\S+)", bobs.get_content())
            assert found
            path = found.group(1).split("://", 1)[1].split("/", 1)[1]
            assert (await http.post(f"/{path}")).status_code == 200
            inbox.messages.clear()

            async def planned() -> bool:
                return {h: j for h, j in jobs(data).items() if j[1] == "pending"} == {
                    "h1": (at("2031-03-25T10:00"), "pending"),
                    "h4": (at("2031-04-03T10:00"), "pending"),
                }

            await until(planned)
            assert "h2" not in jobs(data) and "h5" not in jobs(data)

            # A reminder whose time had passed when it was planned is never sent.
            await fake.advance(1)
            assert jobs(data)["h3"][1] == "done"
            await fake.set(at("2031-03-25T09:59"))
            assert jobs(data)["h1"][1] == "pending" and outbox_rows(data) == 0
            await fake.advance(60)
            assert jobs(data)["h1"][1] == "done"
            await until(lambda: count_emails(inbox, 1))
            [mail] = inbox.messages
            assert mail["To"] == "ann@example.com"
            assert mail["Subject"] == "Ada & Grace: a reminder to answer by 2031-04-01"
            text = mail.get_content()
            assert "https://plan.example.com/rsvp/#code=w1.h1." in text
            assert mail["List-Unsubscribe"].startswith("<https://plan.example.com/api/weddings/w1/")

            # The deadline moves: the pending reminder moves with it.
            await op(
                http,
                "guests",
                {"op": "update_household", "household_id": "h4", "rsvp_deadline": "2031-04-20"},
            )

            async def moved() -> bool:
                return jobs(data)["h4"] == (at("2031-04-13T10:00"), "pending")

            await until(moved)
            await fake.set(at("2031-04-05T00:00"))
            assert outbox_rows(data) == 0 and len(inbox.messages) == 1
            await fake.set(at("2031-04-13T10:00"))
            await until(lambda: count_emails(inbox, 2))
            assert inbox.messages[1]["To"] == "oli@example.com"
            assert "by 2031-04-20" in inbox.messages[1]["Subject"]

            # Planning again (any edit) sends nothing twice for the same deadline; the
            # household added last shows the planning ran after the edits.
            await op(
                http, "guests", {"op": "update_household", "household_id": "h1", "name": "Lee"}
            )
            await op(
                http, "guests", {"op": "update_household", "household_id": "h4", "name": "Oak"}
            )
            await op(http, "guests", {"op": "add_household", "household_id": "h6", "name": "Elms"})
            late = {"op": "add_guest", "guest_id": "g8", "name": "g8", "household_id": "h6"}
            await op(http, "guests", {**late, "contact": "eli@example.com"})

            async def replanned() -> bool:
                return "h6" in jobs(data)

            await until(replanned)
            await fake.advance(7 * 86400)
            assert {h: s for h, (_, s) in jobs(data).items()} == {
                "h1": "done", "h3": "done", "h4": "done", "h6": "done",
            }  # fmt: skip
            assert outbox_rows(data) == 0 and len(inbox.messages) == 2


@pytest.mark.asyncio
async def test_a_guest_in_no_household_is_reminded_by_their_own_link(
    tmp_path: Path, smtp: tuple[Controller, Inbox]
) -> None:
    controller, inbox = smtp
    data = tmp_path / "data"
    fake = clock.FakeClock(START)
    with clock.use(fake):
        async with wedding_server(data, controller) as http:
            profile = {"names": ["Ada", "Grace"], "rsvp_deadline": "2031-04-01"}
            await op(http, "timeline", {"op": "set_profile", **profile})
            sam = {"op": "add_guest", "guest_id": "sam", "name": "Sam"}
            await op(http, "guests", {**sam, "contact": "sam@example.com"})
            kit = {"op": "add_guest", "guest_id": "kit", "name": "Kit"}  # answers
            await op(http, "guests", {**kit, "contact": "kit@example.com", "rsvp": "declined"})

            async def planned() -> bool:
                return jobs(data) == {"guest:sam": (at("2031-03-25T10:00"), "pending")}

            await until(planned)
            await fake.set(at("2031-03-25T10:00"))
            await until(lambda: count_emails(inbox, 1))
            [mail] = inbox.messages
            assert mail["To"] == "sam@example.com"
            assert "https://plan.example.com/rsvp/#code=w1.g.sam." in mail.get_content()
            guests = (await http.get(f"{W}/docs/guests", headers=auth())).json()
            assert guests.get("households", {}) == {}, "no household entry was written"
