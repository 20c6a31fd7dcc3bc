"""``crdt-server serve --demo``: seed the sample wedding through the running server and print
one sign-in link per role; then seed the wedding of today (:data:`DAY_DEMO_WEDDING_ID`,
dated the day the server starts in the server's own time zone, and re-dated at each start)
and print its links after those, each line ``today ROLE URL``.

The demo is written through the server's own rooms (:meth:`WeddingService.edit`), so it is
validated, committed and broadcast like any other edit, in whichever store the server uses.
Seeding is idempotent (see :mod:`documents.demo`): restarting with ``--demo`` keeps what
people changed. The links carry a token in the URL fragment (``#token=``), which browsers
never send to a server, so it stays out of access logs.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

from pycrdt import Doc
from starlette.applications import Starlette

from crdt_server import clock
from crdt_server.auth.permissions import ROLES
from crdt_server.auth.tokens import TokenCodec
from crdt_server.core.hooks import SERVER
from crdt_server.core.weddings import WeddingService
from crdt_server.documents import DOCUMENT_KINDS
from crdt_server.documents.demo import (
    DAY_DEMO_WEDDING_ID,
    DEMO_WEDDING_ID,
    seed_day_demo_document,
    seed_demo_document,
)
from crdt_server.documents.model import DocumentError, time_zone, zone_of
from crdt_server.edge.directory import MemberDirectory
from crdt_server.edge.state import SERVER_STATE_KEY
from crdt_server.settings import Settings

__all__ = [
    "DEMO_PEOPLE",
    "demo_links",
    "seed_day_demo_wedding",
    "seed_demo_members",
    "seed_demo_wedding",
    "server_zone",
    "with_demo",
]

DEMO_PEOPLE: dict[str, tuple[str, str]] = {
    "couple": ("demo-couple", "Alex & Sam"),
    "planner": ("demo-planner", "Priya"),
    "family": ("demo-family", "Rosa"),
    "vendor": ("demo-vendor", "Lens & Light"),
    "friend": ("demo-friend", "Jo"),
}
"""The demo's person per role: (user id, display name)."""


async def seed_demo_wedding(weddings: WeddingService) -> dict[str, bool]:
    """Seed every document of the demo wedding; returns which ones were written."""
    written: dict[str, bool] = {}
    for kind in DOCUMENT_KINDS:
        written[kind] = await weddings.edit(
            f"{DEMO_WEDDING_ID}/{kind}", partial(_seed, kind=kind), SERVER
        )
    return written


def _seed(doc: Doc[Any], *, kind: str) -> bool:
    return seed_demo_document(doc, kind, DEMO_WEDDING_ID, origin="demo")


def server_zone(localtime: Path = Path("/etc/localtime")) -> str:
    """The IANA name of the server's own time zone (the zone ``/etc/localtime`` links to),
    or ``UTC`` when it names none the zone database knows."""
    try:
        target = str(localtime.resolve())
    except OSError:
        return "UTC"
    _, found, name = target.partition("zoneinfo/")
    if not found:
        return "UTC"
    try:
        return time_zone(name)
    except DocumentError:
        return "UTC"


async def seed_day_demo_wedding(weddings: WeddingService, zone: str) -> dict[str, bool]:
    """Seed the wedding of today (or re-date it to today, in ``zone``); which documents
    were written."""
    day = clock.utcnow().astimezone(zone_of(zone)).date().isoformat()
    written: dict[str, bool] = {}
    for kind in DOCUMENT_KINDS:

        def change(doc: Doc[Any], kind: str = kind) -> bool:
            return seed_day_demo_document(doc, kind, day, zone, origin="demo")

        written[kind] = await weddings.edit(f"{DAY_DEMO_WEDDING_ID}/{kind}", change, SERVER)
    return written


async def seed_demo_members(directory: MemberDirectory | None, wedding: str) -> None:
    """Put the demo's person of every role into ``wedding``'s member directory (as each
    would be on first use; one already there is left as it is), so an emergency, a
    mention or a reminder reaches all of them before any of them signed in."""
    if directory is None:
        return  # a server without the people feature keeps no directory
    for role in ROLES:
        sub, name = DEMO_PEOPLE[role]
        await directory.register(wedding, sub, role, name, None)


def demo_links(
    codec: TokenCodec, settings: Settings, base_url: str, wedding: str = DEMO_WEDDING_ID
) -> list[tuple[str, str]]:
    """``(role, URL)`` for each role of ``wedding``: ``{base_url}/app/#token=...``."""
    links: list[tuple[str, str]] = []
    for role in ROLES:
        sub, name = DEMO_PEOPLE[role]
        token = codec.mint(
            sub=sub, name=name, role=role, wedding=wedding, ttl=settings.token_ttl_seconds
        )
        links.append((role, f"{base_url}/app/#token={token}"))
    return links


def with_demo(app: Starlette, settings: Settings, base_url: str, *, seed: bool = True) -> None:
    """Make ``app`` seed the demo once its lifespan has started (unless ``seed`` is false:
    ``--allow-anonymous`` without ``--demo``), then print the links (one ``ROLE URL`` line per
    role on standard output)."""
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[Any]:
        async with inner(app) as state:
            assert state is not None
            server = state[SERVER_STATE_KEY]
            if seed:
                await seed_demo_wedding(server.weddings)
                await seed_demo_members(server.find(MemberDirectory), DEMO_WEDDING_ID)
                print(f"demo wedding {DEMO_WEDDING_ID!r} is ready; sign in as:", flush=True)
            else:
                print(
                    f"local demo (anonymous access is on): open wedding {DEMO_WEDDING_ID!r} "
                    "as one of these; --demo also fills it with a sample plan:",
                    flush=True,
                )
            for role, url in demo_links(server.token_codec, settings, base_url):
                print(f"{role} {url}", file=sys.stdout, flush=True)
            if seed:
                zone = server_zone()
                await seed_day_demo_wedding(server.weddings, zone)
                await seed_demo_members(server.find(MemberDirectory), DAY_DEMO_WEDDING_ID)
                print(
                    f"wedding of today {DAY_DEMO_WEDDING_ID!r} ({zone}) is ready; sign in as:",
                    flush=True,
                )
                today = demo_links(server.token_codec, settings, base_url, DAY_DEMO_WEDDING_ID)
                for role, url in today:
                    print(f"today {role} {url}", file=sys.stdout, flush=True)
            yield state

    app.router.lifespan_context = lifespan
