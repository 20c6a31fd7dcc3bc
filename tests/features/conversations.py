"""What the tests of the conversation features (people, notifications, threads) share: a
real server with an admin key and short heartbeats, tokens of a wedding's members, and a
real SMTP server (aiosmtpd) that keeps what it receives."""

from __future__ import annotations

import email
import email.policy
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from aiosmtpd.controller import Controller

from crdt_server.auth.tokens import TokenCodec
from tests.server import ServerProcess, served

SECRET = "threads-test-secret-at-least-32-bytes!!"
CODEC = TokenCodec(algorithms=["HS256"], secret=SECRET.encode())
ADMIN = "threads-admin-key"
ENV = {
    "CRDT_SERVER_AUTH_SECRET": SECRET,
    "CRDT_SERVER_ADMIN_API_KEY": ADMIN,
    "CRDT_SERVER_SSE_HEARTBEAT_SECONDS": "0.5",
}
W = "/api/weddings/w1"


def auth(sub: str, role: str, email_: str | None = None) -> dict[str, str]:
    # Minted at import: it must outlive a whole test run (the fast tier takes minutes).
    token = CODEC.mint(
        sub=sub, role=role, wedding="w1", ttl=24 * 3600, name=sub.title(), email=email_
    )
    return {"Authorization": f"Bearer {token}"}


PLANNER = auth("pat", "planner", "pat@example.com")
COUPLE = auth("cam", "couple", "cam@example.com")
VENDOR = auth("flo", "vendor", "flo@example.com")
OTHER_VENDOR = auth("dj", "vendor")
FRIEND = auth("fred", "friend")
ADMIN_AUTH = {"Authorization": f"Bearer {ADMIN}"}


async def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


async def join(http: httpx.AsyncClient, *people: dict[str, str]) -> None:
    """Each person makes one call: the directory learns them from their token."""
    for headers in people:
        await ok(await http.get(f"{W}/members", headers=headers))


@pytest_asyncio.fixture
async def api(tmp_path: Path) -> AsyncIterator[tuple[ServerProcess, httpx.AsyncClient]]:
    async with served(tmp_path / "data", ENV) as running:
        yield running


class Inbox:
    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(parsed, email.message.EmailMessage)
        self.messages.append(parsed)
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[Controller, Inbox]]:
    inbox = Inbox()
    with socket.socket() as probe:  # aiosmtpd checks readiness by connecting: a real port
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield controller, inbox
    finally:
        controller.stop()


async def count_emails(inbox: Inbox, n: int, exact: bool = True) -> bool:
    return len(inbox.messages) == n if exact else len(inbox.messages) >= n


async def absent(data_dir: Path, needle: bytes) -> bool:
    files = [data_dir / "crdt.sqlite3", data_dir / "crdt.sqlite3-wal"]
    return not any(f.exists() and needle in f.read_bytes() for f in files)
