"""Conflicts: invariant findings (a table over capacity, overlapping bookings, spending over
budget) and concurrent edits (a write lost in a race), their events, notices and routes."""

from __future__ import annotations

from collections.abc import Sequence

from crdt_server.core.hooks import Extension
from crdt_server.features import Built, Feature
from crdt_server.features.conflicts.concurrent import ConcurrentEdits
from crdt_server.features.conflicts.keeper import ConflictsKeeper
from crdt_server.features.conflicts.routes import conflict_routes
from crdt_server.features.conflicts.tables import CONCURRENT_EDITS
from crdt_server.features.events.log import EventLog
from crdt_server.features.notifications.mail import Mailer
from crdt_server.features.people.directory import OVERWRITTEN
from crdt_server.features.threads.service import Threads

__all__ = ["FEATURE"]


def _build(built: Built) -> Sequence[Extension]:
    events = built.get(EventLog)
    threads = built.find(Threads)
    concurrent = ConcurrentEdits(events=events, people=threads.people if threads else None)
    mailer = built.find(Mailer)
    if mailer is not None:
        mailer.describe(OVERWRITTEN, concurrent.describe)
    return [concurrent, ConflictsKeeper(events=events, concurrent=concurrent)]


FEATURE = Feature(
    "conflicts",
    _build,
    routes=conflict_routes,
    schemas=(CONCURRENT_EDITS,),
    bus=frozenset({"concurrent_edits"}),
)
