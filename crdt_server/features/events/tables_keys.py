"""The events' keys: each Yjs item an event tells of is told once in a wedding, whichever
process derives the event (:attr:`~crdt_server.storage.NewEvent.key`, the
``event_keys`` table of :mod:`~crdt_server.features.events.tables`). Steps to compose into
the transaction that stores the events: an event of items told before is left out, and a
change told in part is told for the rest (:meth:`Derivation.rest`), less the items
overwritten before anyone told them."""

from __future__ import annotations

import json

import msgspec

from crdt_server.features.events.domain import Derivation, DerivedEvent, told_entries
from crdt_server.storage import NewEvent
from crdt_server.storage.gateway import Tx, escape_like, rows_as

__all__ = ["first_of_their_keys"]


class _Key(msgspec.Struct, frozen=True):
    wedding: str
    key: str


def first_of_their_keys(events: list[NewEvent], when: float, chunk: int) -> Tx[list[NewEvent]]:
    """``events`` less those that tell of an item (:attr:`NewEvent.key`: the items, space
    separated) an event of the wedding stored before told of; the items are kept, in the
    same transaction (``chunk`` rows a statement). Events of this commit may share items
    (an entry's update told as two events). The events of a change
    (:class:`DerivedEvent`) some of whose items were told before and some not give way to
    the events of the rest (:meth:`Derivation.rest`) of those not overwritten since."""
    keys = list(
        dict.fromkeys((e.wedding, k) for e in events if e.key is not None for k in e.key.split())
    )
    new: set[tuple[str, str]] = set()
    for start in range(0, len(keys), chunk):
        part = keys[start : start + chunk]
        marks = ", ".join(["(?, ?, ?)"] * len(part))
        params = [value for wedding, key in part for value in (wedding, key, when)]
        added = yield from rows_as(
            _Key,
            f"INSERT INTO {{t}}event_keys (wedding, key, at) VALUES {marks}"  # noqa: S608
            " ON CONFLICT (wedding, key) DO NOTHING RETURNING wedding, key",
            *params,
        )
        new.update((k.wedding, k.key) for k in added)
    kept: list[NewEvent] = []
    rested: set[int] = set()
    for e in events:
        derivation = e.derivation if isinstance(e, DerivedEvent) else None
        if e.key is None:
            kept.append(e)
            continue
        mine = e.key.split() if derivation is None else list(derivation.slots)
        untold = [k for k in mine if (e.wedding, k) in new]
        if len(untold) == len(mine):
            kept.append(e)
        elif untold and derivation is not None and id(derivation) not in rested:
            rested.add(id(derivation))
            fresh = yield from _not_overwritten(e.wedding, untold, new)
            if fresh:
                kept += yield from _rest(e, derivation, fresh)
    return kept


def _not_overwritten(wedding: str, untold: list[str], new: set[tuple[str, str]]) -> Tx[list[str]]:
    """``untold`` less the items written before an item of the same Yjs client that an
    event of the wedding told of (``new``: the keys this transaction recorded, told by
    nobody before). A client's clocks follow what it wrote, so whoever told its later
    item had integrated the earlier one first, and would have told it had it still been
    there: it was overwritten before anyone told it (a server whose commit of a guest came
    after another server's commit of the guest with the answer that replaced its
    ``pending``), and telling it would undo what was told."""
    parsed = [(key, key.split(":")) for key in untold]
    latest: dict[tuple[str, str], int] = {}
    for _, (doc, how, client, _) in parsed:
        if how != "w" or (doc, client) in latest:
            continue
        prefix = f"{doc}:w:{client}:"
        rows = yield from rows_as(
            _Key,
            "SELECT wedding, key FROM {t}event_keys WHERE wedding = ? AND key LIKE ? ESCAPE '!'",
            wedding,
            escape_like(prefix) + "%",
        )
        clocks = [int(r.key[len(prefix) :]) for r in rows if (wedding, r.key) not in new]
        latest[(doc, client)] = max(clocks, default=-1)
    return [
        key
        for key, (doc, how, client, clock) in parsed
        if how != "w" or int(clock) > latest[(doc, client)]
    ]


class _Told(msgspec.Struct, frozen=True):
    type: str
    data: str


def _rest(event: NewEvent, derivation: Derivation, untold: list[str]) -> Tx[list[NewEvent]]:
    """The events of the ``untold`` items of ``event``'s change, from what the wedding's
    stored events told of its entry (read here, in the transaction that records the items:
    whoever told the others has committed)."""
    entry = derivation.change.id
    needle = f'"id":{json.dumps(entry)}'
    pattern = "%" + escape_like(needle) + "%"
    rows = yield from rows_as(
        _Told,
        "SELECT type, data FROM {t}events WHERE wedding = ? AND doc = ?"
        " AND data LIKE ? ESCAPE '!' ORDER BY seq",
        event.wedding,
        derivation.doc,
        pattern,
    )
    told = told_entries(derivation.doc, entry, ((r.type, r.data) for r in rows))
    return [
        NewEvent(
            event.wedding,
            told_now.type,
            json.dumps(told_now.data, separators=(",", ":")),
            event.doc,
            sub=event.sub,
            role=event.role,
            priority=event.priority,
        )
        for told_now in derivation.rest(told, untold)
    ]
