"""The rooms loaded in this process: one load per room, unload only after a flush.

However many clients join a room at once, its log is read from the store once. A room
whose last connection left stays loaded for ``room_idle_seconds`` (a reconnect finds it
warm), then is flushed and unloaded. A room whose store failed is dropped at once, so the
next join reloads what is really committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Collection, Hashable, Mapping, Sequence
from typing import Any

from crdt_server.cluster.bus import Bus
from crdt_server.core.keepalive import Keepalive
from crdt_server.core.pacing import Pacer
from crdt_server.core.room import Room
from crdt_server.core.services import RoomServices
from crdt_server.errors import CloseCode, Overloaded
from crdt_server.storage import StoreError

__all__ = ["RoomRegistry"]

log = logging.getLogger("crdt_server.core.registry")


class RoomRegistry:
    """The rooms of this process; every room it loads is given its :class:`RoomServices`."""

    def __init__(self, services: RoomServices) -> None:
        self.services = services
        self._store = services.store
        self.quarantine = services.quarantine
        """The quarantined clients (checked before every apply), if the server keeps one."""
        self.hooks = services.hooks
        settings = self._settings = services.settings
        self._bus = services.bus
        self.metrics = services.metrics
        self.health = services.health
        self.pacer = Pacer(settings.turn_budget_seconds, self.metrics)
        """Turns for the sessions' updates under overload (see :mod:`crdt_server.core.pacing`)."""
        self.keepalive = Keepalive()
        """The ``/sync`` sessions' keepalive ticks (see :mod:`crdt_server.core.keepalive`)."""
        # Loads wait their turn (FIFO): a reconnect storm never stampedes the store.
        self._load_slots = asyncio.Semaphore(settings.max_concurrent_loads)
        self._rooms: dict[str, Room] = {}
        self._weddings: dict[str, dict[str, Room]] = {}
        """Wedding id -> its loaded rooms by name (:meth:`wedding_rooms`)."""
        self._loading: dict[str, asyncio.Task[Room]] = {}
        self._users: dict[str, int] = {}
        self._unloads: dict[str, asyncio.TimerHandle] = {}
        self._unloading: set[asyncio.Task[None]] = set()
        self._early: dict[str, list[tuple[Sequence[int], Sequence[bytes]]]] = {}
        self._expiry: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def bus(self) -> Bus:
        return self._bus

    async def start(self) -> None:
        """Join the bus (if any) and start expiring presence of vanished processes."""
        await self._bus.start(self)
        self._expiry = asyncio.create_task(self._expire_remote_presence(), name="presence-expiry")

    @property
    def rooms(self) -> dict[str, Room]:
        """Loaded rooms by name (read only)."""
        return self._rooms

    def wedding_rooms(self, wedding_id: str) -> Collection[Room]:
        """The wedding's loaded rooms (read only): its documents' and those derived from
        them, found without looking at any other wedding's."""
        return self._weddings.get(wedding_id, {}).values()

    def _keep(self, room: Room) -> None:
        self._rooms[room.name] = room
        self._weddings.setdefault(room.wedding_id, {})[room.name] = room
        self.metrics.rooms_loaded = len(self._rooms)

    def _drop(self, room: Room) -> None:
        del self._rooms[room.name]
        self._bus.unwatch(room.name)
        rooms = self._weddings.get(room.wedding_id)
        if rooms is not None:
            rooms.pop(room.name, None)
            if not rooms:
                del self._weddings[room.wedding_id]
        self.metrics.rooms_loaded = len(self._rooms)

    async def acquire(self, name: str) -> Room:
        """Return the loaded room ``name``, loading it once; pair with :meth:`release`."""
        if self._closed:
            raise RuntimeError("registry is closed")
        self._users[name] = self._users.get(name, 0) + 1
        timer = self._unloads.pop(name, None)
        if timer is not None:
            timer.cancel()
        try:
            room = self._rooms.get(name)
            if room is None:
                task = self._loading.get(name)
                if task is None:
                    if len(self._rooms) + len(self._loading) >= self._settings.max_rooms:
                        raise Overloaded("this server has as many rooms loaded as it may")
                    task = asyncio.create_task(self._load(name), name=f"load-{name}")
                    self._loading[name] = task
                room = await asyncio.shield(task)
            return room
        except BaseException:
            self._release_name(name)
            raise

    async def _load(self, name: str) -> Room:
        # Open on the bus before the store is read: another process's later commits are
        # sent here (and held in ``_early`` until the room is loaded).
        self._bus.watch(name)
        try:
            async with self._load_slots:
                try:
                    room = await Room.load(name, self.services, self._dropped)
                except StoreError:
                    self.metrics.store_errors.labels("load").inc()
                    raise
            self._keep(room)
            # Subscribed before loading: apply what other processes committed meanwhile.
            for seqs, updates in self._early.pop(name, []):
                room.apply_remote(seqs, updates)
            log.debug("room %s loaded (seq %d)", name, room.last_seq)
            return room
        except BaseException:
            self._bus.unwatch(name)
            raise
        finally:
            self._loading.pop(name, None)
            self._early.pop(name, None)

    def release(self, room: Room) -> None:
        self._release_name(room.name)

    def _release_name(self, name: str) -> None:
        users = self._users.get(name, 0) - 1
        if users > 0:
            self._users[name] = users
            return
        self._users.pop(name, None)
        if name in self._rooms and not self._closed:
            loop = asyncio.get_running_loop()
            self._unloads[name] = loop.call_later(
                self._settings.room_idle_seconds, self._start_unload, name
            )

    def _start_unload(self, name: str) -> None:
        self._unloads.pop(name, None)
        task = asyncio.create_task(self._unload(name), name=f"unload-{name}")
        self._unloading.add(task)
        task.add_done_callback(self._unloading.discard)

    async def _unload(self, name: str) -> None:
        room = self._rooms.get(name)
        if room is None:
            return
        await room.flush()
        # Someone may have joined while we flushed; then the room stays.
        if self._users.get(name, 0) == 0 and self._rooms.get(name) is room:
            self._drop(room)
            room.close()
            log.debug("room %s unloaded", name)

    def forget(self, room: Room) -> None:
        """Unload ``room`` now, without a flush (its document was deleted or failed)."""
        self.services.usage.set(room.name, 0)  # read again from the store at a reload
        self._dropped(room)
        room.close()

    def _dropped(self, room: Room) -> None:
        if self._rooms.get(room.name) is room:
            self._drop(room)
        timer = self._unloads.pop(room.name, None)
        if timer is not None:
            timer.cancel()

    def close_sessions(self, user_id: str, wedding: str | None, code: int, reason: str) -> int:
        """Close every connection of ``user_id`` (in one wedding, or all); return how many."""
        closed = 0
        for name, room in self._rooms.items():
            if wedding is not None and not name.startswith(f"{wedding}/"):
                continue
            for conn in list(room.connections):
                if conn.principal.user_id == user_id and conn.principal.authenticated:
                    conn.request_close(code, reason)
                    closed += 1
        return closed

    # -- what other processes say (BusHandler) -----------------------------------------

    def on_updates(self, doc: str, seqs: Sequence[int], updates: Sequence[bytes]) -> None:
        room = self._rooms.get(doc)
        if room is not None:
            room.apply_remote(seqs, updates)
        elif doc in self._loading:
            self._early.setdefault(doc, []).append((seqs, updates))

    def on_awareness(self, doc: str, origin: str, payload: bytes) -> None:
        room = self._rooms.get(doc)
        if room is not None:
            room.apply_remote_awareness(origin, payload)

    def on_stateless(self, room: str, text: str | Mapping[str, str]) -> None:
        loaded = self._rooms.get(room)
        if loaded is not None:
            loaded.members.relay_stateless(text)

    def on_event(self, event: dict[str, Any]) -> None:
        self.hooks.bus_event(event)

    async def committed_seq(self) -> int:
        return await self._store.last_seq()

    async def on_gap(self, seqs: Sequence[int]) -> None:
        docs = set((await self._store.docs_of(seqs)).values())
        for name in docs:
            room = self._rooms.get(name)
            if room is not None:
                await room.catch_up()

    def on_opened(self, topic: str) -> None:
        self.hooks.opened_elsewhere(topic)

    async def on_missed(self, docs: Sequence[str]) -> None:
        for name in docs:
            loading = self._loading.get(name)
            if loading is not None:
                with contextlib.suppress(Exception):
                    await asyncio.shield(loading)
            room = self._rooms.get(name)
            if room is not None:
                await room.catch_up()

    async def on_reconnect(self) -> None:
        for room in list(self._rooms.values()):
            await room.catch_up()

    async def _expire_remote_presence(self) -> None:
        def remote(owner: Hashable) -> bool:
            return isinstance(owner, tuple) and owner[:1] == ("remote",)

        timeout = self._settings.presence_timeout_seconds
        while True:
            await asyncio.sleep(timeout / 6)
            older_than = time.monotonic() - timeout
            for room in list(self._rooms.values()):
                room.expire_presence(older_than, remote)

    async def close(self) -> None:
        """Flush every room, close every connection with 1012, and unload everything."""
        self._closed = True
        if self._expiry is not None:
            self._expiry.cancel()
        for timer in self._unloads.values():
            timer.cancel()
        self._unloads.clear()
        for task in list(self._loading.values()):
            with contextlib.suppress(Exception):
                await task
        rooms = list(self._rooms.values())
        for room in rooms:
            await room.flush()
        for room in rooms:
            room.close_all(CloseCode.SERVICE_RESTART, "server restart")
        for room in rooms:
            for conn in list(room.connections):
                await conn.wait_closed()
        self.keepalive.close()
        if self._unloading:
            await asyncio.gather(*self._unloading, return_exceptions=True)
        for room in self._rooms.values():
            room.close()
        self._rooms.clear()
        self._weddings.clear()
        await self._bus.close()
