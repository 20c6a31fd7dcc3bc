"""A device session revoked through one process closes its sockets on another (the
``people.session_ended`` bus message), and the other refuses its tokens; under
``--workers``, signing a device out ends its event stream proxied to the wedding's owner."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import pytest
from aiosmtpd.controller import Controller

from crdt_server.auth.tokens import TokenCodec
from crdt_server.testing.waits import until
from tests.cluster.conftest import RedisProcess
from tests.cluster.test_workers import metric, scrape_each_worker, wait_workers, wedding_owned_by
from tests.features.conversations import Inbox, smtp  # noqa: F401 (fixture)
from tests.features.events.test_events import sse_frames
from tests.features.signin.test_device_streams import END, frames_until, frames_until_closed
from tests.server import ServerProcess
from tests.yclient import YClient

pytestmark = [pytest.mark.timeout(120)]

SECRET = "cluster-sessions-secret-of-at-least-32-bytes"
CODEC = TokenCodec(algorithms=["HS256"], secret=SECRET.encode())


@pytest.mark.asyncio
async def test_revoking_a_device_closes_its_sockets_in_every_process(
    tmp_path: Path,
    redis_server: RedisProcess,
    smtp: tuple[Controller, Inbox],  # noqa: F811
) -> None:
    controller, inbox = smtp
    env = {
        "CRDT_SERVER_REDIS_URL": redis_server.url,
        "CRDT_SERVER_AUTH_SECRET": SECRET,
        "CRDT_SERVER_ADMIN_API_KEY": "admin",
        "CRDT_SERVER_SMTP_URL": f"smtp://127.0.0.1:{controller.port}",
    }
    servers = [ServerProcess(tmp_path / "data", env=env, anonymous=False) for _ in range(2)]
    for server in servers:
        await server.start()
    try:
        a_server, b_server = servers
        async with httpx.AsyncClient(base_url=a_server.url, timeout=10) as http:
            member = {"role": "planner", "name": "Pia", "email": "pia@example.com"}
            put = await http.put(
                "/api/weddings/w5/members/pia",
                json=member,
                headers={"Authorization": "Bearer admin"},
            )
            assert put.status_code == 201

            async def sign_in(count: int) -> httpx.Response:
                assert (
                    await http.post("/api/sign-in", json={"email": member["email"]})
                ).status_code == 202

                async def links() -> list[str]:
                    found = [re.findall(r"#code=([\w-]+)", m.get_content()) for m in inbox.messages]
                    return [c for codes in found for c in codes]

                codes = await until(lambda: _at_least(links, count))
                return await http.post(
                    "/api/sign-in/complete",
                    json={"code": codes[count - 1]},
                    headers={"Origin": a_server.url},
                )

            laptop = await sign_in(1)
            token = laptop.json()["token"]
            sid = CODEC.decode(token).sid
            phone = (await sign_in(2)).headers["set-cookie"].split(";")[0]
            # The laptop's socket is on process B; the phone revokes it through process A.
            async with YClient(b_server.ws_url, "w5/guests", token=token) as on_b:
                await on_b.wait(on_b.synced.is_set)
                gone = await http.delete(
                    f"/api/session/devices/{sid}",
                    headers={"Origin": a_server.url, "Cookie": phone},
                )
                assert gone.status_code == 204, gone.text
                await on_b.wait(on_b.closed.is_set, timeout=10)
                assert on_b.close_code == 4401
            async with httpx.AsyncClient(base_url=b_server.url, timeout=10) as on_b_http:
                access = await on_b_http.get(
                    "/api/weddings/w5/access", headers={"Authorization": f"Bearer {token}"}
                )
                assert access.status_code == 401
    finally:
        for server in servers:
            await server.stop()


async def _at_least(read: Callable[[], Awaitable[list[str]]], count: int) -> list[str] | None:
    found = await read()
    return found if len(found) >= count else None


@pytest.mark.asyncio
async def test_signing_out_ends_its_event_stream_proxied_to_the_owner_worker(
    tmp_path: Path,
    redis_server: RedisProcess,
    smtp: tuple[Controller, Inbox],  # noqa: F811
) -> None:
    controller, inbox = smtp
    admin = {"Authorization": "Bearer admin"}
    server = ServerProcess(
        tmp_path / "data",
        args=["--workers", "2", "--redis-url", redis_server.url],
        env={
            "CRDT_SERVER_AUTH_SECRET": SECRET,
            "CRDT_SERVER_ADMIN_API_KEY": "admin",
            "CRDT_SERVER_SMTP_URL": f"smtp://127.0.0.1:{controller.port}",
            # A stream that ends in time was told: its heartbeat would come too late.
            "CRDT_SERVER_SSE_HEARTBEAT_SECONDS": "30",
            "CRDT_SERVER_RATE_READ_PER_MINUTE": "0",
            "CRDT_SERVER_RATE_WRITE_PER_MINUTE": "0",
        },
        anonymous=False,
    )
    wedding = wedding_owned_by(1)
    base = f"/api/weddings/{wedding}"
    poster = {"Authorization": f"Bearer {CODEC.mint(sub='pat', role='planner', wedding=wedding)}"}
    async with server:
        await wait_workers(server, 2)
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
            member = {"role": "planner", "name": "Pia", "email": "pia@example.com"}
            put = await http.put(f"{base}/members/pia", json=member, headers=admin)
            assert put.status_code == 201, put.text
            asked = await http.post("/api/sign-in", json={"email": member["email"]})
            assert asked.status_code == 202, asked.text
            codes = await until(lambda: _codes(inbox))
            laptop = await http.post(
                "/api/sign-in/complete", json={"code": codes[0]}, headers={"Origin": server.url}
            )
            assert laptop.status_code == 200, laptop.text
            cookie = laptop.headers["set-cookie"].split(";")[0]
            bearer = {"Authorization": f"Bearer {laptop.json()['token']}"}
            minted = await http.post(f"{base}/events/stream-tickets", headers=bearer)
            assert minted.status_code == 201, minted.text
            ticket = minted.json()["ticket"]
        # Open streams on new connections until one lands on worker 0, which proxies it to
        # the wedding's owner (worker 1): that one's generator runs on the owner.
        for _ in range(60):
            before = metric(
                (await scrape_each_worker(server, 2))[0],
                "crdt_http_proxied_total",
                '{owner="1"}',
            )
            async with (
                httpx.AsyncClient(base_url=server.url, timeout=10) as http,
                http.stream("GET", f"{base}/events/stream", headers=bearer) as stream,
            ):
                assert stream.status_code == 200
                after = metric(
                    (await scrape_each_worker(server, 2))[0],
                    "crdt_http_proxied_total",
                    '{owner="1"}',
                )
                if after == before:
                    continue  # served by the owner itself: try again
                frames = sse_frames(stream)
                posted = await http.post(
                    f"{base}/events", json={"type": "custom.before"}, headers=poster
                )
                assert posted.status_code == 201, posted.text
                await frames_until(frames, "custom.before")
                out = await http.post(
                    "/api/session/sign-out", headers={"Origin": server.url, "Cookie": cookie}
                )
                assert out.status_code == 204, out.text
                posted = await http.post(
                    f"{base}/events", json={"type": "custom.after"}, headers=poster
                )
                assert posted.status_code == 201, posted.text
                rest, closed = await frames_until_closed(frames, 5.0)
                assert (rest, closed) == ([END], True)
                # A ticket minted before the sign-out opens nothing, through the proxy too.
                refused = await http.get(f"{base}/events/stream?ticket={ticket}")
                assert refused.status_code == 401, refused.text
                break
        else:
            pytest.fail("no stream landed on worker 0")


async def _codes(inbox: Inbox) -> list[str] | None:
    found = [c for m in inbox.messages for c in re.findall(r"#code=([\w-]+)", m.get_content())]
    return found or None
