"""Notifications through a real server: the email digest, urgent mail at once, the
unsubscribe link, and an acknowledged message's email surviving an SMTP outage and a
restart (a real SMTP server, aiosmtpd)."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller

from crdt_server.testing.waits import until
from tests.features.conversations import (
    COUPLE,
    ENV,
    PLANNER,
    VENDOR,
    Inbox,
    W,
    count_emails,
    join,
    ok,
)
from tests.server import ServerProcess


@pytest.mark.asyncio
async def test_mentions_and_urgent_messages_are_emailed_with_a_digest_and_unsubscribe(
    tmp_path: Path, smtp: tuple[Controller, Inbox]
) -> None:
    controller, inbox = smtp
    env = {
        **ENV,
        "CRDT_SERVER_SMTP_URL": f"smtp://127.0.0.1:{controller.port}",
        "CRDT_SERVER_EMAIL_DIGEST_SECONDS": "2",
        "CRDT_SERVER_EMAIL_FROM": "threads@example.com",
    }
    async with (
        ServerProcess(tmp_path / "data", env=env, anonymous=False) as server,
        httpx.AsyncClient(base_url=server.url, timeout=10) as http,
    ):
        await join(http, PLANNER, COUPLE, VENDOR)
        tid = (
            await ok(
                await http.post(
                    f"{W}/threads",
                    json={"subject": "Band", "participants": ["flo"]},
                    headers=PLANNER,
                ),
                201,
            )
        )["id"]
        base = f"{W}/threads/{tid}/messages"
        await ok(
            await http.put(f"{base}/m1", json={"body": "@cam which song?"}, headers=VENDOR), 201
        )
        await until(lambda: count_emails(inbox, 1))
        first = inbox.messages[0]
        assert first["To"] == "cam@example.com" and first["From"] == "threads@example.com"
        assert "which song?" in first.get_body().get_content()  # type: ignore[union-attr]
        # Within the window: held and sent together, as one digest.
        for i in range(2, 6):
            await ok(
                await http.put(f"{base}/m{i}", json={"body": f"@cam take {i}"}, headers=VENDOR), 201
            )
        await until(lambda: count_emails(inbox, 2))
        digest = inbox.messages[1]
        text = digest.get_body().get_content()  # type: ignore[union-attr]
        assert all(f"take {i}" in text for i in range(2, 6))
        # Urgent is never held back.
        await ok(
            await http.put(
                f"{base}/u1", json={"body": "Singer is ill", "priority": "urgent"}, headers=VENDOR
            ),
            201,
        )

        async def cams_urgent() -> list[Any]:
            # Each person's urgent email goes on the urgent lane, oldest row first (the
            # other participants' may come before cam's).
            urgent = [m for m in inbox.messages if "URGENT" in str(m["Subject"])]
            return [m for m in urgent if m["To"] == "cam@example.com"]

        urgent = await until(cams_urgent, deadline=1.5)
        # The unsubscribe link works.
        link = str(urgent[0]["List-Unsubscribe"]).strip("<>")
        path = link.split("://", 1)[1].split("/", 1)[1]
        assert (await http.get("/" + path)).status_code == 200
        assert (await http.get("/" + path.replace("key=", "key=x"))).status_code == 404
        members = (await ok(await http.get(f"{W}/members", headers=PLANNER)))["members"]
        assert [m["email_notifications"] for m in members if m["sub"] == "cam"] == [False]


@pytest.mark.slow
@pytest.mark.asyncio
async def test_an_acknowledged_messages_email_survives_a_mail_outage_and_a_restart(
    tmp_path: Path,
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**ENV, "CRDT_SERVER_SMTP_URL": f"smtp://127.0.0.1:{port}"}
    async with (
        ServerProcess(tmp_path / "data", env=env, anonymous=False) as server,
        httpx.AsyncClient(base_url=server.url, timeout=10) as http,
    ):
        await join(http, PLANNER, COUPLE, VENDOR)
        created = await http.post(
            f"{W}/threads", json={"subject": "Venue", "participants": ["flo"]}, headers=PLANNER
        )
        tid = (await ok(created, 201))["id"]
        put = await http.put(
            f"{W}/threads/{tid}/messages/m1", json={"body": "@cam keys at 8"}, headers=VENDOR
        )
        await ok(put, 201)  # acknowledged while no mail server listens
        await server.stop()
        inbox = Inbox()
        controller = Controller(inbox, hostname="127.0.0.1", port=port)
        controller.start()
        try:
            await server.start()
            await until(lambda: count_emails(inbox, 1, exact=False), deadline=20)
            assert inbox.messages[0]["To"] == "cam@example.com"
        finally:
            controller.stop()
