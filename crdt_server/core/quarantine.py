"""What survives an apply that never returned: the apply slot and the quarantine.

An update that makes pycrdt (or anything the apply runs, a change observer included) loop
for ever takes the event loop with it; the loop watchdog (:mod:`crdt_server.core.watchdog`)
then ends the process and the supervisor or service manager starts it again. So that the
update's sender cannot do it again on the next start, each room writes, before every
apply, who is being applied into a small memory-mapped file in the data directory, the
**apply slot** (:class:`ApplySlot`), and clears it once the apply returns: a few bytes
written in place, no system call per update. The page lives in the kernel's page cache,
so what was written survives the process however it ends.

A process that starts and finds its slot set knows its predecessor ended during an apply:
it logs the slot and **quarantines** the update's Yjs client ids in that room
(:class:`Quarantine`): any later update carrying one of them is refused (1007 on the
socket, 422 over HTTP) until an operator runs ``crdt-server quarantine lift``. By client
id and not by the update's hash: a client that reconnects re-sends the same items in its
sync step 2, merged with the rest of its state into other bytes. The quarantine is kept
in the store (the ``quarantined_clients`` table, through the SQL gateway), so it holds on
PostgreSQL as on SQLite, across restarts and across ``--workers``.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import mmap
import os
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from crdt_server import clock
from crdt_server.core.metrics import Metrics
from crdt_server.errors import Quarantined
from crdt_server.storage import DocumentStore, StoreError
from crdt_server.storage.gateway import Gateway, Table, schema_of, statements

__all__ = [
    "QUARANTINE_SCHEMA",
    "ApplySlot",
    "Interrupted",
    "Quarantine",
    "QuarantinedClient",
    "lift",
    "listed",
    "read_slot",
    "slot_path",
]

log = logging.getLogger("crdt_server.core.quarantine")

QUARANTINED_CLIENTS = Table(
    "quarantined_clients",
    "(wedding {text} NOT NULL, doc {text} NOT NULL, client {int} NOT NULL,"
    " sub {text} NOT NULL, at {real} NOT NULL, PRIMARY KEY (wedding, doc, client))",
)
QUARANTINE_SCHEMA = schema_of("quarantine", QUARANTINED_CLIENTS)
"""The core's own table (installed at start; erased with the wedding)."""

_SLOT_BYTES = 4096
_MAGIC = b"CRSL"
_HEADER = struct.Struct("<4sI")
"""Magic, then the length of what follows (0: no apply in progress)."""
_MAX_ROOM = 200
_MAX_SUB = 256
_MAX_CLIENTS = 400
"""An update naming more clients has the first ones recorded (the page has room for
these); a Yjs client sends its own, plus those of content it relays."""
REFRESH_SECONDS = 1.0
"""How often a process re-reads the quarantine from the store (a lift, another worker's
quarantine)."""


def slot_path(data_dir: Path, worker: int | None) -> Path:
    """The apply slot of one process: one per worker index (``--workers``)."""
    return data_dir / ("apply-slot" if worker is None else f"apply-slot.w{worker}")


@dataclass(frozen=True, slots=True)
class Interrupted:
    """What a process was applying when it ended (read from its slot at the next start)."""

    room: str
    sub: str
    clients: tuple[int, ...]


_MAX_SLOTS = 64
"""Processes that may share one data folder's apply slots (see :class:`ApplySlot`)."""


class ApplySlot:
    """One process's apply slot: :meth:`arm` before an apply, :meth:`clear` after it.

    A slot is held under an exclusive ``flock`` for the process's life, so processes that
    share a data folder (two servers on one SQLite file) never read or write each other's:
    the first of ``path``, ``path.2``, ``path.3``... that no live process holds is this
    one's. A process that died released its lock, so the next one to start on that folder
    takes its slot and reads what it was applying (:meth:`previous`)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.path, self._fd = _claim(path)
        try:
            if os.fstat(self._fd).st_size != _SLOT_BYTES:
                os.ftruncate(self._fd, _SLOT_BYTES)
            self._map = mmap.mmap(self._fd, _SLOT_BYTES)
        except BaseException:
            os.close(self._fd)
            raise
        self._armed: tuple[str, str, tuple[int, ...]] | None = None
        """What the slot's payload bytes hold (``clear`` keeps them, zeroing the length)."""
        self._armed_length = 0

    def previous(self) -> Interrupted | None:
        """What the previous process of this slot was applying when it ended, if it ended
        during an apply; ``None`` when it did not (or the slot is new or unreadable)."""
        return _read(self._map, self.path)

    def arm(self, room: str, sub: str, clients: Iterable[int]) -> None:
        """Record the apply about to run (the length last: a torn write reads as empty).

        The same apply as the last one armed (a writer's next update: same room, sender
        and clients) finds its payload still in the slot, so only the length is written."""
        armed = (room, sub, tuple(clients))
        if armed != self._armed:
            payload = _encode(room, sub, armed[2])
            _HEADER.pack_into(self._map, 0, _MAGIC, 0)
            self._map[_HEADER.size : _HEADER.size + len(payload)] = payload
            self._armed, self._armed_length = armed, len(payload)
        _HEADER.pack_into(self._map, 0, _MAGIC, self._armed_length)

    def clear(self) -> None:
        _HEADER.pack_into(self._map, 0, _MAGIC, 0)

    def close(self) -> None:
        self.clear()
        self._map.close()
        os.close(self._fd)  # the lock goes with it


def read_slot(path: Path) -> Interrupted | None:
    """What the slot at ``path`` records as being applied, without taking it (a live
    process may hold it), as the tests read a live process's slot."""
    try:
        data = path.read_bytes()[:_SLOT_BYTES]
    except FileNotFoundError:
        return None
    return _read(data.ljust(_SLOT_BYTES, b"\0"), path)


def _read(data: bytes | mmap.mmap, path: Path) -> Interrupted | None:
    magic, length = _HEADER.unpack_from(data, 0)
    if magic != _MAGIC or length == 0 or length > _SLOT_BYTES - _HEADER.size:
        return None
    try:
        return _decode(bytes(data[_HEADER.size : _HEADER.size + length]))
    except (struct.error, UnicodeDecodeError, ValueError):
        log.error("the apply slot %s is unreadable; ignored", path)
        return None


def _claim(path: Path) -> tuple[Path, int]:
    """The first of ``path``, ``path.2``... that no live process holds, opened and locked."""
    for n in range(1, _MAX_SLOTS + 1):
        candidate = path if n == 1 else path.with_name(f"{path.name}.{n}")
        fd = os.open(candidate, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        except BaseException:
            os.close(fd)
            raise
        return candidate, fd
    raise RuntimeError(f"{_MAX_SLOTS} processes already hold the apply slots beside {path}")


def _encode(room: str, sub: str, clients: Iterable[int]) -> bytes:
    room_b = room.encode()[:_MAX_ROOM]
    sub_b = sub.encode()[:_MAX_SUB]
    ids = [c for c in clients if 0 <= c < 1 << 64][:_MAX_CLIENTS]
    return b"".join(
        (
            struct.pack("<H", len(room_b)),
            room_b,
            struct.pack("<H", len(sub_b)),
            sub_b,
            struct.pack(f"<H{len(ids)}Q", len(ids), *ids),
        )
    )


def _decode(data: bytes) -> Interrupted:
    pos = 0
    parts: list[str] = []
    for _ in range(2):
        (n,) = struct.unpack_from("<H", data, pos)
        parts.append(data[pos + 2 : pos + 2 + n].decode(errors="replace"))
        pos += 2 + n
    (count,) = struct.unpack_from("<H", data, pos)
    clients = struct.unpack_from(f"<{count}Q", data, pos + 2)
    room, sub = parts
    if "/" not in room:
        raise ValueError("no room name")
    return Interrupted(room, sub, tuple(clients))


@dataclass(frozen=True, slots=True)
class QuarantinedClient:
    wedding: str
    doc: str
    client: int
    sub: str
    at: float


class Quarantine:
    """The quarantined (room, client id) pairs, kept in memory for the check on every
    update and re-read from the store every :data:`REFRESH_SECONDS`."""

    def __init__(self, store: DocumentStore | None = None, metrics: Metrics | None = None) -> None:
        self._store = store
        self._metrics = metrics
        self._rooms: dict[str, frozenset[int]] = {}
        self._refresher: asyncio.Task[None] | None = None

    def check(self, room: str, clients: Iterable[int]) -> None:
        """Raise :class:`Quarantined` (counted) if an update of ``room`` carries a
        quarantined client."""
        held = self._rooms.get(room)
        if held is None:
            return
        found = sorted(held.intersection(clients))
        if found:
            if self._metrics is not None:
                self._metrics.updates_rejected.labels("quarantined").inc()
            raise Quarantined(
                f"quarantined: this update carries Yjs client {found[0]}, whose update"
                " stalled the server; an operator must lift it"
            )

    def quarantined(self, room: str) -> frozenset[int]:
        return self._rooms.get(room, frozenset())

    def _gateway(self) -> Gateway | None:
        if self._store is None:
            return None
        try:
            return Gateway.of(self._store)
        except StoreError:
            return None  # a store without SQL tables: the quarantine lives in memory

    async def start(self, interrupted: Interrupted | None) -> None:
        """Install the table, add ``interrupted`` (the previous process's slot), read
        every quarantined client, and keep re-reading them."""
        if self._store is not None and self._gateway() is not None:
            await self._store.install(QUARANTINE_SCHEMA)
        if interrupted is not None:
            await self.add(interrupted)
        await self.refresh()
        self._refresher = asyncio.create_task(self._refresh_loop(), name="quarantine-refresh")

    async def close(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
            self._refresher = None

    async def add(self, interrupted: Interrupted) -> None:
        wedding, _, doc = interrupted.room.partition("/")
        now = clock.now()
        current = self._rooms.get(interrupted.room, frozenset())
        self._rooms[interrupted.room] = current | frozenset(interrupted.clients)
        self._count()
        gateway = self._gateway()
        if gateway is None:
            return
        insert = (
            "INSERT INTO {t}quarantined_clients (wedding, doc, client, sub, at)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
        )
        await gateway.run(
            statements(
                [
                    (insert, (wedding, doc, client, interrupted.sub, now))
                    for client in interrupted.clients
                ]
            )
        )

    async def refresh(self) -> None:
        gateway = self._gateway()
        if gateway is None:
            return
        rows = await gateway.fetch("SELECT wedding, doc, client FROM {t}quarantined_clients")
        rooms: dict[str, set[int]] = {}
        for wedding, doc, client in rows:
            rooms.setdefault(f"{wedding}/{doc}", set()).add(int(client))
        self._rooms = {room: frozenset(ids) for room, ids in rooms.items()}
        self._count()

    def _count(self) -> None:
        if self._metrics is not None:
            self._metrics.quarantined_clients = sum(map(len, self._rooms.values()))

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(REFRESH_SECONDS)
            try:
                await self.refresh()
            except StoreError as exc:  # kept as it was; the next round tries again
                log.warning("could not re-read the quarantine: %s", exc)


async def listed(store: DocumentStore) -> list[QuarantinedClient]:
    """Every quarantined client (``crdt-server quarantine list``)."""
    await store.install(QUARANTINE_SCHEMA)
    return await Gateway.of(store).fetch_as(
        QuarantinedClient,
        "SELECT wedding, doc, client, sub, at FROM {t}quarantined_clients"
        " ORDER BY wedding, doc, client",
    )


async def lift(
    store: DocumentStore, wedding: str | None, doc: str | None, client: int | None
) -> int:
    """Lift the quarantine of the clients that match (every one when all are ``None``);
    how many were lifted. Running servers notice within :data:`REFRESH_SECONDS`."""
    await store.install(QUARANTINE_SCHEMA)
    where, params = [], []
    for column, value in (("wedding", wedding), ("doc", doc), ("client", client)):
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    delete = f"DELETE FROM {{t}}quarantined_clients{clause}"  # noqa: S608
    [lifted] = await Gateway.of(store).run(statements([(delete, params)], count=True))
    return int(lifted)
