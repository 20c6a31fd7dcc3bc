"""The integrations' tables on every backend: sources, seen deliveries, feed tokens and
per-item sequences; durable across a restart and erased with their wedding."""

from __future__ import annotations

import pytest

from crdt_server.features import install_tables
from crdt_server.features import integrations as integrations_feature
from crdt_server.features.integrations.tables import (
    SEEN_SECONDS,
    CalendarToken,
    InboundSource,
    IntegrationStore,
)
from crdt_server.storage import DocumentStore
from tests.storage.conftest import OpenStore


@pytest.mark.asyncio
async def test_integration_rows_survive_a_restart_and_go_with_their_wedding(
    store: DocumentStore, open_store: OpenStore
) -> None:
    await install_tables(store, [integrations_feature.FEATURE])
    rows = IntegrationStore(store)
    crm = InboundSource("w1", "crm", "whsec_x", '{"guests":"write"}', 1.0, "ada")
    assert await rows.add_source(crm)
    assert not await rows.add_source(crm)  # one source per name
    assert await rows.add_source(InboundSource("w2", "crm", "s", "{}", 1.0, "bob"))
    assert await rows.claim("w1", "crm", "msg_1", 100.0) is None
    seen = await rows.claim("w1", "crm", "msg_1", 101.0)
    assert seen is not None and seen.state == "pending"
    await rows.finish("w1", "crm", "msg_1", '{"ok":true}')
    assert await rows.claim("w1", "crm", "msg_2", 102.0) is None
    await rows.release("w1", "crm", "msg_2")
    assert await rows.claim("w1", "crm", "msg_2", 103.0) is None  # released: new again
    await rows.add_token(CalendarToken("w1", "t1", 5.0, "ada", "phone"), "digest-1")
    assert await rows.token_wedding("digest-1") == "w1"
    first = await rows.reconcile("w1", {"a": "f1", "b": "f1"}, 10.0)
    assert first["a"].sequence == 0 and first["a"].modified_at == 10.0
    second = await rows.reconcile("w1", {"a": "f2", "b": "f1"}, 20.0)
    assert second["a"].sequence == 1 and second["a"].modified_at == 20.0
    assert second["a"].created_at == 10.0 and second["b"].modified_at == 10.0

    await store.close()
    reopened = await open_store()
    await install_tables(reopened, [integrations_feature.FEATURE])
    again = IntegrationStore(reopened)
    assert await again.source("w1", "crm") == crm
    seen = await again.claim("w1", "crm", "msg_1", 104.0)
    assert seen is not None and (seen.state, seen.answer) == ("done", '{"ok":true}')
    assert [t.id for t in await again.tokens("w1")] == ["t1"]
    assert (await again.reconcile("w1", {"a": "f2"}, 30.0))["a"].sequence == 1
    # A delivery is remembered for SEEN_SECONDS, then forgotten.
    assert await again.claim("w1", "crm", "msg_3", 104.0 + SEEN_SECONDS + 1) is None
    assert await again.claim("w1", "crm", "msg_1", 104.0 + SEEN_SECONDS + 1) is None

    await reopened.erase_wedding("w1")
    assert await again.source("w1", "crm") is None and await again.tokens("w1") == []
    assert await again.token_wedding("digest-1") is None
    # Tombstoned: a late feed request keeps nothing for it.
    await again.reconcile("w1", {"a": "f2"}, 40.0)
    assert (await again.reconcile("w1", {"a": "f3"}, 41.0))["a"].sequence == 0
    assert await again.source("w2", "crm") is not None
    assert await again.delete_token("w1", "t1") is False
    assert await again.delete_source("w2", "crm") and await again.sources("w2") == []
