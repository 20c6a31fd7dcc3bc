"""The extensions' start: a room an extension's start loads reaches every extension's
``on_load`` once, after that extension has started, never before."""

from __future__ import annotations

from typing import cast

import pytest

from crdt_server.core.hooks import Core, Extension, Hooks, RoomView


class Room:
    def __init__(self, name: str) -> None:
        self.name = name


class Recorder(Extension):
    def __init__(self, name: str, log: list[str], loads: list[str] = ()) -> None:  # type: ignore[assignment]
        self.name = name
        self.log = log
        self.loads = list(loads)
        self.hooks: Hooks | None = None
        self.started = False

    async def start(self, core: Core) -> None:
        assert self.hooks is not None
        for name in self.loads:  # as the notes feature closes sessions a crash left open
            await self.hooks.load(cast(RoomView, Room(name)))
        self.started = True
        self.log.append(f"{self.name} started")

    async def on_load(self, room: RoomView) -> None:
        assert self.started, f"{self.name} was given {room.name} before its start"
        self.log.append(f"{self.name} loaded {room.name}")


@pytest.mark.asyncio
@pytest.mark.timeout(10)
async def test_rooms_loaded_while_starting_reach_each_extension_after_its_start() -> None:
    log: list[str] = []
    first = Recorder("first", log)
    loader = Recorder("loader", log, loads=["w1/guests"])
    last = Recorder("last", log)
    hooks = Hooks([first, loader, last])
    for ext in (first, loader, last):
        ext.hooks = hooks
    await hooks.start(cast(Core, None))
    assert log == [
        "first started",
        "first loaded w1/guests",  # while the loader starts: first has started
        "loader started",
        "loader loaded w1/guests",
        "last started",
        "last loaded w1/guests",
    ]
    # Once started, a load reaches every extension at once.
    await hooks.load(cast(RoomView, Room("w2/guests")))
    assert log[-3:] == [
        "first loaded w2/guests",
        "loader loaded w2/guests",
        "last loaded w2/guests",
    ]
    assert sum(1 for line in log if "w1/guests" in line) == 3  # once each
