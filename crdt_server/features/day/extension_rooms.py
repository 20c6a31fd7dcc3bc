"""Saturday mode's rooms: on a wedding's day its rooms stay loaded.

When a wedding's timeline room loads on the wedding's day (its profile's date, in its
zone, by the server's clock), or is loaded already when the day begins (each loaded
timeline room is looked at once every :data:`LOOK_EVERY` seconds: a room kept loaded by
its connections since the evening before is held from its first minutes), this process
holds every document room of the wedding until the day ends (midnight in the wedding's
zone): no idle unload, no reload from the store in the middle of the day. Reading the
profile costs what reading one map of a loaded document costs; a wedding whose day it is
not costs nothing more.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import date, time, timedelta

from crdt_server import clock
from crdt_server.core.hooks import Core, Extension, RoomView
from crdt_server.documents import DOCUMENT_KINDS
from crdt_server.documents.model import local_moment
from crdt_server.documents.schema import read_profile
from crdt_server.storage import StoreError

__all__ = ["LOOK_EVERY", "DayRooms", "day_ends"]

LOOK_EVERY = 60.0
"""Seconds between two looks at the loaded timeline rooms whose day may have begun."""

log = logging.getLogger("crdt_server.day")


def day_ends(profile_date: str | None, zone: object, now: float) -> float | None:
    """When the wedding's day ends (midnight after it, in its zone), if ``now`` is in it."""
    if profile_date is None:
        return None
    day = date.fromisoformat(profile_date)
    start = local_moment(day, time(0), zone).timestamp()
    end = local_moment(day + timedelta(days=1), time(0), zone).timestamp()
    return end if start <= now < end else None


class DayRooms(Extension):
    """See the module docstring."""

    name = "day-rooms"

    def __init__(self, core: Core) -> None:
        self._core = core
        self._pins: dict[str, asyncio.Task[None]] = {}
        self._looks: asyncio.Task[None] | None = None

    async def start(self, core: Core) -> None:
        self._looks = asyncio.create_task(self._look_again(core), name="day-rooms")

    def pinned(self, wedding: str) -> bool:
        """Whether the wedding's rooms are held for its day here."""
        return wedding in self._pins

    async def on_load(self, room: RoomView) -> None:
        self._consider(room)

    async def _look_again(self, core: Core) -> None:
        """Each loaded timeline room, once every :data:`LOOK_EVERY` seconds."""
        while True:
            await clock.sleep(LOOK_EVERY)
            for room in list(core.registry.rooms.values()):
                try:
                    self._consider(room)
                except Exception:  # one unreadable profile never stops the looks
                    log.exception("could not read a wedding's day from its timeline")

    def _consider(self, room: RoomView) -> None:
        """Hold the wedding's rooms if ``room`` is its timeline and its day is today."""
        if room.kind != "timeline" or room.wedding_id in self._pins:
            return
        with room.doc.transaction():
            profile = read_profile(room.doc)
        until = day_ends(profile.date, profile.time_zone, clock.now())
        if until is None:
            return
        wedding = room.wedding_id
        self._pins[wedding] = asyncio.create_task(self._hold(wedding, until), name=f"day-{wedding}")

    async def _hold(self, wedding: str, until: float) -> None:
        weddings = self._core.weddings
        try:
            async with contextlib.AsyncExitStack() as rooms:
                for kind in DOCUMENT_KINDS:
                    await rooms.enter_async_context(weddings.room(f"{wedding}/{kind}"))
                await clock.sleep(max(0.0, until - clock.now()))
        except StoreError:
            log.warning("could not keep the rooms of a wedding loaded on its day")
        finally:
            self._pins.pop(wedding, None)

    async def close(self) -> None:
        pins = [*self._pins.values(), *([self._looks] if self._looks is not None else [])]
        for task in pins:
            task.cancel()
        for task in pins:
            with contextlib.suppress(asyncio.CancelledError):
                await task
