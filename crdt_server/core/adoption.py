"""The adoption window: after a store restore or a failover, the lost tail comes back from
the clients that hold it, each edit credited to its writer.

A restore from a backup (``crdt-server restore``) or a failover to a replica loses what
was committed after the backup: its content, and the owners of the ids first written in
it (:mod:`crdt_server.core.client_ids`). The clients still hold that tail, their own edits
and the others' they received, and send it in their sync step 2 when they reconnect.
Outside a window, the first of them to come back would be refused (its step 2 carries
items of ids other people own, past what the store holds: the squatting case), so the
operator opens one: ``crdt-server clients adopt --since SEQ``, ``SEQ`` being the last
update the restored store holds (``restore`` prints it).

While a window is open (until its end, at most :data:`MAX_SECONDS` after it opened), an
update whose new items are under ids other people own is not refused: it is split by
owner and each part is taken in as its owner's (history, change records and activity
credit the owner; the channel, the relayer's), so every re-sent edit survives, credited
right. An owner's ids leave the window in a document as soon as that owner has written
to it after ``SEQ`` (their client is back and re-sent its tail itself): past that, a
relay of new items under them is a squat again. Ids the restore left without an owner
(first written after the backup) are claimed by nobody while the window is open: their
items are credited to whoever re-sent them first (the store cannot know their writer) and
the id goes to its first writer once the window has ended.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass

from pycrdt import get_update

from crdt_server import clock
from crdt_server.actor import Actor
from crdt_server.codec.items import read_items
from crdt_server.codec.protocol import write_var_uint
from crdt_server.core.payloads import Sender
from crdt_server.storage.gateway import Gateway, Sql, Table, Tx, schema_of

__all__ = [
    "ADOPTED",
    "ADOPTIONS_SCHEMA",
    "DEFAULT_SECONDS",
    "MAX_SECONDS",
    "Adoptions",
    "Window",
    "open_window",
    "split",
]

DEFAULT_SECONDS = 24 * 3600.0
"""How long a window stays open unless the operator says otherwise: a day, long enough for
the devices that were offline when the store went back to come back."""
MAX_SECONDS = 7 * 24 * 3600.0
"""The longest window: a window is trust lent to relayers, so it always ends."""
ADOPTED = "adopted:"
"""The origin prefix of a part taken in for its owner (``adopted:`` + the relayer's
channel): what tells an owner's own writes from what was adopted for them."""
_SEEN_SECONDS = 1.0
"""How long this process trusts what it read of the windows (a window opened by the
command reaches running servers within it)."""
_NEVER = 2**32 - 1
"""A clock past any (yrs counts clocks in 32 bits)."""

ADOPTIONS = Table(
    "yjs_client_adoptions",
    "(wedding {ctext} NOT NULL, since {int} NOT NULL, until {real} NOT NULL, at {real} NOT NULL)",
    wedding=False,
)
ADOPTIONS_SCHEMA = schema_of("client_adoptions", ADOPTIONS)
"""The core's table of adoption windows (``wedding`` empty: every wedding)."""


@dataclass(frozen=True, slots=True)
class Window:
    """One adoption window: ``wedding`` (empty: every wedding), the restore point ``since``
    (the last update seq the restored store held) and its end (``until``, epoch seconds)."""

    wedding: str
    since: int
    until: float


class Adoptions:
    """The adoption windows, as this process reads them from the store (see the module
    docstring). Without a store that has SQL tables, none is ever open."""

    def __init__(self, gateway: Gateway | None) -> None:
        self._gateway = gateway
        self._windows: list[Window] = []
        self._read_at = -_SEEN_SECONDS
        self._reading: asyncio.Task[None] | None = None
        """The read of the windows under way: those who find them stale meanwhile wait
        for it (a thousand writers new to this process at once read them once, not a
        thousand times)."""

    async def window(self, wedding: str) -> Window | None:
        """The open window that covers ``wedding`` (the latest restore point), if any."""
        if self._gateway is None:
            return None
        now = clock.now()
        if now - self._read_at >= _SEEN_SECONDS:
            if self._reading is None:
                self._reading = asyncio.create_task(self._read(self._gateway, now))
            await asyncio.shield(self._reading)
        found = [w for w in self._windows if w.until > now and w.wedding in ("", wedding)]
        return max(found, key=lambda w: w.since) if found else None

    async def _read(self, gateway: Gateway, now: float) -> None:
        try:
            rows = await gateway.fetch(
                "SELECT wedding, since, until FROM {t}yjs_client_adoptions WHERE until > ?", now
            )
            self._windows = [Window(str(w), int(s), float(u)) for w, s, u in rows]
            self._read_at = now
        finally:
            self._reading = None

    async def is_back(self, window: Window, doc: str, owner: str) -> bool:
        """True if ``owner`` wrote to ``doc`` after the window's restore point (not what
        was adopted for them): their ids there have left the window."""
        if self._gateway is None:
            return True
        rows = await self._gateway.fetch(
            "SELECT 1 FROM {t}history WHERE doc = ? AND sub = ? AND seq > ?"
            " AND origin NOT LIKE ? AND origin NOT LIKE ? LIMIT 1",
            doc,
            owner,
            window.since,
            f"{ADOPTED}%",
            f"server:{ADOPTED}%",
        )
        return bool(rows)

    async def credited(self, wedding: str, owner: str, relayed: Sender) -> Sender:
        """Who a part adopted for ``owner`` is credited to: the owner, in the role they
        last wrote in (the server for its own ids), through the relayer's channel."""
        if owner == "":
            return Sender(Actor("server", "server"), f"server:{ADOPTED}{relayed.origin}")
        role = "member"
        if self._gateway is not None:
            rows = await self._gateway.fetch(
                "SELECT role FROM {t}history WHERE doc LIKE ? AND sub = ? AND role <> ''"
                " ORDER BY seq DESC LIMIT 1",
                f"{wedding}/%",
                owner,
            )
            if rows and rows[0][0]:
                role = str(rows[0][0])
        return Sender(Actor(owner, role), f"{ADOPTED}{relayed.origin}")


async def open_window(gateway: Gateway, wedding: str, since: int, seconds: float) -> Window:
    """Open a window (the ``clients adopt`` command): ``since`` must be an update the store
    holds, ``seconds`` in ``(0, MAX_SECONDS]``."""
    if not 0 < seconds <= MAX_SECONDS:
        raise ValueError(f"a window lasts more than 0 and at most {MAX_SECONDS:.0f} seconds")
    rows = await gateway.fetch("SELECT MAX(seq) FROM {t}history")
    last = int(rows[0][0] or 0) if rows else 0
    if not 0 <= since <= last:
        raise ValueError(f"--since {since}: the store's updates end at seq {last}")
    now = clock.now()
    window = Window(wedding, since, now + seconds)
    await gateway.run(_insert(window, now))
    return window


def _insert(window: Window, now: float) -> Tx[None]:
    yield Sql(
        "INSERT INTO {t}yjs_client_adoptions (wedding, since, until, at) VALUES (?, ?, ?, ?)",
        (window.wedding, window.since, window.until, now),
    )


def split(update: bytes, owners: Mapping[int, str]) -> list[tuple[str | None, bytes]]:
    """``update`` as one part per owner of ``owners`` (client id: owner) and one part
    (owner ``None``) for its other clients, its delete set and any content left: each
    part holds its clients' structs alone (no delete set but the last part's). Parts
    that would be empty are left out."""
    clients = {item.id[0] for item in read_items(update).items} | set(owners)
    groups: dict[str, set[int]] = {}
    for client, owner in owners.items():
        groups.setdefault(owner, set()).add(client)
    parts: list[tuple[str | None, bytes]] = []
    for owner, mine in groups.items():
        part = get_update(update, _all_but(clients, mine))
        decoded = read_items(part)
        if decoded.items or decoded.gcs:
            parts.append((owner, part[: _structs_end(part)] + b"\x00"))
    rest = get_update(update, _all_but(set(owners), set()))
    parts.append((None, rest))
    return parts


def _all_but(clients: set[int], kept: set[int]) -> bytes:
    """A state vector that has seen everything of ``clients`` but ``kept``."""
    others = sorted(clients - kept)
    vector = bytearray(write_var_uint(len(others)))
    for client in others:
        vector += write_var_uint(client) + write_var_uint(_NEVER)
    return bytes(vector)


def _structs_end(update: bytes) -> int:
    """Where ``update``'s structs end (its delete set begins)."""
    return read_items(update).structs_end
