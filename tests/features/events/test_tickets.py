"""The event stream's one-use tickets, the events feature's table, on every backend."""

from __future__ import annotations

import time

import pytest

from crdt_server.features.events.tables import SCHEMA, purge_tickets, put_ticket, take_ticket
from crdt_server.storage import DocumentStore, Gateway


@pytest.mark.asyncio
async def test_a_ticket_serves_once_and_only_before_it_expires(store: DocumentStore) -> None:
    await store.install(SCHEMA)
    gateway = Gateway.of(store)
    now = time.time()
    await put_ticket(gateway, "t1", '{"sub": "ada"}', now + 60)
    await put_ticket(gateway, "t2", "{}", now - 1)
    assert await take_ticket(gateway, "t1", now) == '{"sub": "ada"}'
    assert await take_ticket(gateway, "t1", now) is None
    assert await take_ticket(gateway, "t2", now) is None
    assert await take_ticket(gateway, "nope", now) is None


@pytest.mark.asyncio
async def test_expired_tickets_are_forgotten(store: DocumentStore) -> None:
    await store.install(SCHEMA)
    gateway = Gateway.of(store)
    now = time.time()
    await put_ticket(gateway, "old", "{}", now - 1)
    await put_ticket(gateway, "new", "{}", now + 60)
    assert await purge_tickets(gateway, now) == 1
    assert await gateway.fetch("SELECT digest FROM {t}tickets") == [("new",)]
