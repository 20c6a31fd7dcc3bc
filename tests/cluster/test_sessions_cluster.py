"""A device session revoked through one process closes its sockets on another (the
``people.session_ended`` bus message), and the other refuses its tokens."""

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
from tests.features.conversations import Inbox, smtp  # noqa: F401 (fixture)
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
