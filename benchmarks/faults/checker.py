"""The campaign's checker: what the store and every client's replica hold after a schedule
and its heal window, against what each client sent and had acknowledged.

- **lost**: an acknowledged op missing from the store or from any replica of its wedding
  (a guest gone, a token gone from its notes, an RSVP answer or a name that neither it nor
  a later write of the same writer holds);
- **diverged**: a replica whose state vector or content differs from the store's;
- **rooms behind**: a server whose room of a wedding (as a fresh client synced from it
  directly, not through HAProxy, receives it) differs from the store: clients that connect
  there are served the room, not the store;
- **events**: the wedding's events numbered 1..n with no gap, one ``guest.added`` per
  guest in the store, each guest's ``guest.rsvp_changed`` a chain from ``pending`` to the
  stored answer (a doubled event breaks it, so does a missing one);
- **unavailability**: the longest an op of a wedding waited for its acknowledgement."""

from __future__ import annotations

import asyncio
import base64
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import websockets
from pycrdt import Doc, Map, YMessageType, create_sync_message

from crdt_server.codec.protocol import SyncStep2, decode_message
from crdt_server.codec.updates import decode_state_vector

__all__ = [
    "Replica",
    "StoreView",
    "check_events",
    "content_of",
    "lost_ops",
    "read_store",
    "room_state",
    "same_state",
]


def content_of(doc: Doc[Any]) -> dict[str, Any]:
    """The guests of a replica: id -> fields, notes as a plain string."""
    guests = doc.get("guests", type=Map)
    return {
        gid: {k: str(v) if k == "notes" else v for k, v in entry.items()}
        if isinstance(entry, Map)
        else entry
        for gid, entry in guests.items()
    }


@dataclass
class Replica:
    name: str
    wedding: str
    protocol: str
    ops: list[dict[str, Any]]
    reconnects: int
    state_vector: bytes
    content: dict[str, Any]

    @classmethod
    def of(cls, result: dict[str, Any]) -> Replica:
        doc: Doc[Any] = Doc()
        doc.apply_update(base64.b64decode(result["state"]))
        return cls(
            result["name"], result["wedding"], result["protocol"], result["ops"],
            int(result.get("reconnects", 0)), doc.get_state(), content_of(doc),
        )  # fmt: skip


def same_state(replica: Replica, store: StoreView) -> bool:
    """Whether ``replica`` holds exactly what the store holds (state vector and content)."""
    return (
        decode_state_vector(replica.state_vector) == decode_state_vector(store.state_vector)
        and replica.content == store.content
    )


@dataclass
class StoreView:
    wedding: str
    state_vector: bytes
    content: dict[str, Any]
    events: list[tuple[int, str, dict[str, Any]]] = field(default_factory=list)


async def read_store(url: str, wedding: str) -> StoreView:
    """The wedding's guests document as the store holds it (every stored update applied)."""
    import json

    conn = await asyncpg.connect(url, timeout=10)
    try:
        rows = await conn.fetch(
            "SELECT data FROM updates WHERE doc = $1 ORDER BY seq", f"{wedding}/guests"
        )
        events = await conn.fetch(
            "SELECT seq, type, data FROM events WHERE wedding = $1 ORDER BY seq", wedding
        )
    finally:
        await conn.close()
    doc: Doc[Any] = Doc()
    for row in rows:
        doc.apply_update(bytes(row["data"]))
    return StoreView(
        wedding,
        doc.get_state(),
        content_of(doc),
        [(int(r["seq"]), str(r["type"]), json.loads(r["data"])) for r in events],
    )


def lost_ops(ops: list[dict[str, Any]], content: dict[str, Any]) -> list[str]:
    """The acknowledged ``ops`` (one writer's, in order) that ``content`` does not hold."""
    lost = []
    for i, op in enumerate(ops):
        if op["acked"] is None:
            continue
        entry = content.get(op["guest"])
        if not isinstance(entry, dict):
            lost.append(op["id"])
            continue
        if op["kind"] == "text":
            if op["value"] not in entry.get("notes", ""):
                lost.append(op["id"])
            continue
        # An answer or a name: this write, or a later one of the same writer to the field.
        field_name = "rsvp" if op["kind"] == "rsvp" else "name"
        later = {
            o["value"]
            for o in ops[i:]
            if o["guest"] == op["guest"]
            and (("rsvp" if o["kind"] == "rsvp" else "name") == field_name)
            and o["kind"] != "text"
        }
        if op["kind"] == "guest":
            later |= {
                o["value"] for o in ops[i:] if o["guest"] == op["guest"] and o["kind"] == "name"
            }
            if entry.get("name") not in later:
                lost.append(op["id"])
        elif entry.get(field_name) not in later:
            lost.append(op["id"])
    return lost


@dataclass
class EventCheck:
    missing: int = 0
    duplicated: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.missing == 0 and self.duplicated == 0


def check_events(store: StoreView) -> EventCheck:
    check = EventCheck()
    seqs = [seq for seq, _, _ in store.events]
    if seqs != list(range(1, len(seqs) + 1)):
        gaps = len(set(range(1, (max(seqs) if seqs else 0) + 1)) - set(seqs))
        check.missing += gaps
        check.notes.append(f"{store.wedding}: event seqs with {gaps} gaps")
    added = Counter(d.get("id") for _, t, d in store.events if t == "guest.added")
    # An answer committed together with its guest is in the guest's guest.added.
    first_answer = {
        d.get("id"): (d.get("fields") or {}).get("rsvp", "pending")
        for _, t, d in store.events
        if t == "guest.added"
    }
    for gid in store.content:
        count = added.get(gid, 0)
        if count == 0:
            check.missing += 1
            check.notes.append(f"{store.wedding}: no guest.added for {gid}")
        elif count > 1:
            check.duplicated += count - 1
            check.notes.append(f"{store.wedding}: guest.added x{count} for {gid}")
    chains: dict[str, list[tuple[Any, Any]]] = defaultdict(list)
    for _, t, d in store.events:
        if t == "guest.rsvp_changed":
            chains[str(d.get("id"))].append((d.get("from"), d.get("to")))
    for gid, entry in store.content.items():
        answer = entry.get("rsvp") if isinstance(entry, dict) else None
        state = first_answer.get(gid, "pending")
        previous: tuple[Any, Any] | None = None
        for before, after in chains.get(gid, []):
            if before != state:
                if (before, after) == previous:
                    check.duplicated += 1
                else:
                    check.missing += 1
                check.notes.append(
                    f"{store.wedding}: rsvp chain of {gid} breaks at {before}->{after}"
                )
            state = after
            previous = (before, after)
        if answer is not None and state != answer:
            check.missing += 1
            check.notes.append(f"{store.wedding}: {gid} answered {answer}, events end at {state}")
    return check


async def room_state(
    server: str, wedding: str, timeout: float = 10
) -> tuple[bytes, dict[str, Any]]:
    """The state vector and guests of ``server``'s room of ``wedding`` (``server`` an
    ``http://`` URL): a fresh client's sync step 1 with nothing, answered by the room's whole
    state in a sync step 2. A room not loaded there is loaded from the store for it."""
    url = server.replace("http://", "ws://", 1) + f"/sync/{wedding}/guests"
    async with websockets.connect(url, open_timeout=timeout, ping_interval=None) as socket:
        empty: Doc[Any] = Doc()
        await socket.send(create_sync_message(empty))
        async with asyncio.timeout(timeout):
            async for message in socket:
                if not isinstance(message, bytes) or message[:1] != bytes([YMessageType.SYNC]):
                    continue  # awareness
                decoded = decode_message(message)
                if isinstance(decoded, SyncStep2):
                    doc: Doc[Any] = Doc()
                    doc.apply_update(decoded.update)
                    return doc.get_state(), content_of(doc)
    raise ConnectionError(f"{server} closed before its sync step 2 of {wedding}")
