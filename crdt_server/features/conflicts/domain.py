"""A conflict as the feature records it: a finding's stable id and its view in the API, the
events recorded about it (``conflict.detected``, ``conflict.resolved``,
``conflict.acknowledged``) and who last wrote its entries."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pycrdt import Doc

from crdt_server.actor import Actor
from crdt_server.core.hooks import Sender
from crdt_server.documents import Conflict
from crdt_server.features.conflicts.domain_resolution import suggest
from crdt_server.storage import NewEvent

__all__ = [
    "CONCURRENT_CODE",
    "SENDER",
    "ConflictView",
    "as_dict",
    "conflict_event",
    "conflict_id",
    "is_concurrent_event",
    "is_stored_id",
    "last_writers",
    "resolved_event",
]

SENDER = Sender(Actor("server", "server"), "server:conflicts")
"""Who the feature's own writes (the conflicts room, its events) are credited to."""
_MOST_PRIVATE_FIRST = ("budget", "tasks", "guests", "seating", "timeline")
CONCURRENT_CODE = "concurrent_edit"


@dataclass(frozen=True, slots=True)
class ConflictView:
    """A current finding as the API shows it: the finding, its stable id, when it was
    first seen, who wrote its entries, who acknowledged it, and the hierarchy's suggestion."""

    id: str
    conflict: Conflict
    first_seen: float | None
    actors: list[dict[str, str]]
    acknowledged: list[dict[str, Any]]
    suggestion: dict[str, Any]
    concurrent: dict[str, Any] | None = None
    """For a ``concurrent_edit``: the lost and the kept write (see
    :func:`~crdt_server.features.conflicts.extension_concurrent.finding_view`)."""

    @classmethod
    def checked(
        cls, key: str, conflict: Conflict, entry: dict[str, Any], docs: Mapping[str, Doc[Any]]
    ) -> ConflictView:
        """A finding of the check, with its entry in the conflicts room (``{}``: none yet)
        and the wedding's documents (for the suggestion)."""
        actors = [a for a in entry.get("actors") or [] if isinstance(a, dict)]
        writers = {str(a.get("path")): Actor(str(a.get("sub")), str(a.get("role"))) for a in actors}
        people = sorted({(w.sub, w.role) for w in writers.values()})
        first = entry.get("first_seen")
        return cls(
            id=key,
            conflict=conflict,
            first_seen=first if isinstance(first, int | float) else None,
            actors=[{"sub": sub, "role": role} for sub, role in people],
            acknowledged=[a for a in entry.get("acknowledged") or [] if isinstance(a, dict)],
            suggestion=suggest(conflict, writers, docs).to_json(),
        )

    @classmethod
    def stored(cls, view: dict[str, Any]) -> ConflictView:
        """A stored finding (a concurrent edit), from its view (see
        :func:`~crdt_server.features.conflicts.extension_concurrent.finding_view`)."""
        both: list[dict[str, str]] = [
            w["actor"] for w in (view["lost"], view["kept"]) if w and w["actor"]
        ]
        return cls(
            id=view["id"],
            conflict=Conflict(CONCURRENT_CODE, tuple(view["paths"]), view["message"]),
            first_seen=view["detected_at"],
            actors=sorted({(a["sub"], a["role"]): a for a in both}.values(), key=str),
            acknowledged=[],
            suggestion=view["suggestion"],
            concurrent=view,
        )


def conflict_id(conflict: Conflict) -> str:
    """A finding's stable id: the same code on the same entries is the same conflict."""
    digest = hashlib.sha1("\x00".join((conflict.code, *conflict.paths)).encode()).hexdigest()
    return f"{conflict.code}:{digest[:12]}"


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def is_concurrent_event(event: NewEvent) -> bool:
    return event.type.startswith("conflict.") and f'"code":"{CONCURRENT_CODE}"' in event.data


def is_stored_id(key: str) -> bool:
    """Whether ``key`` names a stored finding (a concurrent edit), not a checked one."""
    return key.startswith("cw:")


def last_writers(
    old: Any, known: Mapping[str, tuple[str, str, float]], paths: Sequence[str]
) -> list[dict[str, Any]]:
    """The last writer of each of ``paths``: what the entry says, or what this process
    committed later (each process knows its own commits; the newest write wins)."""
    merged: dict[str, dict[str, Any]] = {}
    for a in old if isinstance(old, list) else []:
        if isinstance(a, dict) and a.get("path") in paths:
            merged[a["path"]] = a
    for path in paths:
        mine = known.get(path)
        if mine is None:
            continue
        current = merged.get(path)
        at = current.get("at") if current is not None else None
        if current is None or not isinstance(at, int | float) or at < mine[2]:
            merged[path] = {"path": path, "sub": mine[0], "role": mine[1], "at": mine[2]}
    return [merged[p] for p in sorted(merged)]


def resolved_event(wedding_id: str, key: str, old: dict[str, Any]) -> NewEvent:
    """``conflict.resolved``: credited to the person resolving it, if someone is (else the
    server: the entries changed so that the finding no longer holds)."""
    marker = old.get("resolving")
    if isinstance(marker, dict) and isinstance(marker.get("sub"), str):
        by = Actor(marker["sub"], str(marker.get("role")))
        extra = {"resolution": "ops", "ops": marker.get("ops", [])}
        return conflict_event(
            wedding_id, "conflict.resolved", key, old.get("code"), old.get("paths"), by, extra
        )
    return conflict_event(wedding_id, "conflict.resolved", key, old.get("code"), old.get("paths"))


def conflict_event(
    wedding_id: str,
    kind: str,
    key: str,
    code: Any,
    paths: Any,
    actor: Actor = SENDER.actor,
    extra: Mapping[str, Any] | None = None,
) -> NewEvent:
    paths = [str(p) for p in paths] if isinstance(paths, list | tuple) else []
    docs = {p.split("/")[0] for p in paths}
    # An event belongs to one document (readers see the events of documents they may
    # read). A conflict between documents is filed under the one fewest roles may read in
    # the default matrix, so it reaches no one who could not see all of its entries.
    doc = next((d for d in _MOST_PRIVATE_FIRST if d in docs), None)
    data = {"id": key, "code": code, "paths": paths, "docs": sorted(docs), **(extra or {})}
    return NewEvent(wedding_id, kind, json.dumps(data), doc, sub=actor.sub, role=actor.role)
