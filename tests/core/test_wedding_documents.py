"""``WeddingService.documents``: documents no room holds are replayed from the store once
and kept while the store has nothing newer (the conflicts keeper reads all four after every
change to one), and the copies go when their wedding is erased, their document is edited
or loaded into a room, after a while unused, and past a byte budget."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from pycrdt import Doc, Map

from crdt_server.cluster.bus import LocalBus
from crdt_server.core.crdt import crdt_call
from crdt_server.core.hooks import SERVER
from crdt_server.core.registry import RoomRegistry
from crdt_server.core.services import RoomServices
from crdt_server.core.weddings import StoredCopies, WeddingService
from crdt_server.documents.domain import WEDDINGS
from crdt_server.settings import Settings
from crdt_server.storage import NewUpdate, SqliteStore, StoredLog
from crdt_server.testing.waits import until

pytestmark = pytest.mark.timeout(30)


class CountingStore(SqliteStore):
    """A real SqliteStore that counts the logs it loads, per document."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.loads: dict[str, int] = {}

    async def load(self, doc: str, *, upto: int | None = None) -> StoredLog | None:
        self.loads[doc] = self.loads.get(doc, 0) + 1
        return await super().load(doc, upto=upto)


@dataclass
class Setup:
    store: CountingStore
    registry: RoomRegistry
    weddings: WeddingService
    writers: dict[str, Doc[Any]]

    async def write(self, name: str, key: str, value: str) -> int:
        """Append an update setting ``key`` in document ``name``'s ``entries`` map, as a
        client in another process would have; its seq."""
        doc = self.writers.setdefault(name, Doc())
        before = doc.get_state()
        doc.get("entries", type=Map)[key] = value
        update = crdt_call(doc.get_update, before)
        return (await self.store.append([NewUpdate(name, update, "elsewhere")]))[0]


@pytest_asyncio.fixture
async def setup(tmp_path: Path) -> AsyncIterator[Setup]:
    settings = Settings(data_dir=tmp_path / "data")
    store = CountingStore(settings.sqlite_path)
    await store.open()
    registry = RoomRegistry(RoomServices(store, settings, LocalBus()))
    try:
        yield Setup(store, registry, WeddingService(registry, store, WEDDINGS), {})
    finally:
        await registry.close()
        await store.close()


def entries(doc: Doc[Any]) -> dict[str, Any]:
    return dict(doc.get("entries", type=Map).to_py() or {})


@pytest.mark.asyncio
async def test_unchanged_stored_documents_are_replayed_once(setup: Setup) -> None:
    for kind in ("guests", "seating", "budget"):
        await setup.write(f"w1/{kind}", "k", kind)
    for _ in range(5):
        docs = await setup.weddings.documents("w1")
        assert sorted(docs) == ["budget", "guests", "seating"]  # no timeline stored
        assert entries(docs["seating"]) == {"k": "seating"}
    assert setup.store.loads == {"w1/guests": 1, "w1/seating": 1, "w1/budget": 1}

    # Something newer in the store (another process's edit): that document is loaded again.
    await setup.write("w1/guests", "k2", "new")
    docs = await setup.weddings.documents("w1")
    assert entries(docs["guests"]) == {"k": "guests", "k2": "new"}
    assert setup.store.loads == {"w1/guests": 2, "w1/seating": 1, "w1/budget": 1}

    # Compaction keeps the newest seq and the content: the copy still serves.
    log = await setup.store.load("w1/seating")
    assert log is not None
    snapshot = crdt_call(setup.writers["w1/seating"].get_update)
    await setup.store.compact("w1/seating", log.last_seq, snapshot)
    await setup.weddings.documents("w1", kinds=("seating",))
    assert setup.store.loads["w1/seating"] == 2  # the one above, not another


@pytest.mark.asyncio
async def test_a_loaded_room_is_read_instead_and_its_copy_dropped(setup: Setup) -> None:
    await setup.write("w1/guests", "k", "stored")
    await setup.weddings.documents("w1")
    copies = setup.weddings._copies
    assert len(copies) == 1
    async with setup.weddings.room("w1/guests") as room:
        docs = await setup.weddings.documents("w1")
        assert docs["guests"] is room.doc
        assert len(copies) == 0


@pytest.mark.asyncio
async def test_an_edit_here_and_an_erased_wedding_drop_their_copies(setup: Setup) -> None:
    for wedding in ("w1", "w2"):
        await setup.write(f"{wedding}/guests", "g1", "Ada Lovelace")
        await setup.write(f"{wedding}/budget", "b1", "flowers")
    await setup.weddings.documents("w1")
    await setup.weddings.documents("w2")
    copies = setup.weddings._copies
    assert len(copies) == 4

    def erase(doc: Doc[Any]) -> None:
        del doc.get("entries", type=Map)["g1"]

    await setup.weddings.edit("w1/guests", erase, SERVER)
    assert len(copies) == 3  # w1's guests copy (it named Ada) is gone with the edit
    setup.weddings.close_rooms("w2")  # what erasing a wedding, here or elsewhere, calls
    assert len(copies) == 1
    setup.registry.forget(setup.registry.rooms["w1/guests"])
    docs = await setup.weddings.documents("w1")
    assert entries(docs["guests"]) == {}
    assert entries(docs["budget"]) == {"b1": "flowers"}


@pytest.mark.asyncio
async def test_copies_expire_unused_and_stay_within_their_byte_budget() -> None:
    copies = StoredCopies(max_bytes=100, ttl=0.2)
    docs: list[Doc[Any]] = [Doc() for _ in range(3)]
    copies.put("w1/guests", 5, 40, docs[0])
    copies.put("w1/budget", 6, 40, docs[1])
    assert copies.get("w1/guests", 5) is docs[0]  # now the most recently used
    copies.put("w2/guests", 7, 40, docs[2])  # 120 bytes: the least recently used goes
    assert copies.get("w1/budget", 6) is None
    assert copies.get("w1/guests", 5) is docs[0]
    assert copies.get("w2/guests", 8) is None  # something newer was stored: dropped
    assert len(copies) == 1
    copies.put("w3/guests", 9, 101, Doc())  # larger than the whole budget: not kept
    assert len(copies) == 1

    async def emptied() -> bool:
        return len(copies) == 0

    started = asyncio.get_running_loop().time()
    await until(emptied, deadline=5.0, every=0.02)
    assert asyncio.get_running_loop().time() - started >= 0.1


@pytest.mark.asyncio
async def test_the_registry_finds_a_weddings_rooms_among_the_others(tmp_path: Path) -> None:
    """``wedding_rooms`` (what the presence sweep asks for each wedding, every few seconds:
    it looked at every loaded room of every wedding for each) follows loads, unloads,
    forgotten rooms and closed weddings."""
    settings = Settings(data_dir=tmp_path / "data", room_idle_seconds=0.01)
    store = SqliteStore(settings.sqlite_path)
    await store.open()
    registry = RoomRegistry(RoomServices(store, settings, LocalBus()))
    weddings = WeddingService(registry, store, WEDDINGS)
    try:
        rooms = {
            name: await registry.acquire(name)
            for name in ("w1/guests", "w1/budget", "w10/guests", "w2/timeline")
        }

        def names(wedding: str) -> set[str]:
            return {room.name for room in registry.wedding_rooms(wedding)}

        assert names("w1") == {"w1/guests", "w1/budget"}
        assert names("w10") == {"w10/guests"} and names("w3") == set()
        registry.release(rooms["w1/budget"])  # unloaded once idle

        async def unloaded() -> bool:
            return names("w1") == {"w1/guests"}

        await until(unloaded, 5)
        registry.forget(rooms["w10/guests"])
        assert names("w10") == set()
        assert [r.name for r in weddings.close_rooms("w2")] == ["w2/timeline"]
        assert names("w2") == set() and set(registry.rooms) == {"w1/guests"}
    finally:
        await registry.close()
        await store.close()
