"""The projections' client ids on every backend (SQLite, PostgreSQL): claimed once and kept
(two processes claiming at once get the same id), and erased with their wedding."""

from __future__ import annotations

import asyncio

import pytest

from crdt_server.features import install_tables
from crdt_server.features import projections as projections_feature
from crdt_server.features.projections.tables import ProjectionClients
from crdt_server.storage import DocumentStore
from tests.storage.conftest import OpenStore


@pytest.mark.asyncio
async def test_a_projection_keeps_one_client_id_until_its_wedding_is_erased(
    store: DocumentStore, open_store: OpenStore
) -> None:
    other = await open_store()
    for each in (store, other):
        await install_tables(each, [projections_feature.FEATURE])
    one, two = ProjectionClients(store), ProjectionClients(other)
    assert await one.get("w1/guests@vendor") is None
    first, second = await asyncio.gather(
        one.claim("w1/guests@vendor", "w1"), two.claim("w1/guests@vendor", "w1")
    )
    assert first == second == await one.get("w1/guests@vendor")
    assert await one.claim("w1/guests@vendor", "w1") == first  # kept
    other = await one.claim("w2/guests@vendor", "w2")
    await store.erase_wedding("w1")
    assert await one.get("w1/guests@vendor") is None
    assert await one.get("w2/guests@vendor") == other
