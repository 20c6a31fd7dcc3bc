"""Suggested resolutions of conflicts by the wedding hierarchy (pure, no I/O).

A conflict names the entries involved (``seating/assignments/g1``...). Who last wrote each
entry is known to the server; when two writes collide, the one made by the higher role
wins: the couple, then the planner, family, vendors and friends (the brief's "wedding
hierarchy"). :func:`suggest` turns that rule into domain operations that would undo the
lower-ranked writes (unseat a guest, cancel a timeline item), or into a named person to
decide when no operation can (money is never moved automatically).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pycrdt import Doc

from crdt_server.actor import Actor
from crdt_server.documents.households import household_of, unnamed_plus_ones
from crdt_server.documents.model import Conflict
from crdt_server.documents.schema import read_guests, read_seating

__all__ = ["ROLE_PRIORITY", "Suggestion", "related_paths", "suggest"]

ROLE_PRIORITY: tuple[str, ...] = ("guest", "couple", "planner", "family", "vendor", "friend")
"""Roles from the highest to the lowest (other roles, and unknown writers, rank last).
``guest`` (an RSVP link's answer, not a role of the matrix) writes only the answer of the
person it is (rsvp, meal, dietary), of which that person is the authority: a race between
their answer and a planner's edit of it keeps theirs."""


@dataclass(frozen=True, slots=True)
class Suggestion:
    """What the hierarchy suggests: whose writes to keep, and the operations (possibly
    none) that would resolve the conflict that way."""

    keep: Actor | None
    ops: list[dict[str, Any]]
    message: str

    def to_json(self) -> dict[str, Any]:
        return {
            "strategy": "role_priority",
            "keep": None if self.keep is None else {"sub": self.keep.sub, "role": self.keep.role},
            "ops": self.ops,
            "message": self.message,
        }


def rank(writer: Actor | None) -> int:
    """0 for a guest answering for themselves, 1 for the couple, up to
    ``len(ROLE_PRIORITY)`` for unknown writers (lowest)."""
    if writer is None or writer.role not in ROLE_PRIORITY:
        return len(ROLE_PRIORITY)
    return ROLE_PRIORITY.index(writer.role)


def related_paths(conflict: Conflict, docs: Mapping[str, Doc[Any]]) -> tuple[str, ...]:
    """Entries whose writers caused ``conflict`` besides its own paths (the guests seated
    at an over-full table), sorted."""
    if conflict.code != "seating.table_over_capacity" or not conflict.paths:
        return ()
    table_id = conflict.paths[0].rsplit("/", 1)[-1]
    seating = read_seating(docs.get("seating"))
    return tuple(
        sorted(
            f"seating/assignments/{a.id}"
            for a in seating.assignments.values()
            if a.table_id == table_id
        )
    )


def _id(path: str) -> str:
    return path.rsplit("/", 1)[-1]


def _ordered(paths: list[str], writers: Mapping[str, Actor]) -> list[str]:
    """Highest-ranked writer first; among equals the oldest id first (stable)."""
    return sorted(paths, key=lambda p: (rank(writers.get(p)), p))


def suggest(
    conflict: Conflict, writers: Mapping[str, Actor], docs: Mapping[str, Doc[Any]]
) -> Suggestion:
    """The hierarchy's resolution of ``conflict``; ``writers`` maps entry paths to who last
    wrote them (missing: unknown, ranked last)."""
    code = conflict.code
    if code == "seating.seat_double_booked":
        order = _ordered(list(conflict.paths), writers)
        keep = writers.get(order[0])
        ops = [{"op": "unassign_seat", "guest_id": _id(p)} for p in order[1:]]
        return Suggestion(keep, ops, "Keep the seat of the highest role's assignment.")
    if code == "seating.table_over_capacity":
        seating = read_seating(docs.get("seating"))
        table = seating.tables.get(_id(conflict.paths[0]))
        seated = list(related_paths(conflict, docs))
        # People, not rows: a guest with an unnamed plus-one takes two seats.
        unnamed = set(unnamed_plus_ones(read_guests(docs.get("guests"))))
        weight = {p: 2 if _id(p) in unnamed else 1 for p in seated}
        if table is not None and sum(weight.values()) > table.capacity:
            order = _ordered(seated, writers)
            kept: list[str] = []
            dropped: list[str] = []
            taken = 0
            for path in order:
                if not dropped and taken + weight[path] <= table.capacity:
                    kept.append(path)
                    taken += weight[path]
                else:
                    dropped.append(path)
            keep = writers.get(kept[0]) if kept else None
            ops = [{"op": "unassign_seat", "guest_id": _id(p)} for p in dropped]
            return Suggestion(keep, ops, "Unseat the guests seated by the lowest roles.")
    if code == "seating.household_split" and conflict.paths:
        # One table for the household: the one the highest role seated one of them at.
        order = _ordered(list(conflict.paths), writers)
        first = read_seating(docs.get("seating")).assignments.get(_id(order[0]))
        household = household_of(read_guests(docs.get("guests")), _id(order[0]))
        if first is not None and household is not None:
            ops = [{"op": "seat_household", "household_id": household, "table_id": first.table_id}]
            return Suggestion(
                writers.get(order[0]), ops, "Seat the household where the highest role put them."
            )
    if code in ("timeline.vendor_overlap", "timeline.location_overlap"):
        order = _ordered(list(conflict.paths), writers)
        keep = writers.get(order[0])
        ops = [
            {"op": "update_timeline_item", "item_id": _id(p), "status": "cancelled"}
            for p in order[1:]
        ]
        return Suggestion(keep, ops, "Cancel the item booked by the lower role.")
    known = [w for p in conflict.paths if (w := writers.get(p)) is not None]
    keep = min(known, key=rank) if known else None
    who = f" ({keep.role} {keep.sub} decides)" if keep is not None else ""
    return Suggestion(keep, [], f"Needs a person to decide{who}.")
