"""The client ids' owners on every backend (SQLite, PostgreSQL): two processes that claim
overlapping batches of new ids at once agree on one owner for each, the one the store
keeps (crdt_server.core.client_ids)."""

from __future__ import annotations

import asyncio

import pytest

from crdt_server.core.client_ids import ClientIds
from crdt_server.storage import DocumentStore
from crdt_server.storage.gateway import Gateway
from tests.storage.conftest import OpenStore


@pytest.mark.asyncio
async def test_two_processes_claiming_one_batch_of_ids_agree_on_each_owner(
    store: DocumentStore, open_store: OpenStore
) -> None:
    other = await open_store()
    one, two = ClientIds(store), ClientIds(other)
    await one.start()
    await two.start()
    weddings = [f"w{n}" for n in range(5)]
    asks = [one.claim(w, [n, n + 1], "ann") for w in weddings for n in range(0, 600, 3)]
    asks += [two.claim(w, [n + 1, n + 2], "pat") for w in weddings for n in range(0, 600, 3)]
    got = await asyncio.gather(*asks)
    rows = await Gateway.of(store).fetch("SELECT wedding, client_id, sub FROM {t}yjs_client_owners")
    kept = {(str(w), int(c)): str(sub) for w, c, sub in rows}
    half = len(got) // 2
    for index, told in enumerate(got):
        wedding = weddings[index % half // 200]
        owner = "ann" if index < half else "pat"
        assert told, "every ask is told at least one owner"
        for client, who in told.items():
            assert kept[wedding, client] == who  # what each process was told is what is kept
        if all(who == owner for who in told.values()):
            assert len(told) == 2  # granted: both of its ids
        else:  # refused: the first id someone else's is the last told, none claimed
            assert list(told.values())[-1] != owner
            assert all(kept.get((wedding, c)) != owner for c in told)
    assert set(kept.values()) <= {"ann", "pat"}
    assert len(kept) >= len(weddings) * 400  # every id asked by both: claimed by one
