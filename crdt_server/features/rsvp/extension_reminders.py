"""RSVP reminders: ``CRDT_SERVER_RSVP_REMINDER_DAYS`` before a household's RSVP deadline, a
household nobody of which has answered gets one reminder email, through the scheduler.

After a change to a wedding's guest list or profile (committed here; coalesced per
wedding, one planning at a time), its reminders are planned again from its documents
(:meth:`crdt_server.features.scheduler.Scheduler.plan`): one job per household with a
deadline, a guest with an email address and no answer yet, due at the reminder's time;
a household that answered, lost its deadline or left the list has its pending job
cancelled, and a moved deadline moves it. A job is unique per (wedding, household, due
time), so a household is reminded once per deadline. When it runs, the job reads the
documents again and queues the emails (the guest-mail outbox) in the transaction that
completes it, skipping a guest who unsubscribed, a household that answered meanwhile, a
deadline that changed or passed, and a reminder planned only after its time had come (a
deadline set closer than the reminder's days). A guest in no household is reminded alike,
by their own link (the job's entry ``guest:<guest id>``: ids have no colon).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

from crdt_server import clock
from crdt_server.core.hooks import Core, Extension, RoomView
from crdt_server.core.payloads import CommitBatch
from crdt_server.features.jobs import Job, JobContext, JobKind
from crdt_server.features.notifications import Notifications, queued_guest_email
from crdt_server.features.scheduler import Scheduler
from crdt_server.storage.gateway import Tx

from .domain import (
    closes_at,
    email_address,
    link_key,
    mint_code,
    mint_guest_code,
    reminder_at,
    reminder_text,
    unsubscribe_key,
)
from .domain_households import HouseholdView, Wedding, read_wedding
from .extension import RsvpLinks
from .settings import RsvpSettings

__all__ = ["REMINDER", "RsvpReminders"]

log = logging.getLogger("crdt_server.rsvp")

KIND = "rsvp.reminder"


def _answered(household: HouseholdView) -> bool:
    return any(guest.rsvp != "pending" for guest in household.guests)


def _deadline(wedding: Wedding, household: HouseholdView) -> str | None:
    return household.rsvp_deadline or wedding.deadline


class RsvpReminders(Extension):
    """Plans the RSVP reminders of the weddings whose documents change (module docstring)."""

    name = "rsvp-reminders"

    def __init__(
        self, core: Core, scheduler: Scheduler | None, outbox: Notifications | None
    ) -> None:
        self.scheduler = scheduler
        self._outbox = outbox
        self._core = core
        self._days = core.settings.fragment(RsvpSettings).rsvp_reminder_days
        self._dirty: set[str] = set()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.planned = 0
        """Plannings done by this process (for tests)."""

    async def start(self, core: Core) -> None:
        if self.scheduler is None or self._outbox is None or not self._days:
            return
        if not self._outbox.emails:
            return  # this server sends no email
        if not core.settings.public_url:
            log.warning(
                "RSVP reminders are off: their emails need CRDT_SERVER_PUBLIC_URL for links"
            )
            return
        self._task = asyncio.create_task(self._follow(), name="rsvp-reminders")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def on_change(self, room: RoomView, batch: CommitBatch) -> None:
        # Content committed here (another process plans what it committed).
        if self._task is not None and not batch.remote and room.kind in ("guests", "timeline"):
            self._dirty.add(room.wedding_id)
            self._wake.set()

    async def _follow(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            weddings, self._dirty = self._dirty, set()
            for wedding_id in sorted(weddings):
                try:
                    await self.plan(wedding_id)
                except Exception:
                    log.exception("planning the RSVP reminders of a wedding failed")

    async def plan(self, wedding_id: str) -> int:
        """Plan the wedding's reminders from its documents as they are; how many jobs were
        added or cancelled."""
        assert self.scheduler is not None
        docs = await self._core.weddings.documents(wedding_id, kinds=("guests", "timeline"))
        wedding = read_wedding(docs)
        now = clock.now()
        wanted: dict[str, tuple[float, dict[str, object]]] = {}
        # Each household, and each guest in none (their own link: the entry ``guest:<id>``).
        links = [(h, False) for h in wedding.households.values()]
        for household, alone in [*links, *((g, True) for g in wedding.solo.values())]:
            deadline = _deadline(wedding, household)
            due = reminder_at(deadline, wedding.time_zone, self._days)
            if deadline is None or due is None or _answered(household):
                continue
            if not any(email_address(guest.contact) for guest in household.guests):
                continue
            entry = link_key(household.id, guest=alone)
            wanted[entry] = (due.timestamp(), {"deadline": deadline, "planned": now})
        self.planned += 1
        return await self.scheduler.plan(wedding_id, KIND, wanted)


async def remind(job: Job, context: JobContext) -> Tx[None] | None:
    """The reminder job: the household's emails, if it still needs them."""
    core = context.core
    try:
        outbox, links = context.get(Notifications), context.get(RsvpLinks)
    except LookupError:
        return None
    base = core.settings.public_url.rstrip("/")
    if not outbox.emails or not base:
        return None
    planned = job.data.get("planned")
    if isinstance(planned, int | float) and planned > job.due_at:
        return None  # planned after its time: the deadline was set too close for it
    docs = await core.weddings.documents(job.wedding, kinds=("guests", "timeline"))
    wedding = read_wedding(docs)
    alone = job.entry.startswith("guest:")  # a guest in no household: their own link
    household = wedding.solo.get(job.entry[6:]) if alone else wedding.households.get(job.entry)
    if household is None or _answered(household):
        return None
    deadline = _deadline(wedding, household)
    closes = closes_at(deadline, wedding.time_zone)
    if (
        deadline is None
        or deadline != job.data.get("deadline")
        or closes is None
        or closes.timestamp() <= clock.now()
    ):
        return None
    blocked = await links.tables.unsubscribed(job.wedding)
    version = await links.tables.version(job.wedding, job.entry)
    page = core.settings.fragment(RsvpSettings).rsvp_url.rstrip("/") or base
    mint = mint_guest_code if alone else mint_code
    url = f"{page}/rsvp/#code={mint(links.secret, job.wedding, household.id, version)}"
    couple = " & ".join(wedding.names) or "The couple"
    subject, body = reminder_text(household.name, couple, wedding.date, deadline, url)
    emails: list[tuple[str, str, str]] = []
    for guest in household.guests:
        address = email_address(guest.contact)
        if address is None or guest.id in blocked:
            continue
        key = unsubscribe_key(links.secret, job.wedding, guest.id)
        path = f"/api/weddings/{job.wedding}/guests/{guest.id}/rsvp-unsubscribe?key={key}"
        emails.append((guest.id, address, base + path))
    if not emails:
        return None
    return _queue(job.wedding, emails, couple, subject, body)


def _queue(
    wedding: str, emails: Sequence[tuple[str, str, str]], couple: str, subject: str, body: str
) -> Tx[None]:
    now = clock.now()
    for guest, address, unsubscribe in emails:
        yield from queued_guest_email(
            wedding,
            guest,
            address,
            from_name=couple,
            subject=subject,
            body=body,
            unsubscribe=unsubscribe,
            now=now,
        )


def _wake_mailer(job: Job, context: JobContext) -> None:
    with contextlib.suppress(LookupError):
        context.get(Notifications).queued(job.wedding)


REMINDER = JobKind(KIND, remind, after=_wake_mailer)
"""The RSVP reminder's job kind (declared on the RSVP feature)."""
