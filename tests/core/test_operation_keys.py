"""Idempotency keys of HTTP operations are committed with the operation's change
(:mod:`crdt_server.core.operation_keys`): in the update's own store transaction, so an
answered operation's key cannot be lost while its change is kept (issue 47)."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from crdt_server.actor import Actor
from crdt_server.cluster.bus import LocalBus
from crdt_server.core.hooks import Sender
from crdt_server.core.operation_keys import OperationKey, OperationKeys
from crdt_server.core.registry import RoomRegistry
from crdt_server.core.services import RoomServices
from crdt_server.core.weddings import WeddingService
from crdt_server.documents.domain import WEDDINGS
from crdt_server.settings import Settings
from crdt_server.storage import FeatureRow
from crdt_server.storage.gateway import Gateway, statements
from tests.stores import RecordingStore

pytestmark = [pytest.mark.timeout(30), pytest.mark.asyncio]

AUNT = Sender(Actor("aunt", "family"), "http:aunt")


@dataclass
class Setup:
    store: RecordingStore
    weddings: WeddingService


@pytest_asyncio.fixture
async def setup(tmp_path: Path) -> AsyncIterator[Setup]:
    settings = Settings(data_dir=tmp_path / "data")
    store = RecordingStore(settings.sqlite_path)
    await store.open()
    registry = RoomRegistry(RoomServices(store, settings, LocalBus()))
    weddings = WeddingService(registry, store, WEDDINGS)
    await weddings.keys.install()
    try:
        yield Setup(store, weddings)
    finally:
        await registry.close()
        await store.close()


def key(name: str, body: str = "b") -> OperationKey:
    return OperationKey("w1", "w1:aunt:docs/guests/ops", name, body)


def keyed(keys: OperationKeys, once: OperationKey) -> Callable[[dict[str, Any]], list[FeatureRow]]:
    """The rows of an operation's answer kept under ``once``."""
    return lambda result: [keys.row(once, json.dumps({"result": result["id"]}))]


async def test_the_key_is_in_the_transaction_of_the_operations_update(setup: Setup) -> None:
    keys, once = setup.weddings.keys, key("k1")
    add = {"op": "add_guest", "guest_id": "g1", "name": "Ada"}
    await setup.weddings.operate("w1", "guests", add, AUNT, rows=keyed(keys, once))
    ((updates, _),) = [
        (u, r) for u, r, _ in setup.store.appends if any(x.table == "operation_keys" for x in r)
    ]
    assert [u.doc for u in updates] == ["w1/guests"]  # one commit: the change and its key
    first = await keys.first(once)
    assert first is not None and first.fingerprint == "b"
    assert json.loads(first.answer) == {"result": "g1"}


async def test_an_operation_that_changes_nothing_keeps_its_key_on_its_own(setup: Setup) -> None:
    keys = setup.weddings.keys
    add = {"op": "add_guest", "guest_id": "g1", "name": "Ada"}
    await setup.weddings.operate("w1", "guests", add, AUNT)
    same = {"op": "set_rsvp", "guest_id": "g1", "rsvp": "pending"}  # already pending
    setup.store.appends.clear()
    await setup.weddings.operate("w1", "guests", same, AUNT, rows=keyed(keys, key("k2")))
    ((updates, rows, _),) = setup.store.appends
    assert updates == [] and [r.table for r in rows] == ["operation_keys"]
    assert await keys.first(key("k2")) is not None


async def test_an_expired_key_is_used_afresh(setup: Setup) -> None:
    keys = setup.weddings.keys
    await setup.store.append([], rows=[keys.row(key("k3", "old"), "{}")])
    gateway = Gateway.of(setup.store)
    expire = "UPDATE {t}operation_keys SET expires_at = ?"
    await gateway.run(statements([(expire, (time.time() - 1,))]))
    assert await keys.first(key("k3")) is None
    await setup.store.append([], rows=[keys.row(key("k3", "new"), "{}")])
    first = await keys.first(key("k3"))
    assert first is not None and first.fingerprint == "new"
