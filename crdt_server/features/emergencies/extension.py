"""Emergencies: every member of the wedding but whoever raised one hears of it at once in
their inbox (and push), the couple and the planner by email too when they take emails
(never held by the digest); anyone who
may read it acknowledges it; one nobody acknowledged within :data:`RESEND_SECONDS` is sent
once more, by a durable job of the scheduler that an acknowledgement cancels."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

from crdt_server import clock
from crdt_server.actor import Actor
from crdt_server.auth.permissions import LEADS
from crdt_server.core.hooks import Core, Extension
from crdt_server.features.emergencies.tables import (
    Ack,
    acknowledged,
    acks_of,
    forget_acks_of,
)
from crdt_server.features.events import EventLog
from crdt_server.features.jobs import Job, JobContext, JobKind
from crdt_server.features.notifications import Notifications, notify
from crdt_server.features.people import Member, People
from crdt_server.features.scheduler import Scheduler
from crdt_server.storage import EventFilter, Gateway, NewEvent, StoredEvent
from crdt_server.storage.gateway import Tx

__all__ = [
    "EMERGENCY",
    "RESEND",
    "RESEND_KIND",
    "RESEND_SECONDS",
    "UNACKNOWLEDGED",
    "Emergencies",
]

log = logging.getLogger("crdt_server.emergencies")

RESEND_SECONDS = 300.0
"""An emergency nobody acknowledged within this long is sent once more."""
EMERGENCY = "emergency"
"""The notifications' ``reason`` of an emergency (``message``: its seq)."""
UNACKNOWLEDGED = "emergency_unacknowledged"
"""The reason of the one re-send of an emergency nobody acknowledged."""
RESEND_KIND = "emergencies.resend"
_MAX_SAID = 500
"""Characters of an emergency's data an email quotes."""


class Emergencies(Extension):
    """See the module docstring."""

    name = "emergencies"

    def __init__(
        self,
        core: Core,
        events: EventLog,
        people: People,
        inbox: Notifications,
        scheduler: Scheduler,
    ) -> None:
        self._events = events
        self._people = people
        self._inbox = inbox
        self._scheduler = scheduler
        self.db = Gateway.of(core.store)
        events.on_emergency(self)

    async def on_member_erased(self, wedding: str, sub: str) -> bool:
        return await self.db.run(forget_acks_of(wedding, sub)) > 0

    # -- raising -------------------------------------------------------------------------

    async def prepare(self, event: NewEvent) -> Callable[[StoredEvent], Tx[None]]:
        """An emergency is being stored: the step that notifies every other member (inbox;
        the couple and the planner by email too) and plans its re-send, in the transaction
        that stores it."""
        leads = await self._told_whom(event.wedding, event.sub)
        actor = Actor(event.sub, event.role)
        scheduler = self._scheduler

        def step(stored: StoredEvent) -> Tx[None]:
            now = clock.now()
            yield from self._told(stored.wedding, stored.seq, leads, EMERGENCY, actor, now)
            yield from scheduler.scheduled(
                stored.wedding,
                RESEND_KIND,
                str(stored.seq),
                now + RESEND_SECONDS,
                {"sub": event.sub, "role": event.role},
            )

        return step

    def told(self, event: StoredEvent) -> None:
        self._scheduler.wake()
        self._inbox.queued(event.wedding)

    async def _told_whom(self, wedding: str, poster: str) -> list[Member]:
        """Every member of the wedding, but the one who raised it."""
        members = await self._people.members(wedding)
        return [m for m in members if m.sub != poster]

    def _told(
        self, wedding: str, seq: int, leads: list[Member], reason: str, actor: Actor, now: float
    ) -> Tx[None]:
        emails = self._inbox.emails
        for member in leads:
            # Emails go to the couple and the planner (who run the day); everyone's inbox.
            mailed = emails and member.takes_email and member.role in LEADS
            yield from notify(
                wedding, member.sub, reason, "", str(seq), actor, "emergency", now, email=mailed
            )

    async def resend(self, job: Job, context: JobContext) -> Tx[None] | None:
        """The job of an emergency nobody acknowledged yet: tell them all once more."""
        seq = int(job.entry)
        if await self.acks(job.wedding, seq):
            return None
        leads = await self._told_whom(job.wedding, str(job.data.get("sub", "")))
        actor = Actor(str(job.data.get("sub", "")), str(job.data.get("role", "")))
        return self._told(job.wedding, seq, leads, UNACKNOWLEDGED, actor, clock.now())

    def resent(self, job: Job, context: JobContext) -> None:
        self._inbox.queued(job.wedding)

    # -- acknowledging -------------------------------------------------------------------

    async def emergency(self, wedding: str, seq: int, where: EventFilter) -> StoredEvent | None:
        """The wedding's emergency of ``seq``, if ``where`` lets its reader read it."""
        if seq < 1:
            return None
        page = await self._events.read(wedding, after=seq - 1, limit=1, where=where)
        return next((e for e in page if e.seq == seq and e.priority == "emergency"), None)

    async def acknowledge(self, wedding: str, seq: int, actor: Actor) -> list[Ack]:
        """``actor`` has seen the emergency (again: nothing changes); its re-send is
        cancelled. Its acknowledgements."""
        scheduler = self._scheduler
        now = clock.now()

        def tx() -> Tx[list[Ack]]:
            first = yield from acknowledged(wedding, seq, actor.sub, actor.role, now)
            if first:
                yield from scheduler.cancelled(wedding, RESEND_KIND, str(seq))
            return (yield from acks_of(wedding, seq))

        return await self.db.run(tx())

    async def acks(self, wedding: str, seq: int) -> list[Ack]:
        """The emergency's acknowledgements, first first."""
        return await self.db.run(acks_of(wedding, seq))

    # -- email ---------------------------------------------------------------------------

    async def say(self, wedding: str, ref: str, member: Member) -> str | None:
        """What an email says of an emergency (:meth:`Mailer.describe`)."""
        return await self._say(wedding, ref, "")

    async def say_again(self, wedding: str, ref: str, member: Member) -> str | None:
        return await self._say(wedding, ref, " (nobody has acknowledged it yet)")

    async def _say(self, wedding: str, ref: str, note: str) -> str | None:
        if not ref.isdigit():
            return None
        event = await self.emergency(wedding, int(ref), EventFilter())
        if event is None:
            return None  # gone (retention, erasure): nothing to say
        names = {m.sub: m.name for m in await self._people.members(wedding)}
        who = names.get(event.sub) or event.role or "someone"
        said = json.dumps(json.loads(event.data), ensure_ascii=False)
        if len(said) > _MAX_SAID:
            said = said[: _MAX_SAID - 1] + "\u2026"
        return f"[EMERGENCY] {who} ({event.role}) raised {event.type}{note}:\n{said}"


async def _resend(job: Job, context: JobContext) -> Tx[None] | None:
    return await context.get(Emergencies).resend(job, context)


def _resent(job: Job, context: JobContext) -> None:
    context.get(Emergencies).resent(job, context)


RESEND = JobKind(RESEND_KIND, _resend, after=_resent)
"""The one re-send of an emergency nobody acknowledged (entry: its seq)."""
