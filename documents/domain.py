"""The wedding domain as the sync core sees it (``crdt_server.core.domain.Domain``).

The core knows no domain: it is given this value (by the extensions that want change
records, and by the app to its ``WeddingService``) and asks it which rooms hold wedding
documents, for a recorder of what each update changed, for a document's JSON view and to
run an operation. It is defined here, beside what it wraps, so that the core never imports
this package.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pycrdt import Doc, Map

from .changes import ChangeRecorder
from .households import household_guests, household_of
from .jsonio import to_json
from .model import DOCUMENT_KINDS, FINDINGS_ROOM
from .operations import apply_operation
from .schema import read_guests, read_profile, read_seating, read_tasks
from .tasks import due_dates
from .totals import totals

__all__ = ["WEDDINGS", "WeddingDomain"]


class WeddingDomain:
    """The documents of a wedding (:data:`DOCUMENT_KINDS`)."""

    __slots__ = ()

    @property
    def kinds(self) -> tuple[str, ...]:
        return DOCUMENT_KINDS

    def recorder(
        self, doc: Doc[Any], kind: str, on_error: Callable[[BaseException], None]
    ) -> ChangeRecorder:
        return ChangeRecorder(doc, kind, on_error=on_error)

    def to_json(
        self,
        doc: Doc[Any],
        kind: str,
        *,
        rich: bool = False,
        related: Mapping[str, Doc[Any]] | None = None,
    ) -> dict[str, Any]:
        if kind == FINDINGS_ROOM:
            found = doc.get(FINDINGS_ROOM, type=Map).to_py() or {}
            return {"kind": kind, "conflicts": [found[k] for k in sorted(found)]}
        view = to_json(doc, kind, rich=rich)
        if kind == "guests":
            # People, not rows: headcount, meals and dietary needs, per table with the plan.
            seating = (related or {}).get("seating")
            plan = read_seating(seating) if seating is not None else None
            view["totals"] = totals(read_guests(doc), plan)
        if kind == "tasks":
            # Each task's day: its own, or its offset from the wedding date (the timeline's
            # profile), for a caller who may read the timeline; else the days alone.
            timeline = (related or {}).get("timeline")
            wedding = read_profile(timeline).date if timeline is not None else None
            view["due_dates"] = due_dates(read_tasks(doc).tasks, wedding)
        return view

    def context(self, kind: str, op: Mapping[str, Any] | None = None) -> tuple[str, ...]:
        if op is None:
            return ("seating",) if kind == "guests" else ("timeline",) if kind == "tasks" else ()
        if kind == "seating" and op.get("op") in _READ_GUESTS:
            return ("guests",)
        return ()

    def needs(self, kind: str, op: Mapping[str, Any]) -> tuple[str, ...]:
        if kind == "seating" and op.get("op") == "seat_household":
            return ("guests",)
        return ()

    def operate(
        self,
        doc: Doc[Any],
        kind: str,
        op: Mapping[str, Any],
        *,
        origin: str,
        related: Mapping[str, Doc[Any]] | None = None,
    ) -> dict[str, Any]:
        return apply_operation(doc, kind, op, origin=origin, related=related)

    def forget(self, doc: Doc[Any], kind: str, person: str) -> bool:
        root = _PERSON_ROOTS.get(kind)
        if root is None:
            return False
        entries = doc.get(root, type=Map)
        found = False
        household = household_of(read_guests(doc), person) if kind == "guests" else None
        if kind == "guests":
            # Their named plus-ones stay guests of their own, no longer linked to them.
            for key in list(entries.keys()):
                entry = entries.get(key)
                if isinstance(entry, Map) and entry.get("plus_one_of") == person:
                    del entry["plus_one_of"]
                    found = True
        if person in entries:
            del entries[person]
            found = True
        if household is not None:
            _forget_note(doc, household)
        return found

    def person_paths(self, person: str) -> tuple[str, ...]:
        """The entries that hold one guest, as findings name them
        (``guests/guests/g1``, ``seating/assignments/g1``): what erasure looks for in
        stored events and deliveries besides the guest's id."""
        return tuple(f"{kind}/{root}/{person}" for kind, root in _PERSON_ROOTS.items())


_NOTE_FIELDS = ("rsvp_note", "rsvp_note_at")
"""What a household's people wrote to the couple (its RSVP page's note): it goes with the
last of them."""


def _forget_note(doc: Doc[Any], household_id: str) -> None:
    """Clear a household's note to the couple once none of its people is left (its entry,
    its name and mailing address stay: the couple's)."""
    left = household_guests(read_guests(doc), household_id)
    entry = doc.get("households", type=Map).get(household_id)
    if (left is None or not left.guests) and isinstance(entry, Map):
        for name in _NOTE_FIELDS:
            if name in entry:
                del entry[name]


_READ_GUESTS = frozenset({"seat_household", "assign_seat", "update_table"})
"""Seating operations that read the guest list: a household's people, and a table's people
counted with the unnamed plus-ones of its guests (who declined is not seated)."""

_PERSON_ROOTS = {"guests": "guests", "seating": "assignments"}
"""Where a guest is, by document kind: their entry (keyed by guest id) and their seat
(assignments are keyed by guest id too). The timeline and the budget name no guest."""


WEDDINGS = WeddingDomain()
"""The wedding domain (one value: the extensions that name it must name the same one)."""
