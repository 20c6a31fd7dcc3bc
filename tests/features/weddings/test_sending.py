"""What may go out on a wedding's behalf (the weddings extension on a real store, SQLite
and PostgreSQL): nothing for a wedding made through open signup until a sign-in link has
verified its creator's email; invitation emails counted per wedding per UTC day up to
``CRDT_SERVER_INVITATION_EMAILS_PER_DAY``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from crdt_server.features import install_tables
from crdt_server.features.weddings import FEATURE, Weddings, WeddingSettings
from crdt_server.features.weddings.domain import person_key
from crdt_server.features.weddings.tables import created_row
from crdt_server.storage import DocumentStore, store_for

pytestmark = [pytest.mark.timeout(60)]

DAY = 1_800_000_000.0  # 2027-01-15, 08:00 UTC


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest) -> str | None:
    if request.param == "postgres":
        url: str = request.getfixturevalue("scratch_postgres")
        return url
    return None


@pytest_asyncio.fixture
async def store(database_url: str | None, tmp_path: Path) -> AsyncIterator[DocumentStore]:
    opened = store_for(database_url, tmp_path / "store.db")
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


async def started(store: DocumentStore, **settings: Any) -> Weddings:
    await install_tables(store, [FEATURE])
    return Weddings(WeddingSettings(**settings), store)


@pytest.mark.asyncio
async def test_invitation_emails_are_capped_per_wedding_per_day(store: DocumentStore) -> None:
    weddings = await started(store, invitation_emails_per_day=3)
    taken = [await weddings.take_invitation_email("w1", now=DAY) for _ in range(5)]
    assert taken == [True, True, True, False, False]
    # Another wedding has its own count; the next UTC day starts afresh.
    assert await weddings.take_invitation_email("w2", now=DAY) is True
    assert await weddings.take_invitation_email("w1", now=DAY + 86_400) is True
    closed = await started(store, invitation_emails_per_day=0)
    assert await closed.take_invitation_email("w3", now=DAY) is False


@pytest.mark.asyncio
async def test_an_open_signup_wedding_sends_nothing_until_its_creator_is_verified(
    store: DocumentStore,
) -> None:
    weddings = await started(store)
    row = created_row("w1", person_key("Ann@Example.com"), verified=False, open_signup=True)
    await store.append((), rows=[row])
    assert await weddings.may_send_for("w1") is False
    assert await weddings.take_invitation_email("w1", now=DAY) is False
    # Somebody else's verified email changes nothing; the creator's does.
    assert await weddings.creator_verified("w1", "bo@example.com") is False
    assert await weddings.may_send_for("w1") is False
    assert await weddings.creator_verified("w1", "ann@example.com") is True
    assert await weddings.may_send_for("w1") is True
    assert await weddings.take_invitation_email("w1", now=DAY) is True
    # A wedding the server did not make through open signup may always send.
    assert await weddings.may_send_for("w-from-tokens") is True
