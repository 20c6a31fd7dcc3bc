"""A device's end ends the event streams it opened, and its stream tickets, as it closes its
sockets (issue 73, point 4): signing out, signing out everywhere, revoking the device from
another one, the idle limit, removing the member and erasing them. Through a real server
and a real SMTP receiver; heartbeats of 30 s, so a stream that ends within the deadline was
told at once, not found out at its next heartbeat."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller

from crdt_server.testing.waits import until
from tests.features.conversations import ADMIN_AUTH, CODEC, ENV, PLANNER, Inbox, W, join, ok
from tests.features.events.test_events import sse_frames
from tests.features.signin.test_sessions import Running, cookie_of, put_member
from tests.server import ServerProcess

pytestmark = [pytest.mark.timeout(60)]

Frame = tuple[str, dict[str, Any]]
END = ("end", {"reason": "token_revoked"})
DEADLINE = 5.0
"""Seconds a stream has to end once its device ended (its heartbeat is 30 s)."""
IDLE_DAYS = 0.00003
"""About 2.6 seconds: the idle limit of the ``idle`` way."""


async def frames_until_closed(
    frames: AsyncIterator[Frame], seconds: float
) -> tuple[list[Frame], bool]:
    """The frames a stream sends within ``seconds``, and whether it closed by then."""
    got: list[Frame] = []
    try:
        async with asyncio.timeout(seconds):
            async for frame in frames:
                got.append(frame)
    except TimeoutError:
        return got, False
    return got, True


async def frames_until(frames: AsyncIterator[Frame], kind: str) -> None:
    """Read ``frames`` until one of type ``kind`` (the wedding's earlier events first)."""
    async with asyncio.timeout(DEADLINE):
        async for found, _ in frames:
            if found == kind:
                return
    pytest.fail(f"the stream closed before {kind}")


async def _after(moment: float) -> bool:
    return time.time() > moment


@dataclass(frozen=True)
class Laptop:
    """The device whose streams end: its cookie, its id (the ``sid`` of its tokens), when
    it was last used, and the cookie of another device of the same person (a phone)."""

    cookie: str
    sid: str
    used_at: float
    phone: str


Ending = Callable[[Running, Laptop], Awaitable[None]]
"""One way a device ends."""


async def _sign_out(running: Running, laptop: Laptop) -> None:
    assert (await running.session(laptop.cookie, "sign-out")).status_code == 204


async def _sign_out_all(running: Running, laptop: Laptop) -> None:
    # From the phone: every device of the person ends, the laptop too.
    assert (await running.session(laptop.phone, "sign-out-all")).status_code == 204


async def _revoke_device(running: Running, laptop: Laptop) -> None:
    gone = await running.session(laptop.phone, f"devices/{laptop.sid}", "DELETE")
    assert gone.status_code == 204, gone.text


async def _idle(running: Running, laptop: Laptop) -> None:
    # Unused past the idle limit: found at its next refresh (or by the sweep, if first),
    # and the device session ends everywhere.
    await until(lambda: _after(laptop.used_at + IDLE_DAYS * 86400 + 0.5))
    assert (await running.session(laptop.cookie, "refresh", json={})).status_code == 401


async def _remove_member(running: Running, laptop: Laptop) -> None:
    await ok(await running.http.post(f"{W}/members/kim/remove", headers=PLANNER))


async def _erase_member(running: Running, laptop: Laptop) -> None:
    erased = await running.http.delete(f"{W}/members/kim", headers=ADMIN_AUTH)
    assert erased.status_code == 204, erased.text


WAYS: dict[str, Ending] = {
    "sign-out": _sign_out,
    "sign-out-all": _sign_out_all,
    "device-revoked": _revoke_device,
    "idle": _idle,
    "member-removed": _remove_member,
    "member-erased": _erase_member,
}


@pytest.mark.asyncio
@pytest.mark.parametrize("way", list(WAYS))
async def test_a_device_s_end_ends_its_event_streams_and_tickets(
    way: str, tmp_path: Path, smtp: tuple[Controller, Inbox]
) -> None:
    controller, inbox = smtp
    env = {
        **ENV,
        "CRDT_SERVER_SMTP_URL": f"smtp://127.0.0.1:{controller.port}",
        "CRDT_SERVER_SSE_HEARTBEAT_SECONDS": "30",
    }
    if way == "idle":
        env["CRDT_SERVER_DEVICE_SESSION_IDLE_DAYS"] = str(IDLE_DAYS)
    async with (
        ServerProcess(tmp_path / "data", env=env, anonymous=False) as server,
        httpx.AsyncClient(base_url=server.url, timeout=10) as http,
    ):
        running = Running(server, http, inbox)
        await join(http, PLANNER)
        await put_member(http, "w1", "kim", role="family", name="Kim", email="kim@example.com")
        # The phone first (another device of Kim's), then the laptop whose streams end.
        phone = cookie_of(await running.complete(await running.link("kim@example.com")))
        signed_in = await running.complete(await running.link("kim@example.com", 2))
        used_at, token = time.time(), (await ok(signed_in))["token"]
        sid = CODEC.decode(token).sid
        assert sid is not None
        laptop = Laptop(cookie_of(signed_in), sid, used_at, phone)
        bearer = {"Authorization": f"Bearer {token}"}
        tickets = [
            (await ok(await http.post(f"{W}/events/stream-tickets", headers=bearer), 201))["ticket"]
            for _ in range(2)
        ]
        async with (
            http.stream("GET", f"{W}/events/stream", headers=bearer) as by_header,
            # Its filter lets nothing posted after the end wake it: only its device's end.
            http.stream(
                "GET", f"{W}/events/stream?ticket={tickets[0]}&types=custom.before"
            ) as by_ticket,
        ):
            assert by_header.status_code == by_ticket.status_code == 200
            streams = [sse_frames(by_header), sse_frames(by_ticket)]
            posted = await http.post(f"{W}/events", json={"type": "custom.before"}, headers=PLANNER)
            assert posted.status_code == 201, posted.text
            for frames in streams:
                await frames_until(frames, "custom.before")

            await WAYS[way](running, laptop)
            posted = await http.post(f"{W}/events", json={"type": "custom.after"}, headers=PLANNER)
            assert posted.status_code == 201, posted.text
            for name, frames in zip(("by header", "by ticket"), streams, strict=True):
                rest, closed = await frames_until_closed(frames, DEADLINE)
                # Nothing after the end (custom.after, session.revoked, member.removed):
                # the end, and the stream closes.
                assert (rest, closed) == ([END], True), (name, rest, closed)
        # The other ticket, minted before the end, opens nothing.
        refused = await http.get(f"{W}/events/stream?ticket={tickets[1]}")
        assert refused.status_code == 401, refused.text
        assert refused.json()["errors"][0]["field"] == "ticket"
