"""RSVP links by email through a real server and a real SMTP server (aiosmtpd): each guest
of the household with an email address gets the link, ``From`` names the couple before
``CRDT_SERVER_EMAIL_FROM``, and the unsubscribe link works for a guest (no more emails);
a guest's queued email and their opt-out go with their erasure, on both stores."""

from __future__ import annotations

import re
import socket
import sqlite3
from pathlib import Path

import asyncpg
import httpx
import pytest
from aiosmtpd.controller import Controller

from crdt_server.testing.tokens import TokenMinter
from crdt_server.testing.waits import until
from tests.features.conversations import Inbox, count_emails
from tests.server import ServerProcess

SECRET = "rsvp-email-secret-at-least-32-bytes!!!"
MINT = TokenMinter(SECRET)
W = "/api/weddings/w1"


def auth(role: str = "couple") -> dict[str, str]:
    return MINT.headers(role, "ada", "w1", ttl=4 * 3600)


async def op(http: httpx.AsyncClient, doc: str, body: dict[str, object]) -> None:
    answer = await http.post(f"{W}/docs/{doc}/ops", json=body, headers=auth())
    assert answer.status_code == 200, answer.text


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_the_link_goes_to_each_guest_from_the_couple_and_unsubscribes(
    tmp_path: Path, smtp: tuple[Controller, Inbox]
) -> None:
    controller, inbox = smtp
    env = {
        "CRDT_SERVER_AUTH_SECRET": SECRET,
        "CRDT_SERVER_SMTP_URL": f"smtp://127.0.0.1:{controller.port}",
        "CRDT_SERVER_EMAIL_FROM": "plans@example.com",
    }
    async with (
        ServerProcess(tmp_path / "data", env=env, anonymous=False) as server,
        httpx.AsyncClient(base_url=server.url, timeout=10) as http,
    ):
        await op(http, "timeline", {"op": "set_profile", "names": ["Ada", "Grace\nBcc: x@y.z"]})
        await op(http, "guests", {"op": "add_household", "household_id": "h1", "name": "Lees"})
        for gid, contact in (("g1", "ann@example.com"), ("g2", "+44 20 7946 0000"), ("g3", None)):
            guest: dict[str, object] = {
                "op": "add_guest", "guest_id": gid, "name": gid, "household_id": "h1",
            }  # fmt: skip
            if contact:
                guest["contact"] = contact
            await op(http, "guests", guest)
        sent = await http.post(f"{W}/households/h1/rsvp-link/email", headers=auth())
        assert sent.status_code == 202, sent.text
        assert sent.json() == {
            "queued": ["g1"],
            "skipped": [
                {"guest_id": "g2", "reason": "no email address"},
                {"guest_id": "g3", "reason": "no email address"},
            ],
        }
        await until(lambda: count_emails(inbox, 1))
        mail = inbox.messages[0]
        assert mail["To"] == "ann@example.com"
        sender = mail["From"].addresses
        assert len(sender) == 1 and sender[0].addr_spec == "plans@example.com"
        assert sender[0].display_name == "Ada & Grace Bcc xy.z"
        # The couple's names reach the Subject by the same rule as a display name.
        assert mail["Subject"] == "Ada & Grace Bcc xy.z: will you come?"
        assert mail["Bcc"] is None
        text = mail.get_content()
        link = (await http.post(f"{W}/households/h1/rsvp-link", headers=auth())).json()["url"]
        assert link in text
        unsubscribe = re.search(r"Stop these emails: (\S+)", text)
        assert unsubscribe and mail["List-Unsubscribe"] == f"<{unsubscribe.group(1)}>"
        path = unsubscribe.group(1).split("://", 1)[1].split("/", 1)[1]
        assert (await http.get(f"/{path}x")).status_code == 404
        assert (await http.post(f"/{path}")).status_code == 200  # one click, no account
        again = await http.post(f"{W}/households/h1/rsvp-link/email", headers=auth())
        assert again.json()["queued"] == []
        assert {"guest_id": "g1", "reason": "unsubscribed"} in again.json()["skipped"]
        vendor = await http.post(f"{W}/households/h1/rsvp-link/email", headers=auth("vendor"))
        assert vendor.status_code == 403
        assert len(inbox.messages) == 1


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest) -> str:
    """The store the server runs on: its SQLite file (``""``), or a fresh PostgreSQL."""
    if request.param == "postgres":
        return str(request.getfixturevalue("postgres_url"))
    return ""


def _closed_port() -> int:
    """A local port nothing listens on: an SMTP server that is down, so that queued emails
    stay in the outbox (retried) instead of being sent and deleted at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def _guest_rows(server: ServerProcess, database: str) -> dict[str, list[tuple[str, ...]]]:
    """The RSVP emails' rows as the store holds them, read straight from its tables: the
    guests' outbox (guest, address, unsubscribe link) and the unsubscribed guests."""
    queries = {
        "guest_mail": "SELECT guest, address, unsubscribe FROM guest_mail ORDER BY guest",
        "rsvp_unsubscribed": "SELECT guest FROM rsvp_unsubscribed ORDER BY guest",
    }
    if database:
        conn = await asyncpg.connect(database)
        try:
            return {
                table: [tuple(row.values()) for row in await conn.fetch(sql)]
                for table, sql in queries.items()
            }
        finally:
            await conn.close()
    path = server.data_dir / "crdt.sqlite3"
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as db:
        return {table: [tuple(row) for row in db.execute(sql)] for table, sql in queries.items()}


@pytest.mark.asyncio
@pytest.mark.timeout(90)
async def test_erasing_a_guest_removes_their_outbox_rows_and_their_unsubscribe_row(
    tmp_path: Path, database_url: str
) -> None:
    """Issue 51, point 6: a guest's erasure deletes their queued emails (address, body,
    unsubscribe link) and their opt-out, and nobody else's."""
    admin = "rsvp-email-admin-0123456789abcdef"
    env = {
        "CRDT_SERVER_AUTH_SECRET": SECRET,
        "CRDT_SERVER_ADMIN_API_KEY": admin,
        "CRDT_SERVER_SMTP_URL": f"smtp://127.0.0.1:{_closed_port()}",
        "CRDT_SERVER_EMAIL_FROM": "plans@example.com",
    }
    if database_url:
        env["CRDT_SERVER_DATABASE_URL"] = database_url
    async with (
        ServerProcess(tmp_path / "data", env=env, anonymous=False) as server,
        httpx.AsyncClient(base_url=server.url, timeout=10) as http,
    ):
        await op(http, "guests", {"op": "add_household", "household_id": "h1", "name": "Lees"})
        for gid, contact in (("g1", "ann.erased@example.com"), ("g2", "bo.kept@example.com")):
            guest: dict[str, object] = {"op": "add_guest", "guest_id": gid, "name": gid}
            await op(http, "guests", guest | {"household_id": "h1", "contact": contact})
        sent = await http.post(f"{W}/households/h1/rsvp-link/email", headers=auth())
        assert sent.status_code == 202 and sent.json()["queued"] == ["g1", "g2"], sent.text
        before = await _guest_rows(server, database_url)
        assert [row[:2] for row in before["guest_mail"]] == [
            ("g1", "ann.erased@example.com"),
            ("g2", "bo.kept@example.com"),
        ], "the SMTP server is down: both wait in the outbox"
        for _, _, link in before["guest_mail"]:
            path = link.split("://", 1)[1].split("/", 1)[1]
            assert (await http.post(f"/{path}")).status_code == 200
        unsubscribed = (await _guest_rows(server, database_url))["rsvp_unsubscribed"]
        assert unsubscribed == [("g1",), ("g2",)]

        erased = await http.post(
            f"{W}/guests/g1/erase", headers={"Authorization": f"Bearer {admin}"}
        )
        assert erased.status_code == 200, erased.text
        after = await _guest_rows(server, database_url)
        assert [row[:2] for row in after["guest_mail"]] == [("g2", "bo.kept@example.com")]
        assert after["rsvp_unsubscribed"] == [("g2",)]
        assert "ann.erased" not in repr(after)
