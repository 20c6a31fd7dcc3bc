"""Resolving a conflict: by domain operations made as the resolver (tried first on copies
of the documents, then committed), or by acknowledging it; a concurrent edit (a stored
finding) is settled by the concurrent-edits extension. The keeper
(:class:`crdt_server.features.conflicts.extension.ConflictsKeeper`) answers the routes with
these."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pycrdt import Doc, Map

from crdt_server import clock
from crdt_server.actor import Actor
from crdt_server.core.hooks import Sender
from crdt_server.core.views import WeddingsView
from crdt_server.documents import OperationError, apply_operation
from crdt_server.documents.operations import OPERATIONS
from crdt_server.features.conflicts.domain import SENDER, conflict_event
from crdt_server.features.conflicts.extension_concurrent import ConcurrentEdits
from crdt_server.names import CONFLICTS
from crdt_server.storage import NewEvent

if TYPE_CHECKING:
    from crdt_server.features.events import EventLog

__all__ = ["acknowledge_checked", "apply_ops", "mark", "settle", "tried"]


async def acknowledge_checked(
    service: WeddingsView, events: EventLog | None, wedding_id: str, key: str, actor: Actor
) -> str | None:
    """Record in the conflicts room that ``actor`` has seen checked finding ``key`` (not a
    stored one) and keeps the state as it is; the id of the ``conflict.acknowledged`` event
    (``None`` if this person had already acknowledged it, or no event log). Raises
    :class:`LookupError` if the room holds no such finding."""
    found: list[dict[str, Any]] = []
    first: list[bool] = []

    def write(doc: Doc[Any]) -> None:
        entries = doc.get(CONFLICTS, type=Map)
        entry = entries.get(key)
        if not isinstance(entry, dict):
            return
        found.append(entry)
        seen = [a for a in entry.get("acknowledged") or [] if isinstance(a, dict)]
        if any(a.get("sub") == actor.sub for a in seen):
            return
        first.append(True)
        seen.append({"sub": actor.sub, "role": actor.role, "at": clock.now()})
        entries[key] = {**entry, "acknowledged": seen}

    await service.edit(f"{wedding_id}/{CONFLICTS}", write, SENDER)
    if not found:
        raise LookupError(key)
    if not first or events is None:
        return None
    entry = found[0]
    event = conflict_event(
        wedding_id, "conflict.acknowledged", key, entry.get("code"), entry.get("paths"), actor
    )
    stored = (await events.record([event])).events[0]
    return f"{wedding_id}:{stored.seq}"


def tried(
    live: Mapping[str, Doc[Any]], ops: Sequence[Mapping[str, Any]]
) -> tuple[dict[str, Doc[Any]], dict[str, list[Mapping[str, Any]]]]:
    """``ops`` tried together on copies of the ``live`` documents: the copies after them,
    and each document's operations in order. An invalid one raises
    :class:`documents.OperationError` naming ``ops[i]``; nothing live is changed."""
    scratch: dict[str, Doc[Any]] = {}
    for kind, doc in live.items():
        scratch[kind] = Doc()
        scratch[kind].apply_update(doc.get_update())
    by_kind: dict[str, list[Mapping[str, Any]]] = {}
    for i, op in enumerate(ops):
        name = op.get("op")
        if not isinstance(name, str) or name not in OPERATIONS:
            raise OperationError(
                f"must be one of {', '.join(sorted(OPERATIONS))}", path=f"ops[{i}].op"
            )
        kind = OPERATIONS[name]
        scratch.setdefault(kind, Doc())
        try:
            apply_operation(scratch[kind], kind, op, related=scratch)
        except OperationError as exc:
            where = f"ops[{i}].{exc.path}" if exc.path else f"ops[{i}]"
            raise OperationError(str(exc), reason=exc.reason, path=where) from exc
        by_kind.setdefault(kind, []).append(op)
    return scratch, by_kind


async def apply_ops(
    service: WeddingsView,
    wedding_id: str,
    by_kind: Mapping[str, Sequence[Mapping[str, Any]]],
    sender: Sender,
) -> None:
    """Commit each document's operations in one update, made as ``sender``."""
    for kind, kind_ops in by_kind.items():

        def change(doc: Doc[Any], kind: str = kind, todo: Any = kind_ops) -> None:
            with doc.transaction(origin=sender.origin):
                for op in todo:
                    apply_operation(doc, kind, op, origin=sender.origin)

        await service.edit(f"{wedding_id}/{kind}", change, sender)


async def settle(
    concurrent: ConcurrentEdits | None,
    events: EventLog | None,
    refresh: Callable[[str], Awaitable[None]],
    wedding_id: str,
    key: str,
    how: str,
    actor: Actor,
    ops: Sequence[Mapping[str, Any]] = (),
) -> str | None:
    """Close a stored finding; the id of the event recorded (``None`` if it was closed
    meanwhile, e.g. by the operations' own write of its key)."""
    assert concurrent is not None
    found = next((f for f in await concurrent.findings(wedding_id) if f.id == key), None)
    if found is None:
        if how == "resolved":
            return None
        raise LookupError(key)
    event = await concurrent.settle(wedding_id, found, how, actor)
    await refresh(wedding_id)
    if event is None or events is None:
        return None
    if ops:
        data = json.loads(event.data)
        data["ops"] = list(ops)
        event = NewEvent(
            event.wedding, event.type, json.dumps(data), event.doc, event.sub, event.role
        )
    stored = (await events.record([event])).events[0]
    return f"{wedding_id}:{stored.seq}"


async def mark(
    service: WeddingsView,
    refresh: Callable[[str], Awaitable[object]],
    wedding_id: str,
    key: str,
    marker: dict[str, Any] | None,
) -> None:
    """Mark conflict ``key`` of the conflicts room as being resolved (``marker``: by whom,
    with what), or unmark it (``None``); ``refresh`` writes the room first where the keeper
    has not written the finding yet. Raises :class:`LookupError` if there is none."""
    found: list[bool] = []

    def write(doc: Doc[Any]) -> None:
        entries = doc.get(CONFLICTS, type=Map)
        entry = entries.get(key)
        if not isinstance(entry, dict):
            return
        found.append(True)
        entry = {k: v for k, v in entry.items() if k != "resolving"}
        if marker is not None:
            entry["resolving"] = marker
        entries[key] = entry

    await service.edit(f"{wedding_id}/{CONFLICTS}", write, SENDER)
    if marker is not None and not found:
        # Found by the check, but the keeper has not written it yet: write it now.
        await refresh(wedding_id)
        await service.edit(f"{wedding_id}/{CONFLICTS}", write, SENDER)
        if not found:
            raise LookupError(key)
