"""Conflicts: invariant findings (a table over capacity, overlapping bookings, spending over
budget) and concurrent edits (a write lost in a race), their events, notices and routes."""

from __future__ import annotations

from collections.abc import Sequence

from crdt_server.auth.permissions import LEADS
from crdt_server.core.hooks import Extension
from crdt_server.features import Built, Feature
from crdt_server.features.conflicts.extension import ConflictsKeeper
from crdt_server.features.conflicts.extension_concurrent import ConcurrentEdits
from crdt_server.features.conflicts.routes import conflict_routes
from crdt_server.features.conflicts.tables import CONCURRENT_EDITS
from crdt_server.features.events import EventLog
from crdt_server.features.notifications import OVERWRITTEN, Mailer, Notifications
from crdt_server.features.people import People

__all__ = ["FEATURE"]


def _build(built: Built) -> Sequence[Extension]:
    events = built.get(EventLog)
    # Telling the author of a lost write needs the directory and the inbox (optional: the
    # findings are kept without them).
    people = built.find(People) if built.find(Notifications) is not None else None
    concurrent = ConcurrentEdits(built.core, events=events, people=people)
    mailer = built.find(Mailer)
    if mailer is not None:
        mailer.describe(OVERWRITTEN, concurrent.describe, "A change of yours was lost")
    return [concurrent, ConflictsKeeper(built.core, events=events, concurrent=concurrent)]


FEATURE = Feature(
    "conflicts",
    _build,
    needs=("events",),
    routes=conflict_routes,
    schemas=(CONCURRENT_EDITS,),
    bus=frozenset({"concurrent_edits"}),
    # Resolving detected conflicts: who runs the wedding.
    capabilities={"conflicts.resolve": LEADS},
    event_namespaces=("conflict.",),
)
