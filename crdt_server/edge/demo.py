"""``crdt-server serve --demo``: seed the sample wedding through the running server and print
one sign-in link per role.

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
from typing import Any

from pycrdt import Doc
from starlette.applications import Starlette

from crdt_server.auth.permissions import ROLES
from crdt_server.auth.tokens import TokenCodec
from crdt_server.core.hooks import SERVER
from crdt_server.core.weddings import WeddingService
from crdt_server.documents import DOCUMENT_KINDS
from crdt_server.documents.demo import DEMO_WEDDING_ID, seed_demo_document
from crdt_server.edge.state import SERVER_STATE_KEY
from crdt_server.settings import Settings

__all__ = ["DEMO_PEOPLE", "demo_links", "seed_demo_wedding", "with_demo"]

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


def demo_links(codec: TokenCodec, settings: Settings, base_url: str) -> list[tuple[str, str]]:
    """``(role, URL)`` for each role: ``{base_url}/app/#token=...``."""
    links: list[tuple[str, str]] = []
    for role in ROLES:
        sub, name = DEMO_PEOPLE[role]
        token = codec.mint(
            sub=sub, name=name, role=role, wedding=DEMO_WEDDING_ID, ttl=settings.token_ttl_seconds
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
                print(f"demo wedding {DEMO_WEDDING_ID!r} is ready; sign in as:", flush=True)
            else:
                print(
                    f"local demo (anonymous access is on): open wedding {DEMO_WEDDING_ID!r} "
                    "as one of these; --demo also fills it with a sample plan:",
                    flush=True,
                )
            for role, url in demo_links(server.token_codec, settings, base_url):
                print(f"{role} {url}", file=sys.stdout, flush=True)
            yield state

    app.router.lifespan_context = lifespan
